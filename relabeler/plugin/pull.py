"""``relabeler pull``: the annotators' answers back into the run as corrections.

* Incremental: only tasks whose ``updated_at`` moved since the last pull (a new, changed or
  deleted annotation moves it), plus tasks named by webhook events received since, are fetched;
  a task whose annotations did not change (same ids and times) is not recomputed.
* Mapped back to sample ids through ``studio/manifest.parquet`` (or the task's ``sample_id``).
* Several annotators: each one's latest annotation is one vote; the majority wins; a tie is
  marked ``needs_review`` and counts as "unsure". Skipped tasks and "Not sure" give ``unsure``;
  "Drop" gives ``drop``; the given label gives ``keep``; another class gives ``relabel``.
* Reconciled with webhook events: an annotation known only from an event (the server lost it,
  or the task is gone) is kept, with ``via`` saying so.
* Nothing is dropped silently: an answer that cannot be mapped (no sample id, a choice that is
  not a class of the run, no answer at all) goes to ``labels/unmapped.parquet`` and the log.

Writes ``labels/corrections.parquet`` (the whole current state, atomically replaced) and
``studio/pull_state.json`` (watermarks, per-task fingerprints, events seen).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from relabeler.errors import PluginError
from relabeler.plugin.client import StudioClient, StudioNotFoundError
from relabeler.plugin.events import ANNOTATION_ACTIONS, read_events
from relabeler.plugin.labeling import DROP, NOT_SURE, LabelingSpec
from relabeler.plugin.push import MANIFEST, read_manifest
from relabeler.plugin.tasks import SAMPLE_ID_FIELD
from relabeler.store import RunStore

log = logging.getLogger(__name__)

CORRECTIONS = "labels/corrections.parquet"
UNMAPPED = "labels/unmapped.parquet"
PULL_STATE = "studio/pull_state.json"
KEEP, RELABEL, DROP_ACTION, UNSURE = "keep", "relabel", "drop", "unsure"
ACTIONS = (KEEP, RELABEL, DROP_ACTION, UNSURE)
# tasks updated this long before the watermark are fetched again: commits can land out of order
_WATERMARK_MARGIN = timedelta(seconds=5)

CORRECTIONS_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("old_label", pa.string()),
    pa.field("new_label", pa.string()),
    pa.field("action", pa.string(), nullable=False),
    pa.field("annotators", pa.list_(pa.string())),
    pa.field("n_annotations", pa.int64()),
    pa.field("agreement", pa.float64()),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    pa.field("source", pa.string()),
    pa.field("needs_review", pa.bool_()),
    pa.field("n_skipped", pa.int64()),
    pa.field("votes", pa.list_(pa.string())),
    pa.field("comments", pa.list_(pa.string())),
    pa.field("annotation_ids", pa.list_(pa.int64())),
    pa.field("project_id", pa.int64()),
    pa.field("task_id", pa.int64()),
    pa.field("via", pa.string()),
])
UNMAPPED_SCHEMA = pa.schema([
    pa.field("project_id", pa.int64()),
    pa.field("task_id", pa.int64()),
    pa.field("annotation_id", pa.int64()),
    pa.field("id", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("annotation", pa.string()),
])


class PullError(PluginError):
    """Pull cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Vote:
    """One annotator's latest answer to one task."""

    annotator: str
    answer: str | None        # a class, NOT_SURE or DROP; None = skipped
    annotation_id: int
    updated_at: str
    comment: str | None = None


@dataclass(frozen=True)
class Resolution:
    action: str
    new_label: str | None
    agreement: float | None
    needs_review: bool
    n_votes: int
    n_skipped: int


@dataclass(frozen=True)
class PullResult:
    tasks_fetched: int
    tasks_changed: int
    corrections: int
    needs_review: int
    unmapped: int
    from_events_only: int
    seconds: float


# ---------------------------------------------------------------------------------------------
# pure: annotations -> votes -> a resolution


