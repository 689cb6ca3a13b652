import numpy as np
import pytest

from relabeler.selectors.thin_regions import group_regions, region_terms, representation


def test_representation_is_zero_where_no_training_row_is_near():
    rng = np.random.default_rng(0)
    train = rng.normal([5, 0, 0], 0.3, size=(40, 3)).astype(np.float32)
    covered = rng.normal([5, 0, 0], 0.3, size=(10, 3))
    held_out = rng.normal([0, 5, 0], 0.3, size=(10, 3))  # a sub-population train lacks
    queries = np.vstack([covered, held_out]).astype(np.float32)
    rep = representation(train, queries, k=5)
    assert rep.shape == (20,) and rep.dtype == np.float32
    assert (rep[10:] == 0).all()
    # near the training cluster most neighbours are training rows: at least 3 of 5, and on
    # average more than train's overall share 40 / 59; the ratio moves in steps of 1/5 of it
    expected = 40 / 59
    assert rep[:10].min() >= 0.6 / expected - 1e-6
    assert rep[:10].mean() > 1.0
    assert np.allclose(rep * expected * 5, np.round(rep * expected * 5), atol=1e-5)


def test_representation_checks_its_input():
    train = np.ones((3, 2), np.float32)
    assert representation(train, np.zeros((0, 2), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="k: expected >= 1"):
        representation(train, train, k=0)
    with pytest.raises(ValueError, match="query_features: expected 2 columns"):
        representation(train, np.ones((1, 3), np.float32))


def test_regions_never_mix_separate_clusters_and_go_largest_first():
    rng = np.random.default_rng(1)
    a = rng.normal([5, 0, 0], 0.2, size=(24, 3))
    b = rng.normal([0, 5, 0], 0.2, size=(8, 3))
    regions = group_regions(np.vstack([a, b]).astype(np.float32), seed=0)
    assert regions.max() + 1 == 4  # round(sqrt(32 / 2))
    assert not set(regions[:24].tolist()) & set(regions[24:].tolist())
    sizes = np.bincount(regions)
    assert sizes.tolist() == sorted(sizes.tolist(), reverse=True)
    assert group_regions(np.ones((1, 3), np.float32)).tolist() == [0]
    assert group_regions(np.vstack([a, b]).astype(np.float32), max_regions=1).max() == 0


def test_region_terms_name_what_sets_a_region_apart():
    texts = (["the goalkeeper saved the penalty"] * 3 + ["the striker missed a penalty"] * 2
             + ["shares fell as the market closed"] * 5 + ["the market rallied on profits"] * 4)
    regions = np.array([0] * 5 + [-1] * 9)
    terms = region_terms(texts, regions, top=3)
    assert list(terms) == [0]
    assert terms[0][0] == "penalty"
    assert set(terms[0]) <= {"penalty", "goalkeeper", "saved", "striker", "missed"}
    assert "market" not in terms[0]
    assert region_terms(texts, np.full(14, -1)) == {}
    with pytest.raises(ValueError, match=r"regions: expected shape \(14,\)"):
        region_terms(texts, np.zeros(3))


def test_region_terms_of_chinese_text_are_characters_and_pairs_of_them():
    from relabeler.selectors.thin_regions import term_units

    assert term_units("iPhone手机很好, the 3D app") == [
        "iphone", "手", "机", "手机", "很", "机很", "好", "很好", "app"]
    assert term_units("手，机") == ["手", "机"]  # not adjacent: no pair
    # full-width letters are the word typed without them; half-width kana the kana
    assert term_units("ＡＩ应用 ｶﾅ") == ["ai", "应", "用", "应用", "カ", "ナ", "カナ"]
    texts = (["我的手机屏幕坏了"] * 3 + ["手机电池不耐用"] * 2
             + ["今天股市大涨"] * 5 + ["股市收盘下跌"] * 4)
    regions = np.array([0] * 5 + [-1] * 9)
    terms = region_terms(texts, regions, top=4)
    # in all five texts of the region and no other: the pair, its characters (the same lift)
    # left out; then the pairs of three of the five texts
    assert terms[0] == ["手机", "坏了", "屏幕", "幕坏"]
    assert "股市" not in terms[0] and "股" not in terms[0]


def test_a_character_is_listed_beside_its_pair_only_where_it_sets_the_region_apart_more():
    texts = (["智能应用上线"] * 3 + ["应用商店更新"] * 2 + ["手机很好用", "好用的手机"]
             + ["今天股市大涨"] * 4 + ["股市收盘下跌"] * 3)
    regions = np.array([0] * 7 + [-1] * 7)
    terms = region_terms(texts, regions, top=6)
    # 应 only in 应用 (same lift): out; 用 also in 好用 (higher lift than 应用): in
    assert terms[0][:2] == ["用", "应用"]
    assert "应" not in terms[0]


def test_region_terms_of_english_text_are_as_before():
    texts = (["the goalkeeper made a great save in the match"] * 3
             + ["a late goal won the match for the home side", "penalty save by the keeper"]
             + ["shares fell as the market closed lower"] * 4
             + ["the bank raised interest rates again", "ab a 3d co-op market"])
    regions = np.array([0] * 5 + [1] * 4 + [-1] * 2)
    assert region_terms(texts, regions, top=5) == {
        0: ["match", "save", "goalkeeper", "great"],
        1: ["closed", "fell", "lower", "shares", "market"]}


def test_region_terms_of_english_text_are_those_of_the_word_pattern():
    """Text without CJK characters gives the terms the plain word pattern gave before."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from relabeler.selectors.thin_regions import term_units

    texts = ["The goalkeeper's save: 2 penalties!", "naïve İstanbul x_1 e.g. don't",
             "Shares fell as the market closed", "ab a 3d co-op ÜBER"]
    before = TfidfVectorizer(stop_words="english",
                             token_pattern=r"(?u)\b[^\W\d_]{2,}\b").build_analyzer()
    assert [term_units(t) for t in texts] == [before(t) for t in texts]
