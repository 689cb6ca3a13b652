"""Shortcut mitigation for training: loss weights that cancel a token's class information, token
masking, and class weights for imbalance.

``reweight`` follows TrustAI's distribution-debiasing (lls_d): for every shortcut token ``t``
(``scores/shortcuts.parquet``) each training text that contains ``t`` and is labelled ``c`` gets
the weight ``p(c) / p(c | t)``, so that the texts containing ``t`` have the corpus's class prior
and ``t`` carries no class information the prior does not. The tokens and the class masses are
raked in turn (iterative proportional fitting) so that several tokens hold together and every
class keeps its share of the loss; the weights are then clipped to ``[1 / clip, clip]`` and the
class masses restored. A token that occurs in no text of some class cannot be cancelled (there
is no text of that class to weigh up): its texts are weighed down once, by ``p(c)``, within
their class, and a warning names the token (``mask`` removes it: docs/benchmarks.md, "Shortcut
mitigation").

``mask`` replaces the shortcut tokens in a share of the training texts that contain them by the
tokenizer's mask token (removes them where it has none), so the model cannot count on them.

``balanced`` class weights give every class present the same total weight (scikit-learn's
``balanced``, ``n / (C * n_c)`` per sample without other weights).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from relabeler.errors import StageError
from relabeler.selectors.shortcuts import contains_token, word_tokens
from relabeler.selectors.text_units import UNIT, unit_text

log = logging.getLogger(__name__)

#: What ``[train] debias`` may name.
DEBIAS = ("none", "reweight", "mask")
#: The mitigation ``simulate --shortcut`` applies (measured: docs/benchmarks.md, "Shortcut
#: mitigation").
DEFAULT_MITIGATION = "mask"


def shortcut_weights(texts: Sequence[str], labels: np.ndarray, tokens: Sequence[str], *,
                     num_classes: int, clip: float = 10.0, sweeps: int = 50,
                     class_names: Sequence[str] | None = None) -> np.ndarray:
    """Per-sample loss weights that cancel the class association of ``tokens``.

    texts: (N,) training texts. labels: (N,) int class ids in [0, num_classes). tokens: words or
    space-separated word pairs as ``scores/shortcuts.parquet`` names them. Returns (N,) float64
    weights with mean 1 under which every class keeps its share of the training set.
    ``class_names`` name the classes in the warning about a token that cannot be cancelled.
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
    present = prior > 0
    rakable = []
    for token in dict.fromkeys(tokens):
        hit = contains_token(texts, token)
        if not hit.any():
            continue
        missing = present & (np.bincount(labels[hit], minlength=num_classes) == 0)
        if missing.any():
            names = [class_names[c] if class_names is not None else str(c)
                     for c in np.flatnonzero(missing)]
            log.warning("debias reweight: %r occurs in no training text of %s, so no weight can "
                        "cancel it; its texts weigh less within their class (--debias mask "
                        "removes it)", token, ", ".join(names))
            weights[hit] *= _token_ratio(weights, labels, hit, prior)
        else:
            rakable.append(hit)
    weights = _with_class_masses(weights, labels, prior)
    for _ in range(sweeps if rakable else 0):
        for hit in rakable:
            weights[hit] *= _token_ratio(weights, labels, hit, prior)
        weights = _with_class_masses(weights, labels, prior)
        if all(np.allclose(_shares(weights, labels, hit, num_classes), prior, atol=1e-4)
               for hit in rakable):
            break
    weights = np.clip(weights / weights.mean(), 1.0 / clip, clip)
    return _with_class_masses(weights, labels, prior)


def _shares(weights: np.ndarray, labels: np.ndarray, hit: np.ndarray,
            num_classes: int) -> np.ndarray:
    mass = np.bincount(labels[hit], weights=weights[hit], minlength=num_classes)
    return mass / mass.sum()


def _token_ratio(weights: np.ndarray, labels: np.ndarray, hit: np.ndarray,
                 prior: np.ndarray) -> np.ndarray:
    """(hits,) ``p(c) / p_w(c | t)`` of each text that holds the token (1 where absent)."""
    share = _shares(weights, labels, hit, len(prior))
    ratio = np.divide(prior, share, out=np.ones(len(prior)), where=share > 0)
    return ratio[labels[hit]]


def _with_class_masses(weights: np.ndarray, labels: np.ndarray,
                       target: np.ndarray) -> np.ndarray:
    """``weights`` rescaled per class so that class ``c`` weighs ``target[c]`` of the total
    (``target`` sums to 1 over the classes present); mean 1."""
    mass = np.bincount(labels, weights=weights, minlength=len(target))
    scale = np.divide(target * len(labels), mass, out=np.zeros(len(target)), where=mass > 0)
    return weights * scale[labels]


