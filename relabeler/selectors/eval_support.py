"""Acquisition for the eval samples a thin spot costs: pool samples that would fix the labeled
eval samples the training data does not represent and the model gets wrong.

TrustAI's sparse-data method picks training candidates by their positive influence on the
under-covered eval samples. For relabeler's classifier (a softmax layer on fixed features) the
gradient of a sample's loss is ``(p - e_y) x^T``; labeling pool sample ``c`` with target ``t``'s
class ``y_t`` moves ``t``'s loss by the inner product of the two gradients, whose leading term is
``(1 - p_c[y_t]) (1 - p_t[y_t]) x_c . x_t``: large when both are near, the model misses ``t``
and does not yet give ``c`` that class. :func:`eval_support` sums that over each pool sample's
nearest targets (cosine similarity, clipped at 0), each target weighted by how thin its
neighbourhood is in the training data (``1 - min(representation, 1)``, see
:func:`relabeler.selectors.thin_regions.representation`) and by the model's error on it.
:func:`support_picks` ranks pool samples by that support times the square root of their own
representation deficit (:func:`pick_score`: a pick should come from where the training data is
missing) and skips near-duplicates. Measured against the under-covered-sample acquisition in
docs/benchmarks.md, "Coverage".
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from relabeler.selectors._checks import as_labels, as_matrix
from relabeler.selectors.knn import knn, unit_rows


def steering(ids, share: float) -> np.ndarray:
    """(N,) bool: the eval rows that may steer acquisition, a stable ``share`` of them chosen by
    a hash of each id (the same rows in every run, whatever the order). Eval rows that choose the
    picks would flatter them if they also measured them; the rest do the measuring."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share: expected a fraction in (0, 1], got {share}")
    cut = share * 2.0**32
    return np.fromiter((zlib.crc32(str(i).encode()) < cut for i in ids), dtype=bool,
                       count=len(ids))


@dataclass(frozen=True)
class EvalSupport:
    """support : (P,) float64 >= 0, each pool sample's support of the targets.
    target : (P,) int64 the target (row of ``target_features``) that gives each pool sample the
        largest part of its support (its most similar target when it has none), -1 without
        targets.
    similarity : (P,) float32 cosine similarity to that target.
    """

    support: np.ndarray
    target: np.ndarray
    similarity: np.ndarray


def target_weights(representation: np.ndarray, probs: np.ndarray,
                   labels: np.ndarray) -> np.ndarray:
    """How much fixing each labeled eval sample is worth: its representation deficit
    ``1 - min(representation, 1)`` times the model's error ``1 - p[label]``.

    Parameters
    ----------
    representation : (T,) float >= 0 (:func:`relabeler.selectors.thin_regions.representation`).
    probs : (T, C) float the model's probabilities.
    labels : (T,) int the given labels, in [0, C).

    Returns
    -------
    (T,) float64 in [0, 1]; 0 = represented or already right.
    """
    probs = as_matrix("probs", probs)
    labels = as_labels("labels", labels, n=len(probs), num_classes=probs.shape[1])
    representation = np.asarray(representation, dtype=np.float64)
    if representation.shape != (len(probs),):
        raise ValueError(f"representation: expected shape ({len(probs)},), got "
                         f"{representation.shape}")
    deficit = 1.0 - np.clip(representation, 0.0, 1.0)
    error = 1.0 - probs[np.arange(len(labels)), labels].astype(np.float64)
    return np.clip(deficit * error, 0.0, 1.0)


