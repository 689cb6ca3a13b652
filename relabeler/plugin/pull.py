"""``relabeler pull``: the annotators' answers back into the run as corrections.

One pull, in the order of the functions below:

1. fetch (:func:`relabeler.plugin.fetch.fetch_project`): per project of
   ``studio/manifest.parquet``, the tasks whose ``updated_at`` moved since the last pull (a
   new, changed or deleted annotation moves it), plus the tasks named by webhook events
   received since (a named task the server has in another project is left out, with a warning).
   A fetched task that the manifest records under another sample than its data's ``sample_id``
   (or none) means the project is not this run's (another server, or one that lost its database
   and gave its ids again): a :class:`PullError` naming the project, the task and both sample
   ids, before anything is written (:func:`relabeler.plugin.push_checks.check_tasks_owner`).
2. reconcile (``plugin.reconcile``): the server's annotations of a task with the ones the
   webhook event log recorded (see below). A task whose annotations did not change (same ids
   and times) is not recomputed.
3. resolve (``plugin.votes``): each annotator's latest annotation is one vote; then
   ``studio.consensus`` (:mod:`relabeler.plugin.consensus`) resolves them (``majority``: the
   majority wins and a tie needs review; the default ``dawid_skene`` weighs annotators and the
   model where two or more answered). Sample ids come from the manifest (or the task's
   ``sample_id``).
4. merge (:func:`merge_corrections`): the recomputed tasks' rows replace their earlier rows;
   one row per sample (the latest answer, when a sample was answered in several tasks).
5. write: ``labels/corrections.parquet`` (the whole current state, atomically replaced),
   ``labels/unmapped.parquet`` and, last, ``studio/pull_state.json`` (watermarks, per-task
   fingerprints, events seen), so a pull killed before the end is simply redone.

An annotation the server no longer shows but a webhook event recorded
----------------------------------------------------------------------
The server is the truth for every annotation it shows (an update on the server wins over an
older event payload). For one it does not show, the event log decides:

* an ``ANNOTATIONS_DELETED`` event names it: a person deleted it, so it is dropped, counted in
  ``PullResult.deleted`` and logged;
* one an earlier pull saw in a task the server still shows, gone without such an event, was
  deleted while no webhook reached relabeler: dropped as well (counted in ``deleted``, logged,
  kept as last shown in ``labels/unmapped.parquet``; ``vanished`` in the pull state keeps it
  out when the task goes later);
* otherwise (created or updated, never deleted), where an earlier pull saw it on the server
  in that task and the task is gone (a deleted task or project, a restore from an older
  backup), it is kept as the server last showed it, with ``via`` = ``events`` or
  ``export+events``, counted in ``PullResult.from_events_only`` and logged; a later event
  whose answer differs is an update no pull saw on the server: it goes to
  ``labels/unmapped.parquet`` like the next case;
* where no pull saw it on the server, nothing confirms it was ever an answer (anyone who can
  read the webhook's secret, which Label Studio shows to every user, can post an event): it
  goes to ``labels/unmapped.parquet`` with the reason, counted in ``PullResult.unconfirmed``
  and logged (where its task is gone too, the reason says that the task cannot be answered
  again and where to write the label by hand: push never sends the sample again). Each
  annotation a pull saw on the server is kept per task, as the server last showed it, in
  ``studio/pull_state.json`` (``on_server``). A run pulled before pulls kept
  them starts from the annotation ids of its corrections that earlier pulls read from the
  server (``via`` export or export+events); for those only the id is known, so their latest
  event payload is taken until a pull sees them on the server again.

A correction whose task is recomputed and has no answer left is withdrawn: counted in
``PullResult.withdrawn`` and logged with its sample ids and the cause (every answer deleted,
answers set aside as unconfirmed, or answers that cannot be mapped). An answer that cannot be
mapped (no sample id, a choice that is not a class of the run in ``model/labels.json``,
whatever the project's config says now, no answer at all, an earlier answer of an annotator who
answered again) goes to ``labels/unmapped.parquet`` and the log. Nothing is dropped silently:
an answer's evidence regions are not read (the highlights are the model's evidence, read-only
in the page since the prediction marks them so), and one warning per pull counts the tasks whose
answers hold regions that differ from their prediction's (drawn, moved or deleted in a project
whose regions were not read-only; :func:`relabeler.plugin.votes.evidence_edited`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.artifacts import MANIFEST as MANIFEST_ARTIFACT
from relabeler.corrections import CORRECTIONS, CORRECTIONS_SCHEMA
from relabeler.errors import PluginError
from relabeler.plugin.client import StudioNotFoundError
from relabeler.plugin.consensus import (
    DAWID_SKENE,
    MAJORITY,
    METHODS,
    model_probabilities,
    resolve_with_model,
)
from relabeler.plugin.events import read_events
from relabeler.plugin.fetch import FetchedProject, TaskSource, fetch_project
from relabeler.plugin.labeling import LabelingSpec
from relabeler.plugin.pull_tables import (
    DELETED_CAUSE,
    UNCONFIRMED,
    UNCONFIRMED_GONE,
    UNCONFIRMED_UPDATE,
    UNCONFIRMED_UPDATE_GONE,
    UNMAPPED_SCHEMA,
    frame_table,
    merge_corrections,
    merge_task_rows,
    merge_unmapped,
    read_frame,
)
from relabeler.plugin.push_checks import check_tasks_owner
from relabeler.plugin.reconcile import (
    VANISHED,
    Reconciled,
    WebhookAnnotations,
    deleted_by_events,
    reconcile_task,
    vanished_annotations,
)
from relabeler.plugin.second_opinion import Superseded, fold_second_opinions
from relabeler.plugin.tasks import SAMPLE_ID_FIELD
from relabeler.plugin.votes import (
    correction_row,
    evidence_edited,
    fingerprint,
    task_votes,
    unmapped_row,
)
from relabeler.queue_plan import SECOND_OPINION, holds_manifest, read_manifest
from relabeler.store import RunStore

log = logging.getLogger(__name__)

MANIFEST = MANIFEST_ARTIFACT.path

UNMAPPED = artifacts.UNMAPPED.path
PULL_STATE = artifacts.PULL_STATE.path
#: the rules a pull state was written by: 2 reads answers against the run's classes, names
#: superseded answers and drops answers gone from tasks the server shows; 3 keeps the review
#: votes that second opinions of the same annotators superseded (``second_opinion_superseded``);
#: a state of an earlier format has every answered task read again and recomputed, once
PULL_STATE_FORMAT = 3
#: the pull state's list of :class:`~relabeler.plugin.second_opinion.Superseded` votes
SUPERSEDED_STATE = "second_opinion_superseded"
SECOND_OPINIONS = artifacts.SECOND_OPINIONS.path



class PullError(PluginError):
    """Pull cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class PullResult:
    tasks_fetched: int
    tasks_changed: int
    corrections: int
    needs_review: int
    unmapped: int
    from_events_only: int      # annotations kept though the server no longer shows them
    unconfirmed: int           # answers or updates known only from events, that no pull saw
                               # on the server: unmapped
    deleted: int               # annotations dropped: an event recorded their deletion
    withdrawn: int             # earlier corrections removed: their task has no answer left
    seconds: float


