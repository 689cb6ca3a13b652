"""relabeler.debias: shortcut loss weights, token masking, class weights."""

import numpy as np
import pytest

from relabeler.debias import (
    class_weights,
    mask_tokens,
    shortcut_weights,
    token_spans,
    training_weights,
)
from relabeler.selectors.shortcuts import contains_token


def _corpus():
    """100 texts of class 0 (A), 100 of class 1 (B); 'zq' in 80 A texts and 20 B texts."""
    texts = [f"a text {i} zq" if i < 80 else f"a text {i}" for i in range(100)]
    texts += [f"b text {i} zq" if i < 20 else f"b text {i}" for i in range(100)]
    return texts, np.repeat([0, 1], 100)


def test_weights_give_the_token_the_class_prior():
    texts, labels = _corpus()
    weights = shortcut_weights(texts, labels, ["zq"], num_classes=2)
    hit = contains_token(texts, "zq")
    share_a = weights[hit & (labels == 0)].sum() / weights[hit].sum()
    assert share_a == pytest.approx(0.5, abs=1e-3)  # the prior, where it was 0.8 unweighted
    assert weights.mean() == pytest.approx(1.0)
    # A's token texts weigh less than B's, texts without it alike within a class, and each
    # class keeps half the weight
    assert weights[0] < weights[90] and weights[100] > weights[190]
    assert np.ptp(weights[80:100]) == pytest.approx(0) and np.ptp(weights[:80]) == 0
    assert weights[labels == 0].sum() == pytest.approx(100)


def test_weights_are_clipped_and_a_missing_token_changes_nothing():
    texts, labels = _corpus()
    assert np.array_equal(shortcut_weights(texts, labels, ["absent"], num_classes=2),
                          np.ones(200))
    clipped = shortcut_weights(texts, labels, ["zq"], num_classes=2, clip=2.0)
    assert clipped.max() / clipped.min() <= 4.0 + 1e-9
    with pytest.raises(ValueError, match="labels must be"):
        shortcut_weights(texts, labels[:5], ["zq"], num_classes=2)


def test_balanced_class_weights_make_the_classes_weigh_the_same():
    labels = np.array([0] * 90 + [1] * 10)
    weights = class_weights(labels, num_classes=2)
    assert weights[labels == 0].sum() == pytest.approx(weights[labels == 1].sum())
    assert weights[0] == pytest.approx(100 / 180) and weights[-1] == pytest.approx(5.0)
    both = training_weights(["x"] * 100, labels, num_classes=2, debias="none", tokens=[],
                            class_balance="balanced")
    assert both.mean() == pytest.approx(1.0)
    assert training_weights(["x"] * 100, labels, num_classes=2, debias="none", tokens=[],
                            class_balance="none") is None


def test_masking_at_rate_one_removes_the_token_and_at_zero_leaves_it():
    texts = ["Buy ZQ now", "zq zq twice", "no token", "click here please", "zqx stays"]
    masked = mask_tokens(texts, ["zq", "click here"], rate=1.0, mask="[MASK]")
    assert masked == ["Buy [MASK] now", "[MASK] [MASK] twice", "no token", "[MASK] please",
                      "zqx stays"]
    assert mask_tokens(texts, ["zq"], rate=1.0, mask="")[:2] == ["Buy  now", "  twice"]


def test_masking_finds_what_the_counting_counts_and_leaves_the_rest_of_the_text():
    # "İstanbul" lowercases to "i̇stanbul", which the counting splits into "i" and "stanbul";
    # the masking matched the original text and missed it. Lines and spaces stay as they were
    texts = ["İstanbul trip", "Call\nnow.\n\nNext  para", "ZQ-zq", "a zq b zq"]
    assert contains_token(texts[:1], "stanbul").all()
    assert mask_tokens(texts, ["stanbul", "now", "zq"], rate=1.0, mask="[MASK]") == [
        "İ[MASK] trip", "Call\n[MASK].\n\nNext  para", "[MASK]-[MASK]", "a [MASK] b [MASK]"]
    assert mask_tokens(["Call now Free entry"], ["now free"], rate=1.0, mask="[MASK]") == [
        "Call [MASK] entry"]
    assert mask_tokens(texts, ["zq", "click here"], rate=0.0, mask="[MASK]") == texts


