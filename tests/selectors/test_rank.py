import numpy as np
import pytest

from relabeler.selectors.rank import (
    SIGNALS,
    combine,
    ensemble_posterior,
    rank_mean,
    rank_normalize,
    ranks_from_scores,
    register_signal,
    suggest_labels,
    top_reasons,
)


def test_rank_normalize_averages_ties():
    np.testing.assert_allclose(rank_normalize(np.array([3.0, 1.0, 3.0, 2.0])),
                               [5 / 6, 0.0, 5 / 6, 1 / 3])


def test_rank_mean_is_invariant_to_monotone_transforms():
    rng = np.random.default_rng(0)
    a, b = rng.random(50), rng.random(50)
    np.testing.assert_allclose(rank_mean({"a": a, "b": b}),
                               rank_mean({"a": a ** 3, "b": np.log(b + 1)}), atol=1e-6)
    weighted = rank_mean({"a": a, "b": b}, {"a": 1.0, "b": 0.0})
    np.testing.assert_allclose(weighted, rank_normalize(a), atol=1e-6)


def test_ranks_start_at_one_for_the_most_suspect():
    assert ranks_from_scores(np.array([0.1, 0.9, 0.5, 0.9])).tolist() == [4, 1, 3, 2]


def test_ensemble_and_suggestion():
    p1 = np.array([[0.9, 0.1], [0.2, 0.8]])
    p2 = np.array([[0.5, 0.5], [0.0, 1.0]])
    post = ensemble_posterior({"a": p1, "b": p2})
    np.testing.assert_allclose(post, [[0.7, 0.3], [0.1, 0.9]], atol=1e-6)
    suggested, conf = suggest_labels(post, np.array([0, 0]))
    assert suggested.tolist() == [1, 1]
    np.testing.assert_allclose(conf, [0.3, 0.9], atol=1e-6)


def test_combine_averages_the_views_present():
    signals = {"margin": np.array([0.1, 0.9, 0.5]), "knn_margin": np.array([0.3, 0.7, 0.5]),
               "duplicate_conflict": np.array([1.0, 0.0, 0.0])}  # not a view: no vote
    np.testing.assert_allclose(combine(signals), [0.0, 1.0, 0.5], atol=1e-6)


def test_rank_mean_lets_a_saturated_view_count():
    """A view whose margins are saturated (a model that fits its training set) adds next to
    nothing to a mean of margins, which then follows the view with the widest spread; in a mean
    of ranks it counts fully, so the two views that agree decide the order."""
    signals = {"margin": np.array([3e-6, 2e-6, 1e-6, 0.0]),          # saturated: 0 > 1 > 2 > 3
               "oof_margin": np.array([0.52, 0.51, 0.49, 0.48]),    # agrees
               "knn_margin": np.array([0.40, 0.45, 0.50, 0.55])}    # disagrees, widest spread
    mean_margin = np.mean([signals[name] for name in signals], axis=0)
    assert np.argsort(-mean_margin).tolist() == [3, 2, 1, 0]
    np.testing.assert_allclose(combine(signals), [2 / 3, 5 / 9, 4 / 9, 1 / 3], atol=1e-6)


def test_combine_needs_a_view():
    with pytest.raises(ValueError, match="none of the views"):
        combine({"duplicate_conflict": np.zeros(3)})


def test_reasons_name_the_strongest_signals_and_forced_ones():
    signals = {"margin": np.array([0.9, 0.1, 0.5]),
               "knn_disagreement": np.array([0.8, 0.2, 0.1])}
    reasons = top_reasons(signals, threshold=0.9,
                          always={"duplicate_conflict": np.array([False, True, False])})
    assert reasons[0] == [SIGNALS["margin"], SIGNALS["knn_disagreement"]]
    assert reasons[1] == [SIGNALS["duplicate_conflict"]]
    assert reasons[2] == []


