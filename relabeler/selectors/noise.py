"""A label-noise model fitted to the data at hand, and the views it corrects.

Annotators confuse particular pairs of classes, often in one direction (spam filed as ham).
Then "how much does the model prefer another class" ranks the wrong samples badly: when most
spam is labeled ham, every sample still labeled spam looks doubtful too. Confident learning
(Northcutt et al., JAIR 2021; cleanlab's confident joint) estimates how many samples given
class ``i`` truly belong to ``j``; from it ``T[j, i] = P(given i | true j)``, and each view's
class distribution becomes the posterior of the true class given features and given label::

    P(true j | x, given i)  ∝  T[j, i] · p(j | x)

The confident joint is biased where the model is poorly calibrated, so :func:`fit_noise_model`
keeps the class-conditional ``T`` only when it explains the estimated flips clearly better
than uniform noise (:func:`asymmetry`), and otherwise corrects by uniform noise at the
estimated rate. cleanlab has neither the uniform alternative nor the test, hence this module;
how the bar was chosen is in docs/benchmarks.md ("Scoring"). Nothing here reads a noise mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from relabeler.selectors._checks import probs_and_labels
from relabeler.selectors.cleanlab_imports import compute_confident_joint

#: Pseudo-count added to every cell of the confident joint: a class pair never seen
#: confused keeps a small probability, and a class nobody was given still has a row...
PRIOR_COUNT = 1.0
#: ...scaled down past this many classes, so that a row's pseudo-counts add up to at most
#: this many (a five-class row's): one in every cell of 38 classes made 1,406 pseudo-flips
#: against 879 training rows, a uniform flip rate of 61% where the joint held 1.6%, and every
#: label looked doubtful. Two to five classes (the dev datasets) are as before.
PRIOR_CLASSES = 5

#: The class-conditional transitions replace uniform noise when their likelihood-ratio
#: statistic against it reaches this much per estimated flip (twice the mean log-likelihood
#: gain of a flip's destination)...
ASYMMETRY_PER_FLIP = 1.0
#: ...and the ratio test rejects uniform noise at this level (a small joint can look
#: lopsided by chance).
ASYMMETRY_ALPHA = 0.01
NOISE_KINDS = ("auto", "class_conditional", "uniform")


def confident_joint(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None
                    ) -> np.ndarray:
    """Estimated counts of (given class i, true class j): cleanlab's confident joint, each
    row rescaled to the number of samples given that class.

    A class's threshold is the mean ``p(j)`` over the samples given ``j``; a sample counts for
    the class it reaches (the most probable class when it reaches several), samples reaching
    none are left out, and each class given to someone keeps at least one count on the
    diagonal.

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
    # calibrate=False: cleanlab's calibration rounds the counts to integers, and a small
    # joint's fractions are what asymmetry() weighs. cleanlab puts at least 1 on the
    # diagonal, so every row has counts to rescale (a class nobody was given: to 0).
    joint = compute_confident_joint(labels, probs, calibrate=False).astype(np.float64)
    counts = np.bincount(labels, minlength=n_classes)
    return joint * counts[:, None] / joint.sum(axis=1, keepdims=True)


def transition_matrix(joint: np.ndarray, prior_count: float = PRIOR_COUNT) -> np.ndarray:
    """``T[j, i] = P(given i | true j)`` from a confident joint (``joint[i, j]`` = given i,
    true j), with ``prior_count`` added to every cell (which cleanlab's
    ``estimate_noise_matrices`` lacks: a pair never seen confused keeps some probability),
    scaled by :func:`_prior_scale` past :data:`PRIOR_CLASSES` classes.

    Returns
    -------
    (C, C) float64; row j sums to 1.
    """
    joint = _square_counts(joint, prior_count)
    by_true = joint.T + prior_count * _prior_scale(len(joint))
    sums = by_true.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        row = int(np.flatnonzero(sums[:, 0] <= 0)[0])
        raise ValueError(f"joint: true class {row} has no counts; pass prior_count > 0")
    return by_true / sums


def uniform_transition(joint: np.ndarray, prior_count: float = PRIOR_COUNT) -> np.ndarray:
    """``T`` of uniform noise fitted to a confident joint: one flip rate, the joint's
    off-diagonal share (``prior_count`` added to every cell of a joint of
    ``min(C, PRIOR_CLASSES)`` classes: the rate's pseudo-counts do not grow with C), spread
    evenly over the other classes.

    Returns
    -------
    (C, C) float64; row j sums to 1.
    """
    joint = _square_counts(joint, prior_count)
    n_classes = len(joint)
    # one rate: the pseudo-counts of a joint of at most PRIOR_CLASSES classes, whatever C
    prior = min(n_classes, PRIOR_CLASSES)
    total = joint.sum() + prior_count * prior ** 2
    if total <= 0:
        raise ValueError("joint: has no counts; pass prior_count > 0")
    rate = (joint.sum() - np.trace(joint) + prior_count * prior * (prior - 1)) / total
    transition = np.full((n_classes, n_classes), rate / (n_classes - 1))
    np.fill_diagonal(transition, 1.0 - rate)
    return transition


