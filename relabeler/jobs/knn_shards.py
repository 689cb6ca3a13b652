"""Exact k nearest neighbours with the database sharded over Ray actors, one per GPU.

Each :class:`ShardSearcher` actor holds one contiguous shard of the database and answers
blocks of queries with :func:`relabeler.selectors.knn.knn` (on its GPU when it has one); the
driver combines the shards' answers with :func:`relabeler.selectors.knn.merge_topk`, which is
exact: every shard returns its own top k, and the global top k is among them.

The actors are restartable (``PoolPlan.max_restarts``): a restarted actor rebuilds its shard
from the copy the driver keeps in the object store, and the query blocks it held are retried.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import replace

import numpy as np

from relabeler._version import __version__
from relabeler.jobs._ray import PoolPlan, check_driver_version
from relabeler.selectors.knn import Neighbors, check_inputs, knn, merge_topk

log = logging.getLogger(__name__)


class ShardSearcher:
    """A Ray actor's state: one database shard, searched block by block.

    Parameters
    ----------
    shard : np.ndarray
        (S, D) float rows ``offset .. offset + S - 1`` of the database.
    offset : int
        Row number of the shard's first row in the full database.
    metric, device
        As in :func:`relabeler.selectors.knn.knn`.
    num_threads : int
        Torch and faiss threads on CPU; 0 leaves them as Ray set them.
    driver_version : str, optional
        The driver's relabeler version, checked against this node's
        (:func:`~relabeler.jobs._ray.check_driver_version`); None: not checked.
    """

    def __init__(self, shard: np.ndarray, offset: int, *, metric: str = "cosine",
                 device: str = "auto", num_threads: int = 0,
                 driver_version: str | None = None):
        check_driver_version(driver_version)
        if num_threads:
            import faiss
            import torch

            torch.set_num_threads(num_threads)
            faiss.omp_set_num_threads(num_threads)
        self.shard = np.ascontiguousarray(shard, dtype=np.float32)
        self.offset = int(offset)
        self.metric, self.device = metric, device

    def search(self, queries: np.ndarray, query_rows: np.ndarray | None, *,
               k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (Q, D); query_rows (Q,) global row numbers to exclude (a self-join), or
        None. Returns indices (Q, k) within the shard (-1 = padding) and scores (Q, k)."""
        found = knn(self.shard, queries, k=k, metric=self.metric, device=self.device,
                    query_rows=None if query_rows is None else query_rows - self.offset)
        return found.indices, found.scores


def knn_on_ray(database: np.ndarray, queries: np.ndarray | None = None, *, k: int = 10,
               metric: str = "cosine", plan: PoolPlan | None = None, num_shards: int = 0,
               device: str = "auto", query_block: int = 16384,
               progress: bool = False) -> Neighbors:
    """The ``k`` nearest database rows of each query, the database sharded over Ray actors.

    Ray must be connected.

    Parameters
    ----------
    database : np.ndarray
        (N, D) float features, N >= 1.
    queries : np.ndarray, optional
        (Q, D) float features; None searches the database against itself, each row's own
        index excluded (as :func:`relabeler.selectors.knn.knn` does).
    k : int
        Neighbours per query, >= 1.
    metric, device
        As in :func:`relabeler.selectors.knn.knn`, applied per shard.
    plan : PoolPlan, optional
        Actors and their requests; default :func:`relabeler.jobs._ray.plan_pool` with
        ``num_shards`` actors (0 = one per GPU, or one on CPU). A shard per actor, at most
        one row per shard.
    query_block : int
        Queries per task; at most two blocks per actor are in flight.
    progress : bool
        Show a progress bar over query blocks.

    Returns
    -------
    Neighbors
        ``indices`` (Q, k) into the full database and ``scores`` (Q, k), best first; equal to
        ``knn(database, queries, ...)``, equal scores in the same order (the smaller row
        first; see :class:`~relabeler.selectors.knn.Neighbors` for ties at the k-th place).
    """
    import ray
    from tqdm.auto import tqdm

    from relabeler.jobs._ray import check_all_placeable, plan_pool

    db, q = check_inputs(database, queries, k=k, metric=metric)
    if query_block < 1:
        raise ValueError(f"query_block must be >= 1; got {query_block}")
    plan = plan or plan_pool(num_actors=num_shards)
    n = db.shape[0]
    n_shards = max(1, min(plan.num_actors, n))
    check_all_placeable(replace(plan, num_actors=n_shards), "score.knn_shards")
    edges = [i * n // n_shards for i in range(n_shards + 1)]
    # the driver owns the shards: a restarted actor is rebuilt from these
    shard_refs = [ray.put(db[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    searcher = ray.remote(ShardSearcher).options(**plan.actor_kwargs())
    if not plan.on_gpu and device == "auto":
        device = "cpu"  # actors planned without a GPU keep off the ones on their node
    actors = [searcher.remote(ref, a, metric=metric, device=device,
                              num_threads=plan.torch_threads if not plan.on_gpu else 0,
                              driver_version=__version__)
              for ref, a in zip(shard_refs, edges[:-1], strict=True)]
    log.info("knn: %d x %d database in %d shard actor(s) (%s GPU, %s CPU each), %d queries",
             n, db.shape[1], n_shards, plan.num_gpus, plan.num_cpus, q.shape[0])
    indices = np.full((q.shape[0], k), -1, dtype=np.int64)
    scores = np.empty((q.shape[0], k), dtype=np.float32)
    starts = list(range(0, q.shape[0], query_block))
    in_flight: deque = deque()
    bar = tqdm(total=len(starts), desc="knn (ray)", unit="block", disable=not progress)

    def collect() -> None:
        start, refs = in_flight.popleft()
        parts = [Neighbors(indices=i, scores=s, metric=metric) for i, s in ray.get(refs)]
        merged = merge_topk(parts, edges[:-1], k=k)
        indices[start:start + len(merged.indices)] = merged.indices
        scores[start:start + len(merged.scores)] = merged.scores
        bar.update(1)

    try:
        for start in starts:
            stop = min(start + query_block, q.shape[0])
            block = ray.put(q[start:stop])
            rows = None if queries is not None else np.arange(start, stop, dtype=np.int64)
            in_flight.append((start, [a.search.remote(block, rows, k=k) for a in actors]))
            if len(in_flight) >= 2:
                collect()
        while in_flight:
            collect()
    finally:
        bar.close()
        for actor in actors:
            ray.kill(actor)
    return Neighbors(indices=indices, scores=scores, metric=metric)
