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
from relabeler.selectors.knn import knn
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
    """

    pool_idx: np.ndarray
    near_idx: np.ndarray
    similarity: np.ndarray


def acquire(pool_features: np.ndarray, target_features: np.ndarray, *, budget: int,
            k: int = 10, diversity_threshold: float = 0.95,
            max_per_target: int | None = None) -> Acquisition:
    """Pool samples worth labeling: the closest to the under-covered targets, diverse.

    Parameters
    ----------
    pool_features : (P, D) float32 unlabeled samples.
    target_features : (T, D) float32 the under-covered samples.
    budget : how many pool samples to pick at most.
    k : candidate pool samples considered per target.
    diversity_threshold : a candidate whose cosine similarity to an earlier pick reaches this
        is skipped (no near-duplicates among the picks).
    max_per_target : picks allowed per target; default ``ceil(budget / T)`` so the picks spread
        over the under-covered regions.

    Returns
    -------
    Acquisition, at most ``budget`` picks, most similar first within the spreading rule.
    """
    if budget < 0:
        raise ValueError(f"budget: expected >= 0, got {budget}")
    pool_features = as_matrix("pool_features", pool_features)
    target_features = as_matrix("target_features", target_features,
                                cols=pool_features.shape[1])
    empty = Acquisition(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if budget == 0 or len(pool_features) == 0 or len(target_features) == 0:
        return empty
    max_per_target = max_per_target or -(-budget // len(target_features))
    nb = knn(pool_features, target_features, k=min(k, len(pool_features)), metric="cosine")
    # candidates: (target, pool row, similarity), best similarity first
    t_idx = np.repeat(np.arange(len(target_features)), nb.indices.shape[1])
    p_idx = nb.indices.ravel()
    sims = nb.scores.ravel()
    keep = p_idx >= 0
    order = np.argsort(-sims[keep], kind="stable")
    t_idx, p_idx, sims = t_idx[keep][order], p_idx[keep][order], sims[keep][order]
    normed = pool_features / np.maximum(np.linalg.norm(pool_features, axis=1, keepdims=True),
                                        1e-12)
    picked: list[int] = []
    near: list[int] = []
    picked_sims: list[float] = []
    per_target = np.zeros(len(target_features), dtype=np.int64)
    taken = set()
    for t, p, s in zip(t_idx, p_idx, sims, strict=True):
        if len(picked) >= budget:
            break
        if p in taken or per_target[t] >= max_per_target:
            continue
        if picked and float(np.max(normed[picked] @ normed[p])) >= diversity_threshold:
            continue
        picked.append(int(p))
        near.append(int(t))
        picked_sims.append(float(s))
        taken.add(p)
        per_target[t] += 1
    return Acquisition(np.asarray(picked, np.int64), np.asarray(near, np.int64),
                       np.asarray(picked_sims, np.float32))