def asymmetry(joint: np.ndarray) -> tuple[float, float, float]:
    """How much better class-conditional transitions explain a confident joint than uniform
    noise: the likelihood-ratio statistic ``G = 2 sum n_ij log(T_ij / U_ij)`` of the two
    maximum-likelihood fits (no pseudo-counts), ``G`` per estimated flip (the joint's
    off-diagonal mass), and the chi-square p-value with ``C (C - 1) - 1`` degrees of freedom.
    The joint's cells are estimated counts, not a multinomial sample, so the p-value is a
    guide, not an exact level.

    Returns
    -------
    (statistic, statistic per flip, p-value); (0, 0, 1) when the joint holds no flip.
    """
    joint = _square_counts(joint)
    n_classes = len(joint)
    flips = float(joint.sum() - np.trace(joint))
    if flips <= 0:
        return 0.0, 0.0, 1.0
    by_true = joint.T
    rows = by_true.sum(axis=1, keepdims=True)
    full = np.divide(by_true, rows, out=np.zeros_like(by_true), where=rows > 0)
    uniform = uniform_transition(joint, prior_count=0.0)
    seen = by_true > 0
    statistic = max(0.0, 2.0 * float((by_true[seen] * np.log(full[seen] / uniform[seen])).sum()))
    p_value = float(stats.chi2.sf(statistic, n_classes * (n_classes - 1) - 1))
    return statistic, statistic / flips, p_value


@dataclass(frozen=True)
class NoiseModel:
    """A noise model read off a confident joint (:func:`fit_noise_model`)."""

    joint: np.ndarray
    """(C, C) estimated counts, ``joint[i, j]`` = given i, true j."""
    transition: np.ndarray
    """(C, C) ``T[j, i] = P(given i | true j)``, the one the views are corrected by."""
    kind: str
    """``class_conditional`` or ``uniform``."""
    asymmetry_per_flip: float
    """:func:`asymmetry`'s statistic per estimated flip."""
    asymmetry_p_value: float


def fit_noise_model(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None, *,
                    kind: str = "auto") -> NoiseModel:
    """The noise transitions to correct the views by.

    Parameters
    ----------
    probs, labels, num_classes : as for :func:`confident_joint`.
    kind : ``auto`` (default): class-conditional when the joint departs from uniform noise by
        at least :data:`ASYMMETRY_PER_FLIP` per estimated flip and significantly (p below
        :data:`ASYMMETRY_ALPHA`), else uniform; ``class_conditional`` or ``uniform`` to force
        one.

    Returns
    -------
    NoiseModel.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    return noise_model_from_joint(confident_joint(probs, labels, num_classes), kind=kind)


def noise_model_from_joint(joint: np.ndarray, *, kind: str = "auto") -> NoiseModel:
    """:func:`fit_noise_model` from a joint of (given, true) counts already at hand: a
    confident joint, or one that adds counts known from people's answers (``relabeler serve``
    re-ranking while they work).

    Parameters
    ----------
    joint : (C, C) counts, ``joint[i, j]`` = given i, true j.
    kind : as for :func:`fit_noise_model`.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    joint = _square_counts(joint)
    _, per_flip, p_value = asymmetry(joint)
    if kind == "auto":
        lopsided = per_flip >= ASYMMETRY_PER_FLIP and p_value < ASYMMETRY_ALPHA
        kind = "class_conditional" if lopsided else "uniform"
    transition = transition_matrix(joint) if kind == "class_conditional" else \
        uniform_transition(joint)
    return NoiseModel(joint=joint, transition=transition, kind=kind,
                      asymmetry_per_flip=per_flip, asymmetry_p_value=p_value)


def _prior_scale(n_classes: int) -> float:
    """The share of ``prior_count`` each cell of a row gets: 1 up to :data:`PRIOR_CLASSES`
    classes, then PRIOR_CLASSES / C (a row's pseudo-counts add up to PRIOR_CLASSES)."""
    return min(1.0, PRIOR_CLASSES / n_classes)


def _square_counts(joint: np.ndarray, prior_count: float = 0.0) -> np.ndarray:
    """``joint`` as float64 counts, checked (and ``prior_count``, the pseudo-count to add)."""
    if prior_count < 0:
        raise ValueError(f"prior_count: must be >= 0, got {prior_count}")
    joint = np.asarray(joint, dtype=np.float64)
    if joint.ndim != 2 or joint.shape[0] != joint.shape[1] or joint.shape[0] < 2:
        raise ValueError(f"joint: expected a square (C, C) matrix with C >= 2, got shape "
                         f"{joint.shape}")
    if not np.isfinite(joint).all() or joint.min() < 0:
        raise ValueError("joint: counts must be finite and >= 0")
    return joint


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
