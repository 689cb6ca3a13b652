"""k nearest neighbours of feature vectors: exact or IVF, on CPU or GPU, in bounded blocks.

Every neighbour signal (kNN label disagreement, coverage, acquisition) starts here. ``knn``
takes a database (N, D) and queries (Q, D), or no queries to search the database against
itself with each row's own index excluded, and returns a :class:`Neighbors`.

Engines, chosen by ``device`` and ``backend`` (see :func:`knn`):

- ``faiss-gpu``: a faiss GPU index (flat or IVF), sharded across all GPUs faiss sees.
- ``torch-cuda``: blocked ``queries @ database.T`` and ``torch.topk`` on the current CUDA
  device, for when only faiss-cpu is installed. The database is split in chunks so one score
  block stays bounded (and streamed from host memory when it does not fit on the GPU); to use
  several GPUs, search one shard per GPU (actor) and combine with :func:`merge_topk`.
- ``faiss-cpu``: faiss's flat or IVF index on CPU.
- ``torch-cpu``: the same blocked matmul on CPU, used for large exact self-joins
  (``queries=None``): the score matrix is symmetric, so each pair of database blocks is
  multiplied once and serves both (half the multiply-adds of a faiss flat search, whose matmul
  speed it otherwise matches). On CPUs with bf16 dot-product instructions (AVX512-BF16, AMX)
  the scan of a large self-join runs in bf16, twice the fp32 rate, keeping
  ``k + CANDIDATE_EXTRA`` candidates per row; the candidates are re-scored in fp32 and each
  row's result is certified exact by a rounding-error bound (:func:`_certified_self_join`),
  the rows it cannot certify searched again in fp32. The result is the exact one either way.

Large databases are sharded with :func:`knn_sharded` (or by a Ray job that calls ``knn`` on
each shard and merges with :func:`merge_topk`); the merge is exact.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

METRICS = ("cosine", "ip", "l2")
INDEXES = ("auto", "flat", "ivf")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("auto", "faiss", "torch")

# the largest k (and nprobe) faiss's GPU k-selection supports
FAISS_GPU_MAX_K = 2048
# queries checked against exact search whenever an IVF index answers
RECALL_SAMPLE = 256
# elements of one torch score block: on CPU 2^22 (16 MiB, 2048 x 2048) stays in L3 for the
# selection passes after the matmul; 2^28 (1 GiB) keeps a GPU busy
TORCH_BLOCK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 28}
# share of a CPU score block's entries beyond which the selection takes a full top-k instead
# of gathering the entries that beat their row's running k-th best
DENSE_SHARE = 1 / 32
# (rows, dim) from which an exact CPU self-join runs on torch: the halved matmul must outweigh
# a selection that costs more per score than faiss's fused one (small or narrow: faiss). Best of
# 5 on 2 Zen 4 cores, 384 dims, k = 10 (torch with bf16 where certified / fp32 / faiss):
# 3000 rows 0.044 / 0.041 / 0.044 s, 4096 rows 0.066 / 0.070 / 0.075 s, 6144 rows
# 0.143 / 0.147 / 0.170 s, 8192 rows 0.23 / 0.26 / 0.32 s (synthetic; pretrained and tightly
# clustered fine-tuned sms-spam features alike within 0.01 s)
TORCH_SELF_JOIN_MIN = (4096, 128)
# candidates kept per row beyond k by the bf16 scan of a certified self-join
CANDIDATE_EXTRA = 12
# rows from which precision="auto" runs a self-join's scan in bf16 (on CPUs with bf16 dot
# products): every size the torch self-join takes. With the candidates re-scored by a sampled
# product, bf16 is the faster from 4096 rows up where it certifies (above; 20k: 1.26 s against
# 1.77 s in fp32)
BF16_SELF_JOIN_MIN = TORCH_SELF_JOIN_MIN[0]
# precision="auto" first certifies BF16_CHECK_ROWS random rows (as the bf16 scan would) and
# keeps fp32 when more than BF16_MAX_UNCERTIFIED of them would be searched again. At 10k x 384
# the scan costs 0.7 of an fp32 self-join and each row searched again 1.35x its share of one,
# so bf16 pays below ~22% uncertified. Features that collapse into tight clusters (fine-tuned
# sms-spam: 56 of 3346 rows certified) took twice the fp32 time without the check; random
# and pretrained ones certify 96-99% of rows.
BF16_MAX_UNCERTIFIED = 0.15
BF16_CHECK_ROWS = 128
PRECISIONS = ("auto", "fp32", "bf16")


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
    exact : bool
        False when an IVF index answered (approximate), True for exact search.

    Notes
    -----
    Equal scores come in no particular order, and engines may pick different rows among
    neighbours tied at the k-th place. ``l2`` distances are computed as
    ``|q|^2 + |x|^2 - 2 q.x`` in float32 (as faiss does) and clamped at 0.
    """

    indices: np.ndarray
    scores: np.ndarray
    metric: str
    exact: bool


