"""Representer points: a hand-computed refit, the decomposition, detection, evidence, checks."""

from __future__ import annotations

import inspect
import logging
import math
import re

import numpy as np
import pytest
import torch

from relabeler.selectors.evidence import Evidence, representer_evidence
from relabeler.selectors.representer import (
    RepresenterFit,
    RepresenterFitError,
    fit_representer,
    fit_trustai,
    representer_suspect,
    trustai_dirty_score,
)


def blobs(n: int = 200, d: int = 8, c: int = 2, *, spread: float = 0.3, seed: int = 0):
    """c well separated Gaussian blobs; returns (features float32, true classes)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d)) * 2.0
    classes = np.arange(n) % c
    features = centres[classes] + rng.normal(size=(n, d)) * spread
    return features.astype(np.float32), classes.astype(np.int64)


def with_bias(features: np.ndarray) -> np.ndarray:
    return np.concatenate([features, np.ones((len(features), 1))], axis=1)


def test_hand_computed_refit_alpha_and_suspect():
    # D = 1, no bias, classes 0 (f > 0) and 1 (f < 0), n = 4, f = [1, -1, 2, -2].
    # The optimum is W = [w, -w]; the margin of sample i is 2 w |f_i|. Choose w = ln(3) / 2:
    #   |f| = 1: p(given) = sigmoid(ln 3) = 3/4;   |f| = 2: p(given) = sigmoid(2 ln 3) = 9/10.
    # Stationarity in w: (1/4) sum_i 2 |f_i| (1 - p_i) = 4 lam w
    #   -> (1/4)(2*1*1/4 * 2 + 2*2*1/10 * 2) = 0.45 = 4 lam ln(3)/2  -> lam = 9 / (40 ln 3).
    # Then 2 lam n = 9 / (5 ln 3) = 1.6384 and alpha_i = -(p_i - y_i) / (2 lam n):
    #   |f| = 1: alpha(given) = 0.25 / 1.6384 = 0.152585;   |f| = 2: 0.1 / 1.6384 = 0.061034.
    # Check W = sum_i alpha_i f_i: class 0 gets 2 * 0.152585 * 1 + 2 * 0.061034 * 2 = 0.549306
    #   = ln(3) / 2. Suspect (1 - p) f^2 / (2 lam n): 0.25 * 1 and 0.1 * 4 = 0.4, over max 0.4:
    #   [0.625, 0.625, 1, 1] (the confident sample with the larger norm ranks first: lesson 5).
    features = np.array([[1.0], [-1.0], [2.0], [-2.0]])
    labels = np.array([0, 1, 0, 1])
    lam = 9 / (40 * math.log(3))
    fit = fit_representer(features, labels, lam=lam, bias=False)

    w = math.log(3) / 2
    np.testing.assert_allclose(fit.weight, [[w], [-w]], rtol=1e-6)
    np.testing.assert_allclose(fit.probs, [[0.75, 0.25], [0.25, 0.75], [0.9, 0.1], [0.1, 0.9]],
                               rtol=1e-6)
    a1, a2 = 0.25 / (9 / (5 * math.log(3))), 0.1 / (9 / (5 * math.log(3)))
    assert a1 == pytest.approx(0.152585, abs=1e-6) and a2 == pytest.approx(0.061034, abs=1e-6)
    np.testing.assert_allclose(fit.alpha, [[a1, -a1], [-a1, a1], [a2, -a2], [-a2, a2]], rtol=1e-6)
    # the definition, from the fit's own probabilities
    onehot = np.eye(2)[labels]
    np.testing.assert_allclose(fit.alpha, -(fit.probs - onehot) / (2 * lam * 4), rtol=1e-6)
    np.testing.assert_allclose(representer_suspect(fit, features, labels),
                               [0.625, 0.625, 1.0, 1.0], rtol=1e-6)
    assert fit.target == "labels" and fit.reconstruction_error < 1e-6


def test_decomposition_reproduces_the_logits_on_new_points():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(200, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 200)
    fit = fit_representer(features, labels, lam=1e-2)
    assert fit.weight.shape == (3, 9) and fit.alpha.shape == (200, 3)
    assert fit.alpha.dtype == np.float32 and fit.reconstruction_error < 1e-4

    train, test = with_bias(features), with_bias(rng.normal(size=(50, 8)))
    logits = test @ fit.weight.T
    rebuilt = (fit.alpha.astype(np.float64)[:, None, :]
               * (train @ test.T)[:, :, None]).sum(axis=0)          # sum_i alpha_i f_i.f_t
    assert np.abs(rebuilt - logits).max() / np.abs(logits).max() < 1e-3
    # the alphas of each sample sum to 0 over classes (both probability rows sum to 1)
    np.testing.assert_allclose(fit.alpha.sum(axis=1), 0.0, atol=1e-7)


def test_flipped_labels_rank_in_the_top_decile():
    features, classes = blobs(200)
    labels = classes.copy()
    flipped = np.array([3, 50, 77, 120, 181])
    labels[flipped] = 1 - labels[flipped]
    score = representer_suspect(fit_representer(features, labels), features, labels)
    assert score.min() >= 0 and score.max() == pytest.approx(1.0)
    rank = np.empty(200)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, 201)
    assert rank[flipped].mean() <= 20


def brute_force(fit, train, queries, classes, k, exclude=None):
    """Dense (N, Q) contributions alpha_ic f_i.f_t: fine for a test, never in the module."""
    contrib = (with_bias(train) @ with_bias(queries).T) * fit.alpha[:, classes].astype(np.float64)
    if exclude is not None:
        contrib[exclude, np.arange(len(queries))] = np.nan
    support = -np.sort(-np.nan_to_num(contrib, nan=-np.inf), axis=0)[:k].T
    oppose = np.sort(np.nan_to_num(contrib, nan=np.inf), axis=0)[:k].T
    return contrib, support, oppose


def assert_matches_brute_force(ev, fit, train, queries, classes, *, exclude=None, atol):
    """Scores equal brute force's at every place; ids are right when their brute-force scores
    are the reported ones (ties tolerated)."""
    k = ev.support_ids.shape[1]
    contrib, support, oppose = brute_force(fit, train, queries, classes, k, exclude=exclude)
    np.testing.assert_allclose(ev.support_scores, support, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(ev.oppose_scores, oppose, rtol=1e-4, atol=atol)
    cols = np.arange(len(queries))[:, None]
    for ids, scores in ((ev.support_ids, ev.support_scores), (ev.oppose_ids, ev.oppose_scores)):
        np.testing.assert_allclose(contrib[ids, cols], scores, rtol=1e-4, atol=atol)


def test_evidence_matches_brute_force_and_excludes_self():
    features, classes = blobs(100, seed=2)
    labels = classes.copy()
    labels[[5, 6]] = 1 - labels[[5, 6]]
    fit = fit_representer(features, labels, model_pred=classes)
    queries, qclasses = features[:20], fit.probs[:20].argmax(axis=1)

    ev = representer_evidence(fit, features, queries, qclasses, k=5)
    assert_matches_brute_force(ev, fit, features, queries, qclasses, atol=1e-6)
    assert (ev.support_scores[:, 0] > 0).all() and (ev.oppose_scores[:, 0] < 0).all()
    assert (np.diff(ev.support_scores, axis=1) <= 0).all()
    assert (np.diff(ev.oppose_scores, axis=1) >= 0).all()

    own = np.arange(20)
    ex = representer_evidence(fit, features, queries, qclasses, k=5, exclude=own)
    assert not (ex.support_ids == own[:, None]).any()
    assert not (ex.oppose_ids == own[:, None]).any()
    assert_matches_brute_force(ex, fit, features, queries, qclasses, exclude=own, atol=1e-6)

    # one query per product: the same rows, scores equal up to float32 rounding
    one = representer_evidence(fit, features, queries, qclasses, k=5, exclude=own, block_size=1)
    for name in ("support_ids", "oppose_ids"):
        np.testing.assert_array_equal(getattr(one, name), getattr(ex, name))
    for name in ("support_scores", "oppose_scores"):
        np.testing.assert_allclose(getattr(one, name), getattr(ex, name), rtol=1e-5,
                                   atol=1e-5)


def test_evidence_reads_only_rows_that_can_enter_and_matches_brute_force(caplog):
    # a well-fit refit: the 40 flipped rows carry large alphas, the rest small ones, so every
    # query settles on the first phase (the rows with the largest |alpha| |f|)
    features, classes = blobs(2000, d=16, spread=1.0, seed=4)
    labels = classes.copy()
    flipped = np.random.default_rng(0).choice(2000, 40, replace=False)
    labels[flipped] = 1 - labels[flipped]
    fit = fit_representer(features, labels, lam=1e-3, min_agreement=0.0)
    own = np.arange(300)
    queries, qclasses = features[own], fit.probs[own].argmax(axis=1)
    with caplog.at_level(logging.DEBUG, logger="relabeler.selectors.evidence"):
        ev = representer_evidence(fit, features, queries, qclasses, k=5, exclude=own)
    assert "300 queries settled on 12.5% of the query x training row products" in caplog.text

    assert_matches_brute_force(ev, fit, features, queries, qclasses, exclude=own, atol=1e-5)
    assert not (ev.support_ids == own[:, None]).any() and not (ev.oppose_ids == own[:, None]).any()
    # the flipped rows pull hardest: every query's strongest opponent or supporter is one
    strongest = np.where(ev.support_scores[:, 0] > -ev.oppose_scores[:, 0], ev.support_ids[:, 0],
                         ev.oppose_ids[:, 0])
    assert np.isin(strongest, flipped).all()


def test_evidence_keeps_reading_while_an_unread_row_could_still_enter(caplog):
    # rows are read by |alpha| |f| in phases (2, 2, 4, 8 of 16 rows). The first phase holds the
    # two largest alphas at 60 degrees from the query (contributions +1 and -1); the second
    # holds smaller alphas exactly aligned with it (+1.5 and -1.5), which the bound
    # |alpha| |f| |f_t| = 1.5 must not rule out
    angle = np.array([np.cos(np.pi / 3), np.sin(np.pi / 3)])
    rng = np.random.default_rng(0)
    features = np.concatenate([[angle, angle, [1.0, 0.0], [1.0, 0.0]],
                               rng.normal(size=(12, 2))]).astype(np.float32)
    alpha = np.zeros((16, 2), np.float32)
    alpha[:, 0] = np.r_[2.0, -2.0, 1.5, -1.5, np.full(12, 0.01)]
    fit = RepresenterFit(weight=np.zeros((2, 2)), alpha=alpha, probs=np.full((16, 2), 0.5),
                         lam=1.0, agreement=math.nan, reconstruction_error=0.0,
                         target="labels", bias=False, n_iter=0)
    with caplog.at_level(logging.DEBUG, logger="relabeler.selectors.evidence"):
        ev = representer_evidence(fit, features, np.array([[1.0, 0.0]], np.float32),
                                  np.array([0]), k=1)
    assert ev.support_ids.tolist() == [[2]] and ev.oppose_ids.tolist() == [[3]]
    np.testing.assert_allclose(ev.support_scores, [[1.5]], rtol=1e-6)
    np.testing.assert_allclose(ev.oppose_scores, [[-1.5]], rtol=1e-6)
    # then settled: the unread rows contribute at most 0.01 |f_i|
    assert "1 queries settled on 25.0% of the query x training row products" in caplog.text


def test_evidence_pads_when_k_exceeds_the_training_set():
    features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    fit = fit_representer(features, np.array([0, 1, 0]), lam=0.1)
    ev = representer_evidence(fit, features, features[:2], np.array([0, 1]), k=5,
                              exclude=np.array([0, -1]))
    assert isinstance(ev, Evidence) and ev.support_ids.shape == (2, 5)
    # query 0 has 2 candidates left after its own row, query 1 all 3
    assert (ev.support_ids[0, 2:] == -1).all() and np.isnan(ev.support_scores[0, 2:]).all()
    assert (ev.support_ids[1, 3:] == -1).all() and (ev.support_ids[1, :3] >= 0).all()
    assert sorted(ev.oppose_ids[0, :2]) == [1, 2]


def test_the_refit_log_says_n_a_for_agreement_where_no_model_was_given(caplog):
    # serve's refit to the answered labels logged "agreement nan"
    features, classes = blobs(200, d=8, spread=1.0, seed=1)
    with caplog.at_level(logging.INFO, logger="relabeler.selectors.representer"):
        fit_representer(features, classes, lam=1e-3, min_agreement=0.0)
        fit_representer(features, classes, model_pred=classes, lam=1e-3, min_agreement=0.0)
    lines = [r.getMessage() for r in caplog.records if "representer refit (" in r.getMessage()]
    assert len(lines) == 2 and ", agreement n/a, " in lines[0] and "nan" not in lines[0]
    assert re.search(r", agreement (0|1)\.\d{3}, ", lines[1])


def test_agreement_check_refuses_a_refit_that_does_not_follow_the_model():
    features, classes = blobs(200, seed=3)
    random_labels = np.random.default_rng(3).integers(0, 2, 200)
    with pytest.raises(RepresenterFitError, match=r"agrees .* below min_agreement=90\.0%.*lam"):
        fit_representer(features, random_labels, model_pred=classes, min_agreement=0.9)
    assert issubclass(RepresenterFitError, ValueError)

    fit = fit_representer(features, classes, model_pred=classes, min_agreement=0.9)
    assert fit.agreement >= 0.9
    assert math.isnan(fit_representer(features, classes).agreement)


def test_warm_start_from_the_model_head_reaches_the_same_optimum():
    features, classes = blobs(200, seed=4)
    cold = fit_representer(features, classes)
    rng = np.random.default_rng(4)
    warm = fit_representer(features, classes, init_weight=rng.normal(size=(2, 8)),
                           init_bias=rng.normal(size=2))
    np.testing.assert_allclose(warm.weight, cold.weight, rtol=1e-4, atol=1e-5)


def test_trustai_never_looks_at_the_given_labels():
    features, classes = blobs(200, seed=5)
    model_probs = fit_representer(features, classes, lam=1e-2).probs.astype(np.float64)
    relabeled = classes.copy()
    relabeled[:10] = 1 - relabeled[:10]

    def scores(given_labels):
        # the model (so model_probs) is fixed; only the given labels differ
        yeh = representer_suspect(fit_representer(features, given_labels), features,
                                  given_labels)
        dirty = trustai_dirty_score(fit_trustai(features, model_probs), features)
        return yeh, dirty

    yeh_a, dirty_a = scores(classes)
    yeh_b, dirty_b = scores(relabeled)
    np.testing.assert_array_equal(dirty_a, dirty_b)
    assert "labels" not in inspect.signature(fit_trustai).parameters
    # the Yeh score moves: the relabeled rows become the ten most suspect
    assert set(np.argsort(-yeh_b)[:10]) == set(range(10))
    assert not set(np.argsort(-yeh_a)[:10]) & set(range(10))

    fit = fit_trustai(features, model_probs)
    assert fit.target == "model_probs" and fit.agreement >= 0.9
    np.testing.assert_allclose(fit.alpha, -(fit.probs - model_probs) / (2 * 1e-3 * 200),
                               rtol=1e-4, atol=1e-6)
    # two classes: the score is |alpha_i0| / max |alpha_0|
    expected = np.abs(fit.alpha[:, 0]) / np.abs(fit.alpha[:, 0]).max()
    np.testing.assert_allclose(dirty_a, expected, rtol=1e-5, atol=1e-7)
    assert dirty_a.min() >= 0 and dirty_a.max() == pytest.approx(1.0)


def test_scores_refuse_the_other_kind_of_fit():
    features, classes = blobs(50, seed=6)
    yeh = fit_representer(features, classes)
    probs = np.full((50, 2), 0.5)
    with pytest.raises(ValueError, match="trustai_dirty_score needs a fit_trustai"):
        trustai_dirty_score(yeh, features)
    with pytest.raises(ValueError, match="representer_suspect needs a fit to the given labels"):
        representer_suspect(fit_trustai(features, probs, min_agreement=0.0), features, classes)
    with pytest.raises(ValueError, match="labels: row 0 differs"):
        representer_suspect(yeh, features, 1 - classes)


def test_bad_inputs_name_the_argument():
    features, classes = blobs(20, seed=7)
    nan = features.copy()
    nan[4, 2] = np.nan
    with pytest.raises(ValueError, match="features: row 4 has NaN"):
        fit_representer(nan, classes)
    with pytest.raises(ValueError, match="labels: expected 20 labels .* got 19"):
        fit_representer(features, classes[:19])
    with pytest.raises(ValueError, match="labels: all 20 samples have class 0; the representer "
                                         "refit needs at least two classes"):
        fit_representer(features, np.zeros(20, dtype=np.int64))
    for lam in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="lam"):
            fit_representer(features, classes, lam=lam)
    with pytest.raises(ValueError, match="labels: class id 2 is out of range for 2 classes"):
        fit_representer(features, np.where(np.arange(20) == 0, 2, classes), num_classes=2)
    with pytest.raises(ValueError, match="labels: class ids must be >= 0"):
        fit_representer(features, classes - 1)
    with pytest.raises(TypeError, match="labels: expected integer"):
        fit_representer(features, classes.astype(float))
    with pytest.raises(ValueError, match="model_probs: row 0 sums to"):
        fit_trustai(features, np.full((20, 2), 0.6))
    with pytest.raises(ValueError, match="init_weight: expected 8 columns"):
        fit_representer(features, classes, init_weight=np.zeros((2, 7)))

    fit = fit_representer(features, classes)
    with pytest.raises(ValueError, match="query_classes: class id 5 is out of range"):
        representer_evidence(fit, features, features[:2], np.array([0, 5]))
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        representer_evidence(fit, features, features[:2], np.array([0, 1]), k=0)
    with pytest.raises(ValueError, match="query_features: expected 8 columns"):
        representer_evidence(fit, features, features[:2, :3], np.array([0, 1]))
    with pytest.raises(ValueError, match="exclude: rows must lie in"):
        representer_evidence(fit, features, features[:2], np.array([0, 1]),
                             exclude=np.array([0, 20]))
    with pytest.raises(ValueError, match="train_features: expected 20 rows"):
        representer_evidence(fit, features[:10], features[:2], np.array([0, 1]))


def test_a_class_with_one_sample_is_fine():
    features, classes = blobs(30, c=2, seed=8)
    labels = classes.copy()
    labels[0] = 2
    fit = fit_representer(features, labels)
    assert fit.alpha.shape == (30, 3) and fit.reconstruction_error < 1e-4
    assert representer_suspect(fit, features, labels).shape == (30,)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fit_matches_cpu():
    features, classes = blobs(500, d=16, seed=9)
    cpu = fit_representer(features, classes, device="cpu")
    gpu = fit_representer(features, classes, device="cuda")
    np.testing.assert_allclose(gpu.probs, cpu.probs, atol=1e-6)
    np.testing.assert_allclose(gpu.alpha, cpu.alpha, rtol=1e-4, atol=1e-6)
    assert gpu.reconstruction_error < 1e-4