# ---------------------------------------------------------------------------------------------
# one project: reconcile and resolve the changed tasks


@dataclass
class _Pulled:
    """What one pull gathered so far, over the projects."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    unmapped: list[dict[str, Any]] = field(default_factory=list)
    refreshed: set[tuple[int, int]] = field(default_factory=set)
    emptied: dict[tuple[int, int], str] = field(default_factory=dict)  # why no answer is left
    fetched: int = 0
    changed: int = 0
    from_events: int = 0
    unconfirmed: int = 0
    deleted: int = 0
    evidence_edited: list[tuple[int, int]] = field(default_factory=list)  # (project, task)


@dataclass(frozen=True)
class _RunLabels:
    """What the run knows about a sample: its manifest entry and its given label."""

    sample_of: dict[int, str]     # task id -> sample id
    source_of: dict[str, str]     # sample id -> manifest source
    given: dict[str, str]         # sample id -> training label
    pending: frozenset[str] = frozenset()  # sample ids sent without a task id recorded

    def sample_id(self, task_id: int, data: Mapping[str, Any]) -> str | None:
        """The task's sample: the manifest's; a task the manifest has no id for speaks for its
        ``sample_id`` only where that sample's push died before the id was recorded (any other
        task in the project is not this run's)."""
        if task_id in self.sample_of:
            return self.sample_of[task_id]
        sample_id = data.get(SAMPLE_ID_FIELD)
        return None if sample_id is None or str(sample_id) not in self.pending \
            else str(sample_id)


