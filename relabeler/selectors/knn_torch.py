"""Exact kNN by blocked matmul + top-k in torch: the CUDA engine, and the CPU bf16 self-join.

:func:`relabeler.selectors.knn.knn` calls these on validated float32 rows (unit rows under
cosine); they trust their input. Two uses, each kept for a measured reason
(docs/benchmarks.md, ``## kNN``):

- :func:`exact_search` on CUDA, because the GPU machines have torch but no faiss-gpu.
- :func:`bf16_self_join` on CPUs with bf16 dot products (AVX512-BF16, AMX): a self-join
  multiplies each pair of row blocks once (half of faiss's multiply-adds) at twice the fp32
  rate, then re-scores its candidates in fp32 and certifies each row exact by a rounding-error
  bound. It is what makes the 100k self-join 10x faster than scikit-learn; faiss alone is not.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

# elements of one score block: on CPU 2^22 (16 MiB) stays in L3 for the selection after the
# matmul; 2^28 (1 GiB) keeps a GPU busy
BLOCK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 28}
# share of a CPU block's entries beyond which a full top-k beats gathering the few entries
# that beat their row's running k-th best
DENSE_SHARE = 1 / 32
# candidates kept per row beyond k by the bf16 scan
CANDIDATE_EXTRA = 12
# bf16_pays certifies this many sampled rows and says no when more than this share would be
# searched again in fp32 (tightly clustered, e.g. fine-tuned, features certify few rows)
BF16_CHECK_ROWS = 128
BF16_MAX_UNCERTIFIED = 0.15
# pairs of blocks from which a self-join shows a progress bar (on a terminal)
PROGRESS_PAIRS = 256


def exact_search(database: np.ndarray, queries: np.ndarray | None, *, k: int, metric: str,
                 self_rows: np.ndarray | None, device: str,
                 block_elements: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest database rows of each query, in fp32 on ``device``.

    Parameters
    ----------
    database : np.ndarray
        (N, D) float32, unit rows under cosine.
    queries : np.ndarray or None
        (Q, D) float32; None is the self-join (each pair of blocks multiplied once).
    k : int
        Neighbours per query.
    metric : {"cosine", "ip", "l2"}
    self_rows : np.ndarray or None
        (Q,) int64 database row excluded per query (out of range: none).
    device : str
        A torch device: "cuda" in production, "cpu" to check the same code on CPU tensors.
    block_elements : int, optional
        Elements of one score block; default :data:`BLOCK_ELEMENTS` of the device type.

    Returns
    -------
    (np.ndarray, np.ndarray)
        Indices (Q, k) int64 (-1 where fewer exist) and scores (Q, k) float32 in the metric's
        convention (squared distance under l2).
    """
    dev = torch.device(device)
    budget = block_elements or BLOCK_ELEMENTS[dev.type]
    block = math.isqrt(budget)
    with torch.inference_mode():
        db = _tensor(database)
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            # keep the database on the GPU when it fits comfortably; else stream its chunks
            if database.nbytes * (3 if metric == "l2" else 1) < 0.5 * free:
                db = db.to(dev)
        work = _Workspace(budget, dev)
        if queries is None:
            best_v, best_i = _self_join_blocks(_left(db, metric), _right(db, metric), k=k,
                                               exclude=self_rows is not None, block=block,
                                               work=work)
        else:
            best_v, best_i = _search_blocks(_tensor(queries), _right(db, metric), k=k,
                                            metric=metric, self_rows=self_rows, block=block,
                                            work=work)
        best_i[torch.isneginf(best_v)] = -1
        if metric == "l2":
            best_v = (-best_v).clamp_(min=0)
        return best_i.cpu().numpy(), best_v.cpu().numpy()


