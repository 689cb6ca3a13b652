"""Exact k nearest neighbours of feature vectors, the start of every neighbour signal.

``knn`` takes a database (N, D) and queries (Q, D), or no queries to search the database
against itself with each row's own index excluded, and returns a :class:`Neighbors`. It picks
one of three engines, each kept for a measured reason (docs/benchmarks.md, ``## kNN``):

- faiss ``IndexFlat`` on CPU: every search but the two below.
- the bf16 self-join of :mod:`relabeler.selectors.knn_torch` on CPUs with bf16 dot products,
  for self-joins from ``BF16_MIN_SHAPE`` where a sampled check says it certifies: at 100k x 384
  it is 2x faster than faiss, which alone does not reach 10x scikit-learn.
- the blocked torch search of :mod:`relabeler.selectors.knn_torch` on CUDA (the GPU machines
  have torch but no faiss-gpu).

Large databases are sharded over Ray actors (:mod:`relabeler.jobs.knn_shards`), each calling
``knn`` on its shard; :func:`merge_topk` combines the shards exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from relabeler.selectors import knn_torch

__all__ = ["DEVICES", "METRICS", "Neighbors", "check_inputs", "knn", "merge_topk"]

log = logging.getLogger(__name__)

METRICS = ("cosine", "ip", "l2")
DEVICES = ("auto", "cpu", "cuda")
# (rows, dim) from which a CPU self-join may take the bf16 engine: below it (or narrower)
# faiss's fused selection wins
BF16_MIN_SHAPE = (4096, 128)
# queries faiss searches at once (bounds its (block, k) result buffers)
FAISS_BLOCK = 16384
# neighbours each engine finds beyond k before the list is put in order and cut: the engines
# keep any of the rows tied at the k-th place, and with these the smaller rows are kept
# wherever no more than this many rows tie past it (as merge_topk keeps them over shards)
TIE_EXTRA = 4


@dataclass(frozen=True)
class Neighbors:
    """The k nearest database rows of each query, best first.

    Attributes
    ----------
    indices : np.ndarray
        (Q, k) int64 row numbers into the database; -1 in slots beyond the neighbours that
        exist (k larger than N, or N - 1 when a row's own index is excluded).
    scores : np.ndarray
        (Q, k) float32. ``cosine`` and ``ip``: similarity, higher = closer, ``-inf`` in padded
        slots. ``l2``: squared Euclidean distance, lower = closer, ``+inf`` in padded slots.
    metric : str
        One of :data:`METRICS`.

    Notes
    -----
    Equal scores come in row order, the smaller row first, from every engine and from
    :func:`merge_topk`, so a search gives the same list however it is run or sharded. Among
    neighbours tied at the k-th place the smaller rows are kept, where at most
    :data:`TIE_EXTRA` more rows tie past it. ``l2`` distances are computed as
    ``|q|^2 + |x|^2 - 2 q.x`` in float32 (as faiss does) and clamped at 0.
    """

    indices: np.ndarray
    scores: np.ndarray
    metric: str


def knn(database: np.ndarray, queries: np.ndarray | None = None, *, k: int = 10,
        metric: str = "cosine", query_rows: np.ndarray | None = None,
        device: str = "auto", overwrite: bool = False) -> Neighbors:
    """Find the ``k`` nearest database rows of each query, exactly.

    Parameters
    ----------
    database : np.ndarray
        (N, D) float features, N >= 1, all finite; float16/float64 are converted to float32.
    queries : np.ndarray, optional
        (Q, D) float features. None searches the database against itself (Q = N), each row's
        own index excluded (by index: an exact duplicate row is still found).
    k : int
        Neighbours per query, >= 1. When fewer exist the result keeps k columns and pads with
        index -1 and the worst score.
    metric : {"cosine", "ip", "l2"}
        ``cosine``: rows are L2-normalised, then inner product (an all-zero row scores 0 with
        everything). ``ip``: raw inner product. ``l2``: squared distance.
    query_rows : np.ndarray, optional
        (Q,) int, with explicit queries: the database row each query is, excluded from its
        neighbours; values outside [0, N) exclude nothing (a shard ``[a, b)`` passes
        ``global_rows - a``).
    device : {"auto", "cpu", "cuda"}
        ``auto``: CUDA when torch sees it. ``cuda`` without a GPU is a ValueError.
    overwrite : bool
        Under ``cosine``, the database (a writable float32 C-contiguous array) may be scaled to
        unit rows where it lies instead of in a copy: for a caller that has no further use for
        it (the text sketch of :mod:`relabeler.selectors.duplicates`), one (N, D) copy less at
        the search's peak memory. The neighbours are the same.

    Returns
    -------
    Neighbors
        ``indices`` (Q, k) int64 and ``scores`` (Q, k) float32, best first; ties are broken
        by the smaller row number.

    Raises
    ------
    TypeError
        Features not floating point; ``k`` or ``query_rows`` not ints.
    ValueError
        Wrong shapes, non-finite values, k < 1, an unknown metric or device, ``query_rows``
        without queries, or ``device="cuda"`` without a GPU.
    """
    db, q = check_inputs(database, queries, k=k, metric=metric)
    self_rows = _self_rows(db.shape[0], q.shape[0], queries is not None, query_rows)
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}; got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA GPU")
    if q.shape[0] == 0:
        return Neighbors(indices=np.empty((0, k), np.int64), scores=np.empty((0, k), np.float32),
                         metric=metric)
    db = _prepare(db, metric, in_place=overwrite)
    q = db if queries is None else _prepare(q, metric)
    # the engines order tied rows as they happen to meet them: a few more are found, then
    # every row is put in one order and cut at k (_best_first)
    fetch = k + TIE_EXTRA
    engine = _engine(db, self_join=queries is None, k=fetch, metric=metric,
                     cuda=device == "cuda" or (device == "auto" and torch.cuda.is_available()))
    log.debug("knn: %s engine, database %s, queries %s, k=%d, metric=%s", engine, db.shape,
              q.shape, k, metric)
    if engine == "torch-cuda":
        indices, scores = knn_torch.exact_search(db, None if queries is None else q, k=fetch,
                                                 metric=metric, self_rows=self_rows,
                                                 device="cuda")
    elif engine == "bf16-self-join":
        indices, scores = knn_torch.bf16_self_join(db, k=fetch)
    else:
        indices, scores = _faiss_knn(db, q, k=fetch, metric=metric, self_rows=self_rows)
    indices, scores = _best_first(indices, scores, k=k, metric=metric)
    return Neighbors(indices=indices, scores=scores, metric=metric)


def merge_topk(parts: Sequence[Neighbors], offsets: Sequence[int], *, k: int) -> Neighbors:
    """Exact top-k merge of neighbours found in database shards.

    Parameters
    ----------
    parts : sequence of Neighbors
        One per shard, all for the same Q queries and the same metric; indices are row numbers
        within the shard (-1 for padding).
    offsets : sequence of int
        Row offset of each shard in the full database.
    k : int
        Neighbours to keep, >= 1.

    Returns
    -------
    Neighbors
        (Q, k), indices into the full database, best first; ties are broken by the smaller
        row number.
    """
    if len(parts) == 0:
        raise ValueError("parts must hold at least one Neighbors; got 0")
    if len(offsets) != len(parts):
        raise ValueError(f"offsets must have one entry per part: got {len(offsets)} offsets "
                         f"for {len(parts)} parts")
    _check_k(k)
    metric = parts[0].metric
    n_queries = parts[0].indices.shape[0]
    for i, part in enumerate(parts):
        if part.metric != metric:
            raise ValueError(f"parts[{i}].metric is {part.metric!r} but parts[0].metric is "
                             f"{metric!r}; all parts must share a metric")
        if part.indices.ndim != 2 or part.indices.shape != part.scores.shape:
            raise ValueError(f"parts[{i}] has indices {part.indices.shape} and scores "
                             f"{part.scores.shape}; expected two (Q, k) arrays")
        if part.indices.shape[0] != n_queries:
            raise ValueError(f"parts[{i}] has {part.indices.shape[0]} query rows but parts[0] "
                             f"has {n_queries}; expected the same queries in every part")
    indices = np.concatenate([np.where(p.indices >= 0, p.indices + int(off), -1)
                              for p, off in zip(parts, offsets, strict=True)], axis=1)
    scores = np.concatenate([p.scores for p in parts], axis=1)
    indices, scores = _best_first(indices, scores, k=k, metric=metric)
    return Neighbors(indices=indices, scores=scores, metric=metric)


def _best_first(indices: np.ndarray, scores: np.ndarray, *, k: int,
                metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Each row's neighbours best first, equal scores by the smaller row number, padding (-1)
    last; the first k kept (padded when fewer): the one order of :func:`knn` and
    :func:`merge_topk`."""
    worst = _worst(metric)
    scores = np.where(indices >= 0, scores, worst).astype(np.float32)
    primary = scores if metric == "l2" else -scores
    secondary = np.where(indices >= 0, indices, np.iinfo(np.int64).max)
    order = np.lexsort((secondary, primary), axis=1)[:, :k]
    indices = np.take_along_axis(indices, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    return _pad(indices, scores, k, worst)


def check_inputs(database: object, queries: object | None = None, *, k: int,
                 metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """The checks :func:`knn` makes, for a caller that splits the search (a sharded job):
    ``(database, queries)`` as C-contiguous float32 arrays, queries = database when None.

    Raises TypeError or ValueError naming the argument, the shape seen and the one expected.
    """
    db = _as_features(database, "database", min_rows=1)
    q = db if queries is None else _as_features(queries, "queries", min_rows=0)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries has shape {q.shape} but database has shape {db.shape}; "
                         f"expected queries of shape (Q, {db.shape[1]})")
    _check_k(k)
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    return db, q


# ---------------------------------------------------------------------------------------------
# validation and dispatch


def _as_features(x: object, name: str, *, min_rows: int) -> np.ndarray:
    """A C-contiguous float32 copy (or view) of a validated (rows, D) float array."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must hold floats (float16, float32 or float64); got dtype "
                        f"{x.dtype} with shape {x.shape}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, D); got shape {x.shape}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(f"{name} must have at least {max(min_rows, 0)} row(s) and 1 column; "
                         f"got shape {x.shape}")
    note = "" if x.dtype == np.float32 else f" (converted from {x.dtype})"
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(out)
    if not finite.all():
        bad = np.flatnonzero(~finite.all(axis=1))
        raise ValueError(f"{name} has NaN or inf{note} in {len(bad)} row(s) of shape "
                         f"{x.shape}, first at row {int(bad[0])}; expected finite features")
    return out


def _check_k(k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")


def _self_rows(n_db: int, n_queries: int, explicit: bool,
               query_rows: np.ndarray | None) -> np.ndarray | None:
    """(Q,) int64 database row to exclude per query (out of range: none), or None."""
    if query_rows is None:
        return None if explicit else np.arange(n_db, dtype=np.int64)
    if not explicit:
        raise ValueError("query_rows applies to explicit queries; with queries=None each row's "
                         "own index is excluded already")
    rows = np.asarray(query_rows)
    if rows.dtype.kind not in "iu":
        raise TypeError(f"query_rows must hold ints; got dtype {rows.dtype}")
    if rows.shape != (n_queries,):
        raise ValueError(f"query_rows must have shape ({n_queries},), one per query; got "
                         f"shape {rows.shape}")
    return rows.astype(np.int64)


def unit_rows(x: np.ndarray, *, in_place: bool = False) -> np.ndarray:
    """Rows scaled to unit L2 norm, as the cosine metric sees them: inner products of the
    result are cosine similarities. An all-zero row stays zero (similar to nothing).
    ``in_place``: ``x`` itself is scaled and returned (the same values as the copy), where it
    is a writable float32 array; else a copy is."""
    # each row over its largest entry first: a float32 sum of squares overflows from about
    # 1e19 and underflows below about 1e-23, and a float64 copy of N x D costs twice the memory
    # (no N x D temporaries beside the one copy: the stage's kNN peak memory is x and it)
    largest = (np.maximum(x.max(axis=1), -x.min(axis=1))[:, None] if x.size
               else np.ones((len(x), 1)))
    scale = np.where(largest > 0, largest, 1)
    if in_place and x.dtype == np.float32 and x.flags.writeable:
        unit = x
        unit /= scale
    else:
        unit = x / scale
    norms = np.sqrt(np.einsum("ij,ij->i", unit, unit))[:, None]
    unit /= np.where(norms > 0, norms, 1).astype(unit.dtype)
    return unit


def _prepare(x: np.ndarray, metric: str, *, in_place: bool = False) -> np.ndarray:
    return unit_rows(x, in_place=in_place) if metric == "cosine" else x


def _engine(db: np.ndarray, *, self_join: bool, k: int, metric: str, cuda: bool) -> str:
    """torch-cuda, bf16-self-join or faiss-cpu."""
    if cuda:
        return "torch-cuda"
    min_rows, min_dim = BF16_MIN_SHAPE
    n, dim = db.shape
    if (self_join and metric != "l2" and n >= min_rows and dim >= min_dim
            and n - 1 > k + knn_torch.CANDIDATE_EXTRA and knn_torch.cpu_has_bf16_dot()
            and knn_torch.bf16_pays(db, k=k)):
        return "bf16-self-join"
    return "faiss-cpu"


def _worst(metric: str) -> np.float32:
    return np.float32(np.inf if metric == "l2" else -np.inf)


def _pad(indices: np.ndarray, scores: np.ndarray, k: int,
         worst: np.float32) -> tuple[np.ndarray, np.ndarray]:
    missing = k - indices.shape[1]
    if missing <= 0:
        return indices, scores
    rows = indices.shape[0]
    return (np.concatenate([indices, np.full((rows, missing), -1, np.int64)], axis=1),
            np.concatenate([scores, np.full((rows, missing), worst, np.float32)], axis=1))


def _faiss_knn(db: np.ndarray, queries: np.ndarray, *, k: int, metric: str,
               self_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact search with a faiss flat index in query blocks: (Q, k) indices and scores."""
    index = faiss.IndexFlat(db.shape[1], faiss.METRIC_L2 if metric == "l2"
                            else faiss.METRIC_INNER_PRODUCT)
    index.add(db)
    # one extra neighbour to drop the query's own row; never more than the rows there are
    k_search = min(k + (self_rows is not None), db.shape[0])
    indices = np.empty((queries.shape[0], k_search), np.int64)
    scores = np.empty((queries.shape[0], k_search), np.float32)
    for start in range(0, queries.shape[0], FAISS_BLOCK):
        stop = min(start + FAISS_BLOCK, queries.shape[0])
        scores[start:stop], indices[start:stop] = index.search(queries[start:stop], k_search)
    worst = _worst(metric)
    scores[indices < 0] = worst
    indices[indices < 0] = -1
    if self_rows is not None:
        # move each query's own row (when returned) to the end as padding, then keep k
        in_range = (self_rows >= 0) & (self_rows < db.shape[0])
        own = (indices == self_rows[:, None]) & in_range[:, None]
        order = np.argsort(own, axis=1, kind="stable")
        indices = np.take_along_axis(indices, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
        dropped = own.any(axis=1)
        indices[dropped, -1] = -1
        scores[dropped, -1] = worst
        indices, scores = indices[:, :k], scores[:, :k]
    return _pad(indices, scores, k, worst)
