"""Representer evidence: for each query, the training samples that push its class logit up
most (support) and down most (oppose) under a representer refit (:mod:`.representer`).

The contribution of training sample ``i`` to query ``t``'s logit of class ``c`` is
``alpha_ic (f_i . f_t)``. Both lists come from one exact product with the alpha-scaled training
features, where an inner-product index would need two searches; queries go in blocks (never a
dense N x N matrix), and training rows are read largest ``|alpha_ic| |f_i|`` first until no
unread row can enter a query's lists: most rows are explained by the refit, their alphas small.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from relabeler.selectors._checks import as_count, as_labels
from relabeler.selectors.representer import RepresenterFit
from relabeler.selectors.threads import small_work_threads

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evidence:
    """Per-query training evidence, best first; ``-1`` ids and ``nan`` scores pad short rows.

    Attributes
    ----------
    support_ids : (Q, k) int64 training rows with the largest ``alpha_ic (f_i . f_t)``.
    support_scores : (Q, k) float32, descending.
    oppose_ids : (Q, k) int64 training rows with the most negative ``alpha_ic (f_i . f_t)``.
    oppose_scores : (Q, k) float32, ascending (most negative first).
    """

    support_ids: np.ndarray
    support_scores: np.ndarray
    oppose_ids: np.ndarray
    oppose_scores: np.ndarray


def representer_evidence(fit: RepresenterFit, train_features: np.ndarray,
                         query_features: np.ndarray, query_classes: np.ndarray, *, k: int = 5,
                         exclude: np.ndarray | None = None,
                         block_size: int = 16384) -> Evidence:
    """The training samples that push each query's class logit up most and down most.

    For query ``t`` and its class ``c = query_classes[t]`` the contribution of training sample
    ``i`` is ``alpha_ic (f_i . f_t)``; the contributions sum to the refit's logit ``W_c f_t``.
    Exact inner products with ``f_i * alpha_ic``, one class at a time, queries in blocks; support
    takes the k largest of each product, oppose the k smallest of the same product. Rows are
    read in phases, largest ``|alpha_ic| |f_i|`` first, until the rest cannot enter (see
    :func:`_compute_evidence`).

    Parameters
    ----------
    fit : a :func:`.representer.fit_representer` (or :func:`.representer.fit_trustai`) result.
    train_features : (N, D) float, the features the fit was made on.
    query_features : (Q, D) float, the samples to explain (training rows or new ones).
    query_classes : (Q,) int in [0, C), the class to explain per query (e.g. the prediction or
        the given label).
    k : results per query (>= 1). With fewer than k candidates rows are padded with id ``-1``
        and score ``nan``; then the same sample can appear as support and oppose.
    exclude : (Q,) int, the training row of each query to leave out (a sample is not its own
        evidence), ``-1`` for none.
    block_size : most queries per product; fewer when block_size x N would pass
        :data:`EVIDENCE_BLOCK_ELEMENTS`.

    Returns
    -------
    Evidence with (Q, k) arrays. Support scores are the largest whatever their sign; in the
    typical case they are positive and the oppose scores negative.
    """
    if not isinstance(fit, RepresenterFit):
        raise TypeError(f"fit: expected a RepresenterFit, got {type(fit).__name__}")
    n = len(fit.alpha)
    train = fit.design("train_features", train_features, rows=n)
    queries = fit.design("query_features", query_features)
    q = len(queries)
    classes = as_labels("query_classes", query_classes, n=q, num_classes=fit.num_classes)
    as_count("k", k)
    as_count("block_size", block_size)
    if exclude is None:
        excluded = np.full(q, -1, dtype=np.int64)
    else:
        excluded = np.asarray(exclude)
        if excluded.dtype.kind not in "iu" or excluded.shape != (q,):
            raise ValueError(f"exclude: expected ({q},) int training rows (-1 = none), got "
                             f"shape {excluded.shape} dtype {excluded.dtype}")
        if q and (excluded.min() < -1 or excluded.max() >= n):
            raise ValueError(f"exclude: rows must lie in [-1, {n}), got "
                             f"[{int(excluded.min())}, {int(excluded.max())}]")
        excluded = excluded.astype(np.int64)
    return _compute_evidence(fit.alpha, train, queries, classes, excluded, int(k),
                             int(block_size))


#: Query rows times training rows of one score block (float32): 16 MB on CPU, 1 GB on CUDA.
EVIDENCE_BLOCK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 28}
#: Shares of the training rows (largest possible contribution first) read before the queries
#: still open are checked for being settled.
EVIDENCE_PHASES = (0.125, 0.25, 0.5, 1.0)


def _compute_evidence(alpha: np.ndarray, train: np.ndarray, queries: np.ndarray,
                      classes: np.ndarray, excluded: np.ndarray, k: int, block_size: int
                      ) -> Evidence:
    """Per class, per block of queries, the top and bottom ``k`` of the products with the
    alpha-scaled training features (CUDA when torch sees it), read in phases.

    ``|alpha_ic (f_i . f_t)| <= |alpha_ic| |f_i| |f_t|``: the training rows are read in
    descending order of ``u_i = |alpha_ic| |f_i|`` (a share of them per phase,
    :data:`EVIDENCE_PHASES`). After a phase, a query whose k-th support is at least
    ``u |f_t|`` of the next unread row, and whose k-th oppose at most minus that, is settled:
    no unread row can enter either list. Rows the refit explains well have small alphas, so
    most queries settle early. The bound carries the rounding of the float32 products, so the
    lists are the ones a product with every row would give.
    """
    q, n = len(queries), len(train)
    out = {name: np.full((q, k), -1, np.int64) for name in ("support_ids", "oppose_ids")}
    out.update({name: np.full((q, k), np.nan, np.float32)
                for name in ("support_scores", "oppose_scores")})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    step = max(1, min(block_size, EVIDENCE_BLOCK_ELEMENTS[device.type] // max(n, 1)))
    train32 = np.ascontiguousarray(train, dtype=np.float32)
    queries_t = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=device)
    train_norms = _norms(train32)
    # a float32 product (and the alpha scaling) errs by at most (D + 2) 2^-24 relative to
    # |alpha| |f_i| |f_t|: the bound is widened by twice that
    slack = 1.0 + (train.shape[1] + 2) * 2.0 ** -23
    query_norms = _norms(queries) * slack
    ends = sorted({max(1, math.ceil(share * n)) for share in EVIDENCE_PHASES} | {n})
    read = 0
    with small_work_threads(step * n * train.shape[1], device):
        for c in np.unique(classes):
            phases = _EvidencePhases(train32, train_norms, alpha[:, c], ends, device)
            rows = np.flatnonzero(classes == c)
            for begin in range(0, len(rows), step):
                block = rows[begin:begin + step]
                found, products = _search_phases(phases, queries_t, block, excluded[block],
                                                 query_norms[block], k)
                read += products
                for name, values in found.items():
                    out[name][block] = values
    log.debug("representer evidence: %d queries settled on %.1f%% of the query x training row "
              "products", q, 100 * read / max(q * n, 1))
    return Evidence(**out)


def _norms(x: np.ndarray) -> np.ndarray:
    """Row norms in float64, without a float64 copy of ``x``."""
    return np.sqrt(np.einsum("nd,nd->n", x, x, dtype=np.float64))


class _EvidencePhases:
    """The alpha-scaled training rows of one class, in reading order, gathered phase by phase
    on first use (every query block of the class reads the same phases): at most one scaled
    copy of the training rows, for the class at hand."""

    def __init__(self, train: np.ndarray, train_norms: np.ndarray, weights: np.ndarray,
                 ends: list[int], device: torch.device):
        reach = np.abs(weights) * train_norms   # the most a row can contribute, per |f_t|
        order = np.argsort(-reach, kind="stable")
        self._train, self._weights, self.order = train, weights, order
        self.reach_sorted = reach[order]
        self.position = np.empty(len(order), np.int64)  # each training row's place in order
        self.position[order] = np.arange(len(order))
        self.bounds = list(zip([0, *ends[:-1]], ends, strict=True))
        self._device = device
        self._gathered: dict[int, torch.Tensor] = {}

    def scaled(self, phase: int) -> torch.Tensor:
        if phase not in self._gathered:
            a, b = self.bounds[phase]
            rows = self.order[a:b]
            scaled = self._train[rows] * self._weights[rows, None].astype(np.float32)
            self._gathered[phase] = torch.as_tensor(scaled, device=self._device)
        return self._gathered[phase]


def _search_phases(phases: _EvidencePhases, queries: torch.Tensor, block: np.ndarray,
                   excluded: np.ndarray, query_norms: np.ndarray, k: int
                   ) -> tuple[dict[str, np.ndarray], int]:
    """Support and oppose lists of the queries ``block`` over the phases, each query read
    until it is settled (see :func:`_compute_evidence`), and the number of products read."""
    size = len(block)
    # running lists, higher = better: support scores as they are, oppose scores negated
    best = {kind: (torch.full((size, k), -math.inf, dtype=torch.float32),
                   torch.full((size, k), -1, dtype=torch.int64))
            for kind in ("support", "oppose")}
    own = np.where(excluded >= 0, phases.position[np.maximum(excluded, 0)], -1)
    open_rows = np.arange(size)
    read = 0
    for phase, (a, b) in enumerate(phases.bounds):
        rows_t = torch.as_tensor(open_rows)
        read += len(open_rows) * (b - a)
        products = queries[torch.as_tensor(block[open_rows], device=queries.device)] \
            @ phases.scaled(phase).T
        local = own[open_rows] - a
        mine = np.flatnonzero((local >= 0) & (local < b - a))
        at = (torch.as_tensor(mine, device=products.device),
              torch.as_tensor(local[mine], device=products.device))
        for kind, largest in (("support", True), ("oppose", False)):
            # a sample is not its own evidence
            products[at] = -math.inf if largest else math.inf
            values, ids = products.topk(min(k, b - a), dim=1, largest=largest)
            if not largest:
                values = -values
            kept_v, kept_i = best[kind]
            kept_v[rows_t], kept_i[rows_t] = _merge_topk(
                kept_v[rows_t], kept_i[rows_t], values.cpu(),
                torch.as_tensor(phases.order[a:b])[ids.cpu()])
        if b == len(phases.order):
            break
        # every unread row contributes at most this much either way
        bound = phases.reach_sorted[b] * query_norms[open_rows]
        settled = np.ones(len(open_rows), dtype=bool)
        for kept_v, _ in best.values():
            settled &= kept_v[rows_t, -1].double().numpy() >= bound
        open_rows = open_rows[~settled]
        if not len(open_rows):
            break
    found = {}
    for kind, sign in (("support", 1.0), ("oppose", -1.0)):
        values, ids = best[kind]
        missing = torch.isinf(values)
        found[f"{kind}_ids"] = ids.masked_fill(missing, -1).numpy()
        found[f"{kind}_scores"] = (values * sign).masked_fill(missing, math.nan).numpy()
    return found, read


def _merge_topk(best_v: torch.Tensor, best_i: torch.Tensor, cand_v: torch.Tensor,
                cand_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The best ``best_v.shape[1]`` of running (values, ids) and candidates, row by row."""
    top_v, top_pos = torch.cat([best_v, cand_v], dim=1).topk(best_v.shape[1], dim=1)
    return top_v, torch.cat([best_i, cand_i], dim=1).gather(1, top_pos)