#: what a pull that stops before writing leaves (the end of its error)
NOT_PULLED = (f"nothing was pulled: {CORRECTIONS}, {MANIFEST} and {PULL_STATE} are as they "
              f"were")
#: why a correction is withdrawn: its recomputed task has no vote left, because ...
UNCONFIRMED_CAUSE = ("their task's answers are known only from webhook events that no pull saw "
                     "on the server, so they were set aside (labels/unmapped.parquet), not "
                     "deleted")
UNMAPPED_CAUSE = "their task's answers cannot be mapped (labels/unmapped.parquet)"
#: what pull keeps of each annotation the server shows (all that its vote is read from)
_SHOWN_FIELDS = ("id", "completed_by", "result", "was_cancelled", "created_at", "updated_at")
#: the ``via`` of a correction whose annotations a pull read from the server
_FROM_SERVER = ("export", "export+events")


def _log_reconciled(task_id: int, seen: Reconciled, deleted: Sequence[int]) -> None:
    if seen.unconfirmed:
        log.warning("pull: task %d: annotations %s are known only from webhook events and no "
                    "pull saw them on the server: not taken (labels/unmapped.parquet)", task_id,
                    [a["id"] for a in seen.unconfirmed])
    if seen.unconfirmed_updates:
        log.warning("pull: task %d: annotations %s have updates known only from webhook events "
                    "that no pull saw on the server: not taken, the answers as the server last "
                    "showed them are kept (labels/unmapped.parquet)", task_id,
                    [a["id"] for a in seen.unconfirmed_updates])
    if seen.from_events:
        log.warning("pull: task %d: annotations %s are known only from webhook events (the "
                    "server no longer shows them); kept", task_id, seen.from_events)
    if deleted:
        log.warning("pull: task %d: annotations %s were deleted (a webhook event says so); "
                    "dropped", task_id, deleted)


def _log_evidence_edited(tasks: Sequence[tuple[int, int]], shown: int = 10) -> None:
    """One warning for the tasks whose answers changed the evidence highlights."""
    if not tasks:
        return
    named = ", ".join(f"{p}/{t}" for p, t in tasks[:shown])
    more = f" and {len(tasks) - shown} more" if len(tasks) > shown else ""
    log.warning("pull: %d tasks have answers whose evidence highlights differ from the model's "
                "(regions drawn, moved or deleted in Label Studio; project/task %s%s): relabeler "
                "reads only the class and the comment of an answer, the highlights are the "
                "model's evidence, so those region changes are not kept", len(tasks), named, more)


