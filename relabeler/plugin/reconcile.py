"""The server's annotations of a task, reconciled with the webhook event log (pure).

The server is the truth for every annotation it shows. For one it does not show, the event log
decides: an ``ANNOTATIONS_DELETED`` event naming it drops it; otherwise (created or updated,
never deleted) it is kept where an earlier pull saw it on the server in that task (the server
lost it since), as the server last showed it, and set aside as unconfirmed where none did:
anyone who can read the webhook's secret can post an event, so an answer no server ever showed
is not taken as one, nor an update of it that no server showed (a later event whose answer
differs is set aside as an unconfirmed update). Only where a pull recorded the annotation's id
alone (a run pulled before pulls kept what the server showed) is its latest event payload
taken.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relabeler.plugin.events import ANNOTATION_ACTIONS, as_id

# Each reader below takes an id only where it is one (events.as_id): read_events already skips
# an event with another, and an id past int64 would stop the pull that writes it.


def _task_id_of(annotation: Mapping[str, Any], payload: Mapping[str, Any]) -> int | None:
    """The task an annotation event names: ``annotation.task`` (an id or a task object), else
    ``payload.task``; None where neither is a task id (the event is kept, its task not
    fetched)."""
    task = annotation.get("task") or payload.get("task")
    if isinstance(task, Mapping):
        task = task.get("id")
    return as_id(task)


def _annotation_ids(payload: Mapping[str, Any]) -> list[int]:
    """The ids of ``payload["annotations"]`` (an entry without an id is skipped)."""
    entries = payload.get("annotations")
    entries = entries if isinstance(entries, list) else []
    ids = (as_id(a.get("id")) for a in entries if isinstance(a, Mapping))
    return [i for i in ids if i is not None]


def event_project(event: Mapping[str, Any]) -> int | None:
    """The project an event names (an id or a project object); None where it names none."""
    project = (event.get("payload") or {}).get("project")
    if isinstance(project, Mapping):
        project = project.get("id")
    return as_id(project)


@dataclass
class WebhookAnnotations:
    """Annotations as webhook events told them, replayed in arrival order."""

    by_task: dict[int, dict[int, dict]] = field(default_factory=dict)  # latest payloads
    deleted: set[int] = field(default_factory=set)    # ids whose last event is a deletion
    task_of: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> WebhookAnnotations:
        return cls().apply(events)

    def apply(self, events: Iterable[Mapping[str, Any]]) -> WebhookAnnotations:
        """These annotations with ``events`` (later than those applied so far) replayed on
        top; returns itself."""
        seen = self
        for event in events:
            payload = event.get("payload") or {}
            action = payload.get("action")
            if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
                annotation = payload.get("annotation") or {}
                task_id = _task_id_of(annotation, payload)
                ids = _annotation_ids({"annotations": [annotation]})
                if not ids or task_id is None:
                    continue  # not an annotation of a task: nothing to replay
                annotation_id = ids[0]
                seen.by_task.setdefault(task_id, {})[annotation_id] = dict(annotation)
                seen.task_of[annotation_id] = task_id
                seen.deleted.discard(annotation_id)
            elif action == "ANNOTATIONS_DELETED":
                seen.deleted.update(_annotation_ids(payload))
        return seen

    def tasks_named(self, events: Iterable[Mapping[str, Any]]) -> dict[int, set[int]]:
        """Task ids by project id that annotation events name (to fetch them even when their
        ``updated_at`` did not move)."""
        named: dict[int, set[int]] = {}
        for event in events:
            payload = event.get("payload") or {}
            project_id = event_project(event)
            if payload.get("action") not in ANNOTATION_ACTIONS or project_id is None:
                continue
            tasks = named.setdefault(project_id, set())
            task_id = _task_id_of(payload.get("annotation") or {}, payload)
            if task_id is not None:
                tasks.add(task_id)
            tasks.update(self.task_of[i] for i in _annotation_ids(payload) if i in self.task_of)
        return named


@dataclass(frozen=True)
class Reconciled:
    """A task's annotations after reconciling the server with the event log."""

    annotations: list[dict[str, Any]]  # the server's, then those known only from events
    from_events: list[int]             # ids kept though the server does not show them
    deleted: list[int]                 # ids dropped: the server lacks them, an event deleted them
    via: str                           # export, events or export+events
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)
    # ^ known only from events, and no earlier pull saw them on the server: not answers
    unconfirmed_updates: list[dict[str, Any]] = field(default_factory=list)
    # ^ event payloads of kept annotations whose answer differs from what the server last
    #   showed (an update no pull saw on the server): not taken


