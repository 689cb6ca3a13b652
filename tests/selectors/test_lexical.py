"""The words' view: class probabilities from a TF-IDF logistic regression of the texts."""

from __future__ import annotations

import numpy as np
import pytest

from relabeler.selectors import lexical
from relabeler.selectors.lexical import lexical_probabilities

WORDS = {0: ["refund", "invoice", "charge", "billing"], 1: ["crash", "error", "freeze", "bug"],
         2: ["login", "password", "account", "locked"]}
FILLER = ["the", "my", "app", "today", "again", "please", "help", "since", "update"]


def texts_of(labels: np.ndarray, seed: int) -> list[str]:
    """A text per label: two of its class's words among filler words."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.permutation(list(rng.choice(WORDS[int(y)], 2)) +
                                     list(rng.choice(FILLER, 4)))) for y in labels]


def test_the_words_tell_the_class_of_new_texts():
    labels = np.random.default_rng(0).integers(0, 3, 300)
    queries = np.array([0, 1, 2] * 20)
    probs = lexical_probabilities(texts_of(labels, 1), labels, 3, texts_of(queries, 2))
    assert probs.shape == (60, 3) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert (probs.argmax(axis=1) == queries).all()
    assert probs[np.arange(60), queries].min() > 0.5


def test_a_class_no_training_text_holds_gets_no_probability():
    labels = np.random.default_rng(3).integers(0, 2, 200)  # classes 0 and 1 of 4
    probs = lexical_probabilities(texts_of(labels, 4), labels, 4, texts_of(np.array([0, 1]), 5))
    assert probs.shape == (2, 4)
    assert (probs[:, 2:] == 0).all()
    assert probs.argmax(axis=1).tolist() == [0, 1]


def test_no_view_from_one_class_or_from_no_shared_word(caplog):
    with caplog.at_level("INFO", logger="relabeler.selectors.lexical"):
        assert lexical_probabilities(["a b", "a c"], np.array([1, 1]), 3, ["a"]) is None
    assert "hold 1 class" in caplog.text
    caplog.clear()
    unique = [f"word{i}" for i in range(12)]  # min_df = 2 keeps none of them
    with caplog.at_level("INFO", logger="relabeler.selectors.lexical"):
        assert lexical_probabilities(unique, np.arange(12) % 2, 2, ["word0"]) is None
    assert "no word occurs in two training texts" in caplog.text


def test_no_text_to_predict_gives_an_empty_matrix():
    labels = np.array([0, 1, 0, 1])
    probs = lexical_probabilities(texts_of(labels, 6), labels, 2, [])
    assert probs.shape == (0, 2)


def test_labels_that_do_not_match_the_texts_are_refused():
    with pytest.raises(ValueError, match="labels: expected 3 labels"):
        lexical_probabilities(["a b", "a c", "b c"], np.array([0, 1]), 2, ["a"])
    with pytest.raises(ValueError, match="labels: class id 2 is out of range for 2 classes"):
        lexical_probabilities(["a b", "a c"], np.array([0, 2]), 2, ["a"])


def test_beyond_the_most_texts_a_fixed_sample_is_fitted(monkeypatch):
    labels = np.random.default_rng(7).integers(0, 3, 400)
    texts, queries = texts_of(labels, 8), texts_of(np.array([0, 1, 2]), 9)
    whole = lexical_probabilities(texts, labels, 3, queries)
    monkeypatch.setattr(lexical, "MAX_TEXTS", 120)
    first = lexical_probabilities(texts, labels, 3, queries, seed=1)
    assert not np.allclose(first, whole)  # fitted on fewer texts
    np.testing.assert_array_equal(first, lexical_probabilities(texts, labels, 3, queries,
                                                               seed=1))
    assert not np.allclose(first, lexical_probabilities(texts, labels, 3, queries, seed=2))
    assert first.argmax(axis=1).tolist() == [0, 1, 2]


def test_words_that_tell_nothing_of_the_labels_give_no_view(caplog):
    # the same texts, their labels drawn apart from them: the words' held-out log loss is
    # above the class shares', and a view that knows nothing would only blur a mean
    rng = np.random.default_rng(10)
    texts = texts_of(rng.integers(0, 3, 300), 11)
    labels = rng.integers(0, 3, 300)
    with caplog.at_level("INFO", logger="relabeler.selectors.lexical"):
        assert lexical_probabilities(texts, labels, 3, texts[:5]) is None
    assert "is not below the class shares'" in caplog.text
    assert "they tell nothing of the labels" in caplog.text
    # a caller that checked already (the training queue's view of the same texts) is trusted
    assert lexical_probabilities(texts, labels, 3, texts[:5], checked=True).shape == (5, 3)
    # a tenth of the labels wrong still leaves words that tell
    truth = rng.integers(0, 3, 300)
    noisy = np.where(rng.random(300) < 0.1, (truth + 1) % 3, truth)
    assert lexical_probabilities(texts_of(truth, 12), noisy, 3, texts[:5]) is not None


def test_too_few_texts_to_check_give_no_view(caplog):
    labels = np.array([0, 1, 0, 1, 0])
    with caplog.at_level("INFO", logger="relabeler.selectors.lexical"):
        assert lexical_probabilities(texts_of(labels, 13), labels, 2, ["refund"]) is None
    assert "5 training texts of 2 class(es) are too few to check" in caplog.text


def test_out_of_fold_probabilities_come_from_the_other_folds():
    from relabeler.selectors.lexical import out_of_fold_lexical_probabilities

    rng = np.random.default_rng(20)
    truth = rng.integers(0, 3, 300)
    given = truth.copy()
    wrong = rng.random(300) < 0.1
    given[wrong] = (truth[wrong] + 1) % 3
    texts = texts_of(truth, 21)
    probs = out_of_fold_lexical_probabilities(texts, given, 3, seed=4)
    assert probs.shape == (300, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    # a text never predicts itself: its wrong label gets little of its probability
    assert (probs.argmax(axis=1) == truth).mean() > 0.95
    assert probs[np.flatnonzero(wrong), given[wrong]].max() < 0.5
    np.testing.assert_array_equal(probs, out_of_fold_lexical_probabilities(texts, given, 3,
                                                                             seed=4))
    # a fold fitted on fewer texts than it could
    from relabeler.selectors import lexical

    capped = lexical.MAX_FOLD_TEXTS
    try:
        lexical.MAX_FOLD_TEXTS = 60
        fewer = out_of_fold_lexical_probabilities(texts, given, 3, seed=4)
    finally:
        lexical.MAX_FOLD_TEXTS = capped
    assert not np.allclose(fewer, probs) and (fewer.argmax(axis=1) == truth).mean() > 0.9


def test_out_of_fold_words_that_tell_nothing_or_bad_folds_give_no_view(caplog):
    from relabeler.selectors.lexical import out_of_fold_lexical_probabilities

    rng = np.random.default_rng(22)
    texts = texts_of(rng.integers(0, 3, 200), 23)
    with caplog.at_level("INFO", logger="relabeler.selectors.lexical"):
        assert out_of_fold_lexical_probabilities(texts, rng.integers(0, 3, 200), 3) is None
    assert "they tell nothing of the labels" in caplog.text
    with pytest.raises(ValueError, match="folds: expected an int >= 2, got 1"):
        out_of_fold_lexical_probabilities(texts, rng.integers(0, 3, 200), 3, folds=1)


ZH_WORDS = {0: ["退款", "发票", "扣费", "账单"], 1: ["闪退", "报错", "卡死", "漏洞"]}
ZH_FILLER = ["我的", "应用", "今天", "又", "请", "帮忙", "自从", "更新"]


def test_chinese_text_without_spaces_is_read_by_characters_and_pairs():
    # Written without spaces, a Chinese text is one run of word characters: read as sklearn's
    # default pattern reads it, no two texts share a word and there is no view. Its
    # characters and character pairs tell the class as English words do.
    from sklearn.feature_extraction.text import TfidfVectorizer

    def zh_texts(labels, seed):
        rng = np.random.default_rng(seed)
        return ["".join(rng.permutation(list(rng.choice(ZH_WORDS[int(y)], 2)) +
                                        list(rng.choice(ZH_FILLER, 4)))) for y in labels]

    labels = np.random.default_rng(30).integers(0, 2, 300)
    texts = zh_texts(labels, 31)
    with pytest.raises(ValueError, match="no terms remain"):  # whole clauses, none repeated
        TfidfVectorizer(min_df=2).fit(texts)
    queries = np.array([0, 1] * 10)
    probs = lexical_probabilities(texts, labels, 2, zh_texts(queries, 32))
    assert probs.shape == (20, 2)
    assert (probs.argmax(axis=1) == queries).all()
    vocabulary = lexical._fitted(texts, labels).named_steps["tfidf"].vocabulary_
    assert {"退", "款", "退 款", "闪 退"} <= set(vocabulary)


def test_word_evidence_names_the_words_that_point_to_the_class():
    from relabeler.selectors.lexical import word_evidence

    rng = np.random.default_rng(40)
    truth = rng.integers(0, 3, 300)
    given = truth.copy()
    wrong = np.flatnonzero(rng.random(300) < 0.1)
    given[wrong] = (truth[wrong] + 1) % 3
    texts = texts_of(truth, 41)
    found = word_evidence(texts, given, 3, wrong, truth[wrong])
    assert len(found) == len(wrong)
    for row, terms in zip(wrong.tolist(), found, strict=True):
        assert 1 <= len(terms) <= 3
        # the strongest holds one of its true class's words ("the charge"), as the text does
        assert set(terms[0].split()) & set(WORDS[int(truth[row])])
        assert terms[0] in texts[row]
        assert not set(terms) & {"the", "my", "again"}  # no stop word alone
    # toward its own given label nothing pushes
    assert word_evidence(texts, given, 3, wrong[:5], given[wrong[:5]]) == [[]] * 5
    assert word_evidence(texts, given, 3, np.array([], dtype=np.int64),
                         np.array([], dtype=np.int64)) == []


def test_word_evidence_in_chinese_reads_as_the_text_is_written():
    from relabeler.selectors.lexical import word_evidence

    rng = np.random.default_rng(42)
    labels = rng.integers(0, 2, 300)
    texts = ["".join(rng.permutation(list(rng.choice(ZH_WORDS[int(y)], 2))
                                     + list(rng.choice(ZH_FILLER, 4)))) for y in labels]
    rows = np.flatnonzero(labels == 1)[:10]
    flipped = labels.copy()
    flipped[rows] = 0  # as if labeled 0: explained toward their own class, 1
    found = word_evidence(texts, flipped, 2, rows, np.ones(10, dtype=np.int64))
    for row, terms in zip(rows.tolist(), found, strict=True):
        assert terms and all(" " not in term for term in terms)  # 闪退, not 闪 退
        assert any(word in terms[0] for word in ZH_WORDS[1]) and terms[0] in texts[row]


def test_word_evidence_refuses_bad_rows_and_gives_none_without_a_fit():
    from relabeler.selectors.lexical import word_evidence

    labels = np.array([0, 1] * 10)
    texts = texts_of(labels, 43)
    with pytest.raises(ValueError, match=r"rows: expected indices in \[0, 20\)"):
        word_evidence(texts, labels, 2, np.array([20]), np.array([0]))
    with pytest.raises(ValueError, match="toward: expected 2 labels"):
        word_evidence(texts, labels, 2, np.array([0, 1]), np.array([0]))
    unique = [f"word{i}" for i in range(20)]  # no word two texts share: no regression
    assert word_evidence(unique, labels, 2, np.array([0, 1]), np.array([1, 0])) == [[], []]
    assert word_evidence(texts, np.zeros(20, dtype=np.int64), 2, np.array([0]),
                         np.array([1])) == [[]]


def test_word_features_place_texts_by_their_words():
    from relabeler.selectors.lexical import word_features

    labels = np.random.default_rng(50).integers(0, 3, 240)
    texts = texts_of(labels, 51)
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(same, False)
    other = labels[:, None] != labels[None, :]

    def cosines(x):
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return unit @ unit.T

    x = word_features(texts)
    assert x.dtype == np.float32 and x.shape == (240, 239)  # at most one fewer than the texts
    assert cosines(x)[same].mean() > 2 * cosines(x)[other].mean()  # .12 against .05
    few = word_features(texts, dims=3)  # the topics' directions first
    assert few.shape == (240, 3)
    assert cosines(few)[same].mean() > cosines(few)[other].mean() + 0.4  # .97 against .41
    # fitted on a sample beyond MAX_FOLD_TEXTS, every text placed
    capped = lexical.MAX_FOLD_TEXTS
    try:
        lexical.MAX_FOLD_TEXTS = 100
        sampled = word_features(texts, dims=4)
    finally:
        lexical.MAX_FOLD_TEXTS = capped
    assert sampled.shape == (240, 4) and np.isfinite(sampled).all()
    assert word_features([f"word{i}" for i in range(12)]) is None  # no word two texts share
