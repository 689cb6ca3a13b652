"""Live re-ranking in ``relabeler serve``: the tasks still waiting move as people answer.

After every ``loop.rerank_every`` answers (webhook events), a background worker re-ranks the
review project's tasks nobody has answered yet from the answers so far:

* the answers: ``labels/corrections.parquet`` (the last pull) and, on top, the webhook events
  after the last pull's offsets (``studio/events/``; the older ones were the pull's), each
  task's votes resolved as pull resolves them (``plugin.votes``); the process reads each line
  of the log once (:mod:`relabeler.plugin.live_answers`). A task the server showed answered
  (or skipped) when the process first listed the project counts as answered until the next
  pull, which takes its answer: Label Studio does not send again a webhook that found serve
  down, so no event tells of an answer given then;
* the neighbours' votes: each answered sample votes with its answered class instead of its
  given one (a "Drop" or "Not sure" answer leaves the given label), so the samples near a
  revealed flip lose their neighbours' support;
* the noise model: the joint of (given, true) classes is the confident joint of the rows not
  answered plus, for each answered row, its (given, answered) pair counted as known; when the
  answers reveal a systematic flip the class-conditional transitions move, and with them every
  view of the waiting samples given that class;
* in head mode, the model's view: its final layer is refit on the features with the answered
  labels (cheap: the features are the head's input) and its probabilities move by what the
  refit changed; the out-of-fold models' and the training dynamics' probabilities stay as
  trained, and so does the model's in full mode (serve does not fine-tune), each corrected by
  the new noise model.

The views are combined as ``relabeler score`` combines them
(:class:`relabeler.jobs.live_ranking.LiveRanking`, handed in by the entry point: the plugin
never imports the stages); with no answers the order is the stored one. The waiting flagged
tasks then take the queue positions they already hold among themselves in the new order;
random controls keep theirs (they stay where chance put them) and answered tasks are left
alone. Only the tasks out of that order get a new ``priority`` value, between their new
neighbours' (:mod:`relabeler.plugin.priorities`): the tasks already in the right order
relative to each other keep theirs, so a re-rank sends few updates, not one per waiting
task. A moved task's data is rewritten with its new ``priority`` by push's own code
(:func:`relabeler.plugin.push.update_priorities`), then ``studio/manifest.parquet`` follows, and
``studio/reranks.parquet`` records the re-rank; a task deleted in Label Studio is skipped (the
others still move) and left out of the process's later re-ranks. While ``relabeler next`` holds
``studio/round.lock`` (it rewrites the manifest and the ranking), or a push holds
``studio/manifest.lock``, a re-rank waits for the next answer; a round lock left by a ``next``
that died is named as such, with the way out (run ``relabeler next`` again to finish the
round). After ``relabeler next`` the
ranking is the latest round's scoring (its dataset version, ``studio/rounds.json``), and a
moved task is rebuilt from the version that scored its own round (its suggestion, neighbours and
evidence), as ``/predict`` answers it.

What moves in Label Studio (open-source edition): the ``priority`` field, so the Data Manager
tab "Priority queue" (sorted by it) and "Label Tasks As Displayed" from that tab serve the new
order. What does not: the default "Label All Tasks" stream of Sequential sampling, which serves
tasks by id (import order); the open-source server cannot reorder it short of deleting and
importing the tasks again, which would break an annotator's open task and the task ids the
manifest and the event log hold, so relabeler does not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.config import RunConfig, ScoreConfig
from relabeler.errors import PluginError, RelabelerError, RoundLockedError
from relabeler.locks import lock_holder_gone, read_lock_holder
from relabeler.plugin.backend import RoundEvidence
from relabeler.plugin.client import StudioClient
from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
from relabeler.plugin.live_answers import (
    AnsweredMeanwhile,
    EventsSincePull,
    collect_answers,
    last_pulled_at,
)
from relabeler.plugin.priorities import minimal_priorities, waiting_priorities
from relabeler.plugin.projects import project_spec
from relabeler.plugin.push import update_priorities
from relabeler.plugin.push_checks import check_tasks_owner, recorded_tasks
from relabeler.plugin.reconcile import event_project
from relabeler.plugin.tasks import MODEL_VERSION, PRIORITY_FIELD
from relabeler.queue_plan import (
    CONTROL,
    FLAGGED,
    manifest_lock,
    read_manifest,
    write_manifest,
)
from relabeler.selectors import noise
from relabeler.store import RunStore

log = logging.getLogger(__name__)

RERANKS = artifacts.RERANKS.path
ANSWER_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


# ---------------------------------------------------------------------------------------------
# the ranking with the answers


class Ranking(Protocol):
    """The training rows' suspect scores with answered labels taken as the truth
    (:class:`relabeler.jobs.live_ranking.LiveRanking`; the plugin never imports the stages,
    so the entry point hands the loader in)."""

    ids: np.ndarray   # (N,) sample ids, the scores' row order
    head_refit: bool  # whether the model's view follows the answers (head mode)

    def scores(self, answered: Mapping[str, str]
               ) -> tuple[np.ndarray, noise.NoiseModel | None]: ...


#: loads the ranking of a scored run: ``(store, [score] settings) -> Ranking``
RankingLoader = Callable[[RunStore, ScoreConfig], Ranking]


# ---------------------------------------------------------------------------------------------
# one re-rank


@dataclass(frozen=True)
class RerankResult:
    answered: int          # review tasks answered so far
    corrected: int         # of their samples, answered with another class than the given one
    waiting: int           # review tasks not answered yet
    reprioritised: int     # waiting tasks whose priority changed
    noise_model: str       # the noise model's kind, or "none"
    head_refit: bool       # the final layer was refit with the answers (head mode)
    seconds: float


class Reranker:
    """Re-ranks the waiting tasks of the run's review project (see the module docstring).

    ``client`` makes the Label Studio client on first use (in the worker thread, so a server
    that is down fails a re-rank, not serve's start); ``ranking`` loads the run's ranking,
    again whenever ``scores/suspects.parquet`` is rewritten. Once ``stopping`` is set (serve
    is stopping: :meth:`RerankWorker.stop` sets it) a re-rank sends no more tasks; those sent
    are recorded in the manifest, and the next re-rank sends the rest."""

    def __init__(self, store: RunStore, config: RunConfig,
                 client: Callable[[], StudioClient], ranking: RankingLoader,
                 stopping: threading.Event | None = None):
        self.store, self.config = store, config
        self.stopping = stopping or threading.Event()
        self._make_client = client
        self._client: StudioClient | None = None
        self._evidence = RoundEvidence(store, examples=config.studio.examples)
        self._load_ranking = ranking
        self._ranking: Ranking | None = None
        self._ranking_version: tuple[str, str | None] | None = None
        self._project_id: int | None = None
        self._gone: set[int] = set()  # task ids Label Studio no longer has (deleted there)
        # the webhook events after the last pull's offsets, read as the log grows: the
        # answers' collection and the check for tasks answered during a send share them
        self._events = EventsSincePull(store)
        # tasks the server showed answered when this process first listed the project, and
        # the last pull then: answers given while serve was down reach no webhook, so they
        # count as answered until a later pull has taken them into the corrections
        self._answered_on_server: set[int] = set()
        self._listed_after_pull: str | None = None
        # the review tasks' predictions as Label Studio holds them: listed once (and again
        # after a re-score, which is what changes suggestions), then kept by this process's
        # own sends, so a moved task whose suggestion is unchanged costs no prediction request
        self._predictions: dict[int, list[dict[str, Any]]] | None = None

    def counts(self, payload: Mapping[str, Any]) -> bool:
        """Whether a webhook event is an answer in the review project (what triggers)."""
        if payload.get("action") not in ANSWER_ACTIONS:
            return False
        if self._project_id is None:
            review = _review_rows(read_manifest(self.store))
            if not len(review):
                return True  # nothing pushed yet; the re-rank will say so
            self._project_id = int(review["project_id"].iloc[0])
        return event_project({"payload": payload}) in (None, self._project_id)

    def _live_ranking(self) -> Ranking:
        """The ranking of the latest round's scoring (the run's before ``relabeler next``),
        loaded again when that changes or is re-scored."""
        current = self._evidence.latest()
        version = (current.uri, current.version(artifacts.SUSPECTS.path))
        if self._ranking is None or version != self._ranking_version:
            self._ranking = self._load_ranking(current, self.config.score)
            self._ranking_version = version
            self._predictions = None  # a push after the re-score may have replaced them
        return self._ranking

    def __call__(self, answer_events: int = 0) -> RerankResult | None:
        """Re-rank once; ``answer_events``: the answers since the last re-rank (recorded).
        None when nothing was pushed yet."""
        started = time.perf_counter()
        self._check_round_lock()
        # a push, a round or second opinions writing the manifest: the next answer tries again
        with manifest_lock(self.store, wait=0):
            return self._rerank_held(started, answer_events)

    def _check_round_lock(self) -> None:
        """RoundLockedError while ``studio/round.lock`` is there: `relabeler next` rewrites the
        manifest and the ranking, so a re-rank waits for its round. A lock left by a `next`
        that died stays until a `next` finishes that round: the message says so."""
        path = artifacts.ROUND_LOCK.path
        if not self.store.exists(path):
            return
        shown = self.store.path(path)
        holder = read_lock_holder(self.store, path)
        if lock_holder_gone(holder, self.store.local_path(path)):
            raise RoundLockedError(
                f"{shown} was left by process {holder.get('pid', '?')}, which is gone (a "
                f"`relabeler next` that stopped midway): no re-rank until its round is "
                f"finished. Run `relabeler next --run {self.store.uri}` again (it resumes "
                f"the round and takes the lock over); delete the file only if no round is to "
                f"be finished")
        raise RoundLockedError(f"a round of `relabeler next` holds {shown} (process "
                               f"{holder.get('pid', '?')}); the re-rank is tried again on the "
                               f"next answer after it")

    def _rerank_held(self, started: float, answer_events: int) -> RerankResult | None:
        review = _review_rows(read_manifest(self.store))
        if not len(review):
            log.info("serve: nothing pushed yet; no re-rank")
            return None
        project_id = int(review["project_id"].iloc[0])
        evidence = self._evidence.get()
        spec = LabelingSpec.from_config(build_labeling_config(evidence.classes))
        answers = collect_answers(self.store, review, spec, evidence.train_label,
                                  events=self._events)
        # what the server holds: the manifest's priorities, except on this process's first
        # re-rank, which reads the server's own (a re-rank killed between sending a task and
        # recording it left them apart; comparing with the manifest would keep the server's
        # stray value wherever the new slot equals the manifest's, and two tasks would share it)
        held = self._server_priorities(review, project_id, answers.answered_tasks)
        if last_pulled_at(self.store) != self._listed_after_pull:
            self._answered_on_server = set()  # a pull since the listing took their answers
        answered = answers.answered_tasks | (self._answered_on_server
                                             & set(review["task_id"].dropna().astype(int)))
        ranking = self._live_ranking()
        scores, noise_model = ranking.scores(answers.label_of)
        score_of = dict(zip(map(str, ranking.ids), scores.tolist(), strict=True))
        waiting = review[review["task_id"].notna()
                         & ~review["task_id"].isin(answered)
                         & ~review["task_id"].isin(self._gone)]
        others = review.loc[review.index.difference(waiting.index), "priority"]
        slots = waiting_priorities(waiting, score_of, taken=[int(p) for p in others])
        # the slots give the wanted order; rewriting every task whose slot changed would send
        # almost all of them (the slots are a permutation), so only the tasks out of order
        # get new values, between their new neighbours'
        now = {str(x): held.get(int(t), int(p)) for x, t, p in zip(
            waiting["id"], waiting["task_id"], waiting["priority"], strict=True)}
        wanted = sorted(now, key=lambda x: (slots[x], x))
        priorities = dict(zip(wanted, minimal_priorities([now[x] for x in wanted],
                                                         taken=[int(p) for p in others]),
                              strict=True))
        moved = waiting[[priorities[str(x)] != held.get(int(t), int(p)) for x, t, p in zip(
            waiting["id"], waiting["task_id"], waiting["priority"], strict=True)]]
        # tasks the server holds in their new slot already, where the manifest lags: recorded
        drift = waiting[[int(t) in held and held[int(t)] != int(p)
                         and priorities[str(x)] == held[int(t)] for x, t, p in zip(
            waiting["id"], waiting["task_id"], waiting["priority"], strict=True)]]
        if len(drift):
            self._record(project_id, drift.assign(
                priority=[held[int(t)] for t in drift["task_id"]]))
        reprioritised = 0
        if len(moved):
            sent, reprioritised = self._send(review, moved, priorities, spec, project_id)
            if self.stopping.is_set() and sent < len(moved):
                log.info("serve: stopping: the re-rank sent %d of %d moved tasks; the manifest "
                         "records them, and the next re-rank sends the rest", sent, len(moved))
                return None
        corrected = sum(label != evidence.train_label.get(s)
                        for s, label in answers.label_of.items())
        result = RerankResult(answered=len(answered), corrected=corrected,
                              waiting=len(waiting), reprioritised=reprioritised,
                              noise_model=noise_model.kind if noise_model else "none",
                              head_refit=ranking.head_refit and bool(answers.label_of),
                              seconds=round(time.perf_counter() - started, 3))
        record_rerank(self.store, result, answer_events=answer_events)
        log.info("serve: re-ranked after %d answers: %d of %d waiting tasks moved (%d answered, "
                 "%d corrected, %s noise model) in %.1f s", answer_events, result.reprioritised,
                 result.waiting, result.answered, result.corrected, result.noise_model,
                 result.seconds)
        return result

    def _send(self, review: pd.DataFrame, moved: pd.DataFrame, priorities: Mapping[str, int],
              spec: LabelingSpec, project_id: int) -> tuple[int, int]:
        """Label Studio first, then the manifest, which records the priority of every task the
        server took, also when a later update fails: the manifest says what the server has,
        so the next re-rank sends exactly the tasks whose place differs. A task deleted in
        Label Studio is skipped (the others still move) and left out of this process's later
        re-ranks; the manifest gives it the slot it was to take, so no two rows share one.
        Between two tasks, a set ``stopping`` ends it. A task answered since the re-rank
        started (the webhook event log, read again every few seconds while tasks are sent) is
        not sent: annotators are done with it, so a new place buys nothing. Returns the tasks
        handled (skipped ones included) and those whose priority the server took."""
        self._server_priorities(review, project_id)  # connects, checks the project
        spec = project_spec(self._client, project_id)  # the config the project was made with
        if self._predictions is None and len(review) <= PREDICTIONS_LISTING_MAX:
            self._predictions = self._client.project_predictions(project_id, MODEL_VERSION)
        rows = review.loc[moved.index].copy()
        rows["priority"] = [priorities[str(x)] for x in rows["id"]]
        done: list[int] = []
        gone: list[int] = []
        skipped: list[int] = []
        answered = AnsweredMeanwhile(self._events)

        def skip(task_id: int) -> bool:
            if answered.has(task_id):
                skipped.append(task_id)
                return True
            return False

        try:
            for round_no, part in rows.groupby("round", sort=True):
                # each task rebuilt from the scoring that picked it (its round's version)
                update_priorities(self._client, part, list(part.index),
                                  self._evidence.get(int(round_no)).train_samples, spec,
                                  top_spans=self.config.studio.top_spans, done=done,
                                  gone=gone, stop=self.stopping.is_set,
                                  predictions=self._predictions, skip=skip)
        finally:
            self._gone.update(int(t) for t in rows.loc[gone, "task_id"])
            if done or gone:
                self._record(project_id, rows.loc[done + gone])
        if skipped:
            log.info("serve: %d moved tasks were answered while the re-rank ran: not sent",
                     len(skipped))
        return len(done) + len(gone) + len(skipped), len(done)

    def _server_priorities(self, review: pd.DataFrame, project_id: int,
                           answered: Collection[int] = ()) -> dict[int, int]:
        """Task id -> the priority Label Studio holds, read once, when this process first
        connects (after that, this process's own sends keep the manifest right); {} later.
        The same listing checks that the project is this run's: another run's (a server this
        run did not push to) keeps its order; and it tells the tasks the server holds an
        answer or a skip for, which are not waiting whatever the event log says (``answered``:
        those the answers so far know of)."""
        if self._client is not None:
            return {}
        client = self._make_client()
        on_server, answered_there = client.task_data_and_answered(project_id)
        check_tasks_owner(project_id, client.shown_url, recorded_tasks(review, project_id),
                          on_server, error=PluginError, nothing="no task was moved")
        self._client = client
        self._answered_on_server = answered_there
        self._listed_after_pull = last_pulled_at(self.store)
        unheard = (set(review["task_id"].dropna().astype(int)) & answered_there) - set(answered)
        if unheard:
            log.info("serve: %d review tasks have answers on the server that no webhook told "
                     "of yet (given while serve was down, or their webhooks are on the way): "
                     "they are not moved; `relabeler pull` takes their answers", len(unheard))
        held = {}
        for task_id, data in on_server.items():
            try:
                held[int(task_id)] = int(data[PRIORITY_FIELD])
            except (KeyError, TypeError, ValueError):
                continue  # no priority there: the manifest's stands
        return held

    def _record(self, project_id: int, sent: pd.DataFrame) -> None:
        """The manifest takes the priorities of the ``sent`` rows (the server has them)."""
        new = {(project_id, str(x)): int(p) for x, p in zip(sent["id"], sent["priority"],
                                                            strict=True)}
        manifest = read_manifest(self.store)  # read again: keep what changed meanwhile
        keys = zip(manifest["project_id"].astype(int), manifest["id"].astype(str), strict=True)
        manifest["priority"] = [new.get(key, p) for key, p in zip(keys, manifest["priority"],
                                                                   strict=True)]
        write_manifest(self.store, manifest)


#: above this many review tasks, a re-rank reads the predictions of each task it moves instead
#: of the project's in one request: Label Studio 1.23 lists a project's predictions in one
#: unpaginated response (each holds the evidence regions, a few kB), which grows with the
#: project, while a re-rank moves a part of it
PREDICTIONS_LISTING_MAX = 20_000


def _review_rows(manifest: pd.DataFrame) -> pd.DataFrame:
    return manifest[manifest["source"].isin([FLAGGED, CONTROL])]


def record_rerank(store: RunStore, result: RerankResult, *, answer_events: int,
                  at: datetime | None = None) -> None:
    """Append one row to ``studio/reranks.parquet`` (rewritten whole: a few rows a day)."""
    row = pd.DataFrame({
        "at": pd.Series([pd.Timestamp(at or datetime.now(UTC))], dtype="datetime64[us, UTC]"),
        "answer_events": [answer_events], "answered": [result.answered],
        "corrected": [result.corrected], "waiting": [result.waiting],
        "reprioritised": [result.reprioritised], "noise_model": [result.noise_model],
        "head_refit": [result.head_refit], "seconds": [float(result.seconds)]})
    if store.exists(RERANKS):
        row = pd.concat([store.read_table(RERANKS).to_pandas(), row], ignore_index=True)
    store.write_table(RERANKS, pa.Table.from_pandas(row, schema=artifacts.RERANKS.schema,
                                                    preserve_index=False))


def read_reranks(store: RunStore) -> pd.DataFrame:
    """Every re-rank so far, oldest first; empty before the first."""
    if not store.exists(RERANKS):
        return artifacts.RERANKS.schema.empty_table().to_pandas()
    return store.read_table(RERANKS).to_pandas()


# ---------------------------------------------------------------------------------------------
# the worker


#: seconds the re-rank leaves the manifest's lock free before it takes it again: a pull or a
#: round waiting for it looks every 0.5 s (a lease on an object store) or 0.1 s (a flock), and
#: re-ranks back to back while answers poured in kept it taken (a pull waited a minute)
YIELD_S = 1.5


class RerankWorker:
    """One background thread that runs ``rerank(answer_events)`` after every ``every``
    answers, off the webhook's request path.

    :meth:`notify` only counts (under a lock) and wakes the thread: a webhook is never delayed
    by a re-rank. The queue coalesces: answers that arrive while a re-rank runs trigger at
    most one more. A failed re-rank is logged and retried on the next answer (the next one
    re-ranks from every answer so far, so nothing is lost). ``counts(payload)`` says which
    events are answers (default: annotations created or updated). :meth:`stop` sets
    ``stopping`` (hand the re-rank the same event: :class:`Reranker` then stops between two
    tasks) and waits for the thread, which is not a daemon: the interpreter waits for it too.
    """

    def __init__(self, rerank: Callable[[int], Any], *, every: int,
                 counts: Callable[[Mapping[str, Any]], bool] | None = None,
                 stopping: threading.Event | None = None, gap: float = YIELD_S):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if gap < 0:
            raise ValueError(f"gap must be >= 0 seconds, got {gap}")
        self.every = every
        self.gap = gap
        self._free_from = 0.0  # (monotonic) when the next re-rank may take the lock
        self.stopping = stopping or threading.Event()
        self._rerank = rerank
        self._counts = counts or (lambda payload: payload.get("action") in ANSWER_ACTIONS)
        self._cond = threading.Condition()
        self._since = 0        # answers not yet handed to a re-rank
        self._due = 0          # answers handed to the pending re-rank
        self._pending = False
        self._retry = False    # the last re-rank failed: the next answer triggers
        self._stopping = False
        self._busy = False     # a re-rank is running
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    def start(self) -> RerankWorker:
        self._thread = threading.Thread(target=self._loop, name="relabeler-rerank",
                                        daemon=False)
        self._thread.start()
        return self

    def notify(self, payload: Mapping[str, Any]) -> None:
        """An event was recorded; count it if it is an answer. Never raises."""
        try:
            if not self._counts(payload):
                return
        except Exception:
            log.exception("serve: cannot tell whether an event is an answer; counted")
        with self._cond:
            self._since += 1
            if self._since >= self.every or self._retry:
                self._due += self._since
                self._since = 0
                self._retry = False
                self._pending = True
                self._cond.notify()

    def request(self) -> None:
        """Ask for a re-rank now (coalesced like the answers' triggers)."""
        with self._cond:
            self._pending = True
            self._cond.notify()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop a running re-rank between two tasks (``stopping``) and end the thread; wait
        for it up to ``timeout``. Calling it again does nothing more."""
        self.stopping.set()
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("serve: the re-rank did not stop within %.0f s (it is working out "
                            "the new order; it sends no task once it sees the stop)", timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no re-rank is pending or running; False on timeout (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not (self._pending or self._stopping):
                    self._cond.wait()
                # the manifest's lock stays free a moment after the last re-rank
                while not self._stopping and (rest := self._free_from - time.monotonic()) > 0:
                    self._cond.wait(rest)
                if self._stopping:
                    return
                answers, self._due, self._pending, self._busy = self._due, 0, False, True
            try:
                self._rerank(answers)
                self.runs += 1
            except Exception as exc:
                self.failures += 1
                if isinstance(exc, RelabelerError):  # a round or a push is busy: expected
                    log.warning("serve: no re-rank now: %s", exc)
                else:
                    log.exception("serve: re-rank failed (the answers are recorded; it is "
                                  "tried again on the next answer)")
                with self._cond:
                    self._retry = True
                    self._due += answers
            finally:
                with self._cond:
                    self._busy = False
                    self._free_from = time.monotonic() + self.gap
                    self._cond.notify_all()
