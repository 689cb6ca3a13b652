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
    the training texts cannot make the view: fewer than two classes among them, or no word
    that two of them share. None is logged; the caller goes on without the view.
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
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                                 max_features=MAX_TERMS)
    try:
        matrix = vectorizer.fit_transform([train_texts[i] for i in chosen])
    except ValueError:  # sklearn's "no terms remain" (its only ValueError here)
        log.info("lexical view: no word occurs in two training texts; no view from the words")
        return None
    regression = LogisticRegression(C=INVERSE_STRENGTH, max_iter=2000)
    regression.fit(matrix, labels[chosen])
    probs = np.zeros((len(texts), num_classes), dtype=np.float64)
    probs[:, regression.classes_] = regression.predict_proba(vectorizer.transform(list(texts)))
    return probs
