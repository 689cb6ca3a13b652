"""Output of a Ray Data pass, reassembled into part files on the driver.

The extract and attribute stages stream rows back from their actors in whatever order the
actors finish; each row carries the part it belongs to and its position. :class:`PartAssembler`
writes a part as soon as every one of its rows is in. Rows are keyed by position, so a batch
that reaches the driver twice (retried after its actor was lost) adds nothing the second time,
and a part is never written short or with a row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from relabeler.jobs._ray import PoolPlan

log = logging.getLogger(__name__)


class PartAssembler:
    """Collects rows by part and writes each part once all its rows are in.

    Parameters
    ----------
    stage : the stage's name, for messages.
    expected : rows of each pending part, by key (a tuple of ints whose last item is the part
        number).
    part_size : rows per part: a row's place in its part is its position - part * part_size.
    write : ``write(key, pieces)`` writes a part from the pieces :meth:`add` took for it, in
        arrival order; returns the rows written.
    """

    def __init__(self, stage: str, expected: dict[tuple[int, ...], int], part_size: int,
                 write: Callable[[tuple[int, ...], list[Any]], int]):
        self.stage, self.expected, self.part_size, self.write = stage, expected, part_size, write
        self.pieces: dict[tuple[int, ...], list[Any]] = {}
        self.arrived: dict[tuple[int, ...], np.ndarray] = {}  # per row of the part
        self.done: set[Hashable] = set()

    def add(self, keys: np.ndarray, positions: np.ndarray, batch: Any,
            take: Callable[[Any, np.ndarray], Any]) -> int:
        """Take one output batch: ``keys`` (N, m) int part keys per row, ``positions`` (N,)
        int; ``take(batch, rows)`` selects rows of the batch. Returns the rows that were new."""
        keys = np.asarray(keys, dtype=np.int64).reshape(len(positions), -1)
        positions = np.asarray(positions, dtype=np.int64)
        new_rows = duplicates = 0
        for key in np.unique(keys, axis=0):
            key = tuple(int(x) for x in key)
            rows = np.flatnonzero((keys == key).all(axis=1))
            if key in self.done:
                duplicates += len(rows)
                continue
            arrived = self.arrived.setdefault(key, np.zeros(self.expected[key], dtype=bool))
            local = positions[rows] - key[-1] * self.part_size
            _, first = np.unique(local, return_index=True)
            fresh = np.zeros(len(rows), dtype=bool)
            fresh[first] = ~arrived[local[first]]
            duplicates += len(rows) - int(fresh.sum())
            if not fresh.any():
                continue
            arrived[local[fresh]] = True
            self.pieces.setdefault(key, []).append(take(batch, rows[fresh]))
            new_rows += int(fresh.sum())
            if arrived.all():
                self.write(key, self.pieces.pop(key))
                self.done.add(key)
                del self.arrived[key]
        if duplicates:
            log.warning("%s: %d rows arrived twice (a retried batch); kept once", self.stage,
                        duplicates)
        return new_rows

    def failure_message(self, err: Exception, plan: PoolPlan) -> str:
        """Why the pass stopped, what is kept, and what to do: for a StageError."""
        from relabeler.jobs._ray import actor_start_error, lost_worker

        cause = actor_start_error(err)
        if cause is not None:
            return (f"{self.stage} could not start its Ray actors: their constructor raised "
                    f"{cause} (on the worker nodes: they need the run directory, the model, "
                    f"the storage credentials and the packages the driver has). Fix that, then "
                    f"run the same command again; {len(self.done)} of {len(self.expected)} "
                    "parts were written this run and are kept")
        if lost_worker(err):
            why = (f"Ray workers were lost more often than [ray] max_restarts="
                   f"{plan.max_restarts} / max_task_retries={plan.max_task_retries} allow, or "
                   "no node had room to restart them")
        else:
            why = "the Ray Data pass stopped"
        # Ray's messages run to many lines; the first and the one saying why are enough here
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = " ".join(lines[:1] + [line for line in lines[1:] if "because" in line][:1])
        return (f"{self.stage} could not finish: {why} ({type(err).__name__}: {detail}). "
                f"{len(self.done)} of {len(self.expected)} parts were written this run and are "
                "kept; run the same command again to resume from them")
