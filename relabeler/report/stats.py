"""Paired bootstrap confidence intervals for what relabeling changed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _scores(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[accuracy, macro-F1, then precision, recall, F1 of each class] for one sample set."""
    tp = np.bincount(labels[pred == labels], minlength=num_classes).astype(np.float64)
    pred_count = np.bincount(pred, minlength=num_classes).astype(np.float64)
    true_count = np.bincount(labels, minlength=num_classes).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_count > 0, tp / pred_count, 0.0)
        recall = np.where(true_count > 0, tp / true_count, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    accuracy = tp.sum() / max(len(labels), 1)
    return np.concatenate([[accuracy, f1.mean()], precision, recall, f1])


def paired_bootstrap(labels: np.ndarray, pred_before: np.ndarray, pred_after: np.ndarray,
                     classes: Sequence[str], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Before/after metrics on the same eval samples with 95% intervals of every delta.

    Each bootstrap draw resamples the eval samples once and scores both models on that same
    draw, so the interval of a delta reflects the pairing.

    Parameters
    ----------
    labels, pred_before, pred_after : (N,) int class ids.

    Returns
    -------
    ``{"accuracy": {...}, "macro_f1": {...}, "per_class": {class: {"precision": {...}, ...}}}``
    where each leaf is ``{"before", "after", "delta", "ci95": [low, high]}``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    pred_before = np.asarray(pred_before, dtype=np.int64)
    pred_after = np.asarray(pred_after, dtype=np.int64)
    if not (labels.shape == pred_before.shape == pred_after.shape) or labels.ndim != 1:
        raise ValueError(f"labels, pred_before, pred_after: expected equal (N,) shapes, got "
                         f"{labels.shape}, {pred_before.shape}, {pred_after.shape}")
    if len(labels) == 0:
        raise ValueError("labels: the eval split is empty; nothing to compare")
    c = len(classes)
    before = _scores(labels, pred_before, c)
    after = _scores(labels, pred_after, c)
    rng = np.random.default_rng(seed)
    deltas = np.empty((n_boot, len(before)))
    n = len(labels)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        deltas[b] = _scores(labels[idx], pred_after[idx], c) - _scores(labels[idx],
                                                                       pred_before[idx], c)
    low, high = np.percentile(deltas, [2.5, 97.5], axis=0)

    def leaf(i: int) -> dict:
        return {"before": float(before[i]), "after": float(after[i]),
                "delta": float(after[i] - before[i]), "ci95": [float(low[i]), float(high[i])]}

    per_class = {name: {"precision": leaf(2 + j), "recall": leaf(2 + c + j),
                        "f1": leaf(2 + 2 * c + j)} for j, name in enumerate(classes)}
    return {"accuracy": leaf(0), "macro_f1": leaf(1), "per_class": per_class,
            "n_eval": n, "n_boot": n_boot}


def rate_interval(successes: int, total: int, *, z: float = 1.96) -> list[float]:
    """Wilson score 95% interval of a proportion; [0, 0] for an empty total."""
    if total <= 0:
        return [0.0, 0.0]
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return [float(max(0.0, centre - half)), float(min(1.0, centre + half))]
