"""Acquisition by support of the thin, misclassified eval samples."""

import numpy as np
import pytest

from relabeler.selectors.eval_support import (
    eval_support,
    pick_score,
    steering,
    support_picks,
    target_weights,
)


def test_target_weights_are_deficit_times_error():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.0, 1.0]], np.float32)
    weights = target_weights(np.array([0.0, 0.5, 2.0, 0.25]), probs, np.array([1, 0, 0, 1]))
    np.testing.assert_allclose(weights, [0.9, 0.4, 0.0, 0.0], atol=1e-6)


def test_support_follows_similarity_weight_and_the_candidate_s_gradient():
    targets = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    pool = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
    # pool 0 and 1 sit on target 0 (label 1); pool 1 already gets class 1 half right
    pool_probs = np.array([[1.0, 0.0], [0.5, 0.5], [1.0, 0.0], [0.0, 1.0]], np.float32)
    found = eval_support(pool, pool_probs, targets, np.array([1, 0]), np.array([1.0, 0.25]),
                         k=1)
    np.testing.assert_allclose(found.support, [1.0, 0.5, 0.0, 0.0], atol=1e-6)
    assert found.target.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(found.similarity, [1.0, 1.0, 1.0, 0.0], atol=1e-6)
    # pool 2 is on target 1 (label 0) but the model already gives it class 0
    both = eval_support(pool, pool_probs, targets, np.array([1, 0]), np.array([1.0, 0.25]),
                        k=2)
    np.testing.assert_allclose(both.support, [1.0, 0.5, 0.0, 0.0], atol=1e-6)
    # the target that gives the support, not the most similar one; none: the most similar
    assert both.target.tolist() == [0, 0, 1, 1]
    weighted = eval_support(np.array([[0.8, 0.6]], np.float32), np.array([[1.0, 0.0]]),
                            targets, np.array([1, 1]), np.array([0.0, 1.0]), k=2)
    assert weighted.target.tolist() == [1]
    np.testing.assert_allclose(weighted.similarity, [0.6], atol=1e-6)


def test_support_edge_cases_and_checks():
    pool = np.ones((3, 2), np.float32)
    probs = np.full((3, 2), 0.5, np.float32)
    empty = eval_support(pool, probs, np.zeros((0, 2), np.float32), np.zeros(0, np.int64),
                         np.zeros(0))
    assert empty.support.tolist() == [0.0] * 3 and empty.target.tolist() == [-1] * 3
    with pytest.raises(ValueError, match="target_weights"):
        eval_support(pool, probs, pool, np.zeros(3, np.int64), np.array([1.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="target_labels"):
        eval_support(pool, probs, pool, np.array([0, 1, 2]), np.ones(3))
    with pytest.raises(ValueError, match="k"):
        eval_support(pool, probs, pool, np.zeros(3, np.int64), np.ones(3), k=0)


def test_picks_by_score_without_near_duplicates_or_unsupported_samples():
    pool = np.array([[1.0, 0.0], [1.0, 0.001], [0.0, 1.0], [0.7, 0.7], [-1.0, 0.0]],
                    np.float32)
    score = np.array([0.9, 0.8, 0.5, 0.6, 0.0])
    picks = support_picks(score, pool, budget=10, diversity_threshold=0.99)
    assert picks.tolist() == [0, 3, 2]  # 1 duplicates 0; 4 supports nothing
    assert support_picks(score, pool, budget=2).tolist() == [0, 3]
    assert support_picks(score, pool, budget=0).tolist() == []
    with pytest.raises(ValueError, match="score"):
        support_picks(score[:2], pool, budget=1)


def test_pick_score_is_support_times_the_root_of_the_pool_sample_s_deficit():
    score = pick_score(np.array([1.0, 1.0, 0.5, 2.0]), np.array([0.0, 0.75, 0.0, 1.5]))
    np.testing.assert_allclose(score, [1.0, 0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="representation"):
        pick_score(np.ones(3), np.ones(2))


def test_the_steering_rows_are_a_stable_share_by_id():
    ids = np.array([f"row-{i}" for i in range(2000)], dtype=object)
    half = steering(ids, 0.5)
    assert 0.45 < half.mean() < 0.55
    # the same rows whatever the order, and a larger share keeps the smaller one's rows
    order = np.random.default_rng(0).permutation(len(ids))
    assert steering(ids[order], 0.5).tolist() == half[order].tolist()
    assert (steering(ids, 0.8) >= half).all() and steering(ids, 1.0).all()
    with pytest.raises(ValueError, match=r"share: expected a fraction in \(0, 1\], got 0"):
        steering(ids, 0)
