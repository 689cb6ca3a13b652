"""Distribution bias: words and word pairs that go with one class far more than its prior says.

A classifier can learn a token that co-occurs with a class (a source tag, a template phrase, a
product name) instead of the meaning. Gardner et al. 2021 ("Competency problems") test every
feature against the class prior: with ``n`` the number of training texts that contain a token,
``p_hat`` the share of them in class ``c`` and ``p0`` the share of class ``c`` in the corpus,

    z = (p_hat - p0) / sqrt(p0 (1 - p0) / n).

Tokens seen in fewer than ``min_count`` texts are not tested. Whether a token is *reported* is
decided by the exact one-sided binomial tail P(X >= k | n, p0), Bonferroni-corrected over every
(token, class) pair tested: the normal approximation behind z overstates the significance of
rare tokens of small classes, and a corpus without a shortcut must report none.

The reported pairs are *ranked* by two orderings merged: z, and ``association``, the lower
one-sided 99% Clopper-Pearson bound of ``p_hat`` rescaled so that 0 is the class prior and 1 is
"only in this class", ``(lower - p0) / (1 - p0)``. A pair ranks by the better of its two
positions; ties go to the higher association (a token that nearly decides its class before one
that is merely frequent in it), then to the better of the worse positions. z alone misses the
shortcut that nearly decides a large class on its own (Gardner's competency problem): its
ceiling for a token found only in class c, sqrt(n (1 - p0) / p0), is low when p0 is large (a
tag in half of the 87% "ham" texts of sms-spam reaches z = 17, "call", 60% spam, reaches 29).
Association alone buries a common word planted into a class, whose existing uses elsewhere
dilute its purity. The bound keeps a rare token that happens to be pure from outranking a
frequent one (pure in 10 texts: 0.63 before rescaling; in 1,000: 0.995). The tie rule decides
the top when the first by z and the first by association differ: on 800 sms-spam training texts
with a tag in half of the ham texts, the tag (association 0.92) and `txt` (first by z,
0.58-0.70) both place first; the worse position gave `txt` the top in 3 of 10 seeds
(docs/benchmarks.md, "Shortcut mitigation at four layers").

Where the model's word attributions exist, :func:`attribution_shares` gives the share of the
positive attribution mass for a class that a token carries across the samples attributed to that
class (TrustAI's rationale counting): a token that is frequent in a class *and* carries the
model's decisions for it is the shortcut the model actually uses.

Texts are counted per document (a token repeated in one text counts once), lowercased, split
into the units of :mod:`relabeler.selectors.text_units`: runs of word characters, except that
each CJK ideograph and kana is a unit of its own, so that n-grams of Chinese or Japanese text
are its characters and character pairs. An n-gram is named by its units joined by one space.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.feature_extraction.text import CountVectorizer

from relabeler.selectors._checks import as_labels
from relabeler.selectors.text_units import text_units

#: One-sided level of the lower confidence bound that ranks the reported pairs.
BOUND_LEVEL = 0.01


@dataclass(frozen=True)
class ShortcutStats:
    """(token, class) pairs that passed the test, most associated first.

    tokens: (M,) object, the token or word pair ("click here"). classes: (M,) int64 class ids.
    count: (M,) texts containing the token. class_count: (M,) of those, texts of the class.
    class_share: (M,) class_count / count. z: (M,) Gardner's z. p_value: (M,) exact binomial tail.
    association: (M,) in [0, 1], the lower bound of the share rescaled (0 = the prior).
    n_tested: (token, class) pairs tested; p_threshold: alpha / n_tested (Bonferroni);
    n_significant: pairs that passed (M when ``top`` did not cut).
    prior: (C,) class shares of the corpus.
    """

    tokens: np.ndarray
    classes: np.ndarray
    count: np.ndarray
    class_count: np.ndarray
    class_share: np.ndarray
    z: np.ndarray
    p_value: np.ndarray
    association: np.ndarray
    n_tested: int
    n_significant: int
    alpha: float
    p_threshold: float
    min_count: int
    prior: np.ndarray

    def __len__(self) -> int:
        return len(self.tokens)


def word_tokens(text: str) -> list[str]:
    """The word tokens of ``text`` as the counting sees them (lowercased units)."""
    return text_units(text)


def contains_token(texts: Iterable[str], token: str) -> np.ndarray:
    """(N,) bool: whether each text contains ``token`` (a word or space-separated n-gram) as
    consecutive word tokens, matching the counting of :func:`token_class_stats`. The token is
    split as the texts are, so "优惠" and the n-gram "优 惠" are the same two characters."""
    words = tuple(word_tokens(token))
    width = len(words)
    out = []
    for text in texts:
        seq = word_tokens(text or "")
        # a token without a word in it is in no text
        out.append(width > 0 and any(tuple(seq[i:i + width]) == words
                                     for i in range(len(seq) - width + 1)))
    return np.asarray(out, dtype=bool)


def token_class_stats(texts: Sequence[str], labels, *, num_classes: int | None = None,
                      max_ngram: int = 2, min_count: int = 10, alpha: float = 0.01,
                      top: int | None = None) -> ShortcutStats:
    """Tokens and n-grams of up to ``max_ngram`` words over-represented in a class.

    texts: N strings. labels: (N,) int class ids in [0, num_classes). A (token, class) pair is
    tested when the token occurs in at least ``min_count`` texts and the class holds at least
    one text; it is kept when its binomial tail is below ``alpha / n_tested``. Kept pairs are
    ranked by :func:`merged_order` of z and association; ``top`` caps the pairs returned. A
    token found in exactly the texts of a longer kept n-gram of the same class is listed as
    that n-gram alone. Returns an empty result when nothing passes.
    """
    texts = list(texts)
    labels = as_labels("labels", labels, n=len(texts), num_classes=num_classes)
    if not texts:
        raise ValueError("texts: expected at least one text, got none")
    if any(not isinstance(t, str) for t in texts):
        bad = next(i for i, t in enumerate(texts) if not isinstance(t, str))
        raise TypeError(f"texts: expected strings, got {type(texts[bad]).__name__} at row {bad}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    present = np.bincount(labels, minlength=num_classes)
    if int((present > 0).sum()) < 2:
        raise ValueError(f"labels: expected at least 2 classes with texts, got "
                         f"{int((present > 0).sum())} (class counts {present.tolist()})")
    if max_ngram < 1:
        raise ValueError(f"max_ngram: expected >= 1, got {max_ngram}")
    if min_count < 1:
        raise ValueError(f"min_count: expected >= 1, got {min_count}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha}")
    return _compute_stats(texts, labels, num_classes, max_ngram, min_count, alpha, top)


def _compute_stats(texts: list[str], labels: np.ndarray, num_classes: int, max_ngram: int,
                   min_count: int, alpha: float, top: int | None) -> ShortcutStats:
    n_docs = len(texts)
    present = np.bincount(labels, minlength=num_classes)
    prior = present / n_docs
    # text_units lowercases the text as the vectorizer would, and counts "ＡＩ" as "ai"
    vectorizer = CountVectorizer(lowercase=False, tokenizer=text_units, token_pattern=None,
                                 binary=True, ngram_range=(1, max_ngram), min_df=min_count,
                                 dtype=np.int64)
    try:
        doc_tokens = vectorizer.fit_transform(texts).tocsc()
    except ValueError:  # no token reaches min_count (or the texts hold no word at all)
        return _empty(prior, alpha, min_count)
    vocab = vectorizer.get_feature_names_out().astype(object)
    onehot = np.zeros((n_docs, num_classes), dtype=np.int64)
    onehot[np.arange(n_docs), labels] = 1
    joint = np.asarray(doc_tokens.T @ onehot)             # (V, C) texts with token and class
    count = joint.sum(axis=1)                             # (V,)
    tested = present > 0
    n_tested = int(len(vocab) * tested.sum())
    p_threshold = alpha / n_tested
    share = joint / count[:, None]
    p0 = np.where(tested, prior, 0.5)
    z = (share - p0) / np.sqrt(p0 * (1 - p0) / count[:, None])
    # one-sided exact tail P(X >= k), X ~ Binomial(count, p0), where the share is above the
    # prior (the rest cannot pass; the tail is slow to evaluate over every pair)
    above = (share > p0) & tested
    n_all = np.broadcast_to(count[:, None], joint.shape)
    p0_all = np.broadcast_to(p0, joint.shape)
    p_value = np.ones(joint.shape)
    p_value[above] = stats.binom.sf(joint[above] - 1, n_all[above], p0_all[above])
    keep = (p_value < p_threshold) & above
    keep &= ~_inside_kept_ngrams(vocab, count, keep)
    rows, cols = np.nonzero(keep)
    k, n, prior_kept = joint[rows, cols], count[rows], p0[cols]
    lower = stats.beta.ppf(BOUND_LEVEL, k, n - k + 1)   # one-sided Clopper-Pearson, k >= 1
    association = np.clip((lower - prior_kept) / (1 - prior_kept), 0.0, 1.0)
    order = merged_order(z[rows, cols], association, vocab[rows].astype(str), tie=association)
    if top is not None:
        order = order[:top]
    rows, cols, association = rows[order], cols[order], association[order]
    return ShortcutStats(tokens=vocab[rows], classes=cols.astype(np.int64), count=count[rows],
                         class_count=joint[rows, cols], class_share=share[rows, cols],
                         z=z[rows, cols], p_value=p_value[rows, cols], association=association,
                         n_tested=n_tested, n_significant=int(keep.sum()),
                         alpha=alpha, p_threshold=p_threshold, min_count=min_count, prior=prior)


def _inside_kept_ngrams(vocab: np.ndarray, count: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(V, C) True where a kept token is part of a longer kept n-gram of the same class found
    in exactly the same texts (equal counts: the n-gram's texts are among the token's): the
    n-gram says it all, and is listed alone (a phrase "zq xj" ranked behind its own words "zq"
    and "xj", which tie with it on every statistic and sort first by name)."""
    index = {token: i for i, token in enumerate(vocab.tolist())}
    inside = np.zeros(keep.shape, dtype=bool)
    for row, col in zip(*np.nonzero(keep), strict=True):
        words = vocab[row].split(" ")
        for width in range(1, len(words)):
            for start in range(len(words) - width + 1):
                part = index.get(" ".join(words[start:start + width]))
                if part is not None and keep[part, col] and count[part] == count[row]:
                    inside[part, col] = True
    return inside


