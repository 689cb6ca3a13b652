"""A bag-of-words view: class probabilities from the words of a text, not from the encoder.

:func:`lexical_probabilities` fits scikit-learn's TF-IDF of words and word pairs with a
logistic regression on the training texts and their given labels, and returns the class
probabilities of other texts. It is the eval audit's third view of an eval row, beside the
model and the training neighbours' out-of-fold probabilities: both of those come from the
same encoder, so their errors go together, and the words make different ones. On drug-review,
where the packaged MiniLM's head is about 70% accurate, the words alone are about as accurate
and the mean of the three views ranks the flipped eval labels above the right labels the
model doubts (docs/benchmarks.md, "Eval audit: a view from the words").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from relabeler.selectors._checks import as_labels

log = logging.getLogger(__name__)

#: The logistic regression's inverse L2 strength. 3, 10 and 30 ranked drug-review's flipped
#: eval labels alike (AUPRC .500-.501); 3 left the smallest audit gap.
INVERSE_STRENGTH = 3.0
#: Training texts the regression is fitted on at most (a fixed random sample beyond): its
#: fit grows with the rows and the vocabulary, and the view averages with two others.
MAX_TEXTS = 50_000
#: Most words and word pairs kept (the most frequent), so memory stays bounded.
MAX_TERMS = 200_000
#: Training texts the check that the words tell anything is cross-validated on at most.
CHECK_TEXTS = 10_000
CHECK_FOLDS = 3


def lexical_probabilities(train_texts: Sequence[str], labels: np.ndarray, num_classes: int,
                          texts: Sequence[str], *, seed: int = 0) -> np.ndarray | None:
    """Class probabilities of ``texts`` from a TF-IDF logistic regression fitted on the
    training texts.

    Parameters
    ----------
    train_texts : (N,) the training texts.
    labels : (N,) int class ids in [0, num_classes) of the training texts.
    num_classes : C.
    texts : (Q,) the texts to predict.
    seed : picks the training texts when there are more than :data:`MAX_TEXTS`.

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
    chosen = np.arange(len(labels))
    if len(chosen) > MAX_TEXTS:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, MAX_TEXTS, replace=False))
    present = np.unique(labels[chosen])
    if len(present) < 2:
        log.info("lexical view: the training texts hold %d class; no view from the words",
                 len(present))
        return None
    pipeline = _pipeline()
    try:
        pipeline.fit([train_texts[i] for i in chosen], labels[chosen])
    except ValueError:  # sklearn's "no terms remain" (its only ValueError here)
        log.info("lexical view: no word occurs in two training texts; no view from the words")
        return None
    if not _tells_more_than_the_shares(train_texts, labels, seed=seed):
        return None
    probs = np.zeros((len(texts), num_classes), dtype=np.float64)
    probs[:, pipeline.classes_] = pipeline.predict_proba(list(texts))
    return probs


def _pipeline() -> Pipeline:
    return Pipeline([("tfidf", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                               max_features=MAX_TERMS)),
                     ("regression", LogisticRegression(C=INVERSE_STRENGTH, max_iter=2000))])


def _tells_more_than_the_shares(train_texts: Sequence[str], labels: np.ndarray, *,
                                seed: int) -> bool:
    """Whether the words' cross-validated log loss on the training labels is below that of
    predicting every text's class by the class shares."""
    rows = np.arange(len(labels))
    if len(rows) > CHECK_TEXTS:
        rows = np.sort(np.random.default_rng(seed + 1).choice(rows, CHECK_TEXTS, replace=False))
    y = labels[rows]
    present, counts = np.unique(y, return_counts=True)
    if len(rows) < 2 * CHECK_FOLDS or len(present) < 2:
        log.info("lexical view: %d training texts are too few to check that the words tell "
                 "anything; no view from the words", len(rows))
        return False
    splitter = (StratifiedKFold if counts.min() >= CHECK_FOLDS else KFold)(
        CHECK_FOLDS, shuffle=True, random_state=seed)
    try:
        held_out = cross_val_predict(_pipeline(), [train_texts[i] for i in rows], y,
                                     cv=splitter, method="predict_proba")
    except ValueError:  # a fold with no shared word, or one class only
        log.info("lexical view: the words could not be cross-validated on the training "
                 "texts; no view from the words")
        return False
    shares = counts / counts.sum()
    words = log_loss(y, held_out, labels=present)
    baseline = log_loss(y, np.tile(shares, (len(y), 1)), labels=present)
    if words >= baseline:
        log.info("lexical view: the words' cross-validated log loss (%.3f) is not below the "
                 "class shares' (%.3f): they tell nothing of the labels; no view from the "
                 "words", words, baseline)
        return False
    return True
