"""A bag-of-words view: class probabilities from the words of a text, not from the encoder.

Scikit-learn's TF-IDF of words and word pairs with a logistic regression, fitted on training
texts and their given labels. The model's, the fold models' and the neighbours' views all come
from the same encoder, so their errors go together; the words make other ones. On
drug-review, where the packaged MiniLM's head is about 70% accurate, the words alone are about
as accurate.

* :func:`out_of_fold_lexical_probabilities`: each training text's probabilities from the
  regressions of the other folds: a voting view of the training queue (``words_margin``).
  It lifted drug-review's queue AUPRC from .444 to .479 (docs/benchmarks.md, "Scoring with
  the words").
* :func:`lexical_probabilities`: other texts' probabilities from one regression on every
  training text: the eval audit's third view of an eval row, beside the model and the
  training neighbours' out-of-fold probabilities (docs/benchmarks.md, "Eval audit: a view
  from the words").

Both give no view (None, logged) when the words tell no more than the class shares: a view
that knows nothing still moves a mean and a mean of ranks.

A word is what scikit-learn's default pattern finds (a run of two or more word characters),
except that each CJK ideograph and kana is one (:func:`relabeler.selectors.text_units.word_units`,
as the shortcuts count them): Chinese and Japanese, written without spaces, are read by
characters and character pairs. Read as whole clauses, no two Chinese reviews shared a word and
the view added nothing; read by characters, it lifted the queue's AUPRC on Chinese reviews from
.378 to .448 (docs/benchmarks.md, "Chinese text: the words by characters"). English text is
read exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from relabeler.selectors._checks import as_labels
from relabeler.selectors.noise import NoiseModel
from relabeler.selectors.text_units import is_single_unit, word_units

log = logging.getLogger(__name__)

#: The logistic regression's inverse L2 strength. 3, 10 and 30 ranked drug-review's flipped
#: eval labels alike (AUPRC .500-.501); 3 left the smallest audit gap.
INVERSE_STRENGTH = 3.0
#: Training texts the regression is fitted on at most (a fixed random sample beyond): its
#: fit grows with the rows and the vocabulary, and the view averages with two others.
MAX_TEXTS = 50_000
#: Most words and word pairs kept (the most frequent), so memory stays bounded.
MAX_TERMS = 200_000
#: Texts each fold's regression is fitted on at most in the out-of-fold view of the training
#: rows (five fits): at 50,000 BBC articles, 166 s on two busy cores.
MAX_FOLD_TEXTS = 20_000
#: Dimensions of :func:`word_features` (the truncated SVD of the TF-IDF).
WORD_DIMS = 256
#: A term is shown as evidence while its push is at least this share of the strongest
#: term's in the same text (weaker ones say little of why the words point elsewhere).
SHOWN_SHARE = 0.25
#: Training texts the check that the words tell anything is cross-validated on at most.
CHECK_TEXTS = 10_000
CHECK_FOLDS = 3


def words_vote(noise_model: NoiseModel | None) -> bool:
    """Whether the words are a view under ``noise_model`` (None: none): not under a
    class-conditional one, where they cost the training queue AUPRC (0.935 against 0.945)
    and the eval ranking (0.935 against 0.937) on sms-spam and bbc-news (docs/benchmarks.md,
    "Scoring with the words")."""
    return noise_model is None or noise_model.kind != "class_conditional"


def lexical_probabilities(train_texts: Sequence[str], labels: np.ndarray, num_classes: int,
                          texts: Sequence[str], *, seed: int = 0, checked: bool = False
                          ) -> np.ndarray | None:
    """Class probabilities of ``texts`` from a TF-IDF logistic regression fitted on the
    training texts.

    Parameters
    ----------
    train_texts : (N,) the training texts.
    labels : (N,) int class ids in [0, num_classes) of the training texts.
    num_classes : C.
    texts : (Q,) the texts to predict.
    seed : picks the training texts when there are more than :data:`MAX_TEXTS`.
    checked : the caller knows already that the words tell more than the class shares (the
        training queue's :func:`out_of_fold_lexical_probabilities` of the same texts and
        labels gave a view): the check below is not made again.

    Returns
    -------
    (Q, C) float64 rows summing to 1 (a class no training text holds gets 0), or None when
    the training texts cannot make the view: fewer than two classes among them, no word that
    two of them share, or words that tell no more than the class shares (their
    cross-validated log loss on the training labels, :data:`CHECK_FOLDS` folds over at most
    :data:`CHECK_TEXTS` texts, is not below that of the class shares). None is logged; the
    caller goes on without the view.

    The last check is there because a view that knows nothing still moves a mean: with the
    training texts shuffled against their labels, the eval audit's AUPRC fell by .013 on
    drug-review and bbc-news with the words averaged in. There the words' log loss was above
    the class shares' (0.92 against 0.90, 1.65 against 1.60); with the real texts it was
    below (0.83, 0.68).
    """
    labels = as_labels("labels", labels, n=len(train_texts), num_classes=num_classes)
    if len(texts) == 0:
        return np.zeros((0, num_classes), dtype=np.float64)
    chosen = _fit_rows(len(labels), seed)
    present = np.unique(labels[chosen])
    if len(present) < 2:
        log.info("lexical view: the training texts hold %d class; no view from the words",
                 len(present))
        return None
    if not checked:  # the check first: words that tell nothing are not worth the fit
        rows = np.arange(len(labels))
        if len(rows) > CHECK_TEXTS:
            rows = np.sort(np.random.default_rng(seed + 1).choice(rows, CHECK_TEXTS,
                                                                  replace=False))
        held_out = _out_of_fold([train_texts[i] for i in rows], labels[rows], num_classes,
                                folds=CHECK_FOLDS, seed=seed, max_fit=CHECK_TEXTS)
        if held_out is None or not _tells_more_than_the_shares(held_out, labels[rows]):
            return None
    pipeline = _fitted([train_texts[i] for i in chosen], labels[chosen])
    if pipeline is None:
        return None
    probs = np.zeros((len(texts), num_classes), dtype=np.float64)
    probs[:, pipeline.classes_] = pipeline.predict_proba(list(texts))
    return probs


def out_of_fold_lexical_probabilities(texts: Sequence[str], labels: np.ndarray,
                                      num_classes: int, *, folds: int = 5, seed: int = 0
                                      ) -> np.ndarray | None:
    """Each training text's class probabilities from a TF-IDF logistic regression fitted on
    the other folds' texts (at most :data:`MAX_FOLD_TEXTS` of them): the words' view of the
    training rows, as the fold models give theirs.

    Parameters
    ----------
    texts : (N,) the training texts.
    labels : (N,) int class ids in [0, num_classes).
    num_classes : C.
    folds : texts are dealt into this many folds by ``seed``.

    Returns
    -------
    (N, C) float64 rows summing to 1, or None (logged) as :func:`lexical_probabilities`:
    fewer than two classes, no shared word, or held-out log loss not below the class shares'.
    """
    labels = as_labels("labels", labels, n=len(texts), num_classes=num_classes)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds: expected an int >= 2, got {folds!r}")
    probs = _out_of_fold(list(texts), labels, num_classes, folds=folds, seed=seed,
                         max_fit=MAX_FOLD_TEXTS)
    if probs is None or not _tells_more_than_the_shares(probs, labels):
        return None
    return probs


def word_evidence(texts: Sequence[str], labels: np.ndarray, num_classes: int,
                  rows: np.ndarray, toward: np.ndarray, *, top: int = 3, seed: int = 0
                  ) -> list[list[str]]:
    """The words of each text in ``rows`` that most move the words' regression from its given
    label toward class ``toward``: what the suspects' reason "its words point to another
    class" names.

    One regression is fitted on the training texts (at most :data:`MAX_FOLD_TEXTS` of them,
    as one fold of the out-of-fold view: which words push is clear long before); a term's
    push is its TF-IDF weight in the text times its coefficient for ``toward`` less its
    coefficient for the given label. The terms
    with the largest positive push are kept, as they read in the text: a character pair of
    Chinese or Japanese is joined without the space ("太差"), a word pair keeps it ("side
    effects"); a term whose words a kept term already holds is left out, a pair replaces a
    kept word of its own, and neither English stop words nor terms pushing less than
    :data:`SHOWN_SHARE` of the strongest are shown.

    Parameters
    ----------
    texts : (N,) the training texts.
    labels : (N,) int class ids in [0, num_classes), the given labels.
    num_classes : C.
    rows : (R,) indices into ``texts`` of the texts to explain.
    toward : (R,) int class ids in [0, num_classes), the class each is explained toward.
    top : most terms per text.

    Returns
    -------
    R lists of at most ``top`` terms, strongest first; empty where no term pushes toward the
    class, or for every row where no regression can be fitted (no word two texts share, one
    class).
    """
    labels = as_labels("labels", labels, n=len(texts), num_classes=num_classes)
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    toward = as_labels("toward", toward, n=len(rows), num_classes=num_classes)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(texts)):
        raise ValueError(f"rows: expected indices in [0, {len(texts)})")
    if len(rows) == 0:
        return []
    chosen = _fit_rows(len(labels), seed, MAX_FOLD_TEXTS)
    pipeline = (_fitted([texts[i] for i in chosen], labels[chosen])
                if len(np.unique(labels[chosen])) > 1 else None)
    if pipeline is None:
        return [[] for _ in rows]
    tfidf, regression = pipeline.named_steps["tfidf"], pipeline.named_steps["regression"]
    # each class's coefficients as a log-potential (a binary fit has one row: its second
    # class's log-odds over the first's, so the first class's row is 0)
    coef = np.zeros((num_classes, len(tfidf.vocabulary_)))
    if len(regression.classes_) == 2:
        coef[regression.classes_[1]] = regression.coef_[0]
    else:
        coef[regression.classes_] = regression.coef_
    names = tfidf.get_feature_names_out()
    x = tfidf.transform([texts[i] for i in rows]).tocsr()
    found = []
    for j, row in enumerate(rows.tolist()):
        terms = x.indices[x.indptr[j]:x.indptr[j + 1]]
        push = x.data[x.indptr[j]:x.indptr[j + 1]] * (coef[toward[j], terms]
                                                     - coef[labels[row], terms])
        kept: list[list[str]] = []
        order = np.argsort(-push, kind="stable").tolist()
        floor = SHOWN_SHARE * push[order[0]] if order else 0.0
        for k in order:
            if push[k] <= max(floor, 0.0) or len(kept) == top:
                break
            units = str(names[terms[k]]).split(" ")
            if (all(unit in ENGLISH_STOP_WORDS for unit in units)
                    or any(set(units) <= set(other) for other in kept)):
                continue
            inside = [i for i, other in enumerate(kept) if set(other) < set(units)]
            if inside:
                kept[inside[0]] = units
                kept = [other for i, other in enumerate(kept) if i not in inside[1:]]
            else:
                kept.append(units)
        found.append(_joined([_as_written(units) for units in kept], texts[row].lower()))
    return found


def _joined(terms: list[str], text: str) -> list[str]:
    """``terms`` with two that overlap in the text read as one: the character pairs 性价 and
    价比 of 性价比 are shown as 性价比, where the text holds it."""
    merged = list(terms)
    for i, first in enumerate(merged):
        for j, second in enumerate(merged):
            if (i == j or not first or not second or first[-1] != second[0]
                    or not is_single_unit(first[-1])):
                continue
            whole = first + second[1:]
            if len(first) > 1 and len(second) > 1 and whole in text:
                merged[i], merged[j] = whole, ""
    return [term for term in merged if term]


def word_features(texts: Sequence[str], *, dims: int = WORD_DIMS, seed: int = 0
                  ) -> np.ndarray | None:
    """(N, d) latent semantic features of the texts' words, d <= ``dims``: their TF-IDF (the
    words and word pairs of this view, no labels) reduced by scikit-learn's truncated SVD,
    both fitted on at most :data:`MAX_FOLD_TEXTS` of the texts (drawn by ``seed``; the SVD is
    most of the time: 20 s for 2,225 BBC articles at 256 dimensions, 10 s at 128). Coverage
    blends them into the encoder's features: they place a text by its topic's words, which
    the encoder's states hold less of. None (logged) where no word occurs in two texts."""
    from sklearn.decomposition import TruncatedSVD

    texts = list(texts)
    chosen = _fit_rows(len(texts), seed, MAX_FOLD_TEXTS)
    tfidf = _vectorizer()
    try:
        fitted = tfidf.fit_transform([texts[i] for i in chosen])
    except ValueError:  # sklearn's "no terms remain"
        log.info("word features: no word occurs in two texts; coverage uses the encoder's "
                 "features alone")
        return None
    if fitted.shape[1] < 2:
        log.info("word features: one word in two texts or more; coverage uses the encoder's "
                 "features alone")
        return None
    svd = TruncatedSVD(min(dims, fitted.shape[1] - 1, max(len(chosen) - 1, 1)),
                       random_state=seed).fit(fitted)
    whole = fitted if len(chosen) == len(texts) else tfidf.transform(texts)
    return svd.transform(whole).astype(np.float32)