@functools.cache
def cpu_has_bf16_dot() -> bool:
    """Whether this CPU multiplies bf16 faster than fp32 (AVX512-BF16 or AMX-BF16, read from
    /proc/cpuinfo; False where that file does not exist)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def bf16_pays(database: np.ndarray, *, k: int, exclude: bool = True) -> bool:
    """Whether :func:`bf16_self_join` of ``database`` (N, D) float32 would certify all but
    :data:`BF16_MAX_UNCERTIFIED` of its rows: its steps run on :data:`BF16_CHECK_ROWS` seeded
    random rows (about S / N of the join's work)."""
    n = database.shape[0]
    with torch.inference_mode():
        x = _tensor(database)
        xb = x.to(torch.bfloat16)
        rows = torch.from_numpy(np.sort(np.random.default_rng(0).choice(
            n, min(BF16_CHECK_ROWS, n), replace=False)))
        work = _Workspace(BLOCK_ELEMENTS["cpu"], torch.device("cpu"), bf16=True)
        cand_v, cand_i = _search_blocks(xb[rows], xb, k=k + CANDIDATE_EXTRA, metric="ip",
                                        self_rows=rows.numpy() if exclude else None,
                                        block=math.isqrt(work.budget), work=work)
        s_k = _rescore(x[rows], x, cand_i).topk(k, dim=1).values[:, -1]
        certified = _Bf16Rounding(x, xb).certified(cand_v[:, -1], s_k, rows)
    share = 1.0 - float(certified.double().mean())
    log.debug("knn bf16 check: %.1f%% of %d sampled rows would be searched again in fp32",
              100 * share, len(rows))
    return share <= BF16_MAX_UNCERTIFIED


def bf16_self_join(database: np.ndarray, *, k: int, exclude: bool = True,
                   extra: int = CANDIDATE_EXTRA,
                   block_elements: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner-product self-join of ``database`` (N, D) float32 on CPU, scanned in
    bf16. Needs N - ``exclude`` > k + ``extra``.

    1. The bf16 scan keeps the best ``m = k + extra`` candidates of each row by bf16 score.
    2. The candidates are re-scored in fp32 and the best k kept: ``s_k`` is the row's k-th.
    3. A row is certified when no other row can beat ``s_k``; see :class:`_Bf16Rounding`.
    4. Uncertified rows are searched again in fp32 against all rows.

    Returns indices (N, k) int64 and scores (N, k) float32, as :func:`exact_search`.
    """
    n = database.shape[0]
    budget = block_elements or BLOCK_ELEMENTS["cpu"]
    block = math.isqrt(budget)
    with torch.inference_mode():
        x = _tensor(database)
        xb = x.to(torch.bfloat16)
        work = _Workspace(budget, x.device, bf16=True)
        cand_v, cand_i = _self_join_blocks(xb, xb, k=k + extra, exclude=exclude, block=block,
                                           work=work)
        best_v, pos = _rescore(x, x, cand_i).topk(k, dim=1)
        best_i = cand_i.gather(1, pos)
        certified = _Bf16Rounding(x, xb).certified(cand_v[:, -1], best_v[:, -1])
        redo = torch.nonzero(~certified).flatten()
        log.debug("knn bf16 self-join: %d of %d rows certified exact, %d searched again in "
                  "fp32", n - len(redo), n, len(redo))
        if len(redo):
            work.stage = None
            best_v[redo], best_i[redo] = _search_blocks(
                x[redo], x, k=k, metric="ip", self_rows=redo.numpy() if exclude else None,
                block=block, work=work)
        return best_i.numpy(), best_v.numpy()


# ---------------------------------------------------------------------------------------------
# blocked search


class _Workspace:
    """Buffers one search reuses for every block: the float32 scores, a bf16 stage the product
    lands in before it is widened (bf16 scans), and the CPU selection's comparison mask."""

    def __init__(self, budget: int, device: torch.device, *, bf16: bool = False):
        self.budget = budget
        self.scores = torch.empty(budget, dtype=torch.float32, device=device)
        self.stage = torch.empty(budget, dtype=torch.bfloat16) if bf16 else None
        self.hits = torch.empty(budget, dtype=torch.bool) if device.type == "cpu" else None


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


def _block_view(buffer: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    return buffer[:rows * cols].view(rows, cols)


def _product(left: torch.Tensor, right: torch.Tensor, work: _Workspace) -> torch.Tensor:
    """The float32 block ``left @ right.T`` in ``work.scores`` (through ``work.stage`` when the
    operands are bf16)."""
    scores = _block_view(work.scores, left.shape[0], right.shape[0])
    if work.stage is None:
        torch.mm(left, right.T, out=scores)
    else:
        scores.copy_(torch.mm(left, right.T, out=_block_view(work.stage, *scores.shape)))
    return scores


def _self_join_blocks(left: torch.Tensor, right: torch.Tensor, *, k: int, exclude: bool,
                      block: int, work: _Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k of every row over all rows, one product per pair of blocks."""
    n, dev = left.shape[0], work.scores.device
    best_v = torch.full((n, k), -math.inf, dtype=torch.float32, device=dev)
    best_i = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    starts = range(0, n, block)
    # diagonal blocks first: every row then holds a k-th best from its own block, so the
    # off-diagonal blocks mostly take the cheap sparse update
    pairs = [(i0, i0) for i0 in starts] + [(i0, j0) for i0 in starts for j0 in starts if j0 > i0]
    for i0, j0 in tqdm(pairs, desc="knn", unit="block",
                       disable=True if len(pairs) < PROGRESS_PAIRS else None):
        i1, j1 = min(i0 + block, n), min(j0 + block, n)
        # scores[a, b] = score(row i0 + a, row j0 + b) = score(row j0 + b, row i0 + a)
        scores = _product(left[i0:i1].to(dev, non_blocking=True),
                          right[j0:j1].to(dev, non_blocking=True), work)
        if i0 == j0 and exclude:
            scores.fill_diagonal_(-math.inf)
        _update(best_v[i0:i1], best_i[i0:i1], scores, j0, transposed=False, hits=work.hits)
        if i0 != j0:
            _update(best_v[j0:j1], best_i[j0:j1], scores, i0, transposed=True, hits=work.hits)
    return best_v, best_i


def _search_blocks(queries: torch.Tensor, right: torch.Tensor, *, k: int, metric: str,
                   self_rows: np.ndarray | None, block: int,
                   work: _Workspace) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k of every query over the database rows ``right``, a block of queries by a
    chunk of rows at a time."""
    n_queries, n_db, dev = queries.shape[0], right.shape[0], work.scores.device
    chunk = max(1, work.budget // block)
    best_v = torch.full((n_queries, k), -math.inf, dtype=torch.float32, device=dev)
    best_i = torch.full((n_queries, k), -1, dtype=torch.int64, device=dev)
    excluded = None if self_rows is None else torch.from_numpy(self_rows).to(dev)
    for q0 in range(0, n_queries, block):
        q1 = min(q0 + block, n_queries)
        rows = _left(queries[q0:q1].to(dev, non_blocking=True), metric)
        for c0 in range(0, n_db, chunk):
            c1 = min(c0 + chunk, n_db)
            scores = _product(rows, right[c0:c1].to(dev, non_blocking=True), work)
            if excluded is not None:
                local = excluded[q0:q1] - c0
                hit = ((local >= 0) & (local < c1 - c0)).nonzero(as_tuple=True)[0]
                scores[hit, local[hit]] = -math.inf
            _update(best_v[q0:q1], best_i[q0:q1], scores, c0, transposed=False, hits=work.hits)
    return best_v, best_i


# ---------------------------------------------------------------------------------------------
# selection: merging a score block into the running top-k


def _candidates(block: torch.Tensor, threshold: np.ndarray, *, transposed: bool,
                hits: torch.Tensor) -> tuple[np.ndarray, ...] | None:
    """Entries of a contiguous (R, C) CPU score block that beat their target's threshold.

    Targets are the block's rows, or its columns when ``transposed``. Returns (targets,
    sources, values) sorted by target, sources the other coordinate; or None when a full top-k
    is cheaper: some target has no threshold yet, or more than :data:`DENSE_SHARE` of the
    entries beat theirs. ``hits`` (bool, the block's shape) takes the comparison.
    """
    if not np.isfinite(threshold).all():
        return None
    bar = torch.from_numpy(threshold)
    hit = torch.gt(block, bar if transposed else bar[:, None], out=hits).numpy()
    flat = np.flatnonzero(hit)     # numpy's is several times faster than torch's nonzero
    if len(flat) > DENSE_SHARE * hit.size:
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


def _merge_running_topk(best_v: torch.Tensor, best_i: torch.Tensor, cand_v: torch.Tensor,
                       cand_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``best_v.shape[1]`` of a running top-k (values, ids; higher = better) and new
    candidates, row by row, best first."""
    merged_v = torch.cat([best_v, cand_v], dim=1)
    merged_i = torch.cat([best_i, cand_i], dim=1)
    top_v, top_pos = merged_v.topk(best_v.shape[1], dim=1)
    return top_v, merged_i.gather(1, top_pos)


def _update(best_v: torch.Tensor, best_i: torch.Tensor, block: torch.Tensor, offset: int, *,
            transposed: bool, hits: torch.Tensor | None) -> None:
    """Merge a contiguous (R, C) score block (higher = better) into the running top-k of its
    rows (database rows ``offset + c``), or of its columns when ``transposed``. On CPU
    (``hits`` given) it first gathers the few scores that can enter: a top-k over the block
    would cost about as much as the matmul."""
    if hits is not None:
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
    top_v, top_i = _merge_running_topk(best_v, best_i, cand_v, cand_pos + offset)
    best_v.copy_(top_v)
    best_i.copy_(top_i)


# ---------------------------------------------------------------------------------------------
# bf16 certification


def _rescore(left: torch.Tensor, right: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(Q, m) fp32 inner products of each row of ``left`` (Q, D) with its m ``candidates``
    (row ids into ``right``): a sampled product, which reads the rows where they lie instead
    of gathering a (Q, m, D) copy (memory bound on CPU)."""
    q, m = candidates.shape
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        pattern = torch.sparse_csr_tensor(torch.arange(0, q * m + 1, m), candidates.reshape(-1),
                                          torch.zeros(q * m, dtype=left.dtype),
                                          size=(q, len(right)), check_invariants=False)
        return torch.sparse.sampled_addmm(pattern, left, right.T, beta=0.0).values().view(q, m)


class _Bf16Rounding:
    """The certificate of :func:`bf16_self_join`, from the per-row rounding of ``xb``, the
    bf16 copy of the float32 rows ``x``.

    Every row j not kept has bf16 score ``a_j <= a_m`` (the row's m-th), and its true score is
    at most ``a_j + 2^-8 |a_j| + e_i |x_j| + |x_i| e_j + e_i e_j + D 2^-22 |x_i| |x_j|``, with
    ``e = |x - bf16(x)|`` per row (input rounding), ``2^-8 |a|`` a bf16 output's rounding, and
    the last term fp32 accumulation (bf16 products are exact in fp32). The bound increases
    with ``a_j``: the row is certified when it is below ``s_k`` at ``a_m``.
    """

    def __init__(self, x: torch.Tensor, xb: torch.Tensor):
        self.dim = x.shape[1]
        # x - bf16(x) is exact in fp32; the fp32 norms' own rounding (< D 2^-24 relative) is
        # covered by the factor
        factor = 1 + self.dim * 2.0 ** -23
        # in blocks of rows: the whole (N, D) widened copy and difference were two fp32 copies
        # of the rows beside x and xb, the search's peak memory (each row's norm is the same)
        step = max(1, BLOCK_ELEMENTS["cpu"] // max(self.dim, 1))
        err = torch.empty(x.shape[0], dtype=torch.float32, device=x.device)
        for start in range(0, x.shape[0], step):
            stop = min(start + step, x.shape[0])
            err[start:stop] = (x[start:stop] - xb[start:stop].to(torch.float32)).norm(dim=1)
        self.err = err.to(torch.float64) * factor
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
