import numpy as np
import pytest

from relabeler.selectors.coverage import (
    acquire,
    coverage_scores,
    farthest_first,
    undercovered,
)


def _train():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0, 0], 0.3, size=(40, 3))
    b = rng.normal([0, 5, 0], 0.3, size=(40, 3))
    return np.vstack([a, b]).astype(np.float32), np.array([0] * 40 + [1] * 40)


def test_coverage_is_label_aware():
    train, labels = _train()
    queries = np.array([[5, 0.1, 0], [5, 0.1, 0], [0, 0, 5]], dtype=np.float32)
    pred = np.array([0, 1, 0])
    cov = coverage_scores(train, labels, queries, pred, k=5)
    # in class 0's cluster and predicted 0: covered; same point predicted 1: not covered
    assert cov.label_agreement[0] == pytest.approx(1.0)
    assert cov.label_agreement[1] == pytest.approx(0.0)
    assert cov.coverage_score[0] > 0.9 and cov.coverage_score[1] == pytest.approx(0.0)
    # far from every training sample: low density
    assert cov.density[2] < 0.2 < 0.9 < cov.density[0]
    assert (cov.nearest_ids[0] < 40).all()


def test_undercovered_quantile_and_threshold():
    score = np.array([0.9, 0.1, 0.5, 0.05, 0.7])
    assert undercovered(score, quantile=0.4).tolist() == [False, True, False, True, False]
    assert undercovered(score, threshold=0.6).tolist() == [False, True, True, True, False]
    assert undercovered(score, quantile=0.01).sum() == 1


def test_acquire_picks_near_targets_diverse_and_within_budget():
    rng = np.random.default_rng(1)
    targets = np.array([[0, 0, 5], [0, -5, 0]], dtype=np.float32)
    near_a = rng.normal([0, 0, 5], 0.2, size=(10, 3))
    near_b = rng.normal([0, -5, 0], 0.2, size=(10, 3))
    far = rng.normal([5, 0, 0], 0.2, size=(20, 3))
    pool = np.vstack([near_a, near_a[:3], near_b, far]).astype(np.float32)  # 3 exact dups
    picks = acquire(pool, targets, budget=6, diversity_threshold=0.9999)
    assert len(picks.pool_idx) == 6
    assert len(set(picks.pool_idx.tolist())) == 6
    assert np.bincount(picks.near_idx, minlength=2).tolist() == [3, 3]  # spread over targets
    assert all(p < 23 for p in picks.pool_idx)  # never the far cluster
    # no two picks are exact duplicates of each other
    normed = pool[picks.pool_idx] / np.linalg.norm(pool[picks.pool_idx], axis=1, keepdims=True)
    sims = normed @ normed.T
    assert (sims[np.triu_indices(6, 1)] < 0.9999).all()
    # within a region (here: a target) best support first
    assert np.all(np.diff(picks.support[picks.near_idx == 0]) <= 1e-6)


def test_acquire_edge_cases():
    pool = np.ones((3, 2), dtype=np.float32)
    assert len(acquire(pool, np.zeros((0, 2), np.float32), budget=5).pool_idx) == 0
    assert len(acquire(pool, pool[:1], budget=0).pool_idx) == 0
    with pytest.raises(ValueError, match="budget"):
        acquire(pool, pool, budget=-1)
    with pytest.raises(ValueError, match="target_features: expected 2 columns"):
        acquire(pool, np.ones((1, 3), np.float32), budget=1)


def test_acquire_prefers_a_dense_thin_region_and_spreads_over_regions():
    rng = np.random.default_rng(2)
    region_a = rng.normal([0, 0, 5], 0.3, size=(8, 3))  # many under-covered samples together
    isolated = np.array([[0, -5, 0]])  # one hard sample on its own
    targets = np.vstack([region_a, isolated]).astype(np.float32)
    pool = np.vstack([rng.normal([0, 0, 5], 0.3, size=(6, 3)),
                      rng.normal([0, -5, 0], 0.3, size=(6, 3))]).astype(np.float32)
    # one region: support sums over the nearest targets, so the dense region wins every pick
    together = acquire(pool, targets, budget=4, k=5, diversity_threshold=0.9999,
                       target_regions=np.zeros(9, np.int64))
    assert (together.pool_idx < 6).all()
    assert (together.region == 0).all()
    assert np.all(np.diff(together.support) <= 1e-6)
    assert together.support[0] > 3.0  # close to several targets at once
    # two regions of equal worth (the isolated target weighs as much as the 8 together): the
    # picks alternate between them
    regions = np.array([0] * 8 + [1])
    spread = acquire(pool, targets, budget=4, k=5, diversity_threshold=0.9999,
                     target_regions=regions, target_weights=np.array([0.125] * 8 + [1.0]))
    assert spread.region.tolist() in ([0, 1, 0, 1], [1, 0, 1, 0])
    assert all((p < 6) == (r == 0) for p, r in zip(spread.pool_idx, spread.region, strict=True))
    # by default every target weighs 1: the dense region gets its share 8 / 9 of the picks
    weighted = acquire(pool, targets, budget=4, k=5, diversity_threshold=0.9999,
                       target_regions=regions)
    assert weighted.region.tolist() == [0, 0, 0, 0]
    assert (spread.near_idx[spread.region == 1] == 8).all()