def merged_order(*keys_then_names: np.ndarray, tie: np.ndarray | None = None) -> np.ndarray:
    """Indices that sort items by several scores at once (higher = first): each item ranks by
    its best position in any one ordering, ties by ``tie`` (higher first; None: skipped), then
    by its worst position, then by name (the last array).
    """
    *keys, names = keys_then_names
    positions = []
    for key in keys:
        order = np.lexsort((names, -key))
        position = np.empty(len(key), dtype=np.int64)
        position[order] = np.arange(len(key))
        positions.append(position)
    stacked = np.stack(positions) if positions else np.zeros((1, len(names)), np.int64)
    ties = np.zeros(len(names)) if tie is None else -np.asarray(tie, dtype=np.float64)
    return np.lexsort((names, stacked.max(axis=0), ties, stacked.min(axis=0)))


def _empty(prior: np.ndarray, alpha: float, min_count: int) -> ShortcutStats:
    return ShortcutStats(tokens=np.zeros(0, object), classes=np.zeros(0, np.int64),
                         count=np.zeros(0, np.int64), class_count=np.zeros(0, np.int64),
                         class_share=np.zeros(0), z=np.zeros(0), p_value=np.zeros(0),
                         association=np.zeros(0), n_tested=0, n_significant=0, alpha=alpha,
                         p_threshold=float("nan"), min_count=min_count, prior=prior)


