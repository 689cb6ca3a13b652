"""Neighbour signals: what the labels of a sample's nearest training samples say.

* :func:`neighbor_label_distribution`: the similarity-weighted label distribution of each
  sample's k nearest training neighbours (cosine on the classifier's features).
* :func:`neighbor_probability_mean`: the similarity-weighted mean of the neighbours' class
  probabilities (their out-of-fold ones): a smoothed posterior that does not trust the
  neighbours' given labels, which carry the training noise.
* :func:`knn_disagreement`: ``1 - share of that distribution on the given label``; strong where
  classes cluster tightly, and fine-tuned features cluster better.
* :func:`conflicting_duplicates`: near-duplicate texts (cosine >= a threshold) whose labels
  conflict — the plainest evidence a label is wrong, reported as its own reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from relabeler.selectors import duplicates
from relabeler.selectors._checks import as_labels, as_matrix, as_probs
from relabeler.selectors.confidence import self_confidence
from relabeler.selectors.duplicates import TEXT_THRESHOLD
from relabeler.selectors.knn import Neighbors, knn


def neighbor_label_distribution(neighbors: Neighbors, labels: np.ndarray, num_classes: int,
                                *, weighting: str = "similarity") -> np.ndarray:
    """Label distribution of each query's neighbours.

    Parameters
    ----------
    neighbors : the neighbours of Q queries among N labeled samples (cosine or ip scores).
    labels : (N,) int class ids of the database rows.
    num_classes : C.
    weighting : ``similarity`` (weights = similarity clipped at 0) or ``uniform``.

    Returns
    -------
    (Q, C) float32, rows summing to 1; a query with no usable neighbour gets the uniform
    distribution.
    """
    if weighting not in ("similarity", "uniform"):
        raise ValueError(f"weighting: expected 'similarity' or 'uniform', got {weighting!r}")
    if neighbors.metric == "l2":
        raise ValueError("neighbors: similarity weighting needs cosine or ip neighbours, got l2")
    labels = as_labels("labels", labels, num_classes=num_classes)
    return _compute_distribution(neighbors.indices, neighbors.scores, labels, num_classes,
                                 weighting)


def neighbor_probability_mean(neighbors: Neighbors, probs: np.ndarray) -> np.ndarray:
    """Similarity-weighted mean of each query's neighbours' class probabilities.

    Parameters
    ----------
    neighbors : the neighbours of Q queries among N samples (cosine or ip scores).
    probs : (N, C) the database rows' class probabilities (out-of-fold where there are).

    Returns
    -------
    (Q, C) float32, rows summing to 1; a query with no usable neighbour gets the mean of
    ``probs``.
    """
    if neighbors.metric == "l2":
        raise ValueError("neighbors: similarity weighting needs cosine or ip neighbours, got l2")
    probs = as_probs("probs", probs)
    if len(neighbors.indices) and neighbors.indices.max() >= len(probs):
        raise ValueError(f"probs: {len(probs)} rows, but the neighbours index row "
                         f"{int(neighbors.indices.max())}")
    valid = neighbors.indices >= 0
    weights = _weights(neighbors.indices, neighbors.scores, "similarity")
    gathered = probs[np.where(valid, neighbors.indices, 0)].astype(np.float64)
    total = weights.sum(axis=1, keepdims=True)
    mean = np.einsum("qk,qkc->qc", weights, gathered) / np.where(total > 0, total, 1.0)
    mean[total[:, 0] <= 0] = probs.mean(axis=0)
    return mean.astype(np.float32)


def _weights(indices: np.ndarray, scores: np.ndarray, weighting: str) -> np.ndarray:
    """(Q, k) each neighbour's weight: 0 for a missing one (index -1); else 1 (``uniform``)
    or its similarity clipped at 0 (``similarity``)."""
    weights = np.where(indices >= 0, 1.0, 0.0)
    if weighting == "similarity":
        weights = weights * np.clip(np.nan_to_num(scores, neginf=0.0), 0.0, None)
    return weights


def _compute_distribution(indices: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                          num_classes: int, weighting: str) -> np.ndarray:
    valid = indices >= 0
    weights = _weights(indices, scores, weighting)
    q = len(indices)
    dist = np.zeros((q, num_classes), dtype=np.float64)
    neighbor_labels = labels[np.where(valid, indices, 0)]
    np.add.at(dist, (np.repeat(np.arange(q), indices.shape[1]), neighbor_labels.ravel()),
              weights.ravel())
    total = dist.sum(axis=1, keepdims=True)
    empty = total[:, 0] <= 0
    dist[empty] = 1.0 / num_classes
    total[empty] = 1.0
    return (dist / total).astype(np.float32)


def knn_disagreement(features: np.ndarray, labels: np.ndarray, *, k: int = 10,
                     num_classes: int | None = None,
                     neighbors: Neighbors | None = None) -> np.ndarray:
    """``1 - (similarity-weighted share of the k nearest others carrying the given label)``.

    Parameters
    ----------
    features : (N, D) float32 classifier features.
    labels : (N,) int given class ids.
    k : neighbours per sample (self excluded).
    neighbors : precomputed self-excluded cosine neighbours of ``features`` (saves a search).

    Returns
    -------
    (N,) float32 in [0, 1]; higher = more suspect.
    """
    features = as_matrix("features", features)
    labels = as_labels("labels", labels, n=len(features))
    num_classes = num_classes or int(labels.max()) + 1
    if neighbors is None:
        neighbors = knn(features, k=k, metric="cosine")
    elif neighbors.indices.shape[0] != len(features):
        raise ValueError(f"neighbors: expected {len(features)} rows, got "
                         f"{neighbors.indices.shape}")
    dist = neighbor_label_distribution(neighbors, labels, num_classes)
    return self_confidence(dist, labels)


@dataclass(frozen=True)
class DuplicateConflicts:
    """Near-duplicates whose labels conflict.

    suspect : (N,) float32 in [0, 1], the share of a sample's near-duplicates that carry
        another label (0 for a sample without near-duplicates).
    n_duplicates : (N,) int32, near-duplicates found (self excluded, up to ``k``).
    majority : (N,) int64, the most common label among the sample and its near-duplicates
        (ties keep the given label).
    duplicate_ids : (N, k) int64 row numbers of the near-duplicates, -1 padded.
    """

    suspect: np.ndarray
    n_duplicates: np.ndarray
    majority: np.ndarray
    duplicate_ids: np.ndarray


def texts_alike(texts: Sequence[str], indices: np.ndarray, pairs: np.ndarray,
                threshold: float, checks: duplicates.TextChecks | None = None) -> np.ndarray:
    """(N, k) bool: for each pair marked in ``pairs`` (row i and ``indices[i, j]``), whether
    the two texts are at least ``threshold`` alike (:func:`duplicates.confirm_pairs`; (i, j)
    and (j, i) are one comparison). ``checks``: answers kept from earlier checks of the run."""
    rows, cols = np.nonzero(pairs)
    other = indices[rows, cols].astype(np.int64)
    n = len(texts)
    pair_id, inverse = np.unique(np.minimum(rows, other) * n + np.maximum(rows, other),
                                 return_inverse=True)
    alike = np.zeros(pairs.shape, dtype=bool)
    checks = checks or duplicates.TextChecks()
    alike[rows, cols] = checks.confirm(texts, pair_id // n, pair_id % n, threshold)[inverse]
    return alike


def conflicting_duplicates(features: np.ndarray, labels: np.ndarray, *,
                           threshold: float = 0.98, k: int = 10,
                           neighbors: Neighbors | None = None,
                           texts: Sequence[str] | None = None,
                           text_threshold: float = TEXT_THRESHOLD,
                           checks: duplicates.TextChecks | None = None) -> DuplicateConflicts:
    """Near-duplicates (cosine >= ``threshold``, and with ``texts`` their texts at least
    ``text_threshold`` alike, the check of :mod:`relabeler.selectors.duplicates`: fine-tuned
    features pack a class so tightly that two different texts pass any cosine) and how many of
    them disagree with each label.

    Parameters
    ----------
    features : (N, D) float32.
    labels : (N,) int given class ids.
    threshold : cosine similarity from which two samples count as the same text.
    k : at most this many near-duplicates are looked at per sample.
    neighbors : precomputed self-excluded cosine neighbours (at least ``k`` columns).
    checks : answers of the text check kept from earlier checks of the same run (read and
        added to: :func:`relabeler.selectors.duplicates.find_duplicates` checks these pairs
        again); the result is the same with or without.

    Returns
    -------
    DuplicateConflicts
    """
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: expected a cosine similarity in [-1, 1], got {threshold}")
    features = as_matrix("features", features)
    labels = as_labels("labels", labels, n=len(features))
    if neighbors is None:
        neighbors = knn(features, k=k, metric="cosine")
    indices = neighbors.indices[:, :k]
    is_dup = (indices >= 0) & (neighbors.scores[:, :k] >= threshold)
    if texts is not None:
        is_dup &= texts_alike(texts, indices, is_dup, text_threshold, checks)
    dup_ids = np.where(is_dup, indices, -1)
    n_dup = is_dup.sum(axis=1).astype(np.int32)
    dup_labels = labels[np.where(is_dup, indices, 0)]
    disagree = (is_dup & (dup_labels != labels[:, None])).sum(axis=1)
    suspect = np.where(n_dup > 0, disagree / np.maximum(n_dup, 1), 0.0).astype(np.float32)
    num_classes = int(labels.max()) + 1
    votes = np.zeros((len(labels), num_classes), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(labels)), indices.shape[1]), dup_labels.ravel()),
              is_dup.ravel().astype(np.int64))
    votes[np.arange(len(labels)), labels] += 1
    best = votes.max(axis=1)
    majority = np.where(votes[np.arange(len(labels)), labels] == best, labels,
                        votes.argmax(axis=1))
    return DuplicateConflicts(suspect=suspect, n_duplicates=n_dup,
                              majority=majority.astype(np.int64), duplicate_ids=dup_ids)
