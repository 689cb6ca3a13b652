"""relabeler.debias: shortcut loss weights, token masking, class weights."""

import numpy as np
import pytest

from relabeler.debias import class_weights, mask_tokens, shortcut_weights, training_weights
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
    assert share_a == pytest.approx(0.5)  # the prior, where it was 0.8 unweighted
    assert weights.mean() == pytest.approx(1.0)
    # p(A) / p(A | zq) = 0.5 / 0.8 and p(B) / p(B | zq) = 0.5 / 0.2; untouched texts weigh 1
    assert weights[0] == pytest.approx(0.625) and weights[100] == pytest.approx(2.5)
    assert weights[90] == pytest.approx(1.0) and weights[190] == pytest.approx(1.0)


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
    assert mask_tokens(texts, ["zq"], rate=1.0, mask="")[:2] == ["Buy now", "twice"]
    assert mask_tokens(texts, ["zq", "click here"], rate=0.0, mask="[MASK]") == texts


def test_masking_at_half_rate_masks_about_half():
    texts = [f"text {i} zq" for i in range(400)]
    masked = mask_tokens(texts, ["zq"], rate=0.5, mask="[MASK]", seed=1)
    share = np.mean([t.endswith("[MASK]") for t in masked])
    assert 0.42 < share < 0.58
    assert mask_tokens(texts, ["zq"], rate=0.5, mask="[MASK]", seed=1) == masked