def test_acquire_weights_and_their_checks():
    targets = np.array([[1, 0], [0, 1]], dtype=np.float32)
    pool = np.array([[1, 0.05], [0.05, 1]], dtype=np.float32)
    # a target worth nothing attracts nothing: only the pick near the other one remains
    picks = acquire(pool, targets, budget=2, k=1, target_weights=np.array([0.0, 1.0]))
    assert picks.pool_idx.tolist() == [1]
    with pytest.raises(ValueError, match=r"target_weights: expected shape \(2,\)"):
        acquire(pool, targets, budget=1, target_weights=np.ones(3))
    with pytest.raises(ValueError, match="target_weights: expected finite values >= 0"):
        acquire(pool, targets, budget=1, target_weights=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"target_regions: expected shape \(2,\)"):
        acquire(pool, targets, budget=1, target_regions=np.zeros(1))


def test_farthest_first_keeps_the_best_and_then_the_least_similar():
    # eight directions on the unit circle, best-ranked first: 0 deg, 10 deg, 90 deg, 100 deg,
    # 180 deg, 190 deg, 270 deg, 280 deg
    angles = np.deg2rad([0, 10, 90, 100, 180, 190, 270, 280])
    features = np.stack([np.cos(angles), np.sin(angles)], axis=1) * np.arange(1, 9)[:, None]
    # 0 deg first; 180 deg is the least similar to it (cosine -1); then 90 deg and 270 deg
    # (cosine 0 to both kept; on a tie the better-ranked); lengths do not matter
    kept = farthest_first(features, 4)
    assert kept.tolist() == [0, 2, 4, 6]
    assert farthest_first(features, 1).tolist() == [0]
    assert farthest_first(features[:3], 5).tolist() == [0, 1, 2]  # fewer rows than k: all
    with pytest.raises(ValueError, match="k: expected at least 1"):
        farthest_first(features, 0)


def test_an_under_covered_pool_sample_does_not_support_itself():
    from relabeler.selectors.coverage import acquire

    x = np.array([1.0, 0.0, 0.0], np.float32)  # an isolated pool sample, itself a target
    y = np.array([0.0, 1.0, 0.0], np.float32)  # a pool sample between two thin eval samples
    eval_targets = np.array([[0.0, 0.4, 0.92], [0.0, 0.4, -0.92]], np.float32)
    pool = np.stack([x, y])
    targets = np.vstack([x[None], eval_targets])
    counted = acquire(pool, targets, budget=1, k=2)
    assert counted.pool_idx.tolist() == [0] and counted.near_idx.tolist() == [0]  # before
    fixed = acquire(pool, targets, budget=2, k=2, target_pool_rows=np.array([0, -1, -1]))
    assert fixed.pool_idx.tolist()[0] == 1
    assert 0 not in fixed.near_idx[fixed.pool_idx == 0].tolist()


def test_blended_features_weigh_the_two_cosines():
    from relabeler.selectors.coverage import blended_features

    rng = np.random.default_rng(60)
    features = rng.normal(size=(20, 8)).astype(np.float32)
    words = rng.normal(size=(20, 5)).astype(np.float32)

    def cosines(x):
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return unit @ unit.T

    for weight in (0.0, 0.3, 1.0):
        blended = blended_features(features, words, weight)
        assert blended.shape == (20, 13) and blended.dtype == np.float32
        np.testing.assert_allclose(blended @ blended.T, (1 - weight) * cosines(features)
                                   + weight * cosines(words), atol=1e-5)
    with pytest.raises(ValueError, match="words: expected 20 rows"):
        blended_features(features, words[:3], 0.5)
    with pytest.raises(ValueError, match=r"weight: expected a share in \[0, 1\], got 1.5"):
        blended_features(features, words, 1.5)
