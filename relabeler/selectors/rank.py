"""Combine suspect signals into one ``suspect_score`` in [0, 1], a suggested label and reasons.

Scoring (the signals) and ranking (this module) are separate steps. The combination has no
weights fitted to any noise mask or evaluation set; it uses only the data at hand. (cleanlab's
``get_label_quality_ensemble_scores`` averages one score over several models' probabilities;
it has no mean of ranks over different kinds of evidence, hence this module.)

Each view of a training sample says how much it prefers another class over the given one, as a
normalised margin ``(1 - (p(given) - max p(other))) / 2``: the in-sample model, the out-of-fold
models, the similarity-weighted labels of its nearest neighbours, and the training dynamics
(the margin averaged over epochs). The job corrects each view for label noise first
(:mod:`relabeler.selectors.noise`). The suspect score is the mean of the views'
rank-normalised values: each view orders the samples, and a view whose margins are saturated
(a fine-tuned model that fits its training set, scoring almost every sample 0 or 1) still
counts as much as one whose margins spread out. Nothing is fitted. Views cleanlab cannot see
(neighbours on fine-tuned features, training dynamics) are what lift it above out-of-fold
confidence alone. The mean of the margins themselves ranked flips worse (docs/benchmarks.md,
"Scoring").
Near-duplicates with conflicting labels are a reason shown to annotators and can name the
suggestion, but they do not vote: in a pair that disagrees, both members look equally wrong.
The suggested label is the best other class of the averaged class distributions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from relabeler.selectors._checks import as_probs, probs_and_labels

SIGNALS: dict[str, str] = {}


def register_signal(name: str, reason: str) -> None:
    """Add a signal and the phrase shown to annotators when it is among a sample's reasons.
    Signals given the same phrase are one reason (:func:`top_reasons`): two measures of the
    same evidence."""
    if name in SIGNALS:
        raise ValueError(f"signal {name!r} is registered already")
    SIGNALS[name] = reason


_MODEL = "the model doubts its label"
_OOF = "models that never saw it doubt its label"
_KNN = "its nearest training examples carry other labels"
for _name, _reason in (
    # each view twice, as 1 - p(given) and as its margin: one fact, one reason
    ("oof_self_confidence", _OOF),
    ("oof_margin", _OOF),
    ("self_confidence", _MODEL),
    ("margin", _MODEL),
    ("area_under_margin", "the model learned it late or never during training"),
    ("knn_disagreement", _KNN),
    ("duplicate_conflict", "a near-duplicate text carries another label"),
    ("representer", "it pulls hard against its own label (representer self-influence)"),
    ("knn_margin", _KNN),
    ("words_margin", "its words point to another class"),
):
    register_signal(_name, _reason)

def rank_normalize(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (1 = the largest value); ties share a rank.

    Returns
    -------
    (N,) float64.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values: expected shape (N,), got {values.shape}")
    if len(values) <= 1:
        return np.zeros(len(values))
    return (rankdata(values, method="average") - 1.0) / (len(values) - 1)


def _reason_rank(values: np.ndarray) -> np.ndarray:
    """The share of the other rows a row's value is at least, in [0, 1] (ties take the top
    of their ranks: when a fifth of the rows tie at the strongest value, each of them reaches
    it, where average ranks would put all of them under a 0.9 bar); a value no higher than the
    lowest one is 0 (a signal equal everywhere says nothing)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) <= 1:
        return np.zeros(len(values))
    share = (rankdata(values, method="max") - 1.0) / (len(values) - 1)
    return np.where(values > values.min(), share, 0.0)


def _check_signals(signals: Mapping[str, np.ndarray]) -> int:
    if not signals:
        raise ValueError("signals: expected at least one signal")
    lengths = {name: len(np.asarray(v)) for name, v in signals.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"signals: lengths differ {lengths}")
    for name, v in signals.items():
        if not np.isfinite(np.asarray(v, dtype=np.float64)).all():
            raise ValueError(f"signals[{name!r}]: contains NaN or inf")
    return next(iter(lengths.values()))