def test_masking_at_half_rate_masks_about_half():
    texts = [f"text {i} zq" for i in range(400)]
    masked = mask_tokens(texts, ["zq"], rate=0.5, mask="[MASK]", seed=1)
    share = np.mean([t.endswith("[MASK]") for t in masked])
    assert 0.42 < share < 0.58
    assert mask_tokens(texts, ["zq"], rate=0.5, mask="[MASK]", seed=1) == masked


def test_weights_keep_every_class_share_and_rake_several_tokens():
    # two tokens that overlap: one pass per token left the first one associated and moved the
    # class prior; raked with the class masses, both tokens carry the prior and so does the set
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], [300, 100, 50])
    words = [["zq"] * (rng.random() < (0.6 if c == 1 else 0.1))
             + ["wv"] * (rng.random() < (0.5 if c == 2 else 0.15)) for c in labels]
    texts = [" ".join(["text", *w]) for w in words]
    weights = shortcut_weights(texts, labels, ["zq", "wv"], num_classes=3)
    prior = np.bincount(labels) / len(labels)
    np.testing.assert_allclose(np.bincount(labels, weights=weights) / weights.sum(), prior)
    assert weights.mean() == pytest.approx(1.0)
    for token in ("zq", "wv"):
        hit = contains_token(texts, token)
        np.testing.assert_allclose(np.bincount(labels[hit], weights=weights[hit]) /
                                   weights[hit].sum(), prior, atol=1e-3)


def test_a_token_of_one_class_only_is_weighed_down_within_its_class_and_named(caplog):
    # no text of the other class holds it, so nothing can cancel it: the class keeps its share
    # (it fell from 13.5% to 2.1% before) and a warning says to mask it instead
    labels = np.repeat([0, 1], [865, 135])
    texts = [f"text {i}" + (" zq" if c == 1 and i % 2 else "") for i, c in enumerate(labels)]
    with caplog.at_level("WARNING", logger="relabeler.debias"):
        weights = shortcut_weights(texts, labels, ["zq"], num_classes=2,
                                   class_names=["ham", "spam"])
    assert (weights[labels == 1].sum() / weights.sum()) == pytest.approx(0.135)
    hit = contains_token(texts, "zq")
    spam = labels == 1
    # within spam the token's texts weigh p(spam) of the others
    assert weights[hit].mean() / weights[spam & ~hit].mean() == pytest.approx(0.135)
    assert "'zq' occurs in no training text of ham" in caplog.text
    assert "--debias mask" in caplog.text


def test_balanced_with_reweight_makes_the_weighted_classes_weigh_the_same():
    texts, labels = _corpus()
    texts, labels = texts[:150], labels[:150]  # 100 A, 50 B
    weights = training_weights(texts, labels, num_classes=2, debias="reweight",
                               tokens=["zq"], class_balance="balanced")
    mass = np.bincount(labels, weights=weights)
    assert mass[0] == pytest.approx(mass[1]) and weights.mean() == pytest.approx(1.0)


def test_masking_finds_a_token_in_chinese_text_without_spaces():
    texts = ["今天优惠很大，快来。", "优惠券已发", "没有这个词", "iPhone优惠"]
    masked = mask_tokens(texts, ["优 惠"], rate=1.0, mask="[MASK]")
    assert masked == ["今天[MASK]很大，快来。", "[MASK]券已发", "没有这个词", "iPhone[MASK]"]
    # the token written as the text writes it finds the same characters
    assert mask_tokens(texts, ["优惠"], rate=1.0, mask="") == ["今天很大，快来。", "券已发",
                                                               "没有这个词", "iPhone"]
    assert mask_tokens(["我爱你"], ["爱"], rate=1.0, mask="[MASK]") == ["我[MASK]你"]


def test_masking_finds_full_width_letters_and_digits_and_masks_their_own_characters():
    # "ＡＩ" and "２０２４" are the words "ai" and "2024" typed in full-width forms
    text = "ＡＩ芯片２０２４年，AI芯片2024年"
    assert token_spans(text, "ai") == token_spans(text, "ＡＩ") == [(0, 2), (10, 12)]
    assert token_spans(text, "2024") == [(4, 8), (14, 18)]
    assert mask_tokens([text], ["ai", "2024"], rate=1.0, mask="[M]") == [
        "[M]芯片[M]年，[M]芯片[M]年"]
    assert token_spans("Ａi and ai", "ai") == [(0, 2), (7, 9)]