class UnmappedAnswer(ValueError):
    """An annotation whose answer cannot be mapped to a class, Not sure or Drop."""


def annotation_vote(annotation: Mapping[str, Any], spec: LabelingSpec,
                    user_names: Mapping[int, str]) -> Vote:
    """The vote of one annotation. Raises UnmappedAnswer for a missing or unknown answer."""
    who = annotation.get("completed_by")
    if isinstance(who, Mapping):
        who = who.get("id")
    annotator = user_names.get(int(who), f"user:{who}") if who is not None else "unknown"
    comment = None
    answer = None
    for region in annotation.get("result") or []:
        if region.get("from_name") == spec.answer_name:
            choices = (region.get("value") or {}).get("choices") or []
            if len(choices) != 1:
                raise UnmappedAnswer(f"expected one answer, got {choices!r}")
            answer = str(choices[0])
        elif spec.comment_name and region.get("from_name") == spec.comment_name:
            texts = (region.get("value") or {}).get("text") or []
            comment = " ".join(str(t) for t in texts).strip() or None
    common = {"annotator": annotator, "annotation_id": int(annotation["id"]),
              "updated_at": str(annotation.get("updated_at") or annotation.get("created_at")
                                or ""), "comment": comment}
    if annotation.get("was_cancelled"):
        return Vote(answer=None, **common)
    if answer is None:
        raise UnmappedAnswer("the annotation has no answer")
    if answer not in spec.classes and answer not in (NOT_SURE, DROP):
        raise UnmappedAnswer(f"answer {answer!r} is not a class of the run "
                             f"({list(spec.classes)}), {NOT_SURE!r} or {DROP!r}")
    return Vote(answer=answer, **common)


def latest_per_annotator(votes: Sequence[Vote]) -> list[Vote]:
    latest: dict[str, Vote] = {}
    for vote in sorted(votes, key=lambda v: (v.updated_at, v.annotation_id)):
        latest[vote.annotator] = vote
    return sorted(latest.values(), key=lambda v: v.annotator)


def resolve(votes: Sequence[Vote], *, given_label: str | None, spec: LabelingSpec) -> Resolution:
    """Majority of the answers (one per annotator; skips are not votes); ties need review."""
    answers = [v.answer for v in votes if v.answer is not None]
    skipped = sum(v.answer is None for v in votes)
    if not answers:
        return Resolution(UNSURE, None, None, False, 0, skipped)
    counts = Counter(answers).most_common()
    top, top_count = counts[0]
    agreement = top_count / len(answers)
    if len(counts) > 1 and counts[1][1] == top_count:
        return Resolution(UNSURE, None, agreement, True, len(answers), skipped)
    if top == NOT_SURE:
        return Resolution(UNSURE, None, agreement, False, len(answers), skipped)
    if top == DROP:
        return Resolution(DROP_ACTION, None, agreement, False, len(answers), skipped)
    action = KEEP if top == given_label else RELABEL
    return Resolution(action, top, agreement, False, len(answers), skipped)


