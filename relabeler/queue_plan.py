"""The queue plan: what a round sends to Label Studio, decided once, read by attribute and push.

:func:`plan_round` is pure: from the ranking, the manifest of what is in Label Studio already,
the budget, the control share, the seed and the pool picks, it lists every task of the round
(``queue/plan.parquet``: id, source, position, rank, pushed). ``relabeler attribute`` writes the
plan and attributes every row of it, so every task a push sends, control or not, carries its
evidence: a control without highlights would be recognisable, and the report's lift rests on
the controls looking like any other task. ``relabeler push`` plans again with its own settings
and stops, naming the tasks, when that plan needs evidence the attribute stage did not compute.

Review project: the top ``budget - controls`` of the ranking, and random controls drawn
uniformly from all training rows (never the flagged target or anything sent), spread at stable
random positions among the flagged tasks. Acquisition project: the pool picks in their order.
Eval-audit project: the top of ``scores/eval_suspects.parquet`` in rank order (no controls: the
audit measures the eval labels, not the queue).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler.artifacts import (
    MANIFEST,
    MANIFEST_LEASE,
    MANIFEST_LOCK,
    PLAN,
    PLAN_SETTINGS,
    RERANKS,
)
from relabeler.errors import ManifestLockedError
from relabeler.locks import LEASE_TTL_S, Lease, describe_holder
from relabeler.store import RunStore

log = logging.getLogger(__name__)

FLAGGED, CONTROL, ACQUIRED = "flagged", "random_control", "acquired"
EVAL_AUDIT = "eval_audit"
SECOND_OPINION = "second_opinion"   # a training sample asked again (plugin.second_opinion)
COUNTEREXAMPLE = "counterexample"   # a training sample against a shortcut (plugin.counterexamples)
SOURCES = (FLAGGED, CONTROL, ACQUIRED, EVAL_AUDIT, SECOND_OPINION, COUNTEREXAMPLE)
MANIFEST_SCHEMA = MANIFEST.schema
#: what write_manifest writes: the columns every manifest has, and each task's round
_WRITTEN = pa.schema([*MANIFEST.schema, *MANIFEST.optional])


def empty_manifest() -> pd.DataFrame:
    return _WRITTEN.empty_table().to_pandas()


def read_manifest(store: RunStore) -> pd.DataFrame:
    """What was sent to Label Studio (``studio/manifest.parquet``); empty before a push."""
    if not store.exists(MANIFEST.path):
        return empty_manifest()
    frame = store.read_table(MANIFEST.path).to_pandas()
    if "round" not in frame.columns:  # written before rounds existed: all of it was round 1
        frame["round"] = 1
    for column in ("task_id", "rank"):
        frame[column] = frame[column].astype("Int64")
    frame["round"] = frame["round"].astype(np.int64)
    return frame


#: a manifest writer waits this long for another (a re-rank sending its priorities)
MANIFEST_LOCK_WAIT = 300.0
T = TypeVar("T")


def _nothing() -> None:
    return None


@dataclass
class _Held:
    """This process's hold on one lock: its threads take ``lock`` (re-entrant); the first of
    a nest takes the lock between processes, and ``release`` gives it back."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    depth: int = 0
    release: Callable[[], None] = _nothing


_HELD: dict[str, _Held] = {}  # lock file -> this process's hold on it
_HELD_GUARD = threading.Lock()


