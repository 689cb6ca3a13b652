"""Confidence intervals for what relabeling changed: Newcombe's paired score interval of the
accuracy gain, a paired bootstrap of the other eval metrics (scipy's ``bootstrap``), Wilson
intervals of rates (scipy's ``binomtest``) and t-intervals of
means over seeds (the benchmarks')."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def _scores(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """[accuracy, macro-F1, then precision, recall, F1 of each class] along the last axis of
    ``labels`` and ``pred`` (..., N), as scikit-learn's ``precision_recall_fscore_support``
    with ``zero_division=0``; returns (2 + 3C, ...). Macro-F1 is the mean F1 of the classes
    present in ``labels`` (of each resample): a class with no eval row is not counted as F1 0
    (scikit-learn's ``f1_score(average="macro", labels=<the classes in labels>)``). Counted
    here, vectorized over bootstrap resamples: one scikit-learn call per resample is about 90x
    slower (docs/benchmarks.md).
    """
    classes = np.arange(num_classes)[:, None]
    hit = (pred == labels)[..., None, :]
    tp = (hit & (labels[..., None, :] == classes)).sum(-1).astype(np.float64)
    pred_count = (pred[..., None, :] == classes).sum(-1).astype(np.float64)
    true_count = (labels[..., None, :] == classes).sum(-1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_count > 0, tp / pred_count, 0.0)
        recall = np.where(true_count > 0, tp / true_count, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    accuracy = tp.sum(-1) / max(labels.shape[-1], 1)
    present = true_count > 0
    macro = (f1 * present).sum(-1, keepdims=True) / np.maximum(present.sum(-1, keepdims=True), 1)
    out = np.concatenate([accuracy[..., None], macro, precision, recall, f1], axis=-1)
    return np.moveaxis(out, -1, 0)


def paired_bootstrap(labels: np.ndarray, pred_before: np.ndarray, pred_after: np.ndarray,
                     classes: Sequence[str], *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Before/after metrics on the same eval samples with 95% intervals of every delta: the
    accuracy's from :func:`paired_difference_interval`, the others' percentile intervals of a
    paired bootstrap (each resample scores both models on the same draw).

    Parameters
    ----------
    labels, pred_before, pred_after : (N,) int class ids.

    Returns
    -------
    ``{"accuracy": {...}, "macro_f1": {...}, "per_class": {class: {"precision": {...}, ...}}}``
    where each leaf is ``{"before", "after", "delta", "ci95": [low, high]}`` (a class's
    value None where it was not measured, its delta and interval None then); with one
    eval row the bootstrap's intervals are [-1, 1], all a delta of a share can be (nothing to
    resample).
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

    def delta(truth, old, new, axis=-1):
        return _scores(truth, new, c) - _scores(truth, old, c)

    if len(labels) < 2:
        # one row cannot be resampled: every delta may be anything in [-1, 1]
        low, high = -np.ones(len(before)), np.ones(len(before))
    else:
        interval = stats.bootstrap((labels, pred_before, pred_after), delta, paired=True,
                                   vectorized=True, n_resamples=n_boot, batch=200,
                                   method="percentile", rng=np.random.default_rng(seed))
        low, high = interval.confidence_interval

    low, high = np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)
    low[0], high[0] = paired_difference_interval(pred_before == labels, pred_after == labels)

    def leaf(i: int) -> dict:
        return {"before": float(before[i]), "after": float(after[i]),
                "delta": float(after[i] - before[i]), "ci95": [float(low[i]), float(high[i])]}

    # what a model never measured is None, not 0, as in train/metrics.json: a class's recall
    # and F1 without eval rows, its precision where that model predicted it for no row (a
    # delta and its interval only where both were measured)
    support = np.bincount(labels, minlength=c) > 0
    predicted = (np.bincount(pred_before, minlength=c) > 0,
                 np.bincount(pred_after, minlength=c) > 0)

    def measured(i: int, before_ok: bool, after_ok: bool) -> dict:
        out = leaf(i)
        if not before_ok:
            out["before"] = None
        if not after_ok:
            out["after"] = None
        if not (before_ok and after_ok):
            out["delta"], out["ci95"] = None, None
        return out

    per_class = {name: {"precision": measured(2 + j, bool(predicted[0][j]),
                                              bool(predicted[1][j])),
                        "recall": measured(2 + c + j, bool(support[j]), bool(support[j])),
                        "f1": measured(2 + 2 * c + j, bool(support[j]), bool(support[j]))}
                 for j, name in enumerate(classes)}
    return {"accuracy": leaf(0), "macro_f1": leaf(1), "per_class": per_class,
            "n_eval": len(labels), "n_boot": n_boot}


def paired_difference_interval(right_before: np.ndarray, right_after: np.ndarray, *,
                               confidence: float = 0.95) -> list[float]:
    """[low, high] of accuracy after - accuracy before on the same rows (boolean (N,) arrays:
    each row predicted right): Newcombe's score interval for paired proportions (1998, method
    10, as in Altman et al., *Statistics with Confidence*, 2000), the two accuracies' Wilson
    intervals joined through the correlation of the pairs. A percentile bootstrap of the
    difference collapses when few predictions change the same way (2 eval rows, both fixed:
    [+1, +1]; 4 of 100 fixed and none broken: [+0.01, +0.08], where McNemar's exact p is
    0.125); this gives [+0.07, +1] and [-0.004, +0.098]. Neither scipy nor scikit-learn has it.
    """
    before = np.asarray(right_before, dtype=bool)
    after = np.asarray(right_after, dtype=bool)
    n = len(before)
    both, fixed = int((before & after).sum()), int((after & ~before).sum())
    broken, neither = int((before & ~after).sum()), int((~before & ~after).sum())
    p_after, p_before = (both + fixed) / n, (both + broken) / n
    low_after, high_after = rate_interval(both + fixed, n, confidence=confidence)
    low_before, high_before = rate_interval(both + broken, n, confidence=confidence)
    cross = both * neither - fixed * broken
    cross = cross - n / 2 if cross > n / 2 else min(cross, 0)  # Newcombe's correction
    margins = (both + fixed) * (broken + neither) * (both + broken) * (fixed + neither)
    phi = cross / np.sqrt(float(margins)) if margins else 0.0
    down_after, up_before = p_after - low_after, high_before - p_before
    up_after, down_before = high_after - p_after, p_before - low_before
    delta = p_after - p_before
    low = delta - np.sqrt(max(down_after ** 2 - 2 * phi * down_after * up_before
                              + up_before ** 2, 0.0))
    high = delta + np.sqrt(max(down_before ** 2 - 2 * phi * down_before * up_after
                               + up_after ** 2, 0.0))
    return [max(-1.0, float(low)), min(1.0, float(high))]


def paired_gain(before: pd.DataFrame, after: pd.DataFrame, classes: Sequence[str], *,
                rows: np.ndarray | None = None, labels: pd.Series | None = None) -> dict:
    """:func:`paired_bootstrap` of two models' eval predictions: id-indexed frames in the same
    order with ``label`` and ``pred`` (class names). ``rows``: a boolean mask over them (None:
    all); ``labels``: id -> class name, scored against instead of ``before["label"]``."""
    if rows is not None:
        before, after = before[rows], after[rows]
    truth = before["label"] if labels is None else labels.reindex(before.index)
    index = {c: i for i, c in enumerate(classes)}

    def coded(names: pd.Series) -> np.ndarray:
        return names.map(index).to_numpy(dtype=np.int64)

    return paired_bootstrap(coded(truth), coded(before["pred"]), coded(after["pred"]), classes)


def rate_interval(successes: int, total: int, *, confidence: float = 0.95) -> list[float]:
    """Wilson score interval of a proportion; [0, 0] for an empty total."""
    if total <= 0:
        return [0.0, 0.0]
    interval = stats.binomtest(int(successes), int(total)).proportion_ci(
        confidence_level=confidence, method="wilson")
    return [float(interval.low), float(interval.high)]


def mean_interval(values: Sequence[float], *, confidence: float = 0.95
                  ) -> tuple[float, float, float]:
    """(mean, low, high): the t-interval of the mean of ``values`` (seeds); NaN ends for
    fewer than two values."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def points(change: float) -> str:
    """A change of a share in signed points (``+0.6``); one significant digit where one
    decimal would round a nonzero change to ``+0.0`` or ``-0.0`` (an interval's end just
    below zero: ``-0.006``)."""
    value = 100 * float(change)
    return f"{value:+.1g}" if 0 < abs(value) < 0.05 else f"{value:+.1f}"


