"""Coverage: which eval/pool samples the training data barely covers, and which pool samples
would cover them (TrustAI's "sparse data", label-aware).

A sample is well covered when close training samples exist AND they carry the class the model
predicts for it. TrustAI scores support by similarity alone; a sample surrounded by training
samples of another class is just as poorly covered (the model predicts against its neighbours),
so :func:`coverage_scores` multiplies the density by the neighbours' label agreement.

:func:`acquire` then picks pool samples close to the under-covered ones, within a budget, with a
diversity rule: no two picks are near-duplicates, and no single under-covered sample attracts
more than its share of the picks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from relabeler.selectors._checks import as_labels, as_matrix
from relabeler.selectors.knn import Neighbors, knn, unit_rows
from relabeler.selectors.neighbors import neighbor_label_distribution


@dataclass(frozen=True)
class Coverage:
    """coverage_score : (Q,) float32 in [0, 1]; higher = better covered.
    density : (Q,) float32, mean cosine similarity (clipped at 0) of the k nearest training
        samples.
    label_agreement : (Q,) float32, similarity-weighted share of those neighbours whose label is
        the query's predicted class.
    nearest_ids : (Q, k) int64 training row numbers, -1 padded.
    """

    coverage_score: np.ndarray
    density: np.ndarray
    label_agreement: np.ndarray
    nearest_ids: np.ndarray


def coverage_scores(train_features: np.ndarray, train_labels: np.ndarray,
                    query_features: np.ndarray, query_pred: np.ndarray, *, k: int = 10,
                    num_classes: int | None = None) -> Coverage:
    """Label-aware coverage of each query by the training data.

    Parameters
    ----------
    train_features : (N, D) float32.
    train_labels : (N,) int class ids.
    query_features : (Q, D) float32 (eval or pool samples).
    query_pred : (Q,) int, the model's predicted class of each query.
    k : training neighbours looked at.

    Returns
    -------
    Coverage, ``coverage_score = density * label_agreement``.
    """
    train_features = as_matrix("train_features", train_features)
    train_labels = as_labels("train_labels", train_labels, n=len(train_features))
    query_features = as_matrix("query_features", query_features,
                               cols=train_features.shape[1])
    num_classes = num_classes or int(train_labels.max()) + 1
    query_pred = as_labels("query_pred", query_pred, n=len(query_features),
                           num_classes=num_classes)
    if len(query_features) == 0:
        empty = np.zeros(0, dtype=np.float32)
        return Coverage(empty, empty, empty, np.zeros((0, k), dtype=np.int64))
    nb = knn(train_features, query_features, k=k, metric="cosine")
    valid = nb.indices >= 0
    sims = np.where(valid, np.clip(nb.scores, 0.0, None), 0.0)
    density = (sims.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)).astype(np.float32)
    dist = neighbor_label_distribution(nb, train_labels, num_classes)
    agreement = dist[np.arange(len(query_pred)), query_pred].astype(np.float32)
    return Coverage(coverage_score=(density * agreement).astype(np.float32), density=density,
                    label_agreement=agreement, nearest_ids=nb.indices)


def undercovered(coverage_score: np.ndarray, *, quantile: float = 0.1,
                 threshold: float | None = None) -> np.ndarray:
    """Mask of under-covered samples: below ``threshold`` when given, else the lowest
    ``quantile`` share (at least one sample when any exist).

    Returns
    -------
    (Q,) bool.
    """
    score = np.asarray(coverage_score, dtype=np.float64)
    if score.ndim != 1:
        raise ValueError(f"coverage_score: expected shape (Q,), got {score.shape}")
    if threshold is not None:
        return score < threshold
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile: expected a share in (0, 1], got {quantile}")
    if len(score) == 0:
        return np.zeros(0, dtype=bool)
    n = max(1, int(round(quantile * len(score))))
    mask = np.zeros(len(score), dtype=bool)
    mask[np.argsort(score, kind="stable")[:n]] = True
    return mask


@dataclass(frozen=True)
class Acquisition:
    """pool_idx : (B,) int64 pool rows in pick order (rank 1 first).
    near_idx : (B,) int64 the under-covered sample (row of ``target_features``) each pick is
        closest to.
    similarity : (B,) float32 cosine similarity of the pick to that sample.
    support : (B,) float32 the pick's support of the targets (see :func:`acquire`).
    region : (B,) int64 the region of that closest target.
    """

    pool_idx: np.ndarray
    near_idx: np.ndarray
    similarity: np.ndarray
    support: np.ndarray
    region: np.ndarray


def acquire(pool_features: np.ndarray, target_features: np.ndarray, *, budget: int,
            k: int = 10, diversity_threshold: float = 0.95,
            target_regions: np.ndarray | None = None,
            target_weights: np.ndarray | None = None,
            target_pool_rows: np.ndarray | None = None) -> Acquisition:
    """Pool samples worth labeling: those that support the most under-covered targets, spread
    over the targets' regions, without near-duplicates.

    A pool sample's support is the weighted sum of its cosine similarities (clipped at 0) to
    its ``k`` nearest targets: a sample in the middle of a thin region that holds many
    under-covered samples covers them all once labeled (TrustAI picks by similarity to the
    targets; summing over them favours dense thin regions over isolated hard samples).

    Parameters
    ----------
    pool_features : (P, D) float32 unlabeled samples.
    target_features : (T, D) float32 the under-covered samples.
    budget : how many pool samples to pick at most.
    k : targets a pool sample's support sums over.
    diversity_threshold : a candidate whose cosine similarity to an earlier pick reaches this
        is skipped (no near-duplicates among the picks).
    target_regions : (T,) int region of each target (:func:`relabeler.selectors.thin_regions.
        group_regions`); default: each target its own region.
    target_weights : (T,) float >= 0 how much covering each target is worth; default 1.
    target_pool_rows : (T,) int, the pool row a target is (an under-covered pool sample), -1
        for one outside the pool; default none. A pool sample does not support itself: labeled,
        an isolated one covers nothing but itself, and its own similarity of 1 would rank it
        above samples in the middle of a thin region.

    Returns
    -------
    Acquisition, at most ``budget`` picks, spread over the regions in proportion to their
    targets' total weight (each region's candidates by support, best first; the next pick goes
    to the region furthest below its share); a pick's region is that of its closest target.
    """
    if budget < 0:
        raise ValueError(f"budget: expected >= 0, got {budget}")
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    pool_features = as_matrix("pool_features", pool_features)
    target_features = as_matrix("target_features", target_features,
                                cols=pool_features.shape[1])
    t = len(target_features)
    regions = (np.arange(t, dtype=np.int64) if target_regions is None
               else np.asarray(target_regions, dtype=np.int64))
    weights = (np.ones(t, dtype=np.float64) if target_weights is None
               else np.asarray(target_weights, dtype=np.float64))
    own = (np.full(t, -1, dtype=np.int64) if target_pool_rows is None
           else np.asarray(target_pool_rows, dtype=np.int64))
    for name, value in (("target_regions", regions), ("target_weights", weights),
                        ("target_pool_rows", own)):
        if value.shape != (t,):
            raise ValueError(f"{name}: expected shape ({t},), got {value.shape}")
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise ValueError("target_weights: expected finite values >= 0")
    empty = Acquisition(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32),
                        np.zeros(0, np.float32), np.zeros(0, np.int64))
    if budget == 0 or len(pool_features) == 0 or t == 0:
        return empty
    return _compute_acquisition(pool_features, target_features, budget=budget, k=min(k, t),
                                diversity_threshold=diversity_threshold, regions=regions,
                                weights=weights, own=own)


def _compute_acquisition(pool_features, target_features, *, budget, k, diversity_threshold,
                         regions, weights, own) -> Acquisition:
    nb = knn(target_features, pool_features, k=min(k + 1, len(target_features)),
             metric="cosine")
    # each pool row's k nearest targets other than itself
    pool_rows = np.arange(len(pool_features))[:, None]
    other = (nb.indices >= 0) & (own[np.where(nb.indices >= 0, nb.indices, 0)] != pool_rows)
    keep = other & (np.cumsum(other, axis=1) <= k)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # the kept ones first, in order
    nb = Neighbors(indices=np.where(np.take_along_axis(keep, order, axis=1),
                                    np.take_along_axis(nb.indices, order, axis=1), -1),
                   scores=np.take_along_axis(nb.scores, order, axis=1), metric=nb.metric)
    valid = nb.indices >= 0
    sims = np.where(valid, np.clip(nb.scores, 0.0, None), 0.0)
    support = (sims * weights[np.where(valid, nb.indices, 0)]).sum(axis=1)
    near = nb.indices[:, 0]
    pick_region = regions[near]
    normed = unit_rows(pool_features)
    # each region's candidates, best support first; a region's share of the picks follows its
    # targets' total weight, and the next pick goes to the region furthest below its share
    region_ids = np.unique(pick_region)
    worth = {int(r): float(weights[regions == r].sum()) for r in region_ids}
    queues = {int(r): list(rows[np.argsort(-support[rows], kind="stable")])
              for r in region_ids
              if worth[int(r)] > 0
              and len(rows := np.flatnonzero((pick_region == r) & (support > 0)))}
    taken = dict.fromkeys(queues, 0)
    picked: list[int] = []
    while len(picked) < budget and queues:
        r = min(queues, key=lambda q: ((taken[q] + 1) / worth[q], -support[queues[q][0]]))
        p = int(queues[r].pop(0))
        if not queues[r]:
            del queues[r]
        if picked and float(np.max(normed[picked] @ normed[p])) >= diversity_threshold:
            continue
        picked.append(p)
        taken[r] += 1
    rows = np.asarray(picked, np.int64)
    return Acquisition(rows, near[rows].astype(np.int64), nb.scores[rows, 0].astype(np.float32),
                       support[rows].astype(np.float32), pick_region[rows].astype(np.int64))


def farthest_first(features: np.ndarray, k: int) -> np.ndarray:
    """Greedy k-centre by cosine: row 0 (the best-ranked), then each time the row least similar
    to every row kept. Returns the kept rows' indices, in rank order (all rows when there are at
    most ``k``)."""
    features = as_matrix("features", features)
    if k < 1:
        raise ValueError(f"k: expected at least 1, got {k}")
    if len(features) <= k:
        return np.arange(len(features))
    normed = unit_rows(features)
    kept = [0]
    closest = normed @ normed[0]
    for _ in range(k - 1):
        closest[kept] = np.inf
        nxt = int(np.argmin(closest))
        kept.append(nxt)
        closest = np.maximum(closest, normed @ normed[nxt])
    return np.sort(np.asarray(kept, dtype=np.int64))


def blended_features(features: np.ndarray, words: np.ndarray, weight: float) -> np.ndarray:
    """The unit rows of ``features`` and of ``words`` side by side, weighed so that the cosine
    of two rows is ``1 - weight`` times their features' cosine plus ``weight`` times their
    words' (:func:`relabeler.selectors.lexical.word_features`).

    Parameters
    ----------
    features : (N, D) float, the encoder's features.
    words : (N, W) float, the words' features of the same rows.
    weight : in [0, 1].

    Returns
    -------
    (N, D + W) float32.
    """
    features = as_matrix("features", features)
    words = as_matrix("words", words, rows=len(features))
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight: expected a share in [0, 1], got {weight!r}")
    return np.concatenate([unit_rows(features) * np.float32(np.sqrt(1.0 - weight)),
                           unit_rows(words) * np.float32(np.sqrt(weight))],
                          axis=1).astype(np.float32)
