"""A class-conditional noise model fitted to the data at hand, and the views it corrects.

Label noise is rarely uniform: annotators confuse particular pairs of classes, often in one
direction (spam filed as ham, business news filed as politics). Then a plain "how much does
the model prefer another class" ranks the wrong samples badly: when three quarters of the spam
is labeled ham, every sample still labeled spam looks doubtful too, because the model learned
that spam-looking texts are mostly ham.

Confident learning (Northcutt et al., JAIR 2021) estimates from out-of-fold probabilities how
many samples given class ``i`` truly belong to class ``j`` (the confident joint). From it,
``T[j, i] = P(given i | true j)``, and by Bayes each view's class distribution becomes the
posterior of the true class given both the features and the given label::

    P(true j | x, given i)  ∝  T[j, i] · p(j | x)

A sample given a class that other classes are seldom filed under keeps its label unless the
evidence is overwhelming; one given a class that absorbs another class's samples is doubted as
soon as the evidence leans there. Under uniform noise ``T`` is symmetric and the ranking
within each class is unchanged. Nothing here looks at a noise mask: ``T`` is fitted to the
given labels and the model's out-of-fold probabilities.
"""

from __future__ import annotations

import numpy as np

from relabeler.selectors._checks import probs_and_labels

#: Pseudo-count added to every cell of the confident joint: a class pair never seen
#: confused keeps a small probability, and a class nobody was given still has a row.
PRIOR_COUNT = 1.0


def confident_joint(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None
                    ) -> np.ndarray:
    """Estimated counts of (given class i, true class j).

    Each class ``j`` gets a threshold: the mean ``p(j)`` over the samples given ``j``. A sample
    counts for the most probable class whose probability reaches its threshold (samples that
    reach none are left out), and each row is then rescaled to the number of samples given
    that class.

    Parameters
    ----------
    probs : (N, C) out-of-fold class probabilities (in-sample ones when there are no folds).
    labels : (N,) given class ids.
    num_classes : C; defaults to ``probs.shape[1]``.

    Returns
    -------
    (C, C) float64; row i sums to the number of samples given class i.
    """
    probs, labels = probs_and_labels(probs, labels)
    n_classes = probs.shape[1]
    if num_classes is not None and int(num_classes) != n_classes:
        raise ValueError(f"num_classes: {num_classes} does not match probs of shape "
                         f"{probs.shape}")
    counts = np.bincount(labels, minlength=n_classes)
    given_sum = np.zeros(n_classes)
    np.add.at(given_sum, labels, probs[np.arange(len(labels)), labels])
    # a class nobody was given has no threshold: nothing is counted for it
    thresholds = np.where(counts > 0, given_sum / np.maximum(counts, 1), np.inf)
    reached = probs >= thresholds
    confident = reached.any(axis=1)
    true_class = np.where(reached, probs, -1.0).argmax(axis=1)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[confident], true_class[confident]), 1.0)
    row_sums = joint.sum(axis=1, keepdims=True)
    return np.divide(joint * counts[:, None], row_sums, out=np.zeros_like(joint),
                     where=row_sums > 0)


def transition_matrix(joint: np.ndarray, prior_count: float = PRIOR_COUNT) -> np.ndarray:
    """``T[j, i] = P(given i | true j)`` from a confident joint (``joint[i, j]`` = given i,
    true j), with ``prior_count`` added to every cell.

    Returns
    -------
    (C, C) float64; row j sums to 1.
    """
    joint = np.asarray(joint, dtype=np.float64)
    if joint.ndim != 2 or joint.shape[0] != joint.shape[1] or joint.shape[0] < 2:
        raise ValueError(f"joint: expected a square (C, C) matrix with C >= 2, got shape "
                         f"{joint.shape}")
    if not np.isfinite(joint).all() or joint.min() < 0:
        raise ValueError("joint: counts must be finite and >= 0")
    if prior_count < 0:
        raise ValueError(f"prior_count: must be >= 0, got {prior_count}")
    by_true = joint.T + prior_count
    sums = by_true.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        row = int(np.flatnonzero(sums[:, 0] <= 0)[0])
        raise ValueError(f"joint: true class {row} has no counts; pass prior_count > 0")
    return by_true / sums


def noise_aware_posterior(probs: np.ndarray, labels: np.ndarray,
                          transition: np.ndarray) -> np.ndarray:
    """``P(true j | x, given y) ∝ T[j, y] · p(j | x)`` for each sample.

    A row whose evidence lies only on classes that never turn into its given label (all
    products zero) keeps its distribution.

    Parameters
    ----------
    probs : (N, C) a view's class distribution (model, out-of-fold, neighbours).
    labels : (N,) given class ids.
    transition : (C, C) ``T[j, i] = P(given i | true j)`` (:func:`transition_matrix`).

    Returns
    -------
    (N, C) float32, rows summing to 1.
    """
    probs, labels = probs_and_labels(probs, labels)
    transition = np.asarray(transition, dtype=np.float64)
    if transition.shape != (probs.shape[1],) * 2:
        raise ValueError(f"transition: expected shape {(probs.shape[1],) * 2} to match "
                         f"probs {probs.shape}, got {transition.shape}")
    return _normalize_rows(transition[:, labels].T * probs, probs).astype(np.float32)


def given_label_distribution(given_prob: np.ndarray, others: np.ndarray,
                             labels: np.ndarray) -> np.ndarray:
    """A class distribution for a view that only scores the given label (training dynamics):
    ``given_prob`` on the given class, the rest split like ``others`` splits its mass over the
    other classes (evenly where ``others`` has none there).

    Parameters
    ----------
    given_prob : (N,) in [0, 1].
    others : (N, C) a distribution whose split over the non-given classes is borrowed.
    labels : (N,) given class ids.

    Returns
    -------
    (N, C) float32, rows summing to 1.
    """
    others, labels = probs_and_labels(others, labels, name="others")
    n, n_classes = others.shape
    given_prob = np.asarray(given_prob, dtype=np.float64)
    if given_prob.shape != (n,):
        raise ValueError(f"given_prob: expected shape ({n},), got {given_prob.shape}")
    if not np.isfinite(given_prob).all() or given_prob.min() < 0 or given_prob.max() > 1:
        raise ValueError("given_prob: values must be finite and in [0, 1]")
    rows = np.arange(n)
    split = others.astype(np.float64)
    split[rows, labels] = 0.0
    even = np.full_like(split, 1.0 / (n_classes - 1))
    even[rows, labels] = 0.0
    out = _normalize_rows(split, even) * (1.0 - given_prob)[:, None]
    out[rows, labels] = given_prob
    return out.astype(np.float32)


def _normalize_rows(weights: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows of ``weights`` scaled to sum to 1; ``fallback``'s row where a row sums to 0."""
    total = weights.sum(axis=1, keepdims=True)
    return np.where(total > 0, weights / np.where(total > 0, total, 1.0), fallback)