def change_text(delta: float, ci95: Sequence[float]) -> str:
    """``+0.6 points, 95% CI [-0.01, +1.37]: within noise (...)``: the change, its interval
    and what the interval says: a gain or a loss where it excludes zero, else that the change
    cannot be told from none at this number of eval rows."""
    low, high = ci95
    verdict = ("a real gain" if low > 0 else "a real loss" if high < 0 else
               "within noise: the interval holds 0, so this eval set cannot tell it from no "
               "change")
    return f"{points(delta)} points, 95% CI [{points(low)}, {points(high)}]: {verdict}"


def format_interval(values: Sequence[float], digits: int = 4) -> str:
    """``mean ± half-width`` of :func:`mean_interval` (``mean`` alone for one value)."""
    mean, _, high = mean_interval(values)
    if np.isnan(high):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {high - mean:.{digits}f}"


def queue_against_controls(k_flagged: int, n_flagged: int, k_controls: int, n_controls: int,
                           *, alpha: float = 0.05) -> dict:
    """Were the flagged tasks corrected more often than the random controls? scipy's one-sided
    Fisher exact test on the two rates.

    Returns the p-value, ``p_best`` (the p-value had no control needed a change: the least
    the controls allow) and the verdict: ``"beats"`` (p < alpha); ``"undecided"`` where the
    flagged tasks were corrected more often but the controls are too few for the test to show
    it even had none of them needed a change (p_best >= alpha: 3 controls against 37 of 57
    flagged tasks corrected give p = 0.05 at best), so the test says nothing about the
    ranking; else ``"no better"`` (not shown to beat random picks: corrected no more often
    than the controls, or not significantly more where the controls could have shown it)."""
    _, p_value = stats.fisher_exact([[k_flagged, n_flagged - k_flagged],
                                     [k_controls, n_controls - k_controls]],
                                    alternative="greater")
    _, p_best = stats.fisher_exact([[k_flagged, n_flagged - k_flagged], [0, n_controls]],
                                   alternative="greater")
    higher = k_flagged * n_controls > k_controls * n_flagged  # the flagged rate, the greater
    verdict = ("beats" if p_value < alpha else
               "undecided" if higher and p_best >= alpha else "no better")
    return {"p_value": float(p_value), "p_best": float(p_best), "verdict": verdict}