def attribution_shares(tokens: Sequence[str], classes, attributed: Sequence[tuple[int, Sequence[
        tuple[str, float]]]], *, num_classes: int) -> np.ndarray:
    """The share of a class's positive attribution mass that each token carries.

    tokens: M tokens (words or space-separated n-grams) with classes (M,) their class ids.
    attributed: one entry per attributed sample, ``(class id attributed to, [(span text,
    score), ...])`` with the spans in text order. A word's mass in a sample is the positive part
    of its span's score; an n-gram's, the sum over consecutive spans that spell it. Returns (M,)
    float64: the token's mass over all samples attributed to its class divided by their total
    positive mass; NaN where no sample was attributed to that class.
    """
    classes = as_labels("classes", classes, n=len(tokens), num_classes=num_classes)
    wanted: dict[tuple[str, ...], int] = {}
    for token in tokens:
        wanted.setdefault(tuple(token.split(" ")), len(wanted))
    widths = sorted({len(w) for w in wanted})
    mass = np.zeros((len(wanted), num_classes))
    total = np.zeros(num_classes)
    seen = np.zeros(num_classes, dtype=bool)
    for target, spans in attributed:
        if not 0 <= target < num_classes:
            raise ValueError(f"attributed: class id {target} is out of range for "
                             f"{num_classes} classes")
        seen[target] = True
        words: list[str] = []
        scores: list[float] = []
        for text, score in spans:
            # a span may hold several word tokens (or none: punctuation); each carries its
            # span's score split evenly
            parts = word_tokens(text)
            for part in parts:
                words.append(part)
                scores.append(max(float(score), 0.0) / len(parts))
        total[target] += sum(scores)
        for width in widths:
            for i in range(len(words) - width + 1):
                row = wanted.get(tuple(words[i:i + width]))
                if row is not None:
                    mass[row, target] += sum(scores[i:i + width])
    rows = np.array([wanted[tuple(t.split(" "))] for t in tokens], dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(seen[classes] & (total[classes] > 0),
                         mass[rows, classes] / total[classes], np.nan)
    return share.astype(np.float64)