def _flock(path: Path, wait: float) -> int | None:
    """An open descriptor of ``path`` holding its exclusive flock, taken within ``wait``
    seconds; None when another process holds it all that time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    deadline, told = started + wait, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if told:
                log.info("took %s after %.1f s", path, time.monotonic() - started)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            if wait >= 1 and not told:
                log.info("waiting for %s: another relabeler process (a push, pull, round or "
                         "re-rank) is writing the manifest; up to %.0f s", path, wait)
                told = True
            time.sleep(0.1)


@contextmanager
def manifest_lock(store: RunStore, *, wait: float = MANIFEST_LOCK_WAIT) -> Iterator[None]:
    """Hold ``studio/manifest.lock`` for a read-modify-write of the manifest that spans
    requests to Label Studio: push, a round's push, second opinions, serve's re-rank, and pull
    (its corrections and pull state). Each reads the manifest, talks to the server, writes it
    back: two at once would write back a stale copy and lose the other's priorities, task ids
    or answers.

    An advisory ``flock`` between processes, re-entrant within one (``next`` pushes inside its
    own round). ``wait`` seconds at most (0: fail at once), then ManifestLockedError. On a
    remote run directory, where there is no flock, a :class:`~relabeler.locks.Lease` on
    ``studio/manifest.lease`` in its place.
    """
    local = store.local_path(MANIFEST_LOCK.path)
    key = str(local) if local is not None else store.path(MANIFEST_LEASE.path)
    with _HELD_GUARD:
        held = _HELD.setdefault(key, _Held())
    acquired = held.lock.acquire(timeout=wait) if wait > 0 else held.lock.acquire(blocking=False)
    if not acquired:
        raise ManifestLockedError(f"{key} is held by another thread of this process")
    try:
        if held.depth == 0:
            held.release = _take(store, local, wait)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0:
                release, held.release = held.release, _nothing
                release()
    finally:
        held.lock.release()


#: who holds the manifest's lock, as its errors say
_WRITERS = "a push, a pull, a round or a re-rank"


def _take(store: RunStore, local: Path | None, wait: float) -> Callable[[], None]:
    """Take the manifest's lock between processes (a flock, or a lease on a remote run
    directory), waiting ``wait`` seconds at most; returns what releases it."""
    waited = f", still after {wait:.0f} s" if wait >= 1 else ""
    if local is not None:
        fd = _flock(local, wait)
        if fd is None:
            raise ManifestLockedError(
                f"another relabeler process is writing {store.path(MANIFEST.path)} "
                f"({local} is held{waited}): {_WRITERS}; try again when it is done")

        def unlock() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return unlock
    lease = Lease(store, MANIFEST_LEASE.path, what="manifest")
    started = time.monotonic()
    deadline, told = started + wait, False
    while (other := lease.acquire()) is not None:
        if wait >= 1 and not told:
            log.info("waiting for %s, held by %s: another relabeler process (%s) is writing "
                     "the manifest; up to %.0f s", store.path(MANIFEST_LEASE.path),
                     describe_holder(other), _WRITERS, wait)
            told = True
        if time.monotonic() >= deadline:
            raise ManifestLockedError(
                f"another relabeler process is writing {store.path(MANIFEST.path)} "
                f"({store.path(MANIFEST_LEASE.path)} is held by {describe_holder(other)}"
                f"{waited}): {_WRITERS}; try again when it is done (a lease its holder stops "
                f"renewing is taken over after {LEASE_TTL_S:g} s)")
        time.sleep(0.5)
    if told:
        log.info("took %s after %.1f s", store.path(MANIFEST_LEASE.path),
                 time.monotonic() - started)
    return lease.release


def holds_manifest(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn(store, ...)`` holding :func:`manifest_lock` on its ``store``."""
    @functools.wraps(fn)
    def held(store: RunStore, *args: Any, **kwargs: Any) -> T:
        with manifest_lock(store):
            return fn(store, *args, **kwargs)
    return held


def write_manifest(store: RunStore, manifest: pd.DataFrame) -> None:
    """Write the manifest; rows without a round (made before rounds existed) are round 1."""
    frame = manifest.sort_values(["project_id", "priority", "id"], kind="stable")
    if "round" not in frame.columns:
        frame = frame.assign(round=1)
    frame = frame.assign(round=frame["round"].fillna(1).astype(np.int64))
    table = pa.Table.from_pandas(frame[_WRITTEN.names], schema=_WRITTEN, preserve_index=False)
    store.write_table(MANIFEST.path, table)


def split_budget(budget: int, control_share: float) -> tuple[int, int]:
    """(flagged, controls) for a budget; controls = round(budget * share), at least 1 when the
    share is positive and the budget allows."""
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if not 0.0 <= control_share < 1.0:
        raise ValueError(f"control_share must be in [0, 1), got {control_share}")
    controls = int(round(budget * control_share))
    if control_share > 0 and controls == 0 and budget >= 2:
        controls = 1
    return budget - controls, controls


def plan_training_queue(ranked_ids: Sequence[str], train_ids: Sequence[str],
                        pushed: pd.DataFrame, *, budget: int, control_share: float,
                        seed: int = 0) -> tuple[list[str], list[str]]:
    """New flagged and new control sample ids of the review project.

    ranked_ids: the suspect queue, rank 1 first. train_ids: every training id (controls are
    drawn from here, uniformly, excluding the flagged target and anything pushed).
    pushed: manifest rows already in the project (id, source).

    The flagged target is the top ``budget - controls`` of the current queue; samples of it not
    yet pushed are new. Controls are topped up to their share of the budget.
    """
    n_flagged, n_controls = split_budget(budget, control_share)
    already = set(pushed["id"])
    target = list(ranked_ids[:n_flagged])
    new_flagged = [i for i in target if i not in already]
    need = max(0, n_controls - int((pushed["source"] == CONTROL).sum()))
    new_controls: list[str] = []
    if need:
        excluded = already | set(target)
        pool = sorted(train_ids)
        for k in np.random.default_rng(seed).permutation(len(pool)):
            candidate = pool[int(k)]
            if candidate not in excluded:
                new_controls.append(candidate)
                if len(new_controls) == need:
                    break
    return new_flagged, new_controls


