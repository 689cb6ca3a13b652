"""Shortcut mitigation for training: loss weights that cancel a token's class information, token
masking, and class weights for imbalance.

``reweight`` follows TrustAI's distribution-debiasing (lls_d): for every shortcut token ``t``
(``scores/shortcuts.parquet``) each training text that contains ``t`` and is labelled ``c`` gets
the weight ``p(c) / p(c | t)``. Under these weights the texts containing ``t`` have exactly the
corpus's class prior, so ``t`` carries no class information the prior does not, and the total
weight of those texts is unchanged. Several tokens are raked one after another on the weights so
far; the weights are then clipped to ``[1 / clip, clip]`` and renormalised to mean 1.

``mask`` replaces the shortcut tokens in a share of the training texts that contain them by the
tokenizer's mask token (removes them where it has none), so the model cannot count on them.

``balanced`` class weights are ``n / (C * n_c)`` per sample (scikit-learn's ``balanced``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from relabeler.selectors.shortcuts import contains_token

#: What ``[train] debias`` may name.
DEBIAS = ("none", "reweight", "mask")
#: The mitigation ``simulate --shortcut`` applies (measured: docs/benchmarks.md, "Shortcut
#: mitigation").
DEFAULT_MITIGATION = "mask"


def shortcut_weights(texts: Sequence[str], labels: np.ndarray, tokens: Sequence[str], *,
                     num_classes: int, clip: float = 10.0) -> np.ndarray:
    """Per-sample loss weights that cancel the class association of ``tokens``.

    texts: (N,) training texts. labels: (N,) int class ids in [0, num_classes). tokens: words or
    space-separated word pairs as ``scores/shortcuts.parquet`` names them. Returns (N,) float64
    weights with mean 1; texts without any token keep the weight 1 before renormalising.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts):
        raise ValueError(f"labels must be (N,) = ({len(texts)},), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got {labels.min()}.."
                         f"{labels.max()}")
    if clip < 1:
        raise ValueError(f"clip must be >= 1, got {clip}")
    weights = np.ones(len(labels), dtype=np.float64)
    if not len(labels):
        return weights
    prior = np.bincount(labels, minlength=num_classes) / len(labels)
    for token in dict.fromkeys(tokens):
        hit = contains_token(texts, token)
        if not hit.any():
            continue
        mass = np.bincount(labels[hit], weights=weights[hit], minlength=num_classes)
        share = mass / mass.sum()
        ratio = np.divide(prior, share, out=np.ones(num_classes), where=share > 0)
        weights[hit] *= ratio[labels[hit]]
    weights = np.clip(weights, 1.0 / clip, clip)
    return weights / weights.mean()


def class_weights(labels: np.ndarray, *, num_classes: int) -> np.ndarray:
    """(N,) per-sample weights ``n / (C_present * n_c)``: every class present weighs the same."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = int((counts > 0).sum())
    if not len(labels):
        return np.ones(0)
    return len(labels) / (present * counts[labels])


def _token_pattern(token: str) -> re.Pattern:
    words = [re.escape(w) for w in token.split(" ")]
    return re.compile(r"(?<!\w)" + r"\W+".join(words) + r"(?!\w)", re.IGNORECASE)


def mask_tokens(texts: Sequence[str], tokens: Sequence[str], *, rate: float, mask: str,
                seed: int = 0) -> list[str]:
    """``texts`` with every occurrence of ``tokens`` replaced by ``mask`` in ``rate`` of the
    texts that contain one (drawn per text and token with ``seed``); ``mask = ""`` removes them.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    out = list(texts)
    for token in dict.fromkeys(tokens):
        pattern = _token_pattern(token)
        for row in np.flatnonzero(contains_token(out, token)).tolist():
            if rng.random() < rate:
                out[row] = " ".join(pattern.sub(mask, out[row]).split())
    return out


def training_weights(texts: Sequence[str], labels: np.ndarray, *, num_classes: int,
                     debias: str, tokens: Sequence[str], class_balance: str) -> np.ndarray | None:
    """The loss weights ``[train] debias`` and ``class_weights`` ask for (their product, mean
    1), or None when neither weighs."""
    if debias not in DEBIAS:
        raise ValueError(f"debias must be one of {', '.join(DEBIAS)}, got {debias!r}")
    weights = None
    if debias == "reweight":
        weights = shortcut_weights(texts, labels, tokens, num_classes=num_classes)
    if class_balance == "balanced":
        balance = class_weights(labels, num_classes=num_classes)
        weights = balance if weights is None else weights * balance
    return None if weights is None else weights / weights.mean()


def shortcut_tokens(shortcuts, *, top: int) -> list[str]:
    """The first ``top`` distinct tokens of a ``scores/shortcuts.parquet`` frame by rank."""
    ordered = shortcuts.sort_values("rank")["token"].tolist()
    return list(dict.fromkeys(ordered))[:top]