def knn(database: np.ndarray, queries: np.ndarray | None = None, *, k: int = 10,
        metric: str = "cosine", exclude_self: bool | None = None,
        query_rows: np.ndarray | None = None, index: str = "auto",
        ivf_threshold: int = 200_000, nlist: int | None = None, nprobe: int = 32,
        block_size: int = 16384, device: str = "auto", backend: str = "auto", seed: int = 0,
        precision: str = "auto", progress: bool = False) -> Neighbors:
    """Find the ``k`` nearest database rows of each query.

    Parameters
    ----------
    database : np.ndarray
        (N, D) float features (or an array-like of them), N >= 1, all finite. float16 and
        float64 are converted to float32 (values beyond float32's range then count as
        non-finite); integer, bool or object arrays are a TypeError.
    queries : np.ndarray, optional
        (Q, D) float features. None searches the database against itself (Q = N).
    k : int
        Neighbours per query, >= 1. When fewer exist (k >= N, or k >= N - 1 with self
        excluded) the result keeps k columns and pads with index -1 and the worst score.
    metric : {"cosine", "ip", "l2"}
        ``cosine``: rows are L2-normalised, then inner product; an all-zero row stays zero and
        its similarity to everything is 0. ``ip``: raw inner product. ``l2``: squared distance.
    exclude_self : bool, optional
        Default: True when ``queries`` is None, else False. True drops each query's own row by
        index (not by distance, so an exact duplicate row is still found). With explicit
        queries it needs ``query_rows``.
    query_rows : np.ndarray, optional
        (Q,) int, with explicit queries: the database row each query is, excluded from its
        neighbours. Values outside [0, N) exclude nothing, so a caller searching shard
        ``[a, b)`` passes ``global_rows - a``.
    index : {"auto", "flat", "ivf"}
        ``flat``: exact. ``ivf``: faiss IndexIVFFlat, approximate; its recall against exact
        search on a sample of the queries is logged at INFO. ``auto``: flat while
        N < ``ivf_threshold``, else IVF (always exact on the torch CUDA engine).
    ivf_threshold : int
        Database size from which ``index="auto"`` uses IVF.
    nlist : int, optional
        IVF lists. Default about 4 sqrt(N), at most N // 39 (faiss wants 39 training rows per
        list), at least 1. Trained on a seeded sample of at most 64 * nlist rows.
    nprobe : int
        IVF lists visited per query (capped at nlist).
    block_size : int
        Queries searched at once, at most. Torch engines also cap a score block at
        ``TORCH_BLOCK_ELEMENTS`` elements by splitting the database into chunks.
    device : {"auto", "cpu", "cuda"}
        ``auto``: a GPU engine when faiss or torch sees CUDA, else CPU. ``cuda`` raises
        ValueError when neither does.
    backend : {"auto", "faiss", "torch"}
        ``auto``: faiss GPU index when faiss sees GPUs (and k <= ``FAISS_GPU_MAX_K``), else
        torch on CUDA; on CPU, torch for an exact self-join (``queries=None``) of at least
        ``TORCH_SELF_JOIN_MIN`` (rows, dim), faiss otherwise. ``torch`` is exact only.
    seed : int
        Seeds the IVF training sample, k-means and the recall sample.
    precision : {"auto", "fp32", "bf16"}
        Arithmetic of the torch CPU self-join's scan (other engines compute in fp32). ``bf16``:
        a bf16 scan keeps ``k + CANDIDATE_EXTRA`` candidates per row, re-scored in fp32 and
        certified exact by a rounding-error bound; uncertified rows are searched again in
        fp32, so the neighbours are the exact ones either way. ``auto``: ``bf16`` from
        ``BF16_SELF_JOIN_MIN`` rows when the CPU has bf16 dot-product instructions (only then
        is it faster), the metric is cosine or ip, and a sample of rows shows that at most
        ``BF16_MAX_UNCERTIFIED`` of them would need the fp32 search (tightly clustered
        features, e.g. fine-tuned ones, certify few); else ``fp32``.
    progress : bool
        Show a progress bar over blocks.

    Returns
    -------
    Neighbors
        ``indices`` (Q, k) int64 and ``scores`` (Q, k) float32, best first.

    Raises
    ------
    TypeError
        ``database``/``queries`` not floating point; ``k`` not an int.
    ValueError
        Wrong shapes, non-finite values, k < 1, unknown options, contradictory self-exclusion,
        or ``device="cuda"`` without a GPU.
    """
    db, db_note = _as_features(database, "database", min_rows=1)
    if queries is None:
        q = db
    else:
        q, _ = _as_features(queries, "queries", min_rows=0)
        if q.shape[1] != db.shape[1]:
            raise ValueError(f"queries has shape {q.shape} but database has shape {db.shape}; "
                             f"expected queries of shape (Q, {db.shape[1]})")
    _check_options(k=k, metric=metric, index=index, ivf_threshold=ivf_threshold, nlist=nlist,
                   nprobe=nprobe, block_size=block_size, device=device, backend=backend,
                   n_rows=db.shape[0])
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    if precision == "bf16" and metric == "l2":
        raise ValueError("precision='bf16' supports metric 'cosine' or 'ip', not 'l2'")
    self_rows = _self_rows(db.shape[0], q.shape[0], queries is not None, exclude_self,
                           query_rows)
    db_p = _prepare(db, metric)
    q_p = db_p if queries is None else _prepare(q, metric)
    log.debug("knn: database %s%s, queries %s, k=%d, metric=%s", db.shape, db_note, q.shape,
              k, metric)
    return _knn_prepared(db_p, q_p, self_join=queries is None, self_rows=self_rows, k=k,
                         metric=metric, index=index, ivf_threshold=ivf_threshold, nlist=nlist,
                         nprobe=nprobe, block_size=block_size, device=device, backend=backend,
                         seed=seed, precision=precision, progress=progress)