def _as_written(units: list[str]) -> str:
    """A term's units as text reads them: no space beside a CJK ideograph or kana."""
    text = units[0]
    for unit in units[1:]:
        text += ("" if is_single_unit(text[-1]) or is_single_unit(unit[0]) else " ") + unit
    return text


def _fit_rows(n: int, seed: int, most: int | None = None) -> np.ndarray:
    """The training rows one regression is fitted on: all, or ``most`` (default
    :data:`MAX_TEXTS`) of them drawn by ``seed``."""
    most = MAX_TEXTS if most is None else most
    chosen = np.arange(n)
    if n > most:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, most, replace=False))
    return chosen


def _vectorizer() -> TfidfVectorizer:
    """The TF-IDF of the view: words and word pairs in at least two texts, sublinear counts."""
    return TfidfVectorizer(tokenizer=word_units, token_pattern=None, lowercase=False,
                           ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                           max_features=MAX_TERMS)


def _fitted(texts: list[str], labels: np.ndarray) -> Pipeline | None:
    """The TF-IDF regression fitted on ``texts``; None (logged) when no word occurs in two of
    them (sklearn's "no terms remain", its only ValueError here)."""
    pipeline = Pipeline([("tfidf", _vectorizer()),
                         ("regression", LogisticRegression(C=INVERSE_STRENGTH, max_iter=2000))])
    try:
        return pipeline.fit(texts, labels)
    except ValueError:
        log.info("lexical view: no word occurs in two training texts; no view from the words")
        return None


