"""Dawid-Skene EM with the model as a prior."""

from __future__ import annotations

import numpy as np
import pytest

from relabeler.plugin.dawid_skene import MISSING, dawid_skene, flip_chance


def answers_of(seed: int, n: int = 500, accuracies=(0.95, 0.8, 0.65)):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    answers = np.stack([np.where(rng.random(n) < a, truth, 1 - truth) for a in accuracies],
                       axis=1)
    return truth, answers


def test_binary_answers_follow_the_careful_annotator_and_its_accuracy_is_found():
    truth, answers = answers_of(0)
    found = dawid_skene(answers, np.full((len(truth), 2), 0.5))
    assert np.abs(found.accuracy - [0.95, 0.8, 0.65]).max() < 0.04
    majority = (answers.sum(axis=1) >= 2).astype(int)
    assert np.mean(found.labels == truth) >= np.mean(majority == truth) + 0.03
    assert found.posterior.shape == (len(truth), 2)
    assert np.allclose(found.posterior.sum(axis=1), 1.0)
    # balanced classes: no class needs a bias
    assert found.class_bias.shape == (1, 2) and np.abs(found.class_bias).max() < 0.2


def test_an_informative_model_gets_weight_and_a_misleading_one_none():
    truth, answers = answers_of(1)
    good = np.where(truth[:, None] == np.arange(2), 0.9, 0.1)
    coin = np.full((len(truth), 2), 0.5)
    with_good = dawid_skene(answers, good)
    assert with_good.model_weight > 1.0  # right 100% of the time: trusted beyond its 0.9
    assert np.mean(with_good.labels == truth) > np.mean(dawid_skene(answers, coin).labels
                                                        == truth)
    # a model that is right on a random 55%: not worth more than a little
    rng = np.random.default_rng(1)
    noisy = np.where(rng.random(len(truth)) < 0.55, truth, 1 - truth)
    weak = np.where(noisy[:, None] == np.arange(2), 0.9, 0.1)
    assert dawid_skene(answers, weak).model_weight < 0.3


def test_class_biases_undo_a_model_that_over_predicts_one_class():
    """Three classes (15/25/60%) whose model leans to class 0 by +2 logits (the common class
    where it was fitted, a rare one among the answered tasks), annotators of 0.8 / 0.65 / 0.6:
    the bias of class 0 comes out about 2 below the others, and with the lean taken off the
    model earns a weight above 1 and the resolved labels beat the majority by 10 points (a
    temperature alone, seeds 0-4: weight 0.3-0.4, 8 points less accurate)."""
    rng = np.random.default_rng(0)
    n = 600
    truth = rng.choice(3, n, p=[0.15, 0.25, 0.6])
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), truth] += 1.5
    logits[:, 0] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    answers = np.stack([np.where(rng.random(n) < a, truth, (truth + rng.integers(1, 3, n)) % 3)
                        for a in (0.8, 0.65, 0.6)], axis=1)
    found = dawid_skene(answers, probs)
    bias = found.class_bias[0]
    assert bias[0] < min(bias[1], bias[2]) - 2.0
    assert found.model_weight > 1.0
    majority = np.array([np.bincount(row, minlength=3).argmax() for row in answers])
    assert np.mean(found.labels == truth) >= np.mean(majority == truth) + 0.10  # .922 / .760


def test_missing_answers_are_skipped():
    truth, answers = answers_of(2)
    answers[::2, 0] = MISSING  # the careful annotator answered half
    found = dawid_skene(answers, np.full((len(truth), 2), 0.5))
    assert found.accuracy[0] > found.accuracy[1] > found.accuracy[2]
    assert abs(found.accuracy[0] - 0.95) < 0.08


@pytest.mark.parametrize(("answers", "probs", "error"), [
    (np.zeros((3, 2), dtype=np.int64), np.full((2, 2), 0.5), "3 tasks"),
    (np.zeros((3, 2)), np.full((3, 2), 0.5), "integer"),
    (np.full((3, 2), 2), np.full((3, 2), 0.5), "lie in"),
    (np.full((3, 2), MISSING), np.full((3, 2), 0.5), "at least one answer"),
    (np.zeros((3, 2), dtype=np.int64), np.full((3, 1), 1.0), "2 classes"),
])
def test_bad_input_names_the_argument(answers, probs, error):
    with pytest.raises((ValueError, TypeError), match=error):
        dawid_skene(answers, probs)


def test_flip_chance_is_highest_where_the_posterior_is_split():
    posterior = np.array([[0.99, 0.01], [0.6, 0.4], [0.5, 0.5]])
    chance = flip_chance(posterior, 0.8)
    # 0.6/0.4: a "1" answer (P = .6*.2 + .4*.8 = .44) moves it to .27/.73 -> changes
    assert chance[1] == pytest.approx(0.44)
    assert chance[0] == pytest.approx(0.0)
    assert chance[2] == pytest.approx(1.0)  # a tie now: any answer decides it


def test_each_group_earns_its_own_model_weight():
    """A first round where the model is right on 90% of the tasks and a later one where it is
    wrong on 80% (its remaining suspects are mostly clean), annotators of 0.95 / 0.8 / 0.65:
    one weight for both trusts the model too little in the first round; a weight per round
    trusts it there and ignores it in the later one."""
    rng = np.random.default_rng(3)
    sizes, model_right = (400, 200), (0.9, 0.2)
    truth = rng.integers(0, 2, sum(sizes))
    right = np.concatenate([rng.random(n) < r for n, r in zip(sizes, model_right, strict=True)])
    model_class = np.where(right, truth, 1 - truth)
    probs = np.where(model_class[:, None] == np.arange(2), 0.9, 0.1)
    answers = np.stack([np.where(rng.random(len(truth)) < a, truth, 1 - truth)
                        for a in (0.95, 0.8, 0.65)], axis=1)
    groups = np.repeat([0, 1], sizes)
    pooled = dawid_skene(answers, probs)
    split = dawid_skene(answers, probs, groups=groups)
    assert len(pooled.group_weights) == 1 and 0.1 < pooled.group_weights[0] < 0.6
    assert split.group_weights[0] > 1.0 and split.group_weights[1] < 0.05
    assert split.class_bias.shape == (2, 2)
    for rows in (groups == 0, groups == 1):
        assert np.mean(split.labels[rows] == truth[rows]) >= \
            np.mean(pooled.labels[rows] == truth[rows])
    assert np.mean(split.labels == truth) >= np.mean(pooled.labels == truth) + 0.008
    with pytest.raises(ValueError, match="groups"):
        dawid_skene(answers, probs, groups=groups[:-1])