def knn_sharded(database: np.ndarray, queries: np.ndarray | None = None, *, n_shards: int,
                k: int = 10, metric: str = "cosine", exclude_self: bool | None = None,
                query_rows: np.ndarray | None = None, index: str = "auto",
                ivf_threshold: int = 200_000, nlist: int | None = None, nprobe: int = 32,
                block_size: int = 16384, device: str = "auto", backend: str = "auto",
                seed: int = 0) -> Neighbors:
    """:func:`knn` over ``n_shards`` contiguous database shards, merged exactly.

    This is what a Ray job does with one actor (or GPU) per shard, run in-process: each shard
    is searched with :func:`knn` and the results are combined with :func:`merge_topk`. A
    query's own row lives in one shard only; there it is excluded by index, so self-exclusion
    holds across shards. Options are those of :func:`knn`; ``index="auto"`` decides per shard.

    Parameters
    ----------
    database : np.ndarray
        (N, D) float features.
    queries : np.ndarray, optional
        (Q, D) float features; None searches the database against itself.
    n_shards : int
        >= 1. More shards than rows means one row per shard.

    Returns
    -------
    Neighbors
        Equal to ``knn(database, queries, ...)`` up to ties (and IVF's approximation).
    """
    db, _ = _as_features(database, "database", min_rows=1)
    q = db if queries is None else _as_features(queries, "queries", min_rows=0)[0]
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries has shape {q.shape} but database has shape {db.shape}; "
                         f"expected queries of shape (Q, {db.shape[1]})")
    if isinstance(n_shards, bool) or not isinstance(n_shards, int | np.integer):
        raise TypeError(f"n_shards must be an int; got {type(n_shards).__name__}")
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1; got {n_shards}")
    n = db.shape[0]
    n_shards = min(int(n_shards), n)
    edges = [i * n // n_shards for i in range(n_shards + 1)]
    # nlist must suit the smallest shard
    _check_options(k=k, metric=metric, index=index, ivf_threshold=ivf_threshold, nlist=nlist,
                   nprobe=nprobe, block_size=block_size, device=device, backend=backend,
                   n_rows=n // n_shards)
    self_rows = _self_rows(n, q.shape[0], queries is not None, exclude_self, query_rows)
    db_p = _prepare(db, metric)
    q_p = db_p if queries is None else _prepare(q, metric)
    parts = []
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        shard_rows = None if self_rows is None else self_rows - start
        parts.append(_knn_prepared(db_p[start:stop], q_p, self_join=False,
                                   self_rows=shard_rows, k=k, metric=metric, index=index,
                                   ivf_threshold=ivf_threshold, nlist=nlist, nprobe=nprobe,
                                   block_size=block_size, device=device, backend=backend,
                                   seed=seed, progress=False))
    return merge_topk(parts, edges[:-1], k=k)


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
        row number. ``exact`` is True only when every part is exact.
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
    worst = np.float32(np.inf if metric == "l2" else -np.inf)
    indices = np.concatenate([np.where(p.indices >= 0, p.indices + int(off), -1)
                              for p, off in zip(parts, offsets, strict=True)], axis=1)
    scores = np.concatenate([np.where(p.indices >= 0, p.scores, worst) for p in parts],
                            axis=1).astype(np.float32)
    # primary key: score (best first); secondary: row number, padding (-1) after real rows
    primary = scores if metric == "l2" else -scores
    secondary = np.where(indices >= 0, indices, np.iinfo(np.int64).max)
    order = np.lexsort((secondary, primary), axis=1)[:, :k]
    indices = np.take_along_axis(indices, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    indices, scores = _pad(indices, scores, k, worst)
    return Neighbors(indices=indices, scores=scores, metric=metric,
                     exact=all(p.exact for p in parts))


def ivf_recall(database: np.ndarray, *, k: int = 10, metric: str = "cosine", sample: int = 1000,
               seed: int = 0, nlist: int | None = None, nprobe: int = 32,
               block_size: int = 16384, device: str = "auto") -> float:
    """Recall@k of an IVF index over ``database`` against exact search.

    ``sample`` database rows (seeded) are the queries, each with its own row excluded, as when
    the train set is searched against itself. Recall is the share of the exact neighbours that
    IVF returns, averaged over the sampled queries; it is also logged at INFO.

    Parameters
    ----------
    database : np.ndarray
        (N, D) float features.
    k, metric, nlist, nprobe, block_size, device, seed
        As in :func:`knn`.
    sample : int
        Queries to check, >= 1 (at most N).

    Returns
    -------
    float
        Recall in [0, 1].
    """
    db, _ = _as_features(database, "database", min_rows=1)
    _check_options(k=k, metric=metric, index="ivf", ivf_threshold=1, nlist=nlist, nprobe=nprobe,
                   block_size=block_size, device=device, backend="faiss", n_rows=db.shape[0])
    if isinstance(sample, bool) or not isinstance(sample, int | np.integer) or sample < 1:
        raise ValueError(f"sample must be an int >= 1; got {sample!r}")
    db_p = _prepare(db, metric)
    rows = np.sort(np.random.default_rng(seed).choice(db.shape[0], min(sample, db.shape[0]),
                                                      replace=False))
    engine, _ = _choose_engine(device, "auto", "ivf", db.shape[0], 1, k + 1, False,
                               db.shape[1])
    approx, _ = _faiss_knn(db_p, db_p[rows], k=k, metric=metric, self_rows=rows, use_ivf=True,
                           nlist=nlist, nprobe=nprobe, block_size=block_size,
                           gpu=engine == "faiss-gpu", seed=seed, progress=False)
    recall = _exact_recall(approx, db_p, db_p[rows], rows, k=k, metric=metric, engine=engine,
                           block_size=block_size)
    log.info("IVF recall@%d against exact search on %d sampled rows: %.4f", k, len(rows),
             recall)
    return recall


# ---------------------------------------------------------------------------------------------
# validation


def _as_features(x: object, name: str, *, min_rows: int) -> tuple[np.ndarray, str]:
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
    return out, note


def _check_k(k: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")


def _check_options(*, k, metric, index, ivf_threshold, nlist, nprobe, block_size, device,
                   backend, n_rows) -> None:
    _check_k(k)
    for name, value, allowed in (("metric", metric, METRICS), ("index", index, INDEXES),
                                 ("device", device, DEVICES), ("backend", backend, BACKENDS)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    for name, value in (("ivf_threshold", ivf_threshold), ("nprobe", nprobe),
                        ("block_size", block_size)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    if nlist is not None:
        if isinstance(nlist, bool) or not isinstance(nlist, int | np.integer) or nlist < 1:
            raise ValueError(f"nlist must be an int >= 1 or None; got {nlist!r}")
        if nlist > n_rows:
            raise ValueError(f"nlist must be <= the database rows ({n_rows}); got {nlist}")
    if backend == "torch" and index == "ivf":
        raise ValueError("backend='torch' searches exactly; index='ivf' needs backend='faiss' "
                         "or 'auto'")


def _self_rows(n_db: int, n_queries: int, explicit: bool, exclude_self: bool | None,
               query_rows: np.ndarray | None) -> np.ndarray | None:
    """(Q,) int64 database row to exclude per query (out of range: none), or None."""
    if exclude_self is not None and not isinstance(exclude_self, bool | np.bool_):
        raise TypeError(f"exclude_self must be True, False or None; got {exclude_self!r}")
    if query_rows is not None:
        if not explicit:
            raise ValueError("query_rows applies to explicit queries; with queries=None use "
                             "exclude_self")
        if exclude_self is False:
            raise ValueError("query_rows lists rows to exclude, which contradicts "
                             "exclude_self=False")
        rows = np.asarray(query_rows)
        if rows.dtype.kind not in "iu":
            raise TypeError(f"query_rows must hold ints; got dtype {rows.dtype}")
        if rows.shape != (n_queries,):
            raise ValueError(f"query_rows must have shape ({n_queries},), one per query; got "
                             f"shape {rows.shape}")
        return rows.astype(np.int64)
    if exclude_self is None:
        exclude_self = not explicit
    if not exclude_self:
        return None
    if explicit:
        raise ValueError("exclude_self=True with explicit queries needs query_rows: the "
                         f"database row of each query, shape ({n_queries},)")
    return np.arange(n_db, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# dispatch


def _prepare(x: np.ndarray, metric: str) -> np.ndarray:
    if metric != "cosine":
        return x
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # an all-zero row stays zero: its similarity to every row is 0
    return x / np.where(norms > 0, norms, np.float32(1))


def _faiss_gpus() -> int:
    count = getattr(faiss, "get_num_gpus", None)
    return int(count()) if count is not None else 0


def _choose_engine(device: str, backend: str, index: str, n_rows: int, ivf_threshold: int,
                   k_search: int, self_join: bool, dim: int) -> tuple[str, bool]:
    """(engine, use_ivf): engine is faiss-gpu, faiss-cpu, torch-cuda or torch-cpu."""
    use_ivf = index == "ivf" or (index == "auto" and n_rows >= ivf_threshold)
    faiss_gpu = _faiss_gpus() > 0
    torch_cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if faiss_gpu or torch_cuda else "cpu"
    if device == "cuda" and not (faiss_gpu or torch_cuda):
        raise ValueError("device='cuda' but neither faiss nor torch sees a CUDA GPU")
    if backend == "torch":
        if device == "cuda" and not torch_cuda:
            raise ValueError("device='cuda' with backend='torch' but torch sees no CUDA GPU")
        return ("torch-cuda" if device == "cuda" else "torch-cpu"), False
    if device == "cuda":
        if faiss_gpu and k_search <= FAISS_GPU_MAX_K:
            return "faiss-gpu", use_ivf
        if backend == "faiss":
            raise ValueError(f"device='cuda' with backend='faiss' needs faiss GPUs (faiss sees "
                             f"{_faiss_gpus()}) and k <= {FAISS_GPU_MAX_K} (got {k_search})")
        if torch_cuda and index != "ivf":
            return "torch-cuda", False
        return "faiss-cpu", use_ivf
    min_rows, min_dim = TORCH_SELF_JOIN_MIN
    if backend == "auto" and self_join and not use_ivf and n_rows >= min_rows and dim >= min_dim:
        return "torch-cpu", False
    return "faiss-cpu", use_ivf


def _knn_prepared(db: np.ndarray, queries: np.ndarray, *, self_join: bool,
                  self_rows: np.ndarray | None, k: int, metric: str, index: str,
                  ivf_threshold: int, nlist: int | None, nprobe: int, block_size: int,
                  device: str, backend: str, seed: int, progress: bool,
                  precision: str = "fp32") -> Neighbors:
    """knn on validated float32 arrays, already unit rows under cosine."""
    n_db, n_queries = db.shape[0], queries.shape[0]
    engine, use_ivf = _choose_engine(device, backend, index, n_db, ivf_threshold,
                                     k + (self_rows is not None), self_join, db.shape[1])
    log.debug("knn engine %s (ivf=%s) for %d queries x %d rows", engine, use_ivf, n_queries,
              n_db)
    if n_queries == 0:
        return Neighbors(indices=np.empty((0, k), np.int64), scores=np.empty((0, k), np.float32),
                         metric=metric, exact=not use_ivf)
    if engine.startswith("torch"):
        indices, scores = _torch_knn(db, queries, k=k, metric=metric, self_rows=self_rows,
                                     self_join=self_join, block_size=block_size,
                                     device="cuda" if engine == "torch-cuda" else "cpu",
                                     precision=precision, progress=progress)
        return Neighbors(indices=indices, scores=scores, metric=metric, exact=True)
    indices, scores = _faiss_knn(db, queries, k=k, metric=metric, self_rows=self_rows,
                                 use_ivf=use_ivf, nlist=nlist, nprobe=nprobe,
                                 block_size=block_size, gpu=engine == "faiss-gpu", seed=seed,
                                 progress=progress)
    if use_ivf:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n_queries, min(RECALL_SAMPLE, n_queries), replace=False))
        recall = _exact_recall(indices[sample], db, queries[sample],
                               None if self_rows is None else self_rows[sample], k=k,
                               metric=metric, engine=engine, block_size=block_size)
        log.info("IVF index answered %d queries over %d rows; recall@%d against exact search "
                 "on %d sampled queries: %.4f", n_queries, n_db, k, len(sample), recall)
    return Neighbors(indices=indices, scores=scores, metric=metric, exact=not use_ivf)


def _exact_recall(approx: np.ndarray, db: np.ndarray, queries: np.ndarray,
                  self_rows: np.ndarray | None, *, k: int, metric: str, engine: str,
                  block_size: int) -> float:
    """Share of the exact neighbours of ``queries`` that ``approx`` (Q, k) contains."""
    if engine != "faiss-cpu" and torch.cuda.is_available():
        exact, _ = _torch_knn(db, queries, k=k, metric=metric, self_rows=self_rows,
                              self_join=False, block_size=block_size, device="cuda",
                              progress=False)
    else:
        exact, _ = _faiss_knn(db, queries, k=k, metric=metric, self_rows=self_rows,
                              use_ivf=False, nlist=None, nprobe=1, block_size=block_size,
                              gpu=False, seed=0, progress=False)
    found = total = 0
    for approx_row, exact_row in zip(approx, exact, strict=True):
        truth = exact_row[exact_row >= 0]
        found += np.isin(truth, approx_row).sum()
        total += len(truth)
    return float(found / total) if total else 1.0


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


# ---------------------------------------------------------------------------------------------
# faiss


def _to_gpus(cpu_index):
    """Clone a faiss index to every GPU faiss sees; the database is sharded across them."""
    options = faiss.GpuMultipleClonerOptions()
    options.shard = _faiss_gpus() > 1
    return faiss.index_cpu_to_all_gpus(cpu_index, co=options)


def _default_nlist(n_rows: int) -> int:
    return max(1, min(round(4 * math.sqrt(n_rows)), n_rows // 39))


def _build_faiss_index(db: np.ndarray, *, metric: str, use_ivf: bool, nlist: int | None,
                       nprobe: int, gpu: bool, seed: int):
    dim = db.shape[1]
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if not use_ivf:
        index = faiss.IndexFlat(dim, faiss_metric)
        if gpu:
            index = _to_gpus(index)
        index.add(db)
        return index
    nlist = _default_nlist(db.shape[0]) if nlist is None else nlist
    ivf = faiss.IndexIVFFlat(faiss.IndexFlat(dim, faiss_metric), dim, nlist, faiss_metric)
    ivf.cp.seed = seed
    rng = np.random.default_rng(seed)
    n_train = min(db.shape[0], 64 * nlist)
    train = db[np.sort(rng.choice(db.shape[0], n_train, replace=False))]
    if gpu:
        # k-means on the GPUs; the CPU quantizer receives the centroids
        clustering_index = _to_gpus(faiss.IndexFlat(dim, faiss_metric))
        ivf.clustering_index = clustering_index
        ivf.train(train)
        ivf.clustering_index = None
        index = _to_gpus(ivf)
        # faiss's GPU k-selection also bounds nprobe
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe",
                                                      min(nprobe, nlist, FAISS_GPU_MAX_K))
    else:
        ivf.train(train)
        ivf.nprobe = min(nprobe, nlist)
        index = ivf
    index.add(db)
    return index


def _faiss_knn(db: np.ndarray, queries: np.ndarray, *, k: int, metric: str,
               self_rows: np.ndarray | None, use_ivf: bool, nlist: int | None, nprobe: int,
               block_size: int, gpu: bool, seed: int,
               progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """faiss search in query blocks; returns (Q, k) indices and scores (padded)."""
    index = _build_faiss_index(db, metric=metric, use_ivf=use_ivf, nlist=nlist, nprobe=nprobe,
                               gpu=gpu, seed=seed)
    # one extra neighbour to drop the query's own row; never more than the rows there are
    k_search = min(k + (self_rows is not None), db.shape[0])
    indices = np.empty((queries.shape[0], k_search), np.int64)
    scores = np.empty((queries.shape[0], k_search), np.float32)
    starts = range(0, queries.shape[0], block_size)
    for start in tqdm(starts, desc="knn (faiss)", unit="block", disable=not progress):
        stop = min(start + block_size, queries.shape[0])
        scores[start:stop], indices[start:stop] = index.search(queries[start:stop], k_search)
    worst = _worst(metric)
    scores[indices < 0] = worst
    indices[indices < 0] = -1
    if self_rows is not None:
        indices, scores = _drop_rows(indices, scores, self_rows, db.shape[0], k, worst)
    return _pad(indices, scores, k, worst)


def _drop_rows(indices: np.ndarray, scores: np.ndarray, self_rows: np.ndarray, n_db: int,
               k: int, worst: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Move each query's own row (if returned) to the end as padding, then keep k columns."""
    in_range = (self_rows >= 0) & (self_rows < n_db)
    hit = (indices == self_rows[:, None]) & in_range[:, None]
    order = np.argsort(hit, axis=1, kind="stable")
    indices = np.take_along_axis(indices, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    dropped = hit.any(axis=1)
    indices[dropped, -1] = -1
    scores[dropped, -1] = worst
    return indices[:, :k], scores[:, :k]


# ---------------------------------------------------------------------------------------------
# torch: blocked matmul + top-k


def _tensor(x: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        # read-only inputs are only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(x)


def _left(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Query-side operand; under l2 [x, |x|^2, 1] so that left . right = -|x - y|^2."""
    if metric != "l2":
        return x
    sq = (x * x).sum(dim=1, keepdim=True)
    return torch.cat([x, sq, torch.ones_like(sq)], dim=1)


def _right(x: torch.Tensor, metric: str) -> torch.Tensor:
    """Database-side operand; under l2 [2y, -1, -|y|^2]."""
    if metric != "l2":
        return x
    sq = (x * x).sum(dim=1, keepdim=True)
    return torch.cat([2 * x, -torch.ones_like(sq), -sq], dim=1)


def merge_running_topk(best_v: torch.Tensor, best_i: torch.Tensor, cand_v: torch.Tensor,
                       cand_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``best_v.shape[1]`` of a running top-k (values, ids; higher = better) and new
    candidates, row by row, best first."""
    merged_v = torch.cat([best_v, cand_v], dim=1)
    merged_i = torch.cat([best_i, cand_i], dim=1)
    top_v, top_pos = merged_v.topk(best_v.shape[1], dim=1)
    return top_v, merged_i.gather(1, top_pos)


def _candidates(block: torch.Tensor, threshold: np.ndarray, *, transposed: bool,
                hits: torch.Tensor | None = None,
                dense_share: float = DENSE_SHARE) -> tuple[np.ndarray, ...] | None:
    """Entries of a contiguous (R, C) CPU score block that beat their target's threshold.

    Targets are the block's rows, or its columns when ``transposed``. Returns (targets,
    sources, values), sorted by target (sources ascending within one), with sources the other
    coordinate; or None when a full top-k is cheaper: some target has no threshold yet, or more
    than ``dense_share`` of the entries beat theirs. One parallel comparison over the block
    and one flat ``nonzero`` find them; a transposed block needs no transposed copy, only a
    stable sort of the few entries found. ``hits``, a bool tensor of the block's shape, takes
    the comparison (a fresh mask per block costs more than the comparison itself).
    """
    if not np.isfinite(threshold).all():
        return None
    bar = torch.from_numpy(threshold)
    hit = torch.gt(block, bar if transposed else bar[:, None], out=hits).numpy()
    flat = np.flatnonzero(hit)     # numpy's is several times faster than torch's nonzero
    if len(flat) > dense_share * hit.size:
        return None
    n_cols = hit.shape[1]
    rows, cols = np.divmod(flat, n_cols)
    values = block.numpy().ravel()[flat]
    if transposed:
        # numpy's stable sort is a radix sort on 16-bit keys: several times faster here
        key = cols.astype(np.int16) if n_cols <= 1 << 15 else cols
        order = np.argsort(key, kind="stable")
        return cols[order], rows[order], values[order]
    return rows, cols, values


def _merge_sparse(best_v: np.ndarray, best_i: np.ndarray, target: np.ndarray,
                  source: np.ndarray, values: np.ndarray) -> None:
    """Merge candidates (sorted by target row) into the running top-k of their rows."""
    first = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
    counts = np.diff(np.r_[first, len(target)])
    rows = target[first]
    slot = np.arange(len(target)) - np.repeat(first, counts)
    compact = np.repeat(np.arange(len(rows)), counts)
    cand_v = np.full((len(rows), counts.max()), -np.inf, dtype=best_v.dtype)
    cand_i = np.full((len(rows), counts.max()), -1, dtype=np.int64)
    cand_v[compact, slot] = values
    cand_i[compact, slot] = source
    merged_v = np.concatenate([best_v[rows], cand_v], axis=1)
    merged_i = np.concatenate([best_i[rows], cand_i], axis=1)
    # stable: on a tie the neighbour already kept stays
    order = np.argsort(-merged_v, axis=1, kind="stable")[:, :best_v.shape[1]]
    best_v[rows] = np.take_along_axis(merged_v, order, axis=1)
    best_i[rows] = np.take_along_axis(merged_i, order, axis=1)


def _update(best_v: torch.Tensor, best_i: torch.Tensor, block: torch.Tensor, offset: int, *,
            transposed: bool, hits: torch.Tensor | None) -> None:
    """Merge a contiguous (R, C) score block (higher = better) into the running top-k.

    The running (R, k) top-k belongs to the block's rows, whose columns are database rows
    ``offset + c``; when ``transposed``, to the block's columns (C, k), with database rows
    ``offset + r``. With ``hits`` (CPU only: a bool workspace of at least the block's size) it
    first looks for the few scores that can enter.
    """
    if hits is not None:
        # once the running k-th best is high, few scores beat it: gathering those is cheaper
        # than a top-k over the block, which on CPU would cost about as much as the matmul
        best_v_np, best_i_np = best_v.numpy(), best_i.numpy()
        found = _candidates(block, best_v_np[:, -1], transposed=transposed,
                            hits=_block_view(hits, *block.shape))
        if found is not None:
            target, source, values = found
            if len(target):
                _merge_sparse(best_v_np, best_i_np, target, source + offset, values)
            return
    scores = block.T.contiguous() if transposed else block
    cand_v, cand_pos = scores.topk(min(best_v.shape[1], scores.shape[1]), dim=1)
    top_v, top_i = merge_running_topk(best_v, best_i, cand_v, cand_pos + offset)
    best_v.copy_(top_v)
    best_i.copy_(top_i)


def _torch_knn(database: np.ndarray, queries: np.ndarray, *, k: int, metric: str,
               self_rows: np.ndarray | None, self_join: bool, block_size: int, device: str,
               progress: bool, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Exact search by blocked matmul + top-k on ``device`` ("cpu" or "cuda").

    database (N, D) and queries (Q, D) are float32, unit rows under cosine. ``self_join``
    means queries is database, so each pair of blocks is multiplied once and serves both.
    Returns indices (Q, k) int64 and scores (Q, k) float32 in the metric's convention.
    """
    dev = torch.device(device)
    budget = TORCH_BLOCK_ELEMENTS[dev.type]
    # the sparse selection's comparison mask (CPU only)
    hits = torch.empty(budget, dtype=torch.bool) if dev.type == "cpu" else None
    n_db = database.shape[0]
    with torch.inference_mode():
        db = _tensor(database)
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            # keep the database on the GPU when it fits comfortably; else stream its chunks
            if database.nbytes * (3 if metric == "l2" else 1) < 0.5 * free:
                db = db.to(dev)
        right = _right(db, metric)
        buffer = torch.empty(budget, dtype=torch.float32, device=dev)
        block = min(block_size, math.isqrt(budget))
        exclude = self_rows is not None
        xb = stage = None
        if (self_join and dev.type == "cpu" and metric != "l2"
                and n_db - exclude > k + CANDIDATE_EXTRA
                and (precision == "bf16" or (precision == "auto" and n_db >= BF16_SELF_JOIN_MIN
                                             and cpu_has_bf16_dot()))):
            xb = db.to(torch.bfloat16)
            rounding = _Bf16Rounding(db, xb)
            stage = torch.empty(budget, dtype=torch.bfloat16)
            if precision == "auto" and not _bf16_pays(db, xb, rounding, k=k, exclude=exclude,
                                                      block=block, buffer=buffer, hits=hits,
                                                      stage=stage):
                xb = stage = None
        if xb is not None:
            best_v, best_i = _certified_self_join(db, xb, rounding, k=k, exclude=exclude,
                                                  block=block, buffer=buffer, hits=hits,
                                                  stage=stage, progress=progress)
        elif self_join:
            best_v, best_i = _torch_self_join(_left(db, metric), right, k=k, dev=dev,
                                              exclude=exclude, block=block,
                                              buffer=buffer, hits=hits, progress=progress)
        else:
            best_v, best_i = _torch_search(_tensor(queries), right, k=k, metric=metric,
                                           self_rows=self_rows, n_db=n_db, dev=dev,
                                           block=block, budget=budget,
                                           buffer=buffer, hits=hits, progress=progress)
        missing = torch.isneginf(best_v)
        best_i[missing] = -1
        if metric == "l2":
            best_v = (-best_v).clamp_(min=0)
        return best_i.cpu().numpy(), best_v.cpu().numpy().astype(np.float32, copy=False)


def _block_view(buffer: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return buffer[:rows * cols].view(rows, cols)


def _product(left: torch.Tensor, right: torch.Tensor, scores: torch.Tensor,
             stage: torch.Tensor | None) -> None:
    """``scores = left @ right.T``; with ``stage`` (a buffer of the operands' dtype, e.g. bf16)
    the product lands there and is widened into the float32 ``scores``."""
    product = scores if stage is None else _block_view(stage, *scores.shape)
    torch.mm(left, right.T, out=product)
    if stage is not None:
        scores.copy_(product)


def _torch_self_join(left: torch.Tensor, right: torch.Tensor, *, k: int, dev: torch.device,
                     exclude: bool, block: int, buffer: torch.Tensor, hits: torch.Tensor | None,
                     progress: bool, stage: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k of every row over all others, one product per pair of blocks. With
    ``stage`` (a buffer of the operands' dtype, e.g. bf16), each product lands there and is
    widened into the float32 ``buffer`` for the selection."""
    n = left.shape[0]
    best_v = torch.full((n, k), -math.inf, dtype=torch.float32, device=dev)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    starts = range(0, n, block)
    # diagonal blocks first: every row then holds a k-th best from its own block, so the
    # off-diagonal blocks mostly take the cheap sparse update
    pairs = [(i0, i0) for i0 in starts] + [(i0, j0) for i0 in starts for j0 in starts if j0 > i0]
    for i0, j0 in tqdm(pairs, desc="knn (torch)", unit="block", disable=not progress):
        i1, j1 = min(i0 + block, n), min(j0 + block, n)
        scores = _block_view(buffer, i1 - i0, j1 - j0)
        # scores[a, b] = score(row i0 + a, row j0 + b) = score(row j0 + b, row i0 + a)
        _product(left[i0:i1].to(dev, non_blocking=True), right[j0:j1].to(dev, non_blocking=True),
                 scores, stage)
        if i0 == j0 and exclude:
            scores.fill_diagonal_(-math.inf)
        _update(best_v[i0:i1], best_i[i0:i1], scores, j0, transposed=False, hits=hits)
        if i0 != j0:
            _update(best_v[j0:j1], best_i[j0:j1], scores, i0, transposed=True, hits=hits)
    return best_v, best_i


def _torch_search(queries: torch.Tensor, right: torch.Tensor, *, k: int, metric: str,
                  self_rows: np.ndarray | None, n_db: int, dev: torch.device, block: int,
                  budget: int, buffer: torch.Tensor, hits: torch.Tensor | None,
                  progress: bool, stage: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k of every query over the database rows ``right``, a block of queries by a
    chunk of rows at a time (``stage``: as in :func:`_torch_self_join`)."""
    n_queries = queries.shape[0]
    chunk = max(1, budget // block)
    best_v = torch.full((n_queries, k), -math.inf, dtype=torch.float32, device=dev)
    best_i = torch.full((n_queries, k), -1, dtype=torch.int64, device=dev)
    excluded = None if self_rows is None else torch.from_numpy(self_rows).to(dev)
    for q0 in tqdm(range(0, n_queries, block), desc="knn (torch)", unit="block",
                   disable=not progress):
        q1 = min(q0 + block, n_queries)
        rows = _left(queries[q0:q1].to(dev, non_blocking=True), metric)
        for c0 in range(0, n_db, chunk):
            c1 = min(c0 + chunk, n_db)
            scores = _block_view(buffer, q1 - q0, c1 - c0)
            _product(rows, right[c0:c1].to(dev, non_blocking=True), scores, stage)
            if excluded is not None:
                local = excluded[q0:q1] - c0
                hit = ((local >= 0) & (local < c1 - c0)).nonzero(as_tuple=True)[0]
                scores[hit, local[hit]] = -math.inf
            _update(best_v[q0:q1], best_i[q0:q1], scores, c0, transposed=False, hits=hits)
    return best_v, best_i


@functools.cache
def cpu_has_bf16_dot() -> bool:
    """Whether this CPU multiplies bf16 faster than fp32 (AVX512-BF16 or AMX-BF16 dot-product
    instructions, read from /proc/cpuinfo; False where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def _rescore(left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(Q, m) fp32 inner products of each row of ``left`` (Q, D) with its m ``candidates``
    (row ids into ``right``).

    A sampled product (only the Q x m entries of ``left @ right.T`` asked for): it reads the
    rows where they lie instead of gathering a (Q, m, D) copy, which on CPU is memory bound.
    """
    q, m = candidates.shape
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        pattern = torch.sparse_csr_tensor(torch.arange(0, q * m + 1, m), candidates.reshape(-1),
                                          torch.zeros(q * m, dtype=left.dtype),
                                          size=(q, len(right)), check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, left, right.T, beta=0.0).values().view(q, m)


class _Bf16Rounding:
    """Per-row rounding of a bf16 copy ``xb`` of the rows ``x`` (float32, CPU), and the
    certification bound of :func:`_certified_self_join` (step 3) built on it."""

    def __init__(self, x: torch.Tensor, xb: torch.Tensor):
        self.dim = x.shape[1]
        # x - bf16(x) is exact in fp32; the fp32 norms' own rounding (< D 2^-24 relative) is
        # covered by the factor
        factor = 1 + self.dim * 2.0 ** -23
        self.err = (x - xb.to(torch.float32)).norm(dim=1).to(torch.float64) * factor
        self.norms = x.norm(dim=1).to(torch.float64) * factor
        self.e_max, self.n_max = float(self.err.max()), float(self.norms.max())

    def certified(self, a_m: torch.Tensor, s_k: torch.Tensor,
                  rows: torch.Tensor | None = None) -> torch.Tensor:
        """Whether no row outside the candidates can beat ``s_k`` (exact k-th score), given
        ``a_m`` (the m-th bf16 score), for every row or for ``rows``."""
        err = self.err if rows is None else self.err[rows]
        norms = self.norms if rows is None else self.norms[rows]
        a_m = a_m.to(torch.float64)
        bound = (a_m + a_m.abs() * 2.0 ** -8 + err * self.n_max + norms * self.e_max
                 + err * self.e_max + self.dim * 2.0 ** -22 * norms * self.n_max)
        # the bound is evaluated in float64 from float32 values: a relative slack covers that
        bound = bound + 1e-6 * (bound.abs() + 1)
        return bound < s_k.to(torch.float64)


def _bf16_pays(db: torch.Tensor, xb: torch.Tensor, rounding: _Bf16Rounding, *, k: int,
               exclude: bool, block: int, buffer: torch.Tensor, hits: torch.Tensor,
               stage: torch.Tensor) -> bool:
    """Whether a bf16 scan (``xb``) of the self-join of ``db`` (N, D) float32 would certify
    all but :data:`BF16_MAX_UNCERTIFIED` of the rows: :func:`_certified_self_join`'s steps on
    :data:`BF16_CHECK_ROWS` random rows (an (S, N) bf16 search, about S / N of the join)."""
    n = db.shape[0]
    rows = torch.from_numpy(np.sort(np.random.default_rng(0).choice(
        n, min(BF16_CHECK_ROWS, n), replace=False)))
    cand_v, cand_i = _torch_search(xb[rows], xb, k=k + CANDIDATE_EXTRA, metric="ip",
                                   self_rows=rows.numpy() if exclude else None, n_db=n,
                                   dev=db.device, block=block, budget=buffer.numel(),
                                   buffer=buffer, hits=hits, progress=False, stage=stage)
    s_k = _rescore(db[rows], db, cand_i).topk(k, dim=1).values[:, -1]
    share = 1.0 - float(rounding.certified(cand_v[:, -1], s_k, rows).double().mean())
    log.debug("knn bf16 check: %.1f%% of %d sampled rows would be searched again in fp32",
              100 * share, len(rows))
    return share <= BF16_MAX_UNCERTIFIED


def _certified_self_join(x: torch.Tensor, xb: torch.Tensor, rounding: _Bf16Rounding, *, k: int,
                         exclude: bool, block: int, buffer: torch.Tensor, hits: torch.Tensor,
                         stage: torch.Tensor, progress: bool
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k self-join (inner product of the rows of ``x``, (N, D) float32 on CPU) with
    the scan in bf16 (``xb``, its bf16 copy; ``rounding``, its rounding; ``stage``, a bf16
    workspace as large as ``buffer``).

    1. The bf16 scan keeps the best ``m = k + CANDIDATE_EXTRA`` candidates of each row by
       bf16 score ``a``.
    2. The candidates are re-scored in fp32 and the best k kept: ``s_k`` is the row's k-th.
    3. A row is certified when no other row can beat ``s_k``: every row ``j`` not kept has
       ``a_j <= a_m`` (the row's m-th bf16 score), and its true score is at most
       ``a_j + 2^-8 |a_j| + e_i |x_j| + |x_i| e_j + e_i e_j + D 2^-22 |x_i| |x_j|``, with
       ``e = |x - bf16(x)|`` per row (rounding of the inputs), ``2^-8 |a|`` the rounding of a
       bf16 output, and the last term fp32 accumulation (bf16 products are exact in fp32).
       That bound is increasing in ``a_j``; the row is certified when it is below ``s_k`` at
       ``a_m`` (maximised over j).
    4. Uncertified rows are searched again in fp32 against all rows.
    """
    n = x.shape[0]
    m = k + CANDIDATE_EXTRA
    cand_v, cand_i = _torch_self_join(xb, xb, k=m, dev=x.device, exclude=exclude, block=block,
                                      buffer=buffer, hits=hits, progress=progress,
                                      stage=stage)
    exact = _rescore(x, x, cand_i)
    best_v, pos = exact.topk(k, dim=1)
    best_i = cand_i.gather(1, pos)
    uncertified = torch.nonzero(~rounding.certified(cand_v[:, -1], best_v[:, -1])).flatten()
    log.debug("knn bf16 self-join: %d of %d rows certified exact, %d searched again in fp32",
              n - len(uncertified), n, len(uncertified))
    if len(uncertified):
        redo_v, redo_i = _torch_search(x[uncertified], x, k=k, metric="ip",
                                       self_rows=uncertified.numpy() if exclude else None,
                                       n_db=n, dev=x.device, block=block,
                                       budget=buffer.numel(), buffer=buffer, hits=hits,
                                       progress=False)
        best_v[uncertified] = redo_v
        best_i[uncertified] = redo_i
    return best_v, best_i