def test_two_measures_of_one_view_are_one_reason_at_the_stronger_rank():
    # the model's self-confidence and margin, the neighbours' disagreement and margin: the
    # same evidence in two wordings took two of the three places
    signals = {"self_confidence": np.array([0.9, 0.1, 0.2, 0.3]),
               "margin": np.array([0.9, 0.2, 0.1, 0.3]),
               "knn_disagreement": np.array([0.8, 0.1, 0.2, 0.3]),
               "knn_margin": np.array([0.1, 0.9, 0.2, 0.3]),
               "area_under_margin": np.array([0.9, 0.1, 0.2, 0.3])}
    assert SIGNALS["self_confidence"] == SIGNALS["margin"]
    assert SIGNALS["oof_self_confidence"] == SIGNALS["oof_margin"]
    assert SIGNALS["knn_disagreement"] == SIGNALS["knn_margin"]
    reasons = top_reasons(signals, threshold=0.9)
    assert reasons[0] == [SIGNALS["margin"], SIGNALS["knn_margin"],
                          SIGNALS["area_under_margin"]]
    assert reasons[1] == [SIGNALS["knn_margin"]]  # knn_margin's rank alone reaches it
    assert reasons[2] == reasons[3] == []
    # forced under either name, shown once
    forced = top_reasons(signals, threshold=0.9,
                         always={"knn_margin": np.array([False, False, True, False]),
                                 "knn_disagreement": np.array([False, False, False, True])})
    assert forced[2] == forced[3] == [SIGNALS["knn_margin"]]
    assert forced[1] == [SIGNALS["knn_margin"]]


def test_reasons_equal_the_per_row_rule_on_many_rows():
    """Rows grouped by their key get what the rule gives each row alone: forced reasons first,
    then the strongest signals at or above the threshold, no name twice, at most three."""
    rng = np.random.default_rng(0)
    n = 400
    signals = {name: rng.random(n) for name in ("margin", "knn_disagreement", "representer",
                                                 "duplicate_conflict", "area_under_margin")}
    forced = {"duplicate_conflict": rng.random(n) < 0.2, "margin": rng.random(n) < 0.1}
    reasons = top_reasons(signals, threshold=0.7, always=forced)
    names = list(signals)
    normalized = np.stack([rank_normalize(signals[name]) for name in names], axis=1)
    for i in range(n):
        picked = [name for name, mask in forced.items() if mask[i]]
        for j in np.argsort(-normalized[i], kind="stable"):
            if len(picked) >= 3 or normalized[i, j] < 0.7:
                break
            if names[j] not in picked:
                picked.append(names[j])
        assert reasons[i] == [SIGNALS[name] for name in picked[:3]], i
    assert len({len(r) for r in reasons}) == 4          # 0 to 3 reasons all occur
    reasons[0].append("edited")                         # each row owns its list
    assert all("edited" not in r for r in reasons[1:])
    assert top_reasons({"margin": np.zeros(0)}) == []


def test_registry_rejects_duplicates_and_bad_input():
    with pytest.raises(ValueError, match="registered already"):
        register_signal("margin", "again")
    with pytest.raises(ValueError, match="lengths differ"):
        rank_mean({"a": np.zeros(3), "b": np.zeros(4)})
    with pytest.raises(ValueError, match="contains NaN"):
        rank_mean({"a": np.array([0.0, np.nan])})


def test_a_reason_stays_when_many_rows_tie_at_its_strongest_value():
    from relabeler.selectors.rank import top_reasons

    rng = np.random.default_rng(0)
    knn = np.where(np.arange(100) < 23, 1.0, rng.uniform(0, 0.5, 100))  # 23 rows saturated
    flat = np.full(100, 0.3)  # equal everywhere: says nothing
    reasons = top_reasons({"knn_disagreement": knn, "self_confidence": flat})
    with_knn = [i for i, r in enumerate(reasons) if r]
    assert with_knn == list(range(23))
    assert all(len(r) == 1 for r in reasons[:23])
