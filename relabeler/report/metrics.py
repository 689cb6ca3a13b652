"""Metrics for detection (how well a ranking finds the wrong labels)."""

from __future__ import annotations

import numpy as np


def detection_metrics(suspect_score: np.ndarray, is_wrong: np.ndarray, *,
                      k: int | None = None) -> dict[str, float]:
    """AUROC, AUPRC (average precision), precision@K and recall@K of a suspect ranking.

    Parameters
    ----------
    suspect_score : (N,) float, higher = more suspect.
    is_wrong : (N,) bool, the truth (labels known to be wrong).
    k : review budget; default the number of wrong labels.

    Returns
    -------
    dict with auroc, auprc, precision_at_k, recall_at_k, k. Ties at the K-th place are broken
    by input order, so a constant score gets no credit from its order.
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    score = np.asarray(suspect_score, dtype=np.float64)
    truth = np.asarray(is_wrong, dtype=bool)
    if score.shape != truth.shape or score.ndim != 1:
        raise ValueError(f"suspect_score and is_wrong: expected equal (N,) shapes, got "
                         f"{score.shape} and {truth.shape}")
    if not np.isfinite(score).all():
        raise ValueError("suspect_score: contains NaN or inf")
    n_wrong = int(truth.sum())
    if n_wrong == 0 or n_wrong == len(truth):
        raise ValueError(f"is_wrong: needs both wrong and right labels, got {n_wrong} wrong "
                         f"of {len(truth)}")
    k = n_wrong if k is None else int(k)
    if not 0 <= k <= len(truth):
        raise ValueError(f"k: expected a review budget in [0, {len(truth)}], got {k}")
    flagged = np.zeros(len(truth), dtype=bool)
    flagged[np.argsort(-score, kind="stable")[:k]] = True
    return {"auroc": float(roc_auc_score(truth, score)),
            "auprc": float(average_precision_score(truth, score)),
            "precision_at_k": float(precision_score(truth, flagged, zero_division=0.0)),
            "recall_at_k": float(recall_score(truth, flagged)),
            "k": k}