def eval_support(pool_features: np.ndarray, pool_probs: np.ndarray,
                 target_features: np.ndarray, target_labels: np.ndarray,
                 target_weights: np.ndarray, *, k: int = 20) -> EvalSupport:
    """Each pool sample's support of the weighted targets (the leading term of the gradient
    inner product, see the module docstring).

    Parameters
    ----------
    pool_features : (P, D) float32 unlabeled samples.
    pool_probs : (P, C) float the model's probabilities of them.
    target_features : (T, D) float32 labeled eval samples.
    target_labels : (T,) int their labels, in [0, C).
    target_weights : (T,) float >= 0 (:func:`target_weights`).
    k : targets a pool sample's support sums over (its nearest, by cosine similarity).

    Returns
    -------
    EvalSupport: ``sum over the k nearest targets t of max(cos(c, t), 0) * w_t *
    (1 - p_c[y_t])``.
    """
    pool_features = as_matrix("pool_features", pool_features)
    pool_probs = as_matrix("pool_probs", pool_probs, rows=len(pool_features))
    target_features = as_matrix("target_features", target_features,
                                cols=pool_features.shape[1])
    target_labels = as_labels("target_labels", target_labels, n=len(target_features),
                              num_classes=pool_probs.shape[1])
    weights = np.asarray(target_weights, dtype=np.float64)
    if weights.shape != (len(target_features),):
        raise ValueError(f"target_weights: expected shape ({len(target_features)},), got "
                         f"{weights.shape}")
    if not np.all(np.isfinite(weights)) or (weights < 0).any():
        raise ValueError("target_weights: expected finite values >= 0")
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    p = len(pool_features)
    if p == 0 or len(target_features) == 0:
        return EvalSupport(np.zeros(p), np.full(p, -1, np.int64), np.zeros(p, np.float32))
    return _compute_support(pool_features, pool_probs, target_features, target_labels, weights,
                            k=min(k, len(target_features)))


def _compute_support(pool_features, pool_probs, target_features, target_labels, weights, *,
                     k) -> EvalSupport:
    nb = knn(target_features, pool_features, k=k, metric="cosine")
    valid = nb.indices >= 0
    near = np.where(valid, nb.indices, 0)
    sims = np.where(valid, np.clip(nb.scores, 0.0, None), 0.0)
    # the candidate's gradient scale were it labeled with the target's class
    scale = 1.0 - pool_probs[np.arange(len(pool_probs))[:, None], target_labels[near]]
    parts = sims * weights[near] * np.clip(scale, 0.0, 1.0)
    top = parts.argmax(axis=1)  # the first column, the most similar, when all parts are 0
    rows = np.arange(len(parts))
    return EvalSupport(parts.sum(axis=1).astype(np.float64),
                       nb.indices[rows, top].astype(np.int64),
                       nb.scores[rows, top].astype(np.float32))


def pick_score(support: np.ndarray, representation: np.ndarray) -> np.ndarray:
    """What :func:`support_picks` ranks by: the support times the square root of the pool
    sample's own representation deficit ``1 - min(representation, 1)``. The deficit keeps the
    picks where the training data is missing; its square root leaves the support room to choose
    among them (the deficit itself and no deficit were measured too: docs/benchmarks.md,
    "Coverage").

    Parameters
    ----------
    support : (P,) float >= 0 (:func:`eval_support`).
    representation : (P,) float >= 0 of the same pool samples.

    Returns
    -------
    (P,) float64 >= 0.
    """
    support = np.asarray(support, dtype=np.float64)
    representation = np.asarray(representation, dtype=np.float64)
    if representation.shape != support.shape or support.ndim != 1:
        raise ValueError(f"representation: expected shape {support.shape} like support, got "
                         f"{representation.shape}")
    return support * np.sqrt(1.0 - np.clip(representation, 0.0, 1.0))


def support_picks(score: np.ndarray, pool_features: np.ndarray, *, budget: int,
                  diversity_threshold: float = 0.95) -> np.ndarray:
    """The pool samples to label: highest ``score`` first, only those above 0, a candidate
    skipped when its cosine similarity to an earlier pick reaches ``diversity_threshold``.

    Parameters
    ----------
    score : (P,) float (:func:`pick_score`).
    pool_features : (P, D) float32.

    Returns
    -------
    (B,) int64 pool rows in pick order, B <= budget.
    """
    pool_features = as_matrix("pool_features", pool_features)
    score = np.asarray(score, dtype=np.float64)
    if score.shape != (len(pool_features),):
        raise ValueError(f"score: expected shape ({len(pool_features)},), got {score.shape}")
    if budget < 0:
        raise ValueError(f"budget: expected >= 0, got {budget}")
    normed = unit_rows(pool_features)
    picked: list[int] = []
    for row in np.argsort(-score, kind="stable"):
        if len(picked) >= budget or not score[row] > 0:
            break
        if picked and float(np.max(normed[picked] @ normed[row])) >= diversity_threshold:
            continue
        picked.append(int(row))
    return np.asarray(picked, dtype=np.int64)