def rank_mean(signals: Mapping[str, np.ndarray],
              weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Weighted mean of rank-normalised signals.

    Returns
    -------
    (N,) float32 in [0, 1]; higher = more suspect.
    """
    _check_signals(signals)
    weights = dict(weights or {})
    unknown = set(weights) - set(signals)
    if unknown:
        raise ValueError(f"weights: no such signals {sorted(unknown)}")
    total = np.zeros(len(next(iter(signals.values()))))
    weight_sum = 0.0
    for name, value in signals.items():
        w = float(weights.get(name, 1.0))
        total += w * rank_normalize(value)
        weight_sum += w
    if weight_sum <= 0:
        raise ValueError("weights: must not all be zero")
    return (total / weight_sum).astype(np.float32)


def ensemble_posterior(distributions: Mapping[str, np.ndarray]) -> np.ndarray:
    """The mean of several (N, C) class distributions (views of the same samples).

    Returns
    -------
    (N, C) float32, rows summing to 1.
    """
    if not distributions:
        raise ValueError("distributions: expected at least one (N, C) distribution")
    arrays = [as_probs(f"distributions[{name!r}]", d) for name, d in distributions.items()]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"distributions: shapes differ {sorted(shapes)}")
    return np.mean(arrays, axis=0).astype(np.float32)


def ranks_from_scores(suspect_score: np.ndarray) -> np.ndarray:
    """Rank 1 = most suspect; ties keep input order (the caller sorts its rows by id first).

    Returns
    -------
    (N,) int64 ranks 1..N.
    """
    score = np.asarray(suspect_score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(len(score), dtype=np.int64)
    ranks[order] = np.arange(1, len(score) + 1)
    return ranks


def top_reasons(signals: Mapping[str, np.ndarray], *, threshold: float = 0.9,
                max_reasons: int = 3, always: Mapping[str, np.ndarray] | None = None
                ) -> list[list[str]]:
    """Per sample, the phrases of its strongest signals (rank-normalised >= ``threshold``),
    strongest first; ``always`` holds boolean masks of reasons shown whenever true (a
    conflicting duplicate is a reason on its own). Signals registered with the same phrase
    (a view's self-confidence and its margin) are one reason, at the stronger of their ranks:
    the same evidence is not shown twice in two wordings.
    """
    n = _check_signals(signals)
    # one column per phrase, in the order of its first signal
    reasons = list(dict.fromkeys(SIGNALS[name] for name in signals if name in SIGNALS))
    if not reasons:
        return [[] for _ in range(n)]
    normalized = np.stack([np.max([_reason_rank(signals[name]) for name in signals
                                   if SIGNALS.get(name) == reason], axis=0)
                           for reason in reasons], axis=1)
    forced: dict[str, np.ndarray] = {}
    for name, mask in (always or {}).items():
        forced[SIGNALS[name]] = forced.get(SIGNALS[name], False) | np.asarray(mask, dtype=bool)
    # strongest first (enough columns for a forced reason to be skipped); a signal counts
    # while it reaches the threshold
    order = np.argsort(-normalized, axis=1, kind="stable")[:, :max_reasons + len(forced)]
    strong = np.take_along_axis(normalized, order, axis=1) >= threshold
    # rows share few distinct (forced reasons, strong signals in order) keys: each key's phrases
    # are worked out once (strong is a prefix of each row: its values are sorted)
    forced_cols = np.stack(list(forced.values()), axis=1) if forced else np.empty((n, 0), bool)
    keys = np.concatenate([forced_cols.astype(np.int64), np.where(strong, order, -1)], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    phrases = []
    for key in unique.tolist():
        flags, strongest = key[:len(forced)], key[len(forced):]
        picked = [name for name, on in zip(forced, flags, strict=True) if on]
        for j in strongest:
            if len(picked) >= max_reasons or j < 0:
                break
            if reasons[j] not in picked:
                picked.append(reasons[j])
        phrases.append(picked[:max_reasons])
    return [list(phrases[u]) for u in inverse.reshape(-1).tolist()]


def wrong_probability(posterior: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) float32: 1 - the noise-aware posterior of each row's given label, the score's
    chance that the label is wrong. Uncalibrated (the views are averaged): the remaining-errors
    estimate calibrates it on the answered tasks."""
    rows = np.arange(len(labels))
    return (1.0 - posterior[rows, labels]).astype(np.float32)


def suggest_labels(posterior: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The most probable class other than the given one under ``posterior``, and its
    probability.

    Returns
    -------
    suggested : (N,) int64; confidence : (N,) float32.
    """
    posterior, labels = probs_and_labels(posterior, labels, name="posterior")
    others = posterior.copy()
    others[np.arange(len(labels)), labels] = -np.inf
    suggested = others.argmax(axis=1).astype(np.int64)
    return suggested, posterior[np.arange(len(labels)), suggested].astype(np.float32)


#: Views of "does the evidence prefer another class", each a normalised margin in [0, 1]:
#: the in-sample model, the out-of-fold models, the nearest neighbours' labels, the
#: training dynamics (area under the margin) and the words (a regression of the texts).
VIEWS = ("margin", "oof_margin", "knn_margin", "area_under_margin", "words_margin")


def combine(signals: Mapping[str, np.ndarray], *, views: Sequence[str] = VIEWS) -> np.ndarray:
    """One suspect score from the signals of N training samples: the mean of the
    rank-normalised ``views`` present (:func:`rank_mean`).

    Parameters
    ----------
    signals : name -> (N,) suspect signals in [0, 1] (higher = more suspect).
    views : the signals that vote; others are reported, not combined.

    Returns
    -------
    (N,) float32 in [0, 1].
    """
    present = {name: signals[name] for name in views if name in signals}
    if not present:
        raise ValueError(f"signals: none of the views {list(views)} is present "
                         f"(got {sorted(signals)})")
    return rank_mean(present)