def _unit(seed: int, sample_id: str) -> float:
    """A stable uniform number in [0, 1) per (seed, id): a control's place in the queue."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


#: the step between the priorities of consecutive review tasks as push and ``next`` give them
#: (the first is PRIORITY_STEP): the free integers between two tasks let serve's re-rank move a
#: task between them with one update, where values 1, 2, 3 made it renumber every task up to
#: the next gap (half of a 150-task queue on each of the first re-ranks)
PRIORITY_STEP = 1000


def queue_priorities(flagged_ranked: Sequence[str], controls: Sequence[str], *, seed: int = 0
                     ) -> dict[str, int]:
    """Review-queue priorities (:data:`PRIORITY_STEP` = first, then a step apart) for flagged
    ids in rank order with controls spread among them at stable, uniformly random places."""
    n = max(len(flagged_ranked), 1)
    keys = [(float(i), 0, x) for i, x in enumerate(flagged_ranked)]
    keys += [(_unit(seed, x) * n, 1, x) for x in controls]
    return {x: PRIORITY_STEP * place for place, (_, _, x) in enumerate(sorted(keys), start=1)}


def plan_round(ranking: pd.DataFrame, train_ids: Sequence[str], manifest: pd.DataFrame, *,
               budget: int, control_share: float, seed: int, pool_picks: pd.DataFrame,
               eval_picks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every task of the round, review project first, then acquisition, then eval audit, each
    in queue order.

    ranking: the suspects (columns id, rank). manifest: what was sent (id, source). pool_picks:
    the pool rows to acquire (columns id, rank). eval_picks: the eval rows to audit (columns
    id, rank; none when omitted). Returns columns id, source, position (the task's priority
    in its project, lowest first: :data:`PRIORITY_STEP` apart in the review project, the pick's
    rank in the others), rank (of the suspect or the pool pick; NA for a control below the
    ranking) and pushed (already in Label Studio).
    """
    ranking = ranking.sort_values(["rank", "id"], kind="stable")
    rank_of = dict(zip(ranking["id"], ranking["rank"], strict=True))
    review = manifest[manifest["source"].isin([FLAGGED, CONTROL])]
    # samples people answer in another project (a counterexample, an acquired pool row that
    # joined the training set) are never asked again here
    elsewhere = set(manifest.loc[manifest["source"].isin([COUNTEREXAMPLE, ACQUIRED]), "id"])
    new_flagged, new_controls = plan_training_queue(
        [x for x in ranking["id"] if x not in elsewhere],
        [x for x in train_ids if x not in elsewhere], review, budget=budget,
        control_share=control_share, seed=seed)
    flagged = [*review.loc[review["source"] == FLAGGED, "id"], *new_flagged]
    flagged.sort(key=lambda x: (rank_of.get(x, np.iinfo(np.int64).max), x))
    controls = [*review.loc[review["source"] == CONTROL, "id"], *new_controls]
    positions = queue_priorities(flagged, controls, seed=seed)
    source = {**dict.fromkeys(flagged, FLAGGED), **dict.fromkeys(controls, CONTROL)}
    ordered = sorted(positions, key=positions.__getitem__)
    sent = set(review["id"])
    frames = [pd.DataFrame({
        "id": ordered, "source": [source[x] for x in ordered],
        "position": [positions[x] for x in ordered],
        "rank": pd.array([rank_of.get(x) for x in ordered], dtype="Int64"),
        "pushed": [x in sent for x in ordered]})]
    for source, chosen in ((ACQUIRED, pool_picks), (EVAL_AUDIT, eval_picks)):
        if chosen is None:
            continue
        picks = chosen.sort_values(["rank", "id"], kind="stable")
        sent_here = set(manifest.loc[manifest["source"] == source, "id"])
        frames.append(pd.DataFrame({
            "id": list(picks["id"]), "source": source,
            "position": picks["rank"].to_numpy(dtype=np.int64),
            "rank": pd.array(picks["rank"], dtype="Int64"),
            "pushed": [x in sent_here for x in picks["id"]]}))
    nonempty = [f for f in frames if len(f)] or frames[:1]
    plan = pd.concat(nonempty, ignore_index=True)
    return plan.astype({"id": object, "source": object, "position": np.int64,
                        "pushed": bool})


