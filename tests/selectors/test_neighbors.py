import numpy as np
import pytest

from relabeler.selectors.knn import Neighbors, knn
from relabeler.selectors.neighbors import (
    conflicting_duplicates,
    knn_disagreement,
    neighbor_label_distribution,
    neighbor_probability_mean,
)


def _blobs(n_per=30, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal([5, 0, 0], 0.3, size=(n_per, 3))
    b = rng.normal([0, 5, 0], 0.3, size=(n_per, 3))
    return np.vstack([a, b]).astype(np.float32), np.array([0] * n_per + [1] * n_per)


def test_distribution_by_hand():
    nb = Neighbors(indices=np.array([[1, 2, -1], [0, 2, 1]]),
                   scores=np.array([[0.9, 0.3, -np.inf], [0.5, -0.2, 0.5]], dtype=np.float32),
                   metric="cosine")
    labels = np.array([0, 1, 0])
    dist = neighbor_label_distribution(nb, labels, 2)
    # row 0: label1 weight .9, label0 weight .3 -> [.25, .75]; padding ignored
    # row 1: label0 weight .5 (+ negative similarity clipped to 0), label1 weight .5
    np.testing.assert_allclose(dist, [[0.25, 0.75], [0.5, 0.5]], atol=1e-6)
    uniform = neighbor_label_distribution(nb, labels, 2, weighting="uniform")
    np.testing.assert_allclose(uniform, [[0.5, 0.5], [2 / 3, 1 / 3]], atol=1e-6)


def test_flipped_labels_disagree_with_their_neighbours():
    features, labels = _blobs()
    noisy = labels.copy()
    noisy[[3, 40]] = 1 - noisy[[3, 40]]
    score = knn_disagreement(features, noisy, k=8)
    assert score.shape == (60,)
    assert set(np.argsort(-score)[:2]) == {3, 40}
    assert score[3] > 0.8 and np.median(score) < 0.2


def test_disagreement_is_row_order_independent():
    features, labels = _blobs()
    perm = np.random.default_rng(1).permutation(60)
    a = knn_disagreement(features, labels, k=5)
    b = knn_disagreement(features[perm], labels[perm], k=5)
    np.testing.assert_allclose(a[perm], b, atol=1e-5)


def test_conflicting_duplicates_find_the_odd_one_out():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(60, 16)).astype(np.float32)  # random directions: no near-dups
    labels = np.array([0, 1] * 30)
    features = np.vstack([features, features[[0, 0, 0]]])  # three exact copies of row 0
    labels = np.concatenate([labels, [0, 0, 1]])  # one copy says otherwise
    result = conflicting_duplicates(features, labels, threshold=0.999, k=5)
    dup_rows = [0, 60, 61, 62]
    assert result.n_duplicates[dup_rows].tolist() == [3, 3, 3, 3]
    np.testing.assert_allclose(result.suspect[dup_rows], [1 / 3, 1 / 3, 1 / 3, 1.0], atol=1e-6)
    assert result.n_duplicates[:60].sum() == 3  # only row 0 among the originals has copies
    assert result.majority[62] == 0 and result.majority[0] == 0
    assert result.suspect[5] == 0 and result.n_duplicates[5] == 0
    assert set(result.duplicate_ids[62][result.duplicate_ids[62] >= 0]) == {0, 60, 61}
    # the whole array: k columns, a row's duplicates then -1 padding; no other row lists one
    assert result.duplicate_ids.shape == (63, 5)
    assert {r: sorted(result.duplicate_ids[r].tolist()) for r in dup_rows} == {
        0: [-1, -1, 60, 61, 62], 60: [-1, -1, 0, 61, 62], 61: [-1, -1, 0, 60, 62],
        62: [-1, -1, 0, 60, 61]}
    assert (result.duplicate_ids[1:60] == -1).all()


def test_precomputed_neighbours_give_the_same_result():
    features, labels = _blobs()
    nb = knn(features, k=10, metric="cosine")
    np.testing.assert_allclose(knn_disagreement(features, labels, k=10, neighbors=nb),
                               knn_disagreement(features, labels, k=10), atol=1e-6)


def test_bad_inputs():
    features, labels = _blobs()
    with pytest.raises(ValueError, match="labels: expected 60 labels"):
        knn_disagreement(features, labels[:10])
    with pytest.raises(ValueError, match="threshold"):
        conflicting_duplicates(features, labels, threshold=2.0)
    nb = knn(features, k=3, metric="l2")
    with pytest.raises(ValueError, match="needs cosine or ip"):
        neighbor_label_distribution(nb, labels, 2)


def test_probability_mean_by_hand():
    nb = Neighbors(indices=np.array([[1, 2, -1], [0, 2, 1], [1, -1, -1]]),
                   scores=np.array([[0.9, 0.3, -np.inf], [0.5, -0.2, 0.5], [-0.4, -np.inf,
                                                                         -np.inf]],
                                   dtype=np.float32),
                   metric="cosine")
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [1.0, 0.0]], dtype=np.float32)
    mean = neighbor_probability_mean(nb, probs)
    # row 0: (.9 * [.4, .6] + .3 * [1, 0]) / 1.2; row 1: the negative similarity weighs 0;
    # row 2: no usable neighbour -> the mean of probs
    np.testing.assert_allclose(mean, [[0.55, 0.45], [0.6, 0.4], [0.7333333, 0.2666667]],
                               atol=1e-6)


def test_probability_mean_refuses_probs_the_neighbours_do_not_index():
    nb = Neighbors(indices=np.array([[0, 3]]), scores=np.array([[0.9, 0.8]], np.float32),
                   metric="cosine")
    with pytest.raises(ValueError, match="probs: 2 rows, but the neighbours index row 3"):
        neighbor_probability_mean(nb, np.array([[0.5, 0.5], [0.1, 0.9]], np.float32))
    with pytest.raises(ValueError, match="probs: row 0 sums to"):
        neighbor_probability_mean(nb, np.array([[0.5, 0.6], [0.1, 0.9]], np.float32))


def test_duplicates_with_texts_are_confirmed_by_the_text_check():
    # fine-tuned features pack a class tightly: two different texts at cosine 1 are not one
    features = np.vstack([np.ones((4, 8)), np.eye(8)[:2]]).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 0, 1])
    texts = ["win a free prize now", "Win a free prize, now!", "call me when you land",
             "the meeting moved to noon", "a", "b"]
    without = conflicting_duplicates(features, labels, threshold=0.98, k=3)
    assert without.n_duplicates[:4].tolist() == [3, 3, 3, 3]
    checked = conflicting_duplicates(features, labels, threshold=0.98, k=3, texts=texts)
    assert checked.n_duplicates.tolist() == [1, 1, 0, 0, 0, 0]
    assert checked.suspect.tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