def _answer(annotation: Mapping[str, Any]) -> tuple[list[tuple[Any, Any]], bool]:
    """What a vote is read from: each region's control and value, and whether it was a skip."""
    regions = [(r.get("from_name"), r.get("value")) if isinstance(r, Mapping) else (None, r)
               for r in annotation.get("result") or []]
    return regions, bool(annotation.get("was_cancelled"))


def reconcile_task(task: Mapping[str, Any], webhooks: WebhookAnnotations, *,
                   seen_on_server: Mapping[int, Mapping[str, Any] | None],
                   vanished: Collection[int] = ()) -> Reconciled:
    """The server's annotations of ``task``, plus the recorded ones it no longer shows, no
    event deleted and an earlier pull saw on the server in this task; the other recorded ones
    it does not show are ``unconfirmed`` (see the module docstring).

    seen_on_server: the annotations earlier pulls saw on the server in this task, by id, each
    as the server last showed it (None where only the id was recorded).
    vanished: ids the server stopped showing while it still showed the task: deleted there
    without an event reaching the log; left out whatever the events say.
    """
    server = {int(a["id"]): dict(a) for a in task.get("annotations") or []}
    recorded = {annotation_id: annotation
                for annotation_id, annotation in webhooks.by_task.get(int(task["id"]), {}).items()
                if annotation_id not in server and annotation_id not in vanished}
    deleted = sorted(i for i in recorded if i in webhooks.deleted)
    alive = {i: a for i, a in recorded.items() if i not in webhooks.deleted}
    kept, updates = {}, []
    for i, event in sorted(alive.items()):
        if i not in seen_on_server:
            continue
        shown = seen_on_server[i]
        kept[i] = dict(event if shown is None else shown)
        if shown is not None and _answer(event) != _answer(shown):
            updates.append(dict(event))
    via = "export" if not kept else ("export+events" if server else "events")
    return Reconciled([*server.values(), *kept.values()], sorted(kept), deleted, via,
                      [dict(a) for i, a in sorted(alive.items()) if i not in kept], updates)


def deleted_by_events(task: Mapping[str, Any], recorded: dict[str, Any],
                      webhooks: WebhookAnnotations, *, task_gone: bool) -> list[int]:
    """The annotations of ``task`` that earlier pulls saw on the server, that the server no
    longer shows and that a webhook event deleted (moved out of ``recorded``). Those whose
    creation no event recorded (given before `relabeler serve` started) are in no other
    count: :func:`reconcile_task` counts the deletions of the recorded ones, and
    :func:`vanished_annotations` the ones gone without an event."""
    if task_gone:
        return []
    shown = {str(a["id"]) for a in task.get("annotations") or []}
    gone = sorted(int(i) for i in recorded if i not in shown and int(i) in webhooks.deleted)
    for i in gone:
        del recorded[str(i)]
    return gone


#: why an annotation an earlier pull saw is no longer an answer
VANISHED = ("the server showed it at an earlier pull and no longer does, while it still shows "
            "the task, and no webhook event said it was deleted (deleted in Label Studio while "
            "`relabeler serve` was down?): dropped, as the server shows; kept here as it was "
            "last shown; if it should count, have it answered again")


def vanished_annotations(task: Mapping[str, Any], recorded: dict[str, Any],
                         earlier: dict[str, Any], webhooks: WebhookAnnotations, *,
                         task_gone: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The annotations of ``task`` that earlier pulls saw on the server and the server, which
    still shows the task, no longer shows without a deletion event (moved out of ``recorded``);
    and of those, the ones found now. One the server shows again is no longer vanished."""
    shown = {str(a["id"]) for a in task.get("annotations") or []}
    vanished = {i: a for i, a in earlier.items() if i not in shown}
    newly = {} if task_gone else {i: a for i, a in recorded.items()
                                  if i not in shown and int(i) not in webhooks.deleted}
    for i in newly:
        del recorded[i]
    return {**vanished, **newly}, newly
