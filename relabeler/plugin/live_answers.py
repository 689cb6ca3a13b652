"""The answers a live re-rank (``relabeler serve``) works from, read as the event log grows.

What a re-rank counts as answered: ``labels/corrections.parquet`` (the last pull) with, on top,
the webhook events after the last pull's offsets (``events`` in ``studio/pull_state.json``,
lines per event file). The events before those offsets were the pull's: it took their answers
into the corrections or judged them against the server (a deletion no webhook told of withdraws
an answer there), so they are not replayed again. A long-running ``serve`` keeps one
:class:`EventsSincePull` for its life: an :class:`EventTail` reads only what was appended to the
log since its last read, and the events kept in memory are those after the last pull's offsets
(the older ones are dropped as a pull moves the offsets on). :class:`AnsweredMeanwhile` reads
from the same tail while a re-rank sends, so the events it reads are the next re-rank's too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from relabeler import artifacts
from relabeler.corrections import KEEP, RELABEL
from relabeler.plugin.consensus import SKIPPED, vote_answers
from relabeler.plugin.events import EventTail
from relabeler.plugin.labeling import LabelingSpec
from relabeler.plugin.reconcile import WebhookAnnotations
from relabeler.plugin.votes import Vote, latest_per_annotator, resolve, task_votes
from relabeler.store import RunStore


def pulled_offsets(store: RunStore) -> dict[str, int]:
    """Lines per event file that the last pull read (``events`` in its pull state); {}
    before the first pull."""
    path = artifacts.PULL_STATE.path
    state = store.read_json(path) if store.exists(path) else {}
    return {str(f): int(n) for f, n in (state.get("events") or {}).items()}


def last_pulled_at(store: RunStore) -> str | None:
    """When the last pull finished (``pulled_at`` in its pull state); None before the first."""
    path = artifacts.PULL_STATE.path
    return store.read_json(path).get("pulled_at") if store.exists(path) else None


class EventsSincePull:
    """The webhook events after the last pull's offsets, kept in memory and brought up to date
    from one :class:`EventTail` (each line of the log is parsed once; the lines a pull had
    read when this was made are not parsed at all)."""

    def __init__(self, store: RunStore):
        self.store = store
        self._since = pulled_offsets(store)  # the offsets the kept events start from
        self._tail = EventTail(store, skip=self._since)
        self._events: list[dict[str, Any]] = []

    @property
    def lines(self) -> dict[str, int]:
        """Complete lines read per event file so far."""
        return dict(self._tail.lines)

    def read_new(self) -> list[dict[str, Any]]:
        """The events appended since the last read, which are kept for :meth:`since_pull`."""
        new = self._tail.read_new()
        self._events.extend(new)
        return new

    def since_pull(self) -> list[dict[str, Any]]:
        """Every event after the last pull's offsets, oldest first within a file (the pull
        state is read again each time: a pull since then drops the events it read)."""
        offsets = pulled_offsets(self.store)
        if any(offsets.get(name, 0) < lines for name, lines in self._since.items()):
            # the offsets went back (the pull state was removed or restored from a copy):
            # events dropped before are after them now, so the log is read again
            self._tail, self._events = EventTail(self.store, skip=offsets), []
        self._since = offsets
        self.read_new()
        self._events = [e for e in self._events if e["_line"] >= offsets.get(e["_file"], 0)]
        return list(self._events)


class AnsweredMeanwhile:
    """The tasks an event read while a re-rank sends gives an answer (an answer deleted by a
    later one does not count), brought up to date at most every ``every`` seconds (the log
    grows meanwhile; reading it per task would cost more than the request it saves). It reads
    from ``events``, the re-rank's own :class:`EventsSincePull`, so the next re-rank counts
    these answers too."""

    def __init__(self, events: EventsSincePull, every: float = 2.0):
        self.every = every
        self._events = events
        self._webhooks = WebhookAnnotations()
        self._read_at: float | None = None

    def has(self, task_id: int) -> bool:
        now = time.monotonic()
        if self._read_at is None or now - self._read_at >= self.every:
            self._webhooks.apply(self._events.read_new())
            self._read_at = now
        return bool(set(self._webhooks.by_task.get(task_id, ())) - self._webhooks.deleted)


@dataclass(frozen=True)
class Answers:
    """What people answered in the review project."""

    label_of: dict[str, str]   # sample id -> the class answered (kept or corrected)
    answered_tasks: set[int]   # task ids with at least one answer (skips included)


def collect_answers(store: RunStore, review: pd.DataFrame, spec: LabelingSpec,
                    given: Mapping[str, str], *,
                    events: EventsSincePull | None = None) -> Answers:
    """The answers to the tasks of ``review`` (manifest rows of one project): the last pull's
    corrections, and for each task the webhook events after the last pull's offsets speak of,
    its pulled answers with those events applied on top (an answer created or updated
    replaces the one of its id, a deletion removes it), resolved by majority. ``events``: the
    caller's long-lived reader of the log; without it the log is read here."""
    sample_of = {int(t): str(s) for t, s in zip(review["task_id"], review["id"], strict=True)
                 if pd.notna(t)}
    label_of: dict[str, str] = {}
    answered: set[int] = set()
    pulled: dict[int, dict[int, Vote]] = {}  # task id -> annotation id -> its pulled vote
    if store.exists(artifacts.CORRECTIONS.path):
        rows = store.read_table(artifacts.CORRECTIONS.path).to_pandas()
        for row in (rows.itertuples(index=False) if "task_id" in rows else ()):
            if pd.isna(row.task_id) or int(row.task_id) not in sample_of:
                continue
            answered.add(int(row.task_id))
            if row.action in (KEEP, RELABEL) and row.new_label is not None:
                label_of[str(row.id)] = str(row.new_label)
            pulled[int(row.task_id)] = _pulled_votes(row)
    webhooks = WebhookAnnotations.from_events((events or EventsSincePull(store)).since_pull())
    project_id = int(review["project_id"].iloc[0]) if len(review) else -1
    touched = set(webhooks.by_task) | {task for task, votes in pulled.items()
                                       if webhooks.deleted & set(votes)}
    for task_id in sorted(touched & set(sample_of)):
        sample_id = sample_of[task_id]
        votes = dict(pulled.get(task_id, {}))
        recorded = webhooks.by_task.get(task_id, {})
        fresh, _ = task_votes([a for i, a in recorded.items() if i not in webhooks.deleted],
                              spec, {}, sample_id=sample_id, project_id=project_id,
                              task_id=task_id)
        votes.update({v.annotation_id: v for v in fresh})
        for annotation_id in webhooks.deleted:
            votes.pop(annotation_id, None)
        label_of.pop(sample_id, None)
        answered.discard(task_id)
        if not votes:
            continue
        answered.add(task_id)
        res = resolve(latest_per_annotator(list(votes.values())),
                      given_label=given.get(sample_id))
        if res.action in (KEEP, RELABEL) and res.new_label is not None:
            label_of[sample_id] = res.new_label
    return Answers(label_of=label_of, answered_tasks=answered)


def _pulled_votes(row: Any) -> dict[int, Vote]:
    """A corrections row's votes by annotation id (``votes`` holds "annotator: answer")."""
    ids = list(row.annotation_ids) if row.annotation_ids is not None else []
    names = list(row.annotators) if row.annotators is not None else []
    texts = list(row.votes) if row.votes is not None else []
    if not (len(ids) == len(names) == len(texts)):
        return {}
    answers = vote_answers(names, texts)
    updated = str(row.updated_at) if pd.notna(row.updated_at) else ""
    return {int(i): Vote(annotator=name, annotation_id=int(i), updated_at=updated,
                         answer=None if answers[name] == SKIPPED else answers[name])
            for i, name in zip(ids, names, strict=True)}
