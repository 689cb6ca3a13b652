"""The noise model: confident joint, transitions (class-conditional or uniform), corrected
posteriors."""

import numpy as np
import pytest
from scipy import stats

from relabeler.selectors import noise
from relabeler.selectors.confidence import normalized_margin


def spam_filed_as_ham():
    """Six ham-labeled and two spam-labeled samples; three of the 'ham' look like spam."""
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.85, 0.15],    # ham, confident
                      [0.6, 0.4], [0.52, 0.48], [0.7, 0.3],      # labeled ham, spam-like
                      [0.5, 0.5], [0.6, 0.4]], dtype=np.float32)  # labeled spam
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    return probs, labels


def test_confident_joint_by_hand():
    probs, labels = spam_filed_as_ham()
    joint = noise.confident_joint(probs, labels)
    # thresholds: ham = mean(.95, .9, .85, .6, .52, .7) = .753..., spam = mean(.5, .4) = .45
    # given ham: rows 0-2 reach ham only (spam .05-.15 < .45) -> ham; row 4 reaches spam only
    # (.48 >= .45) -> spam; rows 3, 5 reach neither. Given spam: row 6 reaches spam (.5), row 7
    # reaches neither. Rows rescaled to 6 and 2 samples.
    np.testing.assert_allclose(joint, [[4.5, 1.5], [0.0, 2.0]])


def test_transition_matrix_adds_the_prior_and_normalises_by_true_class():
    joint = np.array([[4.5, 1.5], [0.0, 2.0]])
    transition = noise.transition_matrix(joint, prior_count=1.0)
    # true ham: given ham 5.5, given spam 1 -> 5.5/6.5, 1/6.5
    # true spam: given ham 2.5, given spam 3 -> 2.5/5.5, 3/5.5
    np.testing.assert_allclose(transition, [[5.5 / 6.5, 1 / 6.5], [2.5 / 5.5, 3 / 5.5]])
    np.testing.assert_allclose(noise.transition_matrix(joint, prior_count=0.0),
                               [[1.0, 0.0], [1.5 / 3.5, 2 / 3.5]])


def test_noise_aware_posterior_by_hand():
    transition = np.array([[0.9, 0.1], [0.6, 0.4]])  # spam is filed as ham 60% of the time
    probs = np.array([[0.7, 0.3], [0.7, 0.3]], dtype=np.float32)
    labels = np.array([0, 1])
    post = noise.noise_aware_posterior(probs, labels, transition)
    # given ham: (.9 * .7, .6 * .3) = (.63, .18) -> (.7778, .2222)
    # given spam: (.1 * .7, .4 * .3) = (.07, .12) -> (.3684, .6316)
    np.testing.assert_allclose(post, [[0.63 / 0.81, 0.18 / 0.81], [0.07 / 0.19, 0.12 / 0.19]],
                               rtol=1e-6)
    # the same evidence: the ham-labeled sample is more doubtful than without the model, the
    # spam-labeled one less (its label is one that seldom appears by mistake)
    before = normalized_margin(probs, labels)
    after = normalized_margin(post, labels)
    assert after[0] < before[0] and after[1] < before[1]
    np.testing.assert_allclose(after, [(1 - (0.63 - 0.18) / 0.81) / 2,
                                       (1 - (0.12 - 0.07) / 0.19) / 2], rtol=1e-6)


def spam_mostly_filed_as_ham():
    """1000 samples: 800 ham, 200 spam of which 150 are labeled ham; the model learned that
    spam-looking texts are mostly ham (p(spam) .15-.4 on spam, under .1 on ham)."""
    rng = np.random.default_rng(0)
    true = np.r_[np.zeros(800, int), np.ones(200, int)]
    labels = true.copy()
    labels[800:950] = 0                                   # 150 spam filed as ham
    p_spam = np.where(true == 1, rng.uniform(0.15, 0.4, 1000), rng.uniform(0.0, 0.1, 1000))
    return np.stack([1 - p_spam, p_spam], axis=1).astype(np.float32), labels


def test_the_corrected_ranking_puts_the_absorbed_class_first():
    """Three quarters of the spam filed as ham: the model learned that spam-looking texts are
    mostly ham, so the honest spam labels outrank the wrong ham labels on the plain margin;
    the noise model estimated from the same probabilities separates them."""
    probs, labels = spam_mostly_filed_as_ham()
    wrong, honest = np.arange(800, 950), np.arange(950, 1000)
    transition = noise.transition_matrix(noise.confident_joint(probs, labels))
    assert transition[1, 0] > 0.5 and transition[0, 1] < 0.01  # spam -> ham, seldom back
    raw = normalized_margin(probs, labels)
    fixed = normalized_margin(noise.noise_aware_posterior(probs, labels, transition), labels)
    top_raw = np.argsort(-raw, kind="stable")[:150]
    top_fixed = np.argsort(-fixed, kind="stable")[:150]
    assert np.isin(honest, top_raw).all()                 # all 50 honest labels in the top 150
    assert not np.isin(honest, top_fixed).any()           # none of them
    assert np.isin(top_fixed, wrong).mean() == 1.0        # and all 150 wrong ones instead


