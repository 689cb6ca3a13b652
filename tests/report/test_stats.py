import numpy as np
import pytest

from relabeler.report.stats import paired_bootstrap, rate_interval


def test_before_after_values_by_hand():
    labels = np.array([0, 0, 1, 1])
    before = np.array([0, 1, 1, 0])  # accuracy .5
    after = np.array([0, 0, 1, 0])   # accuracy .75
    result = paired_bootstrap(labels, before, after, ["a", "b"], n_boot=200)
    assert result["accuracy"]["before"] == 0.5
    assert result["accuracy"]["after"] == 0.75
    assert result["accuracy"]["delta"] == 0.25
    # class b: before precision 1/2 recall 1/2; after precision 1/1, recall 1/2
    b = result["per_class"]["b"]
    assert b["precision"]["before"] == 0.5 and b["precision"]["after"] == 1.0
    assert b["recall"]["delta"] == 0.0
    low, high = result["accuracy"]["ci95"]
    assert low <= 0.25 <= high


def test_identical_models_have_a_narrow_interval_around_zero():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    pred = np.where(rng.random(300) < 0.8, labels, (labels + 1) % 3)
    result = paired_bootstrap(labels, pred, pred, ["x", "y", "z"], n_boot=100)
    # no prediction changed on 300 rows: the gain is 0, and on the population within about a
    # point either way (the score interval; a bootstrap said exactly [0, 0])
    low, high = result["accuracy"]["ci95"]
    assert result["accuracy"]["delta"] == 0.0
    assert low == pytest.approx(-high) and 0.005 < high < 0.02
    assert result["macro_f1"]["delta"] == 0.0 and result["macro_f1"]["ci95"] == [0.0, 0.0]


@pytest.mark.parametrize(("rows", "fixed", "broken", "expected"), [
    (2, 2, 0, [0.0700, 1.0]),       # a bootstrap said [1, 1]
    (5, 5, 0, [0.3855, 1.0]),       # [1, 1]
    (20, 4, 0, [-0.0005, 0.4160]),  # [0.05, 0.40]: McNemar's exact p is 0.125
    (100, 4, 0, [-0.0043, 0.0984]),  # [0.01, 0.08]
    (100, 10, 3, [-0.0025, 0.1481]),
])
def test_the_accuracy_gain_has_newcombes_paired_score_interval(rows, fixed, broken, expected):
    # Newcombe (1998) method 10, computed by hand from the two Wilson intervals and the
    # pairs' correlation; a few predictions that all changed the same way no longer give a
    # zero-width interval or one that leaves out 0 where an exact test cannot reject it
    labels = np.zeros(rows, dtype=np.int64)
    before = np.r_[np.ones(fixed), np.zeros(rows - fixed)].astype(np.int64)
    after = np.zeros(rows, dtype=np.int64)
    after[fixed:fixed + broken] = 1
    result = paired_bootstrap(labels, before, after, ["a", "b"], n_boot=200)
    assert result["accuracy"]["delta"] == pytest.approx((fixed - broken) / rows)
    assert result["accuracy"]["ci95"] == pytest.approx(expected, abs=1e-4)


def test_a_clear_gain_has_an_interval_above_zero():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 1000)
    before = np.where(rng.random(1000) < 0.80, labels, 1 - labels)
    after = np.where(rng.random(1000) < 0.5, labels, before)  # fixes about half the errors
    low, high = paired_bootstrap(labels, before, after, ["a", "b"], n_boot=500)["accuracy"][
        "ci95"]
    assert 0 < low < high


def test_bad_shapes():
    with pytest.raises(ValueError, match="equal"):
        paired_bootstrap(np.zeros(3, int), np.zeros(2, int), np.zeros(3, int), ["a"])


def test_wilson_interval():
    low, high = rate_interval(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)
    assert rate_interval(0, 0) == [0.0, 0.0]