def _out_of_fold(texts: list[str], labels: np.ndarray, num_classes: int, *, folds: int,
                 seed: int, max_fit: int) -> np.ndarray | None:
    """(N, C) held-out probabilities, each fold predicted by a regression fitted on at most
    ``max_fit`` texts of the others; None (logged) when that cannot be done."""
    present = np.unique(labels)
    if len(labels) < 2 * folds or len(present) < 2:
        log.info("lexical view: %d training texts of %d class(es) are too few to check that "
                 "the words tell anything; no view from the words", len(labels), len(present))
        return None
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(labels)) % folds
    probs = np.zeros((len(labels), num_classes), dtype=np.float64)
    for f in range(folds):
        fit_rows = np.flatnonzero(fold != f)
        if len(fit_rows) > max_fit:
            fit_rows = np.sort(rng.choice(fit_rows, max_fit, replace=False))
        held = np.flatnonzero(fold == f)
        if len(np.unique(labels[fit_rows])) < 2:  # every other fold holds one class
            probs[np.ix_(held, labels[fit_rows][:1])] = 1.0
            continue
        pipeline = _fitted([texts[i] for i in fit_rows], labels[fit_rows])
        if pipeline is None:
            return None
        probs[np.ix_(held, pipeline.classes_)] = pipeline.predict_proba(
            [texts[i] for i in held])
    return probs


def _tells_more_than_the_shares(held_out: np.ndarray, labels: np.ndarray) -> bool:
    """Whether the held-out probabilities' log loss on ``labels`` is below that of giving
    every text the class shares."""
    present, counts = np.unique(labels, return_counts=True)
    shares = np.zeros(held_out.shape[1])
    shares[present] = counts / counts.sum()
    rows = np.arange(len(labels))
    words = float(-np.log(np.clip(held_out[rows, labels], 1e-15, 1.0)).mean())
    baseline = float(-np.log(shares[labels]).mean())
    if words >= baseline:
        log.info("lexical view: the words' cross-validated log loss (%.3f) is not below the "
                 "class shares' (%.3f): they tell nothing of the labels; no view from the "
                 "words", words, baseline)
        return False
    return True
