import math
import re

import numpy as np
import pytest

from relabeler.selectors.shortcuts import (
    attribution_shares,
    contains_token,
    merged_order,
    token_class_stats,
    word_tokens,
)

VOCAB = [f"w{i}" for i in range(300)]


def _corpus(seed: int, n: int = 600, n_classes: int = 3, *, length: int = 12):
    """Texts of words drawn independently of the (random, unbalanced) label."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, len(VOCAB) + 1)  # Zipf-like: frequent and rare words
    labels = rng.choice(n_classes, size=n, p=np.linspace(1, 2, n_classes) / np.linspace(
        1, 2, n_classes).sum())
    texts = [" ".join(rng.choice(VOCAB, size=length, p=weights / weights.sum()))
             for _ in range(n)]
    return texts, labels


def _plant(texts, labels, token: str, cls: int, rate: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(labels == cls)
    chosen = rng.choice(rows, size=int(round(rate * len(rows))), replace=False)
    out = list(texts)
    for row in chosen:
        words = out[row].split()
        words.insert(int(rng.integers(len(words) + 1)), token)
        out[row] = " ".join(words)
    return out, len(chosen)


def test_a_planted_token_ranks_first_with_a_large_z():
    texts, labels = _corpus(0)
    planted, n_planted = _plant(texts, labels, "zzsource", 1, 0.5)
    found = token_class_stats(planted, labels, num_classes=3)
    assert found.tokens[0] == "zzsource" and found.classes[0] == 1
    assert found.count[0] == found.class_count[0] == n_planted
    assert found.class_share[0] == 1.0
    p0 = found.prior[1]
    assert found.z[0] == pytest.approx((1 - p0) / math.sqrt(p0 * (1 - p0) / n_planted))
    assert found.z[0] > 10
    assert found.p_value[0] < found.p_threshold


def test_a_planted_phrase_ranks_first_alone_not_behind_its_own_words():
    """Its words occur only inside it: they tie with it on every statistic and, sorted by
    name, ranked first ("xj", "zq", then "zq xj" third); they are listed as the phrase."""
    texts, labels = _corpus(0)
    planted, n_planted = _plant(texts, labels, "zq xj", 1, 0.5)
    found = token_class_stats(planted, labels, num_classes=3)
    assert (found.tokens[0], found.classes[0], found.count[0]) == ("zq xj", 1, n_planted)
    assert not {"zq", "xj"} & set(found.tokens.tolist())
    assert found.n_significant == len(found)
    # a word also found outside the phrase is its own finding
    texts_zq = [t + " zq" if i % 2 == 0 else t for i, t in enumerate(planted)]
    again = token_class_stats(texts_zq, labels, num_classes=3)
    assert "zq xj" in again.tokens.tolist() and "xj" not in again.tokens.tolist()


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_corpus_without_a_shortcut_reports_none(seed):
    texts, labels = _corpus(seed)
    found = token_class_stats(texts, labels, num_classes=3)
    assert len(found) == 0
    assert found.n_tested > 3 * 100  # many pairs were tested, none passed
    assert found.p_threshold == pytest.approx(0.01 / found.n_tested)


def test_tokens_rarer_than_min_count_are_not_tested():
    texts, labels = _corpus(0, n=400)
    planted, n_planted = _plant(texts, labels, "zzrare", 0, 0.12)
    assert 8 <= n_planted < 20
    tested = token_class_stats(planted, labels, num_classes=3, min_count=n_planted)
    assert "zzrare" in tested.tokens.tolist()
    skipped = token_class_stats(planted, labels, num_classes=3, min_count=n_planted + 1)
    assert "zzrare" not in skipped.tokens.tolist()
    assert skipped.count.min(initial=n_planted + 1) > n_planted


def test_word_pairs_are_counted_once_per_text_and_ranked_by_association():
    texts = (["buy now cheap pills now"] * 20 + ["hello how are you"] * 20
             + ["meeting now at noon"] * 20)
    labels = np.array([0] * 20 + [1] * 20 + [1] * 20)
    found = token_class_stats(texts, labels, min_count=10)
    rows = dict(zip(zip(found.tokens, found.classes, strict=True), range(len(found)),
                    strict=True))
    assert ("buy now", 0) in rows and ("cheap pills", 0) in rows
    # "now" occurs in 40 texts (twice in each spam text, counted once), half of them class 0:
    # at a prior of 1/3 that is not significant, unlike the words of class 0 alone
    assert ("now", 0) not in rows
    assert found.count[rows[("buy now", 0)]] == 20
    assert list(found.association) == sorted(found.association, reverse=True)
    capped = token_class_stats(texts, labels, min_count=10, top=2)
    assert capped.tokens.tolist() == found.tokens[:2].tolist()
    assert capped.n_significant == found.n_significant == len(found) > 2
    assert ((found.association > 0) & (found.association <= 1)).all()


def test_merged_order_takes_each_items_best_place_then_the_tie_then_its_worst():
    z = np.array([30.0, 17.0, 25.0, 10.0])
    association = np.array([0.5, 0.98, 0.9, 0.2])
    names = np.array(["call", "tag", "claim", "ok"])
    # places by z: call 0, claim 1, tag 2, ok 3; by association: tag 0, claim 1, call 2, ok 3
    # best/worst: call (0, 2), tag (0, 2), claim (1, 1), ok (3, 3); call before tag by name
    assert merged_order(z, association, names).tolist() == [0, 1, 2, 3]
    assert merged_order(association, names).tolist() == [1, 2, 0, 3]
    # the tie on the best place goes to the higher association: the tag that nearly decides
    # its class before the word that is merely frequent in it
    assert merged_order(z, association, names, tie=association).tolist() == [1, 0, 2, 3]


def test_a_tag_in_half_of_a_large_class_ranks_above_the_small_classs_frequent_word():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    texts, labels = [], []
    for i in range(800):
        label = int(i % 8 == 0)  # class 1: 12.5% of the texts
        body = list(rng.choice(words, size=8))
        if label and rng.random() < 0.85:
            body.append("txt")  # the small class's own frequent word, in a few of class 0 too
        elif not label and rng.random() < 0.03:
            body.append("txt")
        if not label and rng.random() < 0.5:
            body.insert(int(rng.integers(len(body))), "zqxv")  # the tag, in half of class 0
        texts.append(" ".join(body))
        labels.append(label)
    found = token_class_stats(texts, np.array(labels), num_classes=2, min_count=10)
    tokens = found.tokens.tolist()
    by_z = found.tokens[np.argsort(-found.z, kind="stable")].tolist()
    # "txt" is first by z, the tag first by association: the tie goes to the tag
    assert by_z[0] == "txt" and found.association[tokens.index("zqxv")] > \
        found.association[tokens.index("txt")]
    assert tokens[:2] == ["zqxv", "txt"]


def test_attribution_shares_by_hand():
    attributed = [
        (0, [("Buy", 0.6), ("now", 0.2), ("!", 0.1), ("cheap", -0.5)]),  # word mass 0.8
        (0, [("buy", 0.1), ("now", 0.0), ("cheap pills", 0.1)]),          # 0.2
        (1, [("hello", 1.0), ("now", 1.0)]),                               # 2.0
    ]
    share = attribution_shares(["buy", "buy now", "cheap", "now", "hello", "now"],
                               [0, 0, 0, 1, 1, 2], attributed, num_classes=3)
    # class 0's positive mass over words is 1.0 ("!" is no word): "buy" carries 0.6 + 0.1,
    # "buy now" 0.8 + 0.1, "cheap" half of its two-word span's 0.1 (the negative score is none)
    np.testing.assert_allclose(share[:5], [0.7, 0.9, 0.05, 0.5, 0.5])
    assert math.isnan(share[5])  # no sample was attributed to class 2


def test_contains_token_matches_the_counting():
    texts = ["Click HERE now", "here click", "clicking here"]
    assert contains_token(texts, "click here").tolist() == [True, False, False]
    assert contains_token(texts, "here").tolist() == [True, True, True]
    assert word_tokens("It's 150p!") == ["it", "s", "150p"]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="texts: expected at least one text"):
        token_class_stats([], np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="labels: expected at least 2 classes"):
        token_class_stats(["a b", "a c"], np.array([0, 0]), num_classes=2)
    with pytest.raises(ValueError, match="expected 3 labels"):
        token_class_stats(["a", "b", "c"], np.array([0, 1]))
    with pytest.raises(TypeError, match="texts: expected strings, got NoneType at row 1"):
        token_class_stats(["a", None], np.array([0, 1]))
    with pytest.raises(ValueError, match="alpha"):
        token_class_stats(["a", "b"], np.array([0, 1]), alpha=0)


def test_texts_without_words_give_an_empty_result():
    found = token_class_stats(["", "!!", "?"], np.array([0, 1, 1]), min_count=1)
    assert len(found) == 0 and found.n_tested == 0
    np.testing.assert_allclose(found.prior, [1 / 3, 2 / 3])


# a few hundred common characters; the planted token's characters occur in none of them
HANZI = sorted(set(
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对"
    "可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公"
    "同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正"
    "名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并"
    "内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表"
    "原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风"
    "战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫"
) - set("优惠"))


def _chinese_corpus(seed: int, n: int = 600):
    """Chinese texts without spaces (two clauses of random characters), labels at random."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(2, size=n, p=[0.4, 0.6])
    texts = ["".join(rng.choice(HANZI, size=8)) + "，" + "".join(rng.choice(HANZI, size=8)) + "。"
             for _ in range(n)]
    return texts, labels