def test_uniform_noise_keeps_the_order_within_each_class():
    """A symmetric transition changes no sample's rank among those given its class (by the
    probability of the given label)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 3))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, 3, 200)
    transition = np.full((3, 3), 0.1) + np.eye(3) * 0.7
    post = noise.noise_aware_posterior(probs, labels, transition)
    rows = np.arange(200)
    for c in range(3):
        mine = labels == c
        np.testing.assert_array_equal(np.argsort(probs[rows, labels][mine], kind="stable"),
                                      np.argsort(post[rows, labels][mine], kind="stable"))
    # and the given label's share only moves towards it (0.8 vs 0.1 per other class)
    assert (post[rows, labels] >= probs[rows, labels] - 1e-6).all()


def test_a_row_whose_evidence_never_turns_into_its_label_keeps_its_distribution():
    transition = np.array([[1.0, 0.0], [0.0, 1.0]])
    probs = np.array([[0.0, 1.0], [0.2, 0.8]], dtype=np.float32)
    post = noise.noise_aware_posterior(probs, np.array([0, 0]), transition)
    np.testing.assert_allclose(post, [[0.0, 1.0], [1.0, 0.0]])


def test_given_label_distribution_borrows_the_split_of_the_other_classes():
    others = np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]], dtype=np.float32)
    out = noise.given_label_distribution(np.array([0.6, 0.25]), others, np.array([0, 0]))
    # row 0: .6 on class 0, .4 split 3:2; row 1: no mass elsewhere -> .75 split evenly
    np.testing.assert_allclose(out, [[0.6, 0.24, 0.16], [0.25, 0.375, 0.375]], rtol=1e-6)


def test_a_class_nobody_was_given_gets_an_even_row():
    probs = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1]], dtype=np.float32)
    joint = noise.confident_joint(probs, np.array([0, 1]), 3)
    np.testing.assert_allclose(joint[2], 0.0)
    np.testing.assert_allclose(noise.transition_matrix(joint)[2], [1 / 3] * 3)


def test_uniform_transition_spreads_one_rate_evenly():
    joint = np.array([[50.0, 6.0, 4.0], [2.0, 30.0, 0.0], [3.0, 5.0, 20.0]])
    # 20 of 120 counts off the diagonal; with one pseudo-count per cell 26 of 129
    np.testing.assert_allclose(noise.uniform_transition(joint, prior_count=0.0),
                               np.eye(3) * (1 - 20 / 120) + (1 - np.eye(3)) * 10 / 120)
    rate = 26 / 129
    np.testing.assert_allclose(noise.uniform_transition(joint),
                               np.eye(3) * (1 - rate) + (1 - np.eye(3)) * rate / 2)


def test_the_prior_does_not_outweigh_the_rows_of_many_classes():
    """One pseudo-count in every cell of 38 classes was 1,406 pseudo-flips against 879
    training rows: a uniform flip rate of 61% where the joint held 1.6%, and a diagonal of
    0.39 for a class of 23 rows. Past five classes a row's pseudo-counts add up to five; up
    to five classes (the dev datasets) nothing changes."""
    c = 38
    counts = np.full(c, 23.0)
    joint = np.diag(counts - 0.4) + (1 - np.eye(c)) * 0.4 / (c - 1)   # 1.7% flipped
    rate = 1 - noise.uniform_transition(joint)[0, 0]
    flips = joint.sum() - np.trace(joint)
    assert rate == pytest.approx((flips + 20) / (joint.sum() + 25))   # five classes' prior
    assert rate < 0.05
    transition = noise.transition_matrix(joint)
    per_cell = 5 / c
    assert transition[0, 0] == pytest.approx((22.6 + per_cell) / (23 + 5))
    assert transition[0, 0] > 0.8
    # five classes: one pseudo-count a cell, as before
    five = np.diag([40.0, 30, 20, 10, 5]) + 1.0
    assert 1 - noise.uniform_transition(five)[0, 0] == pytest.approx(
        (20 + 20) / (five.sum() + 25))
    np.testing.assert_allclose(noise.transition_matrix(five),
                               (five.T + 1) / (five.T + 1).sum(axis=1, keepdims=True))


def test_asymmetry_by_hand():
    # given i, true j: true class 0 is never filed as 1, 30 of 110 true 1 are filed as 0
    joint = np.array([[90.0, 30.0], [0.0, 80.0]])
    statistic, per_flip, p_value = noise.asymmetry(joint)
    # uniform: rate 30 / 200 = .15; class-conditional: rows (1, 0) and (30/110, 80/110)
    expected = 2 * (90 * np.log(1 / 0.85) + 30 * np.log(30 / 110 / 0.15)
                    + 80 * np.log(80 / 110 / 0.85))
    assert statistic == pytest.approx(expected)
    assert per_flip == pytest.approx(expected / 30)
    assert p_value == pytest.approx(stats.chi2.sf(expected, 1))
    # a symmetric joint is uniform noise exactly; a joint with no flip has nothing to explain
    assert noise.asymmetry(np.array([[90.0, 10.0], [10.0, 90.0]])) == pytest.approx((0, 0, 1))
    assert noise.asymmetry(np.diag([5.0, 7.0])) == (0.0, 0.0, 1.0)


def test_fit_noise_model_keeps_class_conditional_transitions_only_for_lopsided_noise():
    # three quarters of the spam filed as ham: far from uniform
    probs, labels = spam_mostly_filed_as_ham()
    model = noise.fit_noise_model(probs, labels)
    assert model.kind == "class_conditional"
    assert model.asymmetry_per_flip >= noise.ASYMMETRY_PER_FLIP
    assert model.asymmetry_p_value < noise.ASYMMETRY_ALPHA
    np.testing.assert_allclose(model.joint, noise.confident_joint(probs, labels))
    np.testing.assert_allclose(model.transition, noise.transition_matrix(model.joint))
    # 10% of each class flipped to another, with a calibrated model: uniform
    rng = np.random.default_rng(1)
    true = rng.integers(0, 3, 3000)
    labels = true.copy()
    flip = rng.random(3000) < 0.1
    labels[flip] = (true[flip] + rng.integers(1, 3, flip.sum())) % 3
    logits = np.eye(3)[true] * 2.5 + rng.normal(size=(3000, 3))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    model = noise.fit_noise_model(probs, labels)
    assert model.kind == "uniform" and model.asymmetry_per_flip < noise.ASYMMETRY_PER_FLIP
    np.testing.assert_allclose(model.transition, noise.uniform_transition(model.joint))
    # forced either way
    assert noise.fit_noise_model(probs, labels, kind="class_conditional").kind == \
        "class_conditional"
    assert noise.fit_noise_model(probs, labels, kind="uniform").kind == "uniform"


def test_a_small_lopsided_joint_is_not_enough_to_leave_uniform_noise():
    # 3.06 per flip, but one flip: p = .08
    joint = np.array([[9.0, 1.0], [0.0, 2.0]])
    _, per_flip, p_value = noise.asymmetry(joint)
    assert per_flip > noise.ASYMMETRY_PER_FLIP and 0.05 < p_value < 0.1
    probs = np.array([[0.9, 0.1]] * 9 + [[0.05, 0.95], [0.1, 0.9], [0.2, 0.8]], dtype=np.float32)
    labels = np.array([0] * 10 + [1] * 2)
    model = noise.fit_noise_model(probs, labels)
    np.testing.assert_allclose(model.joint, joint)
    assert model.kind == "uniform"


@pytest.mark.parametrize("call, message", [
    (lambda: noise.confident_joint(np.ones((2, 2), np.float32) / 2, np.array([0])),
     "labels: expected 2 labels"),
    (lambda: noise.confident_joint(np.ones((2, 2), np.float32) / 2, np.array([0, 1]), 3),
     "num_classes: 3 does not match"),
    (lambda: noise.transition_matrix(np.ones((2, 3))), "joint: expected a square"),
    (lambda: noise.asymmetry(np.array([[1.0, -1.0], [0.0, 1.0]])), "joint: counts must be"),
    (lambda: noise.uniform_transition(np.zeros((2, 2)), prior_count=0.0), "joint: has no"),
    (lambda: noise.fit_noise_model(np.ones((2, 2), np.float32) / 2, np.array([0, 1]),
                                   kind="symmetric"), "kind: expected one of"),
    (lambda: noise.transition_matrix(np.zeros((2, 2)), prior_count=0.0),
     "true class 0 has no counts"),
    (lambda: noise.noise_aware_posterior(np.ones((2, 2), np.float32) / 2, np.array([0, 1]),
                                         np.eye(3)), "transition: expected shape"),
    (lambda: noise.given_label_distribution(np.array([1.5]), np.array([[0.5, 0.5]], np.float32),
                                            np.array([0])), "given_prob: values"),
])
def test_bad_input_names_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