def fingerprint(annotations: Sequence[Mapping[str, Any]]) -> str:
    """Changes when an annotation is added, changed or removed."""
    keys = sorted((int(a["id"]), str(a.get("updated_at")), bool(a.get("was_cancelled")))
                  for a in annotations)
    return hashlib.sha1(json.dumps(keys).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# events: annotations as webhooks told them


def _event_annotations(events: Sequence[Mapping[str, Any]]
                       ) -> tuple[dict[int, dict[int, dict]], set[int], dict[int, int]]:
    """(latest annotation payload by task id and annotation id, deleted annotation ids,
    task id by annotation id) from webhook events, in arrival order."""
    by_task: dict[int, dict[int, dict]] = {}
    deleted: set[int] = set()
    task_of: dict[int, int] = {}
    for event in events:
        payload = event.get("payload") or {}
        action = payload.get("action")
        if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            annotation = payload.get("annotation") or {}
            task = annotation.get("task") or (payload.get("task") or {}).get("id")
            if isinstance(task, Mapping):
                task = task.get("id")
            if annotation.get("id") is None or task is None:
                continue
            aid, tid = int(annotation["id"]), int(task)
            by_task.setdefault(tid, {})[aid] = dict(annotation)
            task_of[aid] = tid
            deleted.discard(aid)
        elif action == "ANNOTATIONS_DELETED":
            for annotation in payload.get("annotations") or []:
                if annotation.get("id") is not None:
                    deleted.add(int(annotation["id"]))
    return by_task, deleted, task_of


def _event_project(event: Mapping[str, Any]) -> int | None:
    project = (event.get("payload") or {}).get("project")
    if isinstance(project, Mapping):
        project = project.get("id")
    try:
        return int(project) if project is not None else None
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# the pull


def _empty(schema: pa.Schema) -> pd.DataFrame:
    return schema.empty_table().to_pandas()


def _read(store: RunStore, artifact: str, schema: pa.Schema) -> pd.DataFrame:
    return store.read_table(artifact).to_pandas() if store.exists(artifact) else _empty(schema)


def _write(store: RunStore, artifact: str, frame: pd.DataFrame, schema: pa.Schema) -> None:
    records = frame[schema.names].astype(object).where(frame[schema.names].notna(), None)
    table = pa.Table.from_pylist(records.to_dict("records"), schema=schema)
    store.write_table(artifact, table)


def _timestamp(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    stamp = pd.Timestamp(text)
    return stamp.tz_convert(UTC) if stamp.tzinfo else stamp.tz_localize(UTC)


def _without_tasks(frame: pd.DataFrame, keys: list[tuple[int, int]]) -> pd.DataFrame:
    """The rows of ``frame`` whose (project_id, task_id) is not among ``keys``."""
    if not keys or not len(frame):
        return frame
    stale = pd.Series(list(zip(frame["project_id"], frame["task_id"], strict=True))).isin(keys)
    return frame[~stale.to_numpy()]


def pull(store: RunStore, client: StudioClient, *, page_size: int = 500) -> PullResult:
    """Pull new and changed answers from every project in the manifest."""
    started = time.perf_counter()
    if not store.exists(MANIFEST):
        raise PullError(f"nothing was pushed from {store.uri} ({MANIFEST} is missing): run "
                        f"`relabeler push` first")
    manifest = read_manifest(store)
    state = store.read_json(PULL_STATE) if store.exists(PULL_STATE) else {}
    projects_state: dict[str, Any] = state.get("projects", {})
    log_events = read_events(store, seen=state.get("events", {}))
    ev_by_task, ev_deleted, ev_task_of = _event_annotations(log_events.events)
    new_event_tasks: dict[int, set[int]] = {}
    for event in log_events.new_events():
        payload = event.get("payload") or {}
        if payload.get("action") not in ANNOTATION_ACTIONS:
            continue
        project = _event_project(event)
        tasks = set()
        annotation = payload.get("annotation") or {}
        if annotation.get("task") is not None:
            tasks.add(int(annotation["task"]))
        for a in payload.get("annotations") or []:
            if a.get("id") is not None and int(a["id"]) in ev_task_of:
                tasks.add(ev_task_of[int(a["id"])])
        if project is not None:
            new_event_tasks.setdefault(project, set()).update(tasks)

    given = _given_labels(store)
    try:
        user_names = client.user_emails()
    except StudioNotFoundError:
        user_names = {}
    corrections = _read(store, CORRECTIONS, CORRECTIONS_SCHEMA)
    unmapped = _read(store, UNMAPPED, UNMAPPED_SCHEMA)
    fetched = changed = events_only = 0
    new_rows: list[dict[str, Any]] = []
    new_unmapped: list[dict[str, Any]] = []
    refreshed: set[tuple[int, int]] = set()

    for project_id in sorted({int(p) for p in manifest["project_id"]}):
        rows = manifest[manifest["project_id"] == project_id]
        sample_of = {int(t): s for t, s in zip(rows["task_id"], rows["id"], strict=True)
                     if pd.notna(t)}
        source_of = dict(zip(rows["id"], rows["source"], strict=True))
        pstate = projects_state.setdefault(str(project_id), {"watermark": None,
                                                             "fingerprints": {}})
        prints: dict[str, str] = pstate["fingerprints"]
        try:
            project = client.get_project(project_id)
        except StudioNotFoundError:
            log.error("pull: project %d is gone from %s; only webhook events can speak for "
                      "it", project_id, client.url)
            project = None
        tasks: dict[int, dict[str, Any]] = {}
        if project is not None:
            spec = LabelingSpec.from_config(project.label_config)
            watermark = pstate.get("watermark")
            since = None
            if watermark:
                since = (pd.Timestamp(watermark) - _WATERMARK_MARGIN).isoformat()
            # the first pull asks for answered tasks only; later ones for what moved since
            listing = client.list_tasks(project_id, updated_after=since, page_size=page_size) \
                if since else client.list_tasks(project_id, annotated_only=True,
                                                page_size=page_size)
            for task in listing:
                tasks[int(task["id"])] = task
            stamps = [str(t["updated_at"]) for t in tasks.values() if t.get("updated_at")]
            if stamps:
                latest = max(pd.Timestamp(s) for s in stamps)
                if not watermark or latest > pd.Timestamp(watermark):
                    pstate["watermark"] = latest.isoformat()
        else:
            spec = None
        wanted = set(new_event_tasks.get(project_id, set())) - set(tasks)
        if spec is None:
            spec = _spec_from_events(log_events.events, project_id)
        fetched += len(tasks)
        for task_id in sorted(wanted):
            tasks[task_id] = {"id": task_id, "annotations": [], "data": {}, "_gone": True}
            found = client.get_task(task_id) if project is not None else None
            if found is not None:
                tasks[task_id] = found
        if spec is None:
            if tasks:
                raise PullError(f"project {project_id} is gone and no event carries its config")
            continue

        for task_id, task in sorted(tasks.items()):
            server = {int(a["id"]): a for a in task.get("annotations") or []}
            extra = {aid: a for aid, a in ev_by_task.get(task_id, {}).items()
                     if aid not in server and aid not in ev_deleted}
            if extra:
                log.warning("pull: task %d: %d annotations known only from webhook events are "
                            "kept", task_id, len(extra))
            annotations = [*server.values(), *extra.values()]
            fp = fingerprint(annotations)
            if prints.get(str(task_id), fingerprint([])) == fp and not task.get("_gone"):
                continue
            prints[str(task_id)] = fp
            changed += 1
            refreshed.add((project_id, task_id))
            data = task.get("data") or {}
            sample_id = sample_of.get(task_id) or data.get(SAMPLE_ID_FIELD)
            votes: list[Vote] = []
            for annotation in annotations:
                reason = None
                if sample_id is None:
                    reason = "the task has no sample_id and is not in the manifest"
                else:
                    try:
                        votes.append(annotation_vote(annotation, spec, user_names))
                    except UnmappedAnswer as exc:
                        reason = str(exc)
                if reason is not None:
                    new_unmapped.append({
                        "project_id": project_id, "task_id": task_id,
                        "annotation_id": int(annotation["id"]), "id": sample_id,
                        "reason": reason, "annotation": json.dumps(annotation, default=str)})
                    log.warning("pull: task %d annotation %s cannot be mapped: %s", task_id,
                                annotation.get("id"), reason)
            if not votes:
                continue
            votes = latest_per_annotator(votes)
            old = given.get(str(sample_id)) if sample_id in given else \
                (data.get("given_label") or None)
            res = resolve(votes, given_label=old, spec=spec)
            via = "export"
            if extra:
                via = "events" if not server else "export+events"
                events_only += len(extra)
            new_rows.append({
                "id": str(sample_id), "old_label": old, "new_label": res.new_label,
                "action": res.action, "annotators": [v.annotator for v in votes],
                "n_annotations": len(votes), "agreement": res.agreement,
                "updated_at": _timestamp(max(v.updated_at for v in votes)),
                "source": source_of.get(str(sample_id)), "needs_review": res.needs_review,
                "n_skipped": res.n_skipped,
                "votes": [f"{v.annotator}: {v.answer if v.answer is not None else '(skipped)'}"
                          for v in votes],
                "comments": [f"{v.annotator}: {v.comment}" for v in votes if v.comment],
                "annotation_ids": [v.annotation_id for v in votes],
                "project_id": project_id, "task_id": task_id, "via": via})

    corrections, unmapped = (_without_tasks(f, list(refreshed)) for f in (corrections, unmapped))
    frames = [f for f in (corrections, pd.DataFrame(new_rows, columns=CORRECTIONS_SCHEMA.names))
              if len(f)]
    corrections = pd.concat(frames, ignore_index=True) if frames else _empty(CORRECTIONS_SCHEMA)
    corrections = corrections.sort_values(["updated_at", "id"], kind="stable")
    duplicated = corrections["id"].duplicated(keep="last")
    if duplicated.any():
        log.warning("pull: %d samples were answered in more than one task; the latest answer "
                    "is kept", int(duplicated.sum()))
        corrections = corrections[~duplicated]
    frames = [f for f in (unmapped, pd.DataFrame(new_unmapped, columns=UNMAPPED_SCHEMA.names))
              if len(f)]
    unmapped = pd.concat(frames, ignore_index=True) if frames else _empty(UNMAPPED_SCHEMA)

    _write(store, CORRECTIONS, corrections, CORRECTIONS_SCHEMA)
    if len(unmapped) or store.exists(UNMAPPED):
        _write(store, UNMAPPED, unmapped, UNMAPPED_SCHEMA)
    state = {"projects": projects_state, "events": log_events.offsets,
             "pulled_at": datetime.now(UTC).isoformat()}
    store.write_json(PULL_STATE, state)  # last: a pull killed before this is simply redone
    result = PullResult(tasks_fetched=fetched, tasks_changed=changed,
                        corrections=len(corrections),
                        needs_review=int(corrections["needs_review"].fillna(False).sum()),
                        unmapped=len(unmapped), from_events_only=events_only,
                        seconds=round(time.perf_counter() - started, 2))
    log.info("pull: %d tasks fetched, %d changed; %d corrections (%d need review), %d unmapped "
             "answers, in %.1f s", result.tasks_fetched, result.tasks_changed,
             result.corrections, result.needs_review, result.unmapped, result.seconds)
    return result


def _given_labels(store: RunStore) -> dict[str, str]:
    if not store.exists("dataset/train.parquet"):
        return {}
    table = store.read_table("dataset/train.parquet", columns=["id", "label"])
    return dict(zip(table.column("id").to_pylist(), table.column("label").to_pylist(),
                    strict=True))


def _spec_from_events(events: Sequence[Mapping[str, Any]], project_id: int
                      ) -> LabelingSpec | None:
    for event in reversed(events):
        project = (event.get("payload") or {}).get("project")
        if isinstance(project, Mapping) and _event_project(event) == project_id \
                and project.get("label_config"):
            return LabelingSpec.from_config(project["label_config"])
    return None


def run_pull(store: RunStore, config: Any, *, client: StudioClient | None = None) -> PullResult:
    """``relabeler pull``: settings from ``config.studio``."""
    from relabeler.plugin.connect import client_from_config

    return pull(store, client or client_from_config(config.studio),
                page_size=config.studio.page_size)