def _pull_project(project_id: int, fetched: FetchedProject, spec: LabelingSpec,
                  pstate: dict[str, Any], webhooks: WebhookAnnotations, run: _RunLabels,
                  user_names: Mapping[int, str], pulled: _Pulled) -> None:
    prints: dict[str, str] = pstate.setdefault("fingerprints", {})
    on_server: dict[str, Any] = pstate.setdefault("on_server", {})
    gone_from: dict[str, Any] = pstate.setdefault("vanished", {})
    for task_id, task in sorted(fetched.tasks.items()):
        recorded = on_server.get(str(task_id)) or {}
        if isinstance(recorded, list):  # ids alone, as the first pulls that kept them wrote
            recorded = dict.fromkeys(map(str, recorded))
        vanished, newly = vanished_annotations(task, recorded, gone_from.get(str(task_id)) or {},
                                    webhooks, task_gone=task_id in fetched.gone)
        by_events = deleted_by_events(task, recorded, webhooks, task_gone=task_id in fetched.gone)
        recorded.update({str(a["id"]): {k: a[k] for k in _SHOWN_FIELDS if k in a}
                         for a in task.get("annotations") or []})
        for key, value in ((on_server, recorded), (gone_from, vanished)):
            if value:
                key[str(task_id)] = value
            else:
                key.pop(str(task_id), None)
        seen = reconcile_task(task, webhooks, vanished={int(i) for i in vanished},
                              seen_on_server={int(i): a for i, a in recorded.items()})
        set_aside = [*seen.unconfirmed, *seen.unconfirmed_updates]
        print_now = fingerprint(seen.annotations, [*seen.deleted, *map(int, vanished)],
                                set_aside, spec.classes)
        unchanged = prints.get(str(task_id), fingerprint([], classes=spec.classes))
        if unchanged == print_now and task_id not in fetched.gone:
            continue
        prints[str(task_id)] = print_now
        pulled.changed += 1
        pulled.refreshed.add((project_id, task_id))
        deleted = sorted({*seen.deleted, *by_events})
        pulled.deleted += len(deleted) + len(newly)
        _log_reconciled(task_id, seen, deleted)
        if any(evidence_edited(a, spec, task.get("predictions") or [])
               for a in seen.annotations):
            pulled.evidence_edited.append((project_id, task_id))
        if newly:
            log.warning("pull: task %d: annotations %s that an earlier pull saw on the server "
                        "are gone from it, and no webhook event said so (deleted in Label "
                        "Studio while `relabeler serve` was down?): dropped, kept as last shown "
                        "in %s", task_id, sorted(map(int, newly)), UNMAPPED)
        data = task.get("data") or {}
        sample_id = run.sample_id(task_id, data)
        pulled.unmapped += [unmapped_row(project_id, task_id, sample_id, VANISHED,
                                         a or {"id": int(i)})
                            for i, a in sorted(vanished.items(), key=lambda x: int(x[0]))]
        votes, unmapped = task_votes(seen.annotations, spec, user_names,
                                     sample_id=None if sample_id is None else str(sample_id),
                                     project_id=project_id, task_id=task_id)
        pulled.unmapped += unmapped
        gone = task_id in fetched.gone  # it cannot be answered again: the reason says so
        pulled.unmapped += [unmapped_row(project_id, task_id, sample_id, reason, a)
                            for reason, these in (
                                (UNCONFIRMED_GONE if gone else UNCONFIRMED, seen.unconfirmed),
                                (UNCONFIRMED_UPDATE_GONE if gone else UNCONFIRMED_UPDATE,
                                 seen.unconfirmed_updates))
                            for a in these]
        pulled.unconfirmed += len(set_aside)
        if not votes:
            pulled.emptied[(project_id, task_id)] = (
                UNCONFIRMED_CAUSE if set_aside else UNMAPPED_CAUSE if unmapped else DELETED_CAUSE)
            continue
        sample_id = str(sample_id)
        given = run.given.get(sample_id, data.get("given_label") or None)
        pulled.rows.append(correction_row(
            votes, spec, sample_id=sample_id, given_label=given,
            source=run.source_of.get(sample_id), via=seen.via, project_id=project_id,
            task_id=task_id))
        pulled.from_events += len(seen.from_events)


# ---------------------------------------------------------------------------------------------
# merge and write


# ---------------------------------------------------------------------------------------------
# the pull


def _given_labels(store: RunStore) -> dict[str, str]:
    if not store.exists(artifacts.TRAIN.path):
        return {}
    table = store.read_table(artifacts.TRAIN.path, columns=["id", "label"])
    return dict(zip(table.column("id").to_pylist(), table.column("label").to_pylist(),
                    strict=True))


def _user_names(client: TaskSource) -> dict[int, str]:
    try:
        return client.user_emails()
    except StudioNotFoundError:
        return {}


def _seen_by_earlier_pulls(store: RunStore, corrections: pd.DataFrame, project_id: int
                          ) -> dict[str, dict[str, None]]:
    """``on_server`` of a project whose pull state has none (pulled before pulls kept it): per
    task, the annotation ids of the corrections and second opinions earlier pulls read from the
    server (``via`` export or export+events). Only the ids are known, not what the server
    showed. A folded correction also holds its second opinions' ids: they count for their own
    task only."""
    second = read_frame(store, SECOND_OPINIONS, CORRECTIONS_SCHEMA)
    theirs = {int(a) for ids in second["annotation_ids"] if ids is not None for a in ids}
    seen: dict[str, dict[str, None]] = {}
    for frame, skip in ((second, set()), (corrections, theirs)):
        rows = frame[(frame["project_id"] == project_id) & frame["via"].isin(_FROM_SERVER)]
        for task_id, ids in zip(rows["task_id"], rows["annotation_ids"], strict=True):
            for annotation_id in (int(a) for a in (ids if ids is not None else [])):
                if annotation_id not in skip:
                    seen.setdefault(str(int(task_id)), {})[str(annotation_id)] = None
    if seen:
        log.info("pull: project %d: no annotations recorded as seen on the server (pulled "
                 "before pulls kept them); taking the %d that earlier pulls read from the "
                 "server", project_id, sum(map(len, seen.values())))
    return seen