def class_weights(labels: np.ndarray, *, num_classes: int,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """(N,) per-sample weights under which every class present weighs the same, mean 1:
    ``n / (C_present * n_c)``, or ``weights`` rescaled per class to that."""
    labels = np.asarray(labels)
    if not len(labels):
        return np.ones(0)
    present = np.bincount(labels, minlength=num_classes) > 0
    base = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    return _with_class_masses(base, labels, present / present.sum())


def token_spans(text: str, token: str) -> list[tuple[int, int]]:
    """(start, end) character spans of ``text`` where ``token`` (a word or space-separated
    words) occurs as consecutive word tokens, as :func:`~relabeler.selectors.shortcuts.
    contains_token` counts them (on the lowercased text, whose characters are mapped back to
    the text's own where lowercasing changed a length, as "İ" does). A Chinese token may be
    written with or without the spaces of its n-gram: "优惠" and "优 惠" find the same span."""
    words = word_tokens(token)
    if not words:
        return []
    lowered = text.lower()
    if len(lowered) == len(text):
        origin = None
    else:  # one entry per lowercased character: the text character it came from
        origin = [i for i, ch in enumerate(text) for _ in ch.lower()] + [len(text)]
    # each unit as it is counted ("ＡＩ" as "ai"), at the place of the characters found
    found = [(m.start(), m.end(), unit_text(m.group())) for m in UNIT.finditer(lowered)]
    spans = []
    i = 0
    while i + len(words) <= len(found):
        if [w for _, _, w in found[i:i + len(words)]] == words:
            start, end = found[i][0], found[i + len(words) - 1][1]
            spans.append((start, end) if origin is None else (origin[start], origin[end]))
            i += len(words)
        else:
            i += 1
    return spans


def mask_tokens(texts: Sequence[str], tokens: Sequence[str], *, rate: float, mask: str,
                seed: int = 0) -> list[str]:
    """``texts`` with every occurrence of ``tokens`` replaced by ``mask`` in ``rate`` of the
    texts that contain one (drawn per text and token with ``seed``); ``mask = ""`` removes them.
    Only the token's characters change: the rest of the text stays as it was.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    rng = np.random.default_rng(seed)
    out = list(texts)
    for token in dict.fromkeys(tokens):
        for row in np.flatnonzero(contains_token(out, token)).tolist():
            if rng.random() < rate:
                text = out[row]
                for start, end in reversed(token_spans(text, token)):
                    text = text[:start] + mask + text[end:]
                out[row] = text
    return out


def training_weights(texts: Sequence[str], labels: np.ndarray, *, num_classes: int,
                     debias: str, tokens: Sequence[str], class_balance: str,
                     class_names: Sequence[str] | None = None) -> np.ndarray | None:
    """The loss weights ``[train] debias`` and ``class_weights`` ask for (mean 1; with both,
    the shortcut weights with every class weighing the same), or None when neither weighs."""
    if debias not in DEBIAS:
        raise ValueError(f"debias must be one of {', '.join(DEBIAS)}, got {debias!r}")
    weights = None
    if debias == "reweight":
        weights = shortcut_weights(texts, labels, tokens, num_classes=num_classes,
                                   class_names=class_names)
    if class_balance == "balanced":
        weights = class_weights(labels, num_classes=num_classes, weights=weights)
    return weights


def shortcut_tokens(shortcuts, *, top: int) -> list[str]:
    """The first ``top`` distinct tokens of a ``scores/shortcuts.parquet`` frame by rank."""
    ordered = shortcuts.sort_values("rank")["token"].tolist()
    return list(dict.fromkeys(ordered))[:top]


def tokens_to_mitigate(shortcuts, *, top: int, debias: str) -> list[str]:
    """:func:`shortcut_tokens` for ``train.debias``; a StageError where there are none (no
    token passed the shortcut test): a model trained "debiased" of nothing is an ordinary one,
    and would be recorded as mitigated."""
    tokens = shortcut_tokens(shortcuts, top=top)
    if not tokens:
        raise StageError(f"train.debias = {debias}: scores/shortcuts.parquet names no shortcut "
                         f"token (none passed the test at score.shortcut_alpha), so there is "
                         f"nothing to mitigate: train without it (--debias none; "
                         f"--class-weights still balances the classes)")
    return tokens