def test_point_values_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 500)
    before = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 4, 500))
    before[before == 3] = 2                      # class 3 never predicted: no precision
    after = np.where(rng.random(500) < 0.9, labels, before)
    result = paired_bootstrap(labels, before, after, list("abcd"), n_boot=50)
    for key, pred in (("before", before), ("after", after)):
        precision, recall, f1, _ = precision_recall_fscore_support(
            labels, pred, labels=range(4), zero_division=0)
        assert result["accuracy"][key] == pytest.approx(accuracy_score(labels, pred))
        assert result["macro_f1"][key] == pytest.approx(
            f1_score(labels, pred, average="macro", zero_division=0))
        for j, name in enumerate("abcd"):
            leaves = result["per_class"][name]
            # what scikit-learn gives 0 by zero_division is not measured: None, as in
            # train/metrics.json (the report printed 0.0% for it)
            expected = [None if (pred == j).sum() == 0 else precision[j], recall[j], f1[j]]
            assert [leaves[m][key] for m in ("precision", "recall", "f1")] == pytest.approx(
                expected)
    d = result["per_class"]["d"]["precision"]
    assert d["before"] is None and d["after"] > 0 and d["delta"] is None and d["ci95"] is None
    assert result["per_class"]["d"]["recall"]["delta"] == pytest.approx(
        result["per_class"]["d"]["recall"]["after"])


def test_macro_f1_leaves_out_a_class_with_no_eval_row():
    # class c has no eval row: a perfect model's macro-F1 is 1, not 2/3 (c counted as F1 0)
    labels = np.array([0, 0, 1, 1, 0, 1])
    result = paired_bootstrap(labels, labels, np.where(labels == 1, 0, labels), list("abc"),
                              n_boot=50)
    assert result["macro_f1"]["before"] == 1.0
    # after: a's precision 1/2, recall 1 (F1 2/3); b's F1 0
    assert result["macro_f1"]["after"] == pytest.approx((2 / 3 + 0.0) / 2)
    c = result["per_class"]["c"]
    assert [c[m][k] for m in ("precision", "recall", "f1") for k in ("before", "after")] \
        == [None] * 6
    assert c["f1"]["delta"] is None and c["f1"]["ci95"] is None


def test_mean_interval_is_the_t_interval_over_seeds():
    from relabeler.report.stats import format_interval, mean_interval

    mean, low, high = mean_interval([1.0, 2.0, 3.0])
    # t(0.975, 2) = 4.303, sd = 1, n = 3
    assert mean == 2.0 and abs((high - mean) - 4.3027 / 3 ** 0.5) < 1e-3
    assert abs((mean - low) - (high - mean)) < 1e-12
    one = mean_interval([0.5])
    assert one[0] == 0.5 and all(x != x for x in one[1:])  # NaN ends
    assert format_interval([0.5]) == "0.5000"
    assert format_interval([1.0, 2.0, 3.0], digits=2) == "2.00 ± 2.48"


def test_a_queue_rate_with_nothing_reviewed_shows_no_interval():
    from relabeler.report.render import _rate_ci

    assert _rate_ci({"reviewed": 0, "ci95": rate_interval(0, 0)}) == "n/a (none reviewed)"
    assert _rate_ci({"reviewed": 10, "ci95": rate_interval(0, 10)}) == "[0.0%, 27.8%]"


def test_the_lift_is_n_a_when_nothing_was_corrected_and_not_measurable_without_a_control():
    from relabeler.report.render import _lift_text

    def queue(flagged: int, controls: int) -> dict:
        return {"lift": None, "lift_lower": None,
                "flagged": {"reviewed": 20, "corrected": flagged, "rate": flagged / 20},
                "random_control": {"reviewed": 5, "corrected": controls, "rate": controls / 5}}

    assert _lift_text(queue(0, 0)).startswith("n/a (neither the flagged tasks")
    assert _lift_text(queue(4, 0)) == "not measurable: no random control needed a change"


def test_one_eval_row_gives_the_widest_interval_not_an_error():
    result = paired_bootstrap(np.array([1]), np.array([0]), np.array([1]), ["a", "b"])
    assert result["accuracy"]["delta"] == 1.0
    assert result["accuracy"]["ci95"] == pytest.approx([-0.1221, 1.0], abs=1e-4)
    assert result["per_class"]["b"]["recall"]["ci95"] == [-1.0, 1.0]


def test_a_change_says_whether_its_interval_holds_zero_and_never_prints_minus_zero():
    # "+0.6 points, 95% CI [-0.0, +1.4]" for an interval of [-0.0059, +1.374] points read as a
    # gain to a model owner
    from relabeler.report.stats import change_text, points

    assert points(-0.000059) == "-0.006" and points(0.0) == "+0.0" and points(0.0137) == "+1.4"
    assert change_text(0.0063, [-0.000059, 0.01374]) == (
        "+0.6 points, 95% CI [-0.006, +1.4]: within noise: the interval holds 0, so this eval "
        "set cannot tell it from no change")
    assert change_text(0.0108, [0.0042, 0.0191]).endswith(": a real gain")
    assert change_text(-0.02, [-0.03, -0.01]).endswith(": a real loss")
