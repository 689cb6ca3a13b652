"""Thin regions: parts of the data the training set under-represents, grouped and named.

Label-aware coverage (:mod:`relabeler.selectors.coverage`) flags samples whose training
neighbours are far or disagree with the model; with random splits those are mostly hard or
ambiguous samples, which no extra label fixes. A thin spot is a sub-population the unlabeled
and eval data hold in numbers but the training data lacks. :func:`representation` measures
that as a kNN density ratio: among a sample's nearest neighbours in train, eval and pool
together, the share of training rows against the share train has overall (1 = represented as
everywhere, 0 = no training row nearby). :func:`group_regions` then clusters the under-covered
samples into regions and :func:`region_terms` names each by the words that set its texts apart
from the rest (mean TF-IDF inside minus outside); in Chinese or Japanese text, written without
spaces, by its characters and pairs of adjacent characters (:mod:`relabeler.selectors.
text_units`).
"""

from __future__ import annotations

import re

import numpy as np

from relabeler.selectors._checks import as_matrix
from relabeler.selectors.knn import knn, unit_rows
from relabeler.selectors.text_units import UNIT, is_single_unit, unit_text

#: A word that can name a region: two letters or more (no digits, no underscores).
_NAME_WORD = re.compile(r"[^\W\d_]{2,}")


def representation(train_features: np.ndarray, query_features: np.ndarray, *,
                   k: int = 20) -> np.ndarray:
    """How well the training data represents each query's neighbourhood.

    Parameters
    ----------
    train_features : (N, D) float32 training samples.
    query_features : (Q, D) float32 the unlabeled and eval samples (all of them: they are the
        distribution the training data is compared to).
    k : neighbours looked at among train and queries together (the query itself excluded).

    Returns
    -------
    (Q,) float32 >= 0: the share of training rows among the k nearest neighbours divided by
    ``N / (N + Q - 1)``; below 1 = under-represented, 0 = no training row among them.
    """
    train_features = as_matrix("train_features", train_features)
    query_features = as_matrix("query_features", query_features,
                               cols=train_features.shape[1])
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k}")
    n, q = len(train_features), len(query_features)
    if q == 0:
        return np.zeros(0, dtype=np.float32)
    everything = np.concatenate([train_features, query_features])
    nb = knn(everything, query_features, k=min(k, n + q - 1), metric="cosine",
             query_rows=np.arange(n, n + q))
    valid = nb.indices >= 0
    share = ((nb.indices < n) & valid).sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    expected = n / max(n + q - 1, 1)
    return (share / expected).astype(np.float32)


def group_regions(features: np.ndarray, *, max_regions: int = 20, seed: int = 0) -> np.ndarray:
    """Regions of the under-covered samples: k-means on their L2-normalised features into
    ``round(sqrt(T / 2))`` regions (the usual rule of thumb; at most ``max_regions``).

    Parameters
    ----------
    features : (T, D) float32 the under-covered samples.

    Returns
    -------
    (T,) int64 region of each sample, 0 = the largest region, then by size.
    """
    features = as_matrix("features", features)
    if max_regions < 1:
        raise ValueError(f"max_regions: expected >= 1, got {max_regions}")
    t = len(features)
    n_regions = int(np.clip(round(np.sqrt(t / 2)), 1, max_regions)) if t else 0
    if n_regions <= 1:
        return np.zeros(t, dtype=np.int64)
    from sklearn.cluster import KMeans

    normed = unit_rows(features)
    raw = KMeans(n_regions, n_init=4, random_state=seed).fit_predict(normed)
    by_size = np.argsort(-np.bincount(raw, minlength=n_regions), kind="stable")
    rename = np.empty(n_regions, dtype=np.int64)
    rename[by_size] = np.arange(n_regions)
    return rename[raw]


def region_terms(texts: list[str], regions: np.ndarray, *, top: int = 8) -> dict[int, list[str]]:
    """The words that characterise each region: highest mean TF-IDF inside the region minus
    the mean over all other texts (terms in at least 2 texts, English stop words dropped; see
    :func:`term_units` for the terms). A CJK character is left out where a pair of characters
    that holds it scores as high.

    Parameters
    ----------
    texts : N texts.
    regions : (N,) int region of each text, -1 = in no region (the rest).

    Returns
    -------
    region -> up to ``top`` terms, most characteristic first (only terms scoring above 0).
    """
    regions = np.asarray(regions)
    if regions.shape != (len(texts),):
        raise ValueError(f"regions: expected shape ({len(texts)},), got {regions.shape}")
    names = sorted(int(r) for r in set(regions.tolist()) if r >= 0)
    if not names:
        return {}
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=min(2, len(texts)),
                                 analyzer=term_units)
    try:
        tfidf = vectorizer.fit_transform(texts)
    except ValueError:  # nothing but stop words and rare terms
        return {r: [] for r in names}
    vocabulary = [str(term) for term in vectorizer.get_feature_names_out()]
    pairs_of = _pairs_of_characters(vocabulary)
    terms = {}
    for r in names:
        inside = regions == r
        mean_in = np.asarray(tfidf[inside].mean(axis=0)).ravel()
        mean_out = (np.asarray(tfidf[~inside].mean(axis=0)).ravel() if (~inside).any()
                    else np.zeros_like(mean_in))
        lift = mean_in - mean_out
        # a character beside its own pair at the same lift (应用, 应, 用) says nothing the pair
        # does not: it goes, and the next term takes its place (the tolerance absorbs the
        # rounding of two means of the same TF-IDF values)
        covered = np.zeros(len(vocabulary), dtype=bool)
        for single, pairs in pairs_of.items():
            covered[single] = lift[pairs].max() >= lift[single] - 1e-12
        order = np.argsort(-np.where(covered, -np.inf, lift), kind="stable")[:top]
        terms[r] = [vocabulary[i] for i in order if lift[i] > 0 and not covered[i]]
    return terms


def _pairs_of_characters(vocabulary: list[str]) -> dict[int, list[int]]:
    """Each single-character term of ``vocabulary`` (a CJK ideograph or kana) that a pair
    term holds -> the places of those pairs; empty for text written with spaces."""
    index = {term: i for i, term in enumerate(vocabulary)}
    pairs_of: dict[int, list[int]] = {}
    for i, term in enumerate(vocabulary):
        if len(term) == 2 and is_single_unit(term[0]) and is_single_unit(term[1]):
            for char in dict.fromkeys(term):
                if char in index:
                    pairs_of.setdefault(index[char], []).append(i)
    return pairs_of


def term_units(text: str) -> list[str]:
    """The terms of ``text`` that may name a region, lowercased: each word of two letters or
    more that is no English stop word, and each CJK ideograph or kana with each pair of them
    adjacent in the text ("手机很好": 手, 机, 很, 好, 手机, 机很, 很好). A single character of
    Chinese is often a word, and a pair stands in for the two-character words that make up
    most of its vocabulary."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    lowered = text.lower()
    terms = []
    previous_end = -1  # where the last single-character unit ended
    for match in UNIT.finditer(lowered):
        unit = unit_text(match.group())
        if is_single_unit(unit):
            terms.append(unit)
            if match.start() == previous_end:
                terms.append(unit_text(lowered[match.start() - 1:match.end()]))
            previous_end = match.end()
        elif _NAME_WORD.fullmatch(unit) and unit not in ENGLISH_STOP_WORDS:
            terms.append(unit)
    return terms