def _with_run_classes(spec: LabelingSpec, classes: Sequence[str], project_id: int
                      ) -> LabelingSpec:
    """``spec`` with the run's classes: an answer is read against the classes the run was
    trained on, whatever the project's config offers now (a config edited in Label Studio
    is named in a warning; an answer of a class the run lacks goes to unmapped)."""
    if not classes or list(spec.classes) == list(classes):
        return spec
    log.warning("pull: project %d's labeling config offers the classes %s where the run's are "
                "%s (edited in Label Studio?): answers are read against the run's classes, and "
                "an answer of another class goes to %s; put the config back to take them",
                project_id, list(spec.classes), list(classes), UNMAPPED)
    return dataclasses.replace(spec, classes=tuple(str(c) for c in classes))


def _run_labels(manifest: pd.DataFrame, project_id: int, given: dict[str, str]) -> _RunLabels:
    rows = manifest[manifest["project_id"] == project_id]
    return _RunLabels(
        sample_of={int(t): s for t, s in zip(rows["task_id"], rows["id"], strict=True)
                   if pd.notna(t)},
        source_of=dict(zip(rows["id"], rows["source"], strict=True)), given=given,
        pending=frozenset(rows.loc[rows["task_id"].isna(), "id"].astype(str)))


def _resolve(store: RunStore, corrections: pd.DataFrame, consensus: str, classes: list[str]
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The majority's corrections, resolved again with the model's help (unless
    ``majority``); ``classes``: the run's (``model/labels.json``), [] where it has none."""
    if consensus not in METHODS:
        raise PullError(f"studio.consensus must be one of {', '.join(METHODS)}, got "
                        f"{consensus!r}")
    if consensus == MAJORITY or not classes:
        return resolve_with_model(corrections, {}, classes)
    return resolve_with_model(corrections, model_probabilities(store, classes), classes,
                              method=consensus, strata=_strata(store))


def _strata(store: RunStore) -> dict[tuple[int, str], tuple[str, int]]:
    """(project, sample) -> (source, round) of each task sent: how the tasks were picked, which
    decides how often the model is right on them (the consensus weighs it per stratum)."""
    manifest = read_manifest(store)
    return {(int(p), str(i)): (str(s), int(r)) for p, i, s, r in zip(
        manifest["project_id"], manifest["id"], manifest["source"], manifest["round"],
        strict=True)}


def _split_second_opinions(rows: list[dict[str, Any]]
                           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """This pull's rows: the review tasks' and the second-opinion tasks'."""
    second = [r for r in rows if r["source"] == SECOND_OPINION]
    return [r for r in rows if r["source"] != SECOND_OPINION], second


def _fold_second_opinions(store: RunStore, corrections: pd.DataFrame,
                          rows: list[dict[str, Any]], refreshed: set[tuple[int, int]],
                          restore: list[Superseded]
                          ) -> tuple[pd.DataFrame, pd.DataFrame, list[Superseded]]:
    """The corrections with every second-opinion answer joined to its sample's row
    (:func:`relabeler.plugin.second_opinion.fold_second_opinions`), the second-opinion
    tasks' own rows after this pull, and the review votes superseded by a second opinion of
    the same annotator."""
    earlier = read_frame(store, SECOND_OPINIONS, CORRECTIONS_SCHEMA)
    second = merge_task_rows(earlier, rows, refreshed, CORRECTIONS_SCHEMA)
    if not len(second) and not len(earlier):
        return corrections, second, []
    corrections, superseded = fold_second_opinions(corrections, second, earlier=earlier,
                                                   restore=restore)
    return corrections, second, superseded


def _superseded_by_second_opinions(corrections: pd.DataFrame, superseded: list[Superseded],
                                   projects_state: Mapping[str, Any]
                                   ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The corrections with each sample one annotator answered in both its review and its
    second-opinion task marked ``needs_review`` (no other annotator's answer was obtained), and
    an ``unmapped`` row for each earlier answer so superseded (the annotation as the server last
    showed it, where a pull kept it)."""
    if not superseded:
        return corrections, []
    samples = sorted({s.sample_id for s in superseded})
    log.warning("pull: %d annotators answered a sample both in its review task and in its "
                "second-opinion task (Label Studio Community serves a task to anyone): their "
                "earlier answers are superseded (%s) and the samples need review: %s",
                len(superseded), UNMAPPED, samples)
    corrections = corrections.copy()
    corrections.loc[corrections["id"].isin(samples), "needs_review"] = True
    rows = []
    for s in superseded:
        shown = ((projects_state.get(str(s.project_id)) or {}).get("on_server") or {}).get(
            str(s.task_id)) or {}
        rows.append(unmapped_row(s.project_id, s.task_id, s.sample_id, s.reason,
                                 shown.get(str(s.annotation_id)) or {"id": s.annotation_id}))
    return corrections, rows


@holds_manifest
def pull(store: RunStore, client: TaskSource, *, page_size: int = 500,
         consensus: str = DAWID_SKENE) -> PullResult:
    """Pull new and changed answers from every project in the manifest (see the module
    docstring for the steps and for annotations the server no longer shows). Holds
    ``studio/manifest.lock`` (:func:`~relabeler.queue_plan.manifest_lock`): a second pull
    waits for the first, which would otherwise write its corrections over the second's while
    the second's pull state records their answers as seen, so no later pull takes them."""
    started = time.perf_counter()
    if not store.exists(MANIFEST):
        raise PullError(f"nothing was pushed from {store.uri} ({MANIFEST} is missing): run "
                        f"`relabeler push` first")
    manifest = read_manifest(store)
    state = store.read_json(PULL_STATE) if store.exists(PULL_STATE) else {}
    projects_state: dict[str, Any] = state.get("projects", {})
    if projects_state and state.get("format", 1) < PULL_STATE_FORMAT:
        log.info("pull: %s was written by an earlier relabeler: every answered task is read "
                 "again, once, by the rules of this one", PULL_STATE)
        for pstate in projects_state.values():
            pstate["watermark"] = None
            pstate["fingerprints"] = {}
    event_log = read_events(store, seen=state.get("events", {}))
    webhooks = WebhookAnnotations.from_events(event_log.events)
    named = webhooks.tasks_named(event_log.new_events())
    given, user_names = _given_labels(store), _user_names(client)
    classes = (store.read_json(artifacts.LABELS.path) if store.exists(artifacts.LABELS.path)
               else [])
    previous = read_frame(store, CORRECTIONS, CORRECTIONS_SCHEMA)
    pulled = _Pulled()
    for project_id in sorted({int(p) for p in manifest["project_id"]}):
        pstate = projects_state.setdefault(str(project_id), {"watermark": None,
                                                             "fingerprints": {}})
        if "on_server" not in pstate:
            pstate["on_server"] = _seen_by_earlier_pulls(store, previous, project_id)
        fetched = fetch_project(client, project_id, pstate, named=named.get(project_id, set()),
                                events=event_log.events, page_size=page_size)
        pulled.fetched += fetched.listed
        if fetched.spec is None:
            if fetched.tasks:
                raise PullError(f"project {project_id} is gone and no event carries its "
                                f"config")
            continue
        run = _run_labels(manifest, project_id, given)
        spec = _with_run_classes(fetched.spec, classes, project_id)
        check_tasks_owner(project_id, client.shown_url, run.sample_of,
                          {task_id: task.get("data") or {}
                           for task_id, task in fetched.tasks.items()
                           if task_id not in fetched.gone},
                          error=PullError, nothing=NOT_PULLED)
        _pull_project(project_id, fetched, spec, pstate, webhooks, run, user_names, pulled)

    _log_evidence_edited(pulled.evidence_edited)
    review_rows, second_rows = _split_second_opinions(pulled.rows)
    corrections, withdrawn = merge_corrections(previous, review_rows, pulled.refreshed,
                                               pulled.emptied)
    # the review votes the last pull found superseded by second opinions: those of tasks this
    # pull did not recompute are missing from their rows, and are folded again from the state
    before = [Superseded(**s) for s in state.get(SUPERSEDED_STATE, [])]
    corrections, second, superseded = _fold_second_opinions(
        store, corrections, second_rows, pulled.refreshed,
        [s for s in before if (s.project_id, s.task_id) not in pulled.refreshed])
    corrections, annotators = _resolve(store, corrections, consensus, classes)
    corrections, superseded_rows = _superseded_by_second_opinions(corrections, superseded,
                                                                  projects_state)
    earlier_unmapped = read_frame(store, UNMAPPED, UNMAPPED_SCHEMA)
    folded_before = {(s.project_id, s.task_id, s.annotation_id) for s in before}
    earlier_unmapped = earlier_unmapped[pd.Series(
        [key not in folded_before for key in zip(earlier_unmapped["project_id"],
                                                 earlier_unmapped["task_id"],
                                                 earlier_unmapped["annotation_id"], strict=True)],
        index=earlier_unmapped.index, dtype=bool)]
    unmapped = merge_unmapped(earlier_unmapped, [*pulled.unmapped, *superseded_rows],
                              pulled.refreshed)
    # every table is built before any is written: a value one cannot hold then stops the pull
    # with nothing written, not with corrections that the pull state does not account for
    tables = {CORRECTIONS: frame_table(corrections, CORRECTIONS_SCHEMA)}
    if len(second) or store.exists(SECOND_OPINIONS):
        tables[SECOND_OPINIONS] = frame_table(second, CORRECTIONS_SCHEMA)
    tables[artifacts.ANNOTATORS.path] = pa.Table.from_pandas(
        annotators, schema=artifacts.ANNOTATORS.schema, preserve_index=False)
    if len(unmapped) or store.exists(UNMAPPED):
        tables[UNMAPPED] = frame_table(unmapped, UNMAPPED_SCHEMA)
    for artifact, table in tables.items():
        store.write_table(artifact, table)
    store.write_json(PULL_STATE, {"format": PULL_STATE_FORMAT, "projects": projects_state,
                                  "events": event_log.offsets,
                                  SUPERSEDED_STATE: [dataclasses.asdict(s) for s in superseded],
                                  "pulled_at": datetime.now(UTC).isoformat()})
    result = PullResult(tasks_fetched=pulled.fetched, tasks_changed=pulled.changed,
                        corrections=len(corrections),
                        needs_review=int(corrections["needs_review"].fillna(False).sum()),
                        unmapped=len(unmapped), from_events_only=pulled.from_events,
                        unconfirmed=pulled.unconfirmed, deleted=pulled.deleted, withdrawn=withdrawn,
                        seconds=round(time.perf_counter() - started, 2))
    log.info("pull: %d tasks fetched, %d changed; %d corrections (%d need review), %d unmapped "
             "answers, %d kept from events only, %d from events no pull saw on the server, "
             "%d deleted, %d withdrawn, in %.1f s",
             result.tasks_fetched, result.tasks_changed, result.corrections,
             result.needs_review, result.unmapped, result.from_events_only,
             result.unconfirmed, result.deleted, result.withdrawn, result.seconds)
    return result


def run_pull(store: RunStore, config: Any, *, client: TaskSource | None = None,
             second_opinions: bool = True) -> PullResult:
    """``relabeler pull``: settings from ``config.studio``. ``second_opinions=False``: send no
    second-opinion tasks (``relabeler next`` sends them itself, after its round's push)."""
    from relabeler.plugin.connect import client_from_config
    from relabeler.plugin.projects import default_title
    from relabeler.plugin.second_opinion import push_second_opinions

    studio = config.studio
    client = client or client_from_config(studio)
    result = pull(store, client, page_size=studio.page_size, consensus=studio.consensus)
    if second_opinions and studio.second_opinions:
        push_second_opinions(store, client,
                             project_title=studio.project_title or default_title(store),
                             count=studio.second_opinions, examples=studio.examples,
                             top_spans=studio.top_spans, batch_size=studio.batch_size)
    return result