def plan_next_round(ranking: pd.DataFrame, train_ids: Sequence[str], manifest: pd.DataFrame,
                    *, batch: int, control_share: float, seed: int, round_no: int,
                    random_fill: bool = False) -> pd.DataFrame:
    """The new review tasks of round ``round_no``, queued behind every task already in the
    review project.

    ranking: the re-scored suspects (columns id, rank; rows already answered or sent may be in
    it: anything in ``manifest`` is skipped, so nothing is pushed twice). train_ids: every
    training id. manifest: what was sent (id, source, priority). The round takes the top
    ``batch - controls`` of the ranking not yet sent and its own random controls, drawn
    uniformly from the training rows neither sent nor in this round's target, spread at stable
    random places among them. ``random_fill``: the ranking did not beat random picks, so the
    flagged part is a uniform draw too (source ``random_control``: an unbiased sample of the
    unreviewed rows, which is what the controls are), and the controls' share of the batch is
    taken from the top of the ranking instead (source ``flagged``), so the ranking keeps being
    measured. Returns the :func:`plan_round` columns; positions continue after the project's
    last priority.
    """
    if round_no < 1:
        raise ValueError(f"round_no must be >= 1, got {round_no}")
    sent = set(manifest["id"])  # any project: a counterexample or an acquired row included
    ranking = ranking.sort_values(["rank", "id"], kind="stable")
    rank_of = dict(zip(ranking["id"], ranking["rank"], strict=True))
    open_ranked = [x for x in ranking["id"] if x not in sent]
    n_flagged, n_controls = split_budget(batch, control_share)
    if random_fill:
        n_flagged, n_controls = n_controls, n_flagged
    flagged = open_ranked[:n_flagged]
    excluded = sent | set(flagged)
    pool = sorted(x for x in train_ids if x not in excluded)
    draw = np.random.default_rng([seed, round_no]).permutation(len(pool))[:n_controls]
    controls = [pool[int(k)] for k in draw]
    positions = queue_priorities(flagged, controls, seed=seed)
    review = manifest[manifest["source"].isin([FLAGGED, CONTROL])]
    start = int(review["priority"].max()) if len(review) else 0
    ordered = sorted(positions, key=positions.__getitem__)
    source = {**dict.fromkeys(flagged, FLAGGED), **dict.fromkeys(controls, CONTROL)}
    return pd.DataFrame({
        "id": pd.Series(ordered, dtype=object),
        "source": pd.Series([source[x] for x in ordered], dtype=object),
        "position": np.array([start + positions[x] for x in ordered], dtype=np.int64),
        "rank": pd.array([rank_of.get(x) for x in ordered], dtype="Int64"),
        "pushed": np.zeros(len(ordered), dtype=bool)})


def plan_settings(budget: int, control_share: float, seed: int) -> dict:
    return {"budget": int(budget), "control_share": float(control_share), "seed": int(seed)}


def write_plan(store: RunStore, plan: pd.DataFrame, settings: dict) -> None:
    store.write_table(PLAN.path, pa.Table.from_pandas(plan, schema=PLAN.schema,
                                                      preserve_index=False))
    store.write_json(PLAN_SETTINGS.path, settings)


def read_plan(store: RunStore) -> tuple[pd.DataFrame, dict] | None:
    """The plan the attribute stage wrote and its settings; None before the first one."""
    if not store.exists(PLAN.path):
        return None
    plan = store.read_table(PLAN.path).to_pandas().astype({"id": object, "source": object})
    plan["rank"] = plan["rank"].astype("Int64")
    settings = store.read_json(PLAN_SETTINGS.path) if store.exists(PLAN_SETTINGS.path) else {}
    return plan, settings


def reranked_since_scoring(store: RunStore) -> bool:
    """Whether ``relabeler serve`` moved waiting tasks after the score stage made the ranking
    the plan follows: the live order is then the newer one."""
    scored = store.stage_info("score")
    if scored is None or not store.exists(RERANKS.path):
        return False
    reranks = store.read_table(RERANKS.path, columns=["at", "reprioritised"])
    moved = reranks.to_pandas().query("reprioritised > 0")["at"]
    return bool(len(moved)) and moved.max() > pd.Timestamp(scored["finished_at"])


def behind_the_live_order(manifest: pd.DataFrame, project_id: int, review: pd.DataFrame
                           ) -> dict[str, int]:
    """Priorities when serve re-ranked the sent tasks after the scores were made: those keep
    theirs (a push again would put the scored order back over the answers' evidence), and the
    plan's new tasks go behind every sent one, in queue order."""
    mine = manifest["project_id"] == project_id
    sent = set(manifest.loc[mine, "id"])
    start = int(manifest.loc[mine, "priority"].max()) if mine.any() else 0
    new = [x for x in review.sort_values("position")["id"] if x not in sent]
    log.info("push: serve re-ranked the waiting tasks after the scores were made: their order "
             "is kept, and %d new tasks go behind them", len(new))
    return {x: start + PRIORITY_STEP * i for i, x in enumerate(new, 1)}
