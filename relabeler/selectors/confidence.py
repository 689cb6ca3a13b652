"""Confidence signals: how much the model (in-sample, out-of-fold, while training) believes
the given label. Every function returns a suspect score in [0, 1]; higher = more likely wrong.

* :func:`self_confidence`: ``1 - p(given)``; on out-of-fold probabilities, cleanlab's
  self-confidence turned into a suspect score, the robust baseline.
* :func:`normalized_margin`: ``(1 - (p(given) - max p(other))) / 2``, cleanlab's normalized
  margin turned likewise; it beats ``1 - p`` on multi-class, class-conditional noise.
* :func:`area_under_margin`: the margin averaged over training epochs (Pleiss et al. 2020):
  a mislabeled sample is learned late, so its margin stays low while the clean ones rise.
  Written here: cleanlab scores probabilities, not training dynamics.
* :func:`cleanlab_scores`: cleanlab's three rankings as they are, the baselines that
  ``simulate`` and the benchmarks measure against (``find_label_issues``'s set scores above 1).
"""

from __future__ import annotations

import numpy as np

from relabeler.selectors._checks import as_matrix, probs_and_labels
from relabeler.selectors.cleanlab_imports import (
    find_label_issues,
    get_label_quality_scores,
    get_normalized_margin_for_each_label,
    get_self_confidence_for_each_label,
)


def self_confidence(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``1 - p(given label)``: one minus cleanlab's self-confidence label quality.

    Parameters
    ----------
    probs : (N, C) float probabilities.
    labels : (N,) int given class ids.

    Returns
    -------
    (N,) float32 in [0, 1]; higher = more suspect.
    """
    quality = get_self_confidence_for_each_label(*_labels_first(probs, labels))
    return np.clip(1.0 - quality, 0.0, 1.0).astype(np.float32)


def normalized_margin(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(1 - (p(given) - max_{c != given} p(c))) / 2``: one minus cleanlab's normalized
    margin label quality.

    Parameters
    ----------
    probs : (N, C) float probabilities.
    labels : (N,) int given class ids.

    Returns
    -------
    (N,) float32 in [0, 1]; 0.5 = a tie between the given label and the best other class.
    """
    quality = get_normalized_margin_for_each_label(*_labels_first(probs, labels))
    return np.clip(1.0 - quality, 0.0, 1.0).astype(np.float32)


def _labels_first(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated inputs in cleanlab's order (labels, pred_probs)."""
    probs, labels = probs_and_labels(probs, labels)
    return labels, probs


def area_under_margin(margins: np.ndarray) -> np.ndarray:
    """Suspect score from the probability margin at every epoch.

    Parameters
    ----------
    margins : (N, E) float, ``p(given) - max p(other)`` of each sample after each of E epochs
        (``train/dynamics.parquet`` pivoted); NaN where an epoch did not see the sample.

    Returns
    -------
    (N,) float32 in [0, 1]: ``(1 - mean margin) / 2``; higher = learned late or never.
    """
    margins = as_matrix("margins", margins, finite=False)
    if np.isinf(margins).any():
        raise ValueError("margins: contains inf")
    seen = ~np.isnan(margins)
    if not seen.any(axis=1).all():
        row = int(np.flatnonzero(~seen.any(axis=1))[0])
        raise ValueError(f"margins: row {row} has no epoch with a value")
    if np.nanmin(margins) < -1 - 1e-6 or np.nanmax(margins) > 1 + 1e-6:
        raise ValueError("margins: probability margins must lie in [-1, 1]")
    mean = np.nanmean(margins, axis=1)
    return np.clip((1.0 - mean) / 2.0, 0.0, 1.0).astype(np.float32)


def cleanlab_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """cleanlab's rankings on the given probabilities, as suspect scores (higher = worse).

    ``find_label_issues`` returns a set, not a ranking: its flagged samples score
    ``1 + (1 - self-confidence quality)`` (cleanlab's own order inside the set) and the rest 0.
    """
    self_conf = get_label_quality_scores(labels, probs, method="self_confidence")
    margin = get_label_quality_scores(labels, probs, method="normalized_margin")
    # n_jobs=1: its default forks a Pool, and a fork of a process holding Ray's and torch's
    # threads can deadlock (it hung a CI run for the full 90 minutes)
    flagged = find_label_issues(labels, probs, n_jobs=1)
    return {
        "cleanlab_self_confidence": 1.0 - self_conf,
        "cleanlab_normalized_margin": 1.0 - margin,
        "cleanlab_find_label_issues": np.where(flagged, 2.0 - self_conf, 0.0),
    }