def _plant_chinese(texts, labels, token: str, cls: int, rate: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(labels == cls)
    chosen = np.sort(rng.choice(rows, size=int(round(rate * len(rows))), replace=False))
    out = list(texts)
    for row in chosen:
        at = int(rng.integers(len(out[row]) + 1))
        out[row] = out[row][:at] + token + out[row][at:]
    return out, chosen


def test_chinese_text_is_split_into_characters_and_mixed_text_keeps_its_words():
    assert word_tokens("iPhone手机很好") == ["iphone", "手", "机", "很", "好"]
    assert word_tokens("東京タワーへ行く") == ["東", "京", "タ", "ワ", "ー", "へ", "行", "く"]
    assert word_tokens("한국어 문장입니다, 第3名") == ["한국어", "문장입니다", "第", "3", "名"]
    # a token is split as the texts are: written with or without the n-gram's space
    texts = ["今天有优惠。", "优，惠", "惠优"]
    assert contains_token(texts, "优惠").tolist() == [True, True, False]
    assert contains_token(texts, "优 惠").tolist() == [True, True, False]
    assert contains_token(texts, "!").tolist() == [False, False, False]


def test_a_two_character_token_planted_in_chinese_text_ranks_first_as_the_bigram():
    texts, labels = _chinese_corpus(0)
    assert len(token_class_stats(texts, labels)) == 0  # no shortcut planted: none found
    planted, rows = _plant_chinese(texts, labels, "优惠", 1, 0.5)
    found = token_class_stats(planted, labels)
    assert (found.tokens[0], found.classes[0]) == ("优 惠", 1)
    assert found.count[0] == found.class_count[0] == len(rows)
    # its characters occur only inside it: listed as the bigram alone
    assert not {"优", "惠"} & set(found.tokens.tolist())
    assert np.flatnonzero(contains_token(planted, found.tokens[0])).tolist() == rows.tolist()
    # the characters on their own, without bigrams
    singles = token_class_stats(planted, labels, max_ngram=1)
    assert {(t, c) for t, c in zip(singles.tokens, singles.classes, strict=True)} == {
        ("优", 1), ("惠", 1)}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_chinese_corpus_without_a_shortcut_reports_none(seed):
    texts, labels = _chinese_corpus(seed)
    found = token_class_stats(texts, labels)
    assert len(found) == 0
    assert found.n_tested >= 2 * len(HANZI)  # every character was tested, none passed


def test_english_results_are_those_of_the_plain_word_pattern(monkeypatch):
    """Text without CJK characters splits exactly as ``\\b\\w+\\b`` split it before."""
    import relabeler.selectors.shortcuts as shortcuts

    texts, labels = _corpus(0)
    extras = ["Don't", "café", "x_1", "150p!", "İstanbul", "naïve-ish", "Ünïcode", "e.g."]
    rng = np.random.default_rng(5)
    texts = [t + " " + " ".join(rng.choice(extras, size=2)) for t in texts]
    planted, _ = _plant(texts, labels, "zq xj", 1, 0.5)
    found = token_class_stats(planted, labels, num_classes=3)
    monkeypatch.setattr(shortcuts, "text_units", lambda t: re.findall(r"(?u)\b\w+\b", t.lower()))
    before = token_class_stats(planted, labels, num_classes=3)
    assert len(found) == len(before) > 1
    for field in ("tokens", "classes", "count", "class_count", "z", "p_value", "association"):
        np.testing.assert_array_equal(getattr(found, field), getattr(before, field))
    assert found.n_tested == before.n_tested
    assert all(word_tokens(t) == re.findall(r"(?u)\b\w+\b", t.lower()) for t in planted)


def test_full_width_letters_and_digits_are_the_same_units_as_half_width():
    from relabeler.selectors.text_units import text_units

    assert text_units("ＡＩ芯片２０２４年，AI芯片2024年") == ["ai", "芯", "片", "2024", "年"] * 2
    assert text_units("ｶﾅ ｱｲ") == ["カ", "ナ", "ア", "イ"]  # half-width kana
    texts = ["ＡＩ芯片" if i % 2 else "AI芯片" for i in range(20)] + ["手机电池"] * 20
    labels = np.array([0] * 20 + [1] * 20)
    found = token_class_stats(texts, labels, min_count=5, max_ngram=1)
    assert "ａｉ" not in found.tokens.tolist()
    ai = found.tokens.tolist().index("ai")
    assert found.count[ai] == 20 and found.classes[ai] == 0
    assert contains_token(["ＡＩ芯片", "AI芯片"], "ai").tolist() == [True, True]


def test_english_units_are_as_before():
    from relabeler.selectors.text_units import text_units

    texts = ["Don't panic: café x_1 150p! İstanbul naïve-ish Ünïcode e.g. ½ ﬁne ²", "A B c"]
    assert [text_units(t) for t in texts] == [re.findall(r"(?u)\b\w+\b", t.lower())
                                              for t in texts]
