"""Duplicate groups: exact (whitespace and case aside), near (close features AND close texts)."""

import numpy as np
import pytest

from relabeler.selectors.duplicates import (
    find_duplicates,
    group_label_conflicts,
    normalize_text,
    text_hash,
    text_similarity,
    text_sketch,
)


def _features(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _near(x: np.ndarray, seed: int = 1) -> np.ndarray:
    """A vector at cosine > 0.999 from ``x``."""
    return x + 1e-3 * np.random.default_rng(seed).normal(size=x.shape).astype(np.float32)


def test_exact_duplicates_ignore_case_and_whitespace():
    texts = ["Free entry to win a prize", "free  ENTRY to win a\tprize ", "Call me later",
             "see you at noon"]
    features = _features(4)  # far apart: the exact link needs no features
    groups = find_duplicates(features, texts)
    assert groups.group.tolist() == [0, 0, -1, -1]
    assert groups.exact.tolist() == [True, True, False, False]
    assert groups.similarity[:2].tolist() == [1.0, 1.0]
    assert np.isnan(groups.similarity[2:]).all()
    assert groups.text_hash[0] == groups.text_hash[1] != groups.text_hash[2]
    assert normalize_text(" A  b\nC ") == "a b c"
    assert text_hash(["A b"])[0] == text_hash(["a   B"])[0]


def test_light_edits_are_near_duplicates():
    texts = ["I loved this drug, it helped my back pain a lot.",
             "I loved this drug it helped my back pain a lot!!",      # punctuation
             "I loved this medicine, it helped my back pain a lot.",  # a word changed
             "The match ended in a draw after extra time."]
    features = _features(4)
    features[1] = _near(features[0], 1)
    features[2] = _near(features[0], 2)
    groups = find_duplicates(features, texts, threshold=0.98)
    assert groups.group.tolist() == [0, 0, 0, -1]
    assert not groups.exact.any()
    assert (groups.similarity[:3] > 0.99).all()
    assert text_similarity(texts[0], texts[1]) == 1.0  # punctuation is a word break only
    assert 0.8 < text_similarity(texts[0], texts[2]) < 1.0


def test_different_texts_with_near_identical_features_are_not_grouped():
    texts = ["Your account is suspended, call now", "Win a free cruise, text YES to 80085"]
    features = _features(2)
    features[1] = _near(features[0])
    groups = find_duplicates(features, texts, threshold=0.98)
    assert groups.group.tolist() == [-1, -1]
    assert groups.n_candidates == 1 and groups.n_rejected == 1
    assert text_similarity(*texts) < 0.5


def test_close_texts_with_distant_features_are_found_by_the_text_sketch():
    # a light edit of a short text can move model features far; the sketch search proposes
    # the pair, the text check confirms it. The features search alone does not see it.
    texts = ["good product, works well", "good product works well!", "arrived late and broken"]
    features = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
    groups = find_duplicates(features, texts, threshold=0.98)
    assert groups.group.tolist() == [0, 0, -1]
    assert groups.similarity[:2] == pytest.approx([0.0, 0.0], abs=1e-6)  # their feature cosine
    alone = find_duplicates(features, texts, threshold=0.98, text_neighbors=False)
    assert alone.group.tolist() == [-1, -1, -1] and alone.n_candidates == 0


def test_the_text_sketch_is_close_for_light_edits_only():
    sketch = text_sketch(["Just finished. Missing you plenty", "just finished missing you plenty!",
                          "Just finished. Missing PPM plenty", "Are we meeting at noon?"])
    cosine = sketch @ sketch.T
    assert cosine[0, 1] == pytest.approx(1.0)
    assert 0.7 < cosine[0, 2] < 1.0
    assert cosine[0, 3] < 0.3
    assert np.allclose(np.linalg.norm(sketch, axis=1), 1.0)


def test_chains_of_edits_form_one_group_through_the_knn_links():
    # each text is an edit of the previous one; with k = 1 a row sees only its nearest
    # neighbour: a text whose only link went to another star joins that star's leader when
    # the two texts are alike
    texts = ["the service was quick and the staff friendly",
             "the service was quick and the staff very friendly",
             "the service was quick and the staff very friendly!",
             "The service was quick, and the staff very friendly!"]
    base = _features(1)[0]
    features = np.stack([_near(base, s) for s in range(4)])
    groups = find_duplicates(features, texts, k=1)
    assert groups.group.tolist() == [0, 0, 0, 0]


def test_a_long_chain_of_one_word_edits_is_cut_where_the_texts_part():
    # connected components put 16 texts a word apart in one group, first and last 0.31 alike:
    # now every member of a group passes the text check against its leader
    words = "please call our office about the new video phone offer today thanks".split()
    texts, current = [], list(words)
    for i in range(16):
        current[i % len(words)] = f"w{i}x"
        texts.append(" ".join(current))
    base = _features(1)[0]
    features = np.stack([_near(base, s) for s in range(16)])
    groups = find_duplicates(features, texts, k=3)
    assert groups.n_groups >= 2
    for g in range(groups.n_groups):
        rows = np.flatnonzero(groups.group == g)
        alike = [text_similarity(texts[a], texts[b]) for a in rows for b in rows if a < b]
        assert min(alike) > 0.6, (g, rows)  # two light edits at most, through the leader
    assert groups.group[0] != groups.group[15] or groups.group[0] == -1


def test_group_ids_follow_the_first_row_and_singletons_stay_out():
    texts = ["bread and butter", "a long walk", "BREAD and butter", "alone", "a  LONG walk"]
    groups = find_duplicates(_features(5), texts)
    assert groups.group.tolist() == [0, 1, 0, -1, 1]
    assert groups.n_groups == 2


def test_conflicting_labels_are_flagged_per_group():
    group = np.array([0, 0, 1, 1, 1, -1, 2, 2])
    labels = np.array(["ham", "spam", "ham", "ham", None, "spam", "x", None], dtype=object)
    assert group_label_conflicts(group, labels).tolist() == [True, True, False, False, False,
                                                             False, False, False]


def _planted(n: int, planted: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """n rows of random features and texts; rows 2j and 2j + 1 (j < planted) are near-duplicate
    pairs: close features, the second text upper-cased with a mark added."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, 32)).astype(np.float32)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, size=int(rng.integers(2, 9)))) for _ in range(5000)]
    texts = [" ".join(rng.choice(vocabulary, size=8)) for _ in range(n)]
    for j in range(planted):
        features[2 * j + 1] = _near(features[2 * j], j)
        texts[2 * j + 1] = texts[2 * j].upper() + "!"
    return features, texts


@pytest.mark.slow
def test_many_rows_go_through_the_knn_not_an_n_by_n_matrix():
    # the selector's allocations that tracemalloc sees (numpy's: the features, the (N, 1024)
    # text sketch and the copy the kNN normalises, the (N, k) neighbours) grow linearly with N:
    # doubling N doubles the peak (an N x N matrix would quadruple it; at 12,000 rows it alone
    # would take 576 MB). The 200 planted pairs are all found through k = 3 neighbours.
    import tracemalloc

    peaks = {}
    for n in (6_000, 12_000):
        features, texts = _planted(n, 200)
        tracemalloc.start()
        groups = find_duplicates(features, texts, threshold=0.98, k=3)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        pairs = groups.group[:400].reshape(-1, 2)
        assert (pairs[:, 0] >= 0).all() and (pairs[:, 0] == pairs[:, 1]).all()
        assert groups.n_groups == 200
    assert peaks[12_000] < 2.5 * peaks[6_000]
    assert peaks[12_000] < 12_000 * 12_000 * 4 / 4


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 0.0}, "threshold: expected a similarity in \\(0, 1\\], got 0.0"),
    ({"threshold": 1.5}, "threshold: expected a similarity in \\(0, 1\\], got 1.5"),
    ({"text_threshold": -0.1}, "text_threshold: expected a similarity in \\(0, 1\\]"),
    ({"k": 0}, "k: expected an int >= 1, got 0"),
])
def test_bad_options_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        find_duplicates(_features(3), ["a", "b", "c"], **kwargs)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="texts: expected 3 texts to match features of shape"):
        find_duplicates(_features(3), ["a", "b"])
    with pytest.raises(TypeError, match="features: expected a float array"):
        find_duplicates(np.zeros((2, 3), dtype=np.int64), ["a", "b"])


def test_one_row_has_no_group():
    groups = find_duplicates(_features(1), ["only"])
    assert groups.group.tolist() == [-1] and groups.n_groups == 0


def test_long_texts_compare_by_character_trigrams():
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

    def article(n: int) -> list[str]:
        return ["".join(rng.choice(letters, size=int(rng.integers(2, 9)))) for _ in range(n)]

    words = article(300)
    a = " ".join(words)
    b = " ".join(words[:150] + ["changed"] + words[151:])
    assert len(a) > 1000
    assert 0.95 < text_similarity(a, b) < 1.0
    assert text_similarity(a, " ".join(article(300))) < 0.5


def test_texts_of_only_emoji_or_punctuation_are_not_near_duplicates_of_each_other():
    texts = ["😀😀😀", "😡😡", "!!!", "???", ":)", ":(", "😀😀😀"]
    features = np.ones((7, 16), dtype=np.float32)  # the features propose every pair
    groups = find_duplicates(features, texts)
    assert groups.group.tolist() == [0, -1, -1, -1, -1, -1, 0]  # the exact copy alone
    assert text_similarity(":)", ":(") == 0.0 and text_similarity("😀", "😀") == 1.0
