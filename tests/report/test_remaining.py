"""What is left: the remaining-errors estimate, the next batch, the stop advice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from relabeler.report.remaining import advice_text, estimate_remaining, true_remaining


def simulate(seed: int, *, n: int = 3000, budget: int = 200, controls: int = 40,
             ranking_works: bool = True):
    """A training set whose error rate falls with rank (or not), the top ``budget - controls``
    flagged and ``controls`` random rows outside them, all answered truthfully."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n + 1)
    p_wrong = 0.8 * np.exp(-ranks / 150) + 0.05 if ranking_works else np.full(n, 0.12)
    wrong = rng.random(n) < p_wrong
    ids = np.array([f"r{i:05d}" for i in range(n)])
    n_flagged = budget - controls
    control_rows = rng.choice(np.arange(n_flagged, n), size=controls, replace=False)
    manifest = pd.DataFrame({
        "id": np.concatenate([ids[:n_flagged], ids[control_rows]]),
        "source": ["flagged"] * n_flagged + ["random_control"] * controls,
        "rank": np.concatenate([ranks[:n_flagged], ranks[control_rows]])})
    reviewed = manifest["id"].map(dict(zip(ids, wrong, strict=True)))
    corrections = pd.DataFrame({
        "id": manifest["id"], "action": np.where(reviewed, "relabel", "keep"),
        "old_label": "a", "new_label": np.where(reviewed, "b", "a")})
    truth = int(wrong.sum() - reviewed.sum())
    return manifest, corrections, truth, n, int(wrong.sum())


def test_the_interval_covers_the_true_remaining_errors():
    covered, errors = 0, []
    for seed in range(200):
        manifest, corrections, truth, n, _ = simulate(seed)
        left = estimate_remaining(manifest, corrections, n, next_batch=200, stop_rate=0.05)
        low, mid, high = left["remaining"]
        covered += low <= truth <= high
        errors.append((mid - truth) / truth)
    assert covered / 200 >= 0.9
    # 40 controls: a wide but unbiased estimate
    assert abs(np.mean(errors)) < 0.1


def test_the_next_batch_lies_between_the_random_rate_and_the_queue_tail():
    manifest, corrections, _, n, _ = simulate(1)
    left = estimate_remaining(manifest, corrections, n, next_batch=100, stop_rate=0.05)
    low, rate, high = left["next_batch"]["rate"]
    assert low <= left["controls"]["rate"] <= rate <= high
    assert left["next_batch"]["corrections"] == pytest.approx([100 * low, 100 * rate, 100 * high])
    # ranks 161-260 of p = 0.8 exp(-r/150) + 0.05 hold about 22% wrong labels
    assert 0.1 <= rate <= 0.4
    assert left["queue_beats_random"] and left["advice"] == "continue"


def test_a_queue_no_better_than_random_is_called_so():
    manifest, corrections, _, n, _ = simulate(2, ranking_works=False)
    left = estimate_remaining(manifest, corrections, n, next_batch=200, stop_rate=0.05)
    assert not left["queue_beats_random"] and left["queue_vs_random"] == "no better"
    assert ("The flagged tasks were not corrected significantly more often than the random "
            "controls (one-sided Fisher test p = ") in advice_text(left)
    assert "the ranking is not shown to beat random picks" in advice_text(left)


def test_too_few_controls_to_test_the_ranking_say_so_instead_of_calling_it_no_better():
    # 57 flagged tasks, 37 corrected; 3 random controls, none corrected: p = 0.05 at best
    manifest = pd.DataFrame({"id": [f"f{i}" for i in range(57)] + ["c0", "c1", "c2"],
                             "source": ["flagged"] * 57 + ["random_control"] * 3,
                             "rank": list(range(1, 58)) + [900, 1500, 2100], "round": 1})
    corrections = pd.DataFrame({"id": manifest["id"],
                                "action": ["relabel"] * 37 + ["keep"] * 23,
                                "old_label": "a", "new_label": ["b"] * 37 + ["a"] * 23})
    left = estimate_remaining(manifest, corrections, 3000, next_batch=20, stop_rate=0.05)
    assert left["queue_vs_random"] == "undecided" and not left["queue_beats_random"]
    text = advice_text(left)
    assert ("The 3 random controls are too few to tell whether the ranking beats random picks: "
            "even had none of them needed a change, the one-sided Fisher test could not show "
            "it (p = 0.05 now).") in text
    assert "not shown to beat" not in text


def test_stop_when_the_next_batch_cannot_reach_the_stop_rate():
    manifest, corrections, _, n, _ = simulate(3)
    clean = corrections.assign(action="keep", new_label="a")  # nothing left to correct
    clean.loc[clean.index[:3], ["action", "new_label"]] = ["relabel", "b"]
    left = estimate_remaining(manifest, clean, n, next_batch=200, stop_rate=0.30)
    assert left["next_batch"]["rate"][2] < 0.30 and left["advice"] == "stop"
    assert "Stop:" in advice_text(left)


def test_nothing_is_estimated_without_answered_controls():
    manifest, corrections, _, n, _ = simulate(4)
    no_controls = corrections[~corrections["id"].isin(
        manifest.loc[manifest["source"] == "random_control", "id"])]
    left = estimate_remaining(manifest, no_controls, n, next_batch=200, stop_rate=0.05)
    assert left == {"available": False,
                    "why": "needs answered random controls and answered flagged tasks"}
    assert advice_text(left).startswith("Not estimated")


def test_true_remaining_counts_flips_outside_the_answered_rows():
    train = pd.DataFrame({"id": ["a", "b", "c"], "flipped": [True, True, False]})
    corrections = pd.DataFrame({"id": ["a"], "action": ["relabel"]})
    assert true_remaining(train, corrections) == 1
    assert true_remaining(train.drop(columns="flipped"), corrections) is None


def test_the_noise_models_estimate_sharpens_the_point_inside_the_controls_interval():
    errors, covered = [], 0
    for seed in range(100):
        manifest, corrections, truth, n, total = simulate(seed)
        # a model estimate of the whole set's wrong labels, off by up to 15% either way
        estimate = total * np.random.default_rng(seed).uniform(0.85, 1.15)
        left = estimate_remaining(manifest, corrections, n, next_batch=200, stop_rate=0.05,
                                  model_wrong=estimate)
        low, mid, high = left["remaining"]
        assert low <= mid <= high
        covered += low <= truth <= high
        errors.append(abs(mid - truth) / truth)
    assert covered >= 90
    assert np.median(errors) < 0.2  # within 20% of the truth (controls alone: about 55%)


def test_the_next_batch_never_finds_more_than_remains():
    manifest, corrections, _, n, total = simulate(5)
    found = int((corrections["action"] == "relabel").sum())
    left = estimate_remaining(manifest, corrections, n, next_batch=2000, stop_rate=0.05,
                              model_wrong=found + 10)
    assert left["remaining_model"] == 10
    assert left["next_batch"]["corrections"][1] <= left["remaining"][1]
    assert all(c <= r for c, r in zip(left["next_batch"]["corrections"], left["remaining"],
                                       strict=True))


def test_the_scores_chances_calibrated_on_the_latest_round_give_the_point():
    errors, covered, bounded = [], 0, 0
    for seed in range(100):
        manifest, corrections, truth, n, total = simulate(seed)
        rng = np.random.default_rng(seed)
        ids = np.array([f"r{i:05d}" for i in range(n)])
        # chances that rank like the truth but are off by a factor of 3 (the averaged views
        # are not calibrated), and a noise model that counts twice the wrong labels
        p_wrong = 0.8 * np.exp(-np.arange(1, n + 1) / 150) + 0.05
        chances = pd.Series(p_wrong / 3 * rng.uniform(0.9, 1.1, n), index=ids)
        left = estimate_remaining(manifest.assign(round=1), corrections, n, next_batch=200,
                                  stop_rate=0.05, model_wrong=2.0 * total,
                                  wrong_probability={1: chances})
        low, mid, high = left["remaining"]
        assert left["point_from"] == "calibrated score" and 2.0 < left["calibration"] < 4.0
        bounded += left["point_bound"] is not None
        assert (mid in (low, high)) == (left["point_bound"] is not None)
        covered += low <= truth <= high
        errors.append(abs(mid - truth) / truth)
    assert covered >= 90
    assert np.median(errors) < 0.1
    assert 0 < bounded < 20  # the controls' interval overrules the calibrated count now and then


def test_the_latest_answered_rounds_scoring_calibrates_and_an_unknown_one_falls_back():
    manifest, corrections, _, n, total = simulate(6)
    ids = manifest["id"].to_numpy()
    two = manifest.assign(round=np.where(np.arange(len(manifest)) % 2, 2, 1))
    half = pd.Series(0.5, index=ids)
    # round 2's tasks, half corrected at chance 0.5 each: calibration 1, the rest sums 0.5 a row
    even = corrections.assign(action=np.where(np.arange(len(manifest)) % 4 == 1, "relabel",
                                              "keep"))
    even["new_label"] = np.where(even["action"] == "relabel", "b", "a")
    chances = pd.concat([half, pd.Series(0.5, index=["x1", "x2", "x3", "x4"])])
    left = estimate_remaining(two, even, n, next_batch=50, stop_rate=0.05,
                              wrong_probability={1: half * 0.0 + 0.1, 2: chances})
    assert left["calibration"] == pytest.approx(1.0)
    assert left["remaining_calibrated"] == pytest.approx(2.0)  # the 4 rows nobody answered
    # far below what the controls allow (a quarter of them corrected): the point is their
    # lower bound, and the report says that, not only where the overruled count came from
    assert left["point_from"] == "calibrated score" and left["point_bound"] == "lower"
    assert left["remaining"][1] == left["remaining"][0] > 300
    assert (f"(95% interval {left['remaining'][0]:.0f} to {left['remaining'][2]:.0f}; the "
            f"point: the random controls' lower bound, as the count from the score's "
            f"calibrated chances (2) is below their interval)") in advice_text(left)
    # a noise model's count below the calibrated one is the point (both over-count)
    found = left["flagged"]["corrected"] + left["controls"]["corrected"]
    low_count = estimate_remaining(two, even, n, next_batch=50, stop_rate=0.05,
                                   model_wrong=found + 1.5, wrong_probability={2: chances})
    assert low_count["point_from"] == "noise model"
    assert low_count["remaining_model"] == pytest.approx(1.5)
    assert low_count["remaining_calibrated"] == pytest.approx(2.0)
    # no chances for round 2 (scored before the column existed): the noise model's count
    left = estimate_remaining(two, even, n, next_batch=50, stop_rate=0.05,
                              model_wrong=total, wrong_probability={1: half})
    assert left["point_from"] == "noise model" and left["remaining_calibrated"] is None
    assert "the noise model's count less the corrections found" in advice_text(left)
    left = estimate_remaining(two, even, n, next_batch=50, stop_rate=0.05)
    assert left["point_from"] == "controls"


def rounds_of_review(seed: int, *, n: int = 3000, wrong_share: float = 0.1, rounds: int = 4,
                     flagged: int = 60, controls: int = 20):
    """Rounds of a queue that finds wrong labels (a noisy score puts most of them on top) and
    its random controls from the rows outside it, all answered truthfully: the manifest, the
    answers and the wrong labels left after the last round."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(n) < wrong_share
    ids = np.array([f"r{i:05d}" for i in range(n)])
    score = wrong + rng.normal(scale=0.4, size=n)
    sent = np.zeros(n, dtype=bool)
    entries, rank = [], 0
    for r in range(1, rounds + 1):
        order = np.flatnonzero(~sent)[np.argsort(-score[~sent], kind="stable")]
        top = order[:flagged]
        picked = rng.choice(order[flagged:], size=controls, replace=False)
        entries += [{"id": ids[i], "source": "flagged", "rank": rank + j + 1, "round": r}
                    for j, i in enumerate(top)]
        entries += [{"id": ids[i], "source": "random_control", "rank": None, "round": r}
                    for i in picked]
        rank += flagged
        sent[top] = sent[picked] = True
    manifest = pd.DataFrame(entries)
    hit = manifest["id"].map(dict(zip(ids, wrong, strict=True)))
    corrections = pd.DataFrame({
        "id": manifest["id"], "action": np.where(hit, "relabel", "keep"),
        "old_label": "a", "new_label": np.where(hit, "b", "a")})
    return manifest, corrections, int(wrong[~sent].sum()), n


def test_the_controls_are_read_by_cohort_less_what_later_rounds_found():
    from relabeler.report.remaining import control_cohorts

    manifest = pd.DataFrame({
        "id": ["f1", "f2", "c1", "c2", "f3", "f4", "c3", "f5"],
        "source": ["flagged", "flagged", "random_control", "random_control", "flagged",
                   "flagged", "random_control", "flagged"],
        "round": [1, 1, 1, 1, 2, 2, 2, 3]})
    # f5 (round 3) and c3 not answered yet; c1, f3 and f4 corrected
    tasks = manifest.assign(corrected=[True, False, True, False, True, True, np.nan, np.nan])
    cohorts = control_cohorts(tasks, 100)
    # round 1's answered controls stand for the 100 rows less its 2 flagged tasks and the 2
    # controls themselves; rounds 2 and 3 found f3 and f4 among them; no waiting task lies
    # outside those rows (f5 and c3 are inside them: never sent before round 2)
    assert cohorts["cohorts"] == [{"round": 1, "controls": 2, "rows": 96, "found_since": 2.0,
                                   "waiting_flagged": 0.0, "waiting_controls": 0.0}]
    assert cohorts["rows"] == 96 and cohorts["found_since"] == 2.0
    assert control_cohorts(tasks.assign(corrected=np.nan), 100) is None
    # c2 still waiting, c3 answered: two cohorts of one control each, averaged
    tasks = manifest.assign(corrected=[True, False, True, np.nan, True, True, False, np.nan])
    cohorts = control_cohorts(tasks, 100)
    assert cohorts["cohorts"] == [
        {"round": 1, "controls": 1, "rows": 97, "found_since": 2.0, "waiting_flagged": 0.0,
         "waiting_controls": 0.0},
        # round 2's control stands for the rows never sent before it (4 were) less its 2
        # flagged tasks and itself; c2, drawn before, waits outside those rows
        {"round": 2, "controls": 1, "rows": 93, "found_since": 0.0, "waiting_flagged": 0.0,
         "waiting_controls": 1.0}]
    assert cohorts["rows"] == 95 and cohorts["found_since"] == 1.0
    assert cohorts["waiting_controls"] == 0.5


def test_later_rounds_take_wrong_labels_out_of_the_rows_early_controls_stand_for():
    covered, errors = 0, []
    for seed in range(100):
        manifest, corrections, truth, n = rounds_of_review(seed)
        left = estimate_remaining(manifest, corrections, n, next_batch=80, stop_rate=0.05)
        low, mid, high = left["remaining"]
        covered += low <= truth <= high
        errors.append((mid - truth) / truth)
        assert left["controls"]["found_since"] > 0
        assert left["controls"]["rate_left"] <= left["controls"]["rate"]
    # the four rounds take about 200 of the 300 wrong labels out of the rows the first
    # controls stand for: one rate over every control put about 1.5 times the truth left
    # (81 of 100 covered)
    assert covered >= 90
    assert abs(np.mean(errors)) < 0.15


def test_the_advice_says_what_later_rounds_took_out_of_the_controls_rows():
    manifest, corrections, _, n = rounds_of_review(0)
    left = estimate_remaining(manifest, corrections, n, next_batch=80, stop_rate=0.05)
    found = left["controls"]["found_since"]
    assert found == pytest.approx(70.25)  # rounds' corrections, averaged over the 4 cohorts
    # an average over the cohorts, said as one ("later rounds found 19" read as a count
    # where the rounds had found 29)
    assert (f"the wrong labels later rounds found among the rows they stand for (about "
            f"{found:.0f}: each round's controls' rows count their own, averaged over the rounds "
            f"by their answered controls)") in advice_text(left)
    one_round = manifest[manifest["round"] == 1]
    first = estimate_remaining(one_round, corrections[corrections["id"].isin(one_round["id"])],
                               n, next_batch=80, stop_rate=0.05)
    assert first["controls"]["found_since"] == 0 and "later rounds" not in advice_text(first)


def _fully_corrected_queue():
    """Two rounds of 40 flagged tasks, every one corrected, and 4 controls a round that found
    nothing: the manifest, the answers and the training rows."""
    manifest, corrections, _, n = rounds_of_review(0, rounds=2, flagged=40, controls=4)
    flagged = (manifest["source"] == "flagged").to_numpy()
    answers = corrections.assign(action=np.where(flagged, "relabel", "keep"),
                                 new_label=np.where(flagged, "b", "a"))
    return manifest, answers, n


def test_a_fully_corrected_queue_is_not_exhausted_and_may_promise_more_than_the_point():
    # two rounds of a queue at full precision (all 80 flagged tasks wrong), 4 controls that
    # found nothing: no decay to fit, so the next batch is at the window's rate, capped by
    # what is left, not at the controls' (random picks)
    manifest, answers, n = _fully_corrected_queue()
    left = estimate_remaining(manifest, answers, n, next_batch=40, stop_rate=0.05,
                              model_wrong=80 + 30)
    assert left["controls"]["rate"] == 0 and left["advice"] == "continue"
    # the noise model leaves 30; the queue, every task of it corrected, promises 40: the
    # next batch is capped at 30 and the report says the two disagree
    assert left["remaining"][1] == pytest.approx(30)
    assert left["next_batch"]["corrections"][1] == pytest.approx(30)
    assert left["next_batch"]["at_queue_rate"] == pytest.approx(40)
    assert left["point_below_queue"]
    assert "would correct about 40, more than the point says is left" in advice_text(left)
    # a point above what the queue promises: nothing to say
    more = estimate_remaining(manifest, answers, n, next_batch=40, stop_rate=0.05,
                              model_wrong=80 + 100)
    assert not more["point_below_queue"] and "read the interval" not in advice_text(more)


def test_rounds_that_rank_afresh_are_read_in_the_order_they_were_sent():
    # `relabeler next` ranks every round afresh: round 2's tasks carry ranks 1-40 again. Round
    # 1's 40 tasks were all wrong labels, round 2's 4 of 40: the next batch follows round 2
    ids = [f"r{i:04d}" for i in range(100)]
    manifest = pd.DataFrame({
        "id": ids[:80] + ids[80:84] + ids[84:88],
        "source": ["flagged"] * 80 + ["random_control"] * 8,
        "rank": list(range(1, 41)) * 2 + [None] * 8,
        "round": [1] * 40 + [2] * 40 + [1] * 4 + [2] * 4})
    wrong = [True] * 40 + [i % 10 == 0 for i in range(40)] + [False] * 8
    corrections = pd.DataFrame({
        "id": manifest["id"], "action": np.where(wrong, "relabel", "keep"),
        "old_label": "a", "new_label": np.where(wrong, "b", "a")})
    left = estimate_remaining(manifest, corrections, 2000, next_batch=40, stop_rate=0.05)
    low, rate, high = left["next_batch"]["rate"]
    assert rate <= 0.1 and high < 0.3  # round 2's window: 4 of 40 (Wilson upper 0.23)
    assert left["next_batch"]["at_queue_rate"] <= 4.0


def _rows(ids, source, rounds, corrected):
    manifest = pd.DataFrame({"id": ids, "source": source, "rank": np.arange(1, len(ids) + 1),
                             "round": rounds})
    corrections = pd.DataFrame({"id": ids, "action": np.where(corrected, "relabel", "keep"),
                                "old_label": "a", "new_label": np.where(corrected, "b", "a")})
    return manifest, corrections


def test_what_is_left_is_never_more_than_the_rows_nobody_answered():
    # 100 rows: round 1's 10 controls all corrected, round 2's 70 flagged tasks all kept
    ids = [f"r{i:03d}" for i in range(80)]
    manifest, corrections = _rows(ids, ["random_control"] * 10 + ["flagged"] * 70,
                                  [1] * 10 + [2] * 70, [True] * 10 + [False] * 70)
    manifest.loc[10, "source"], corrections.loc[10, "action"] = "flagged", "relabel"
    left = estimate_remaining(manifest, corrections, 100, next_batch=200, stop_rate=0.05)
    assert left["unreviewed_rows"] == 20
    assert all(0 <= x <= 20 for x in left["remaining"])
    assert left["next_batch"]["size"] == 20  # no larger than the rows never sent
    assert all(c <= x for c, x in zip(left["next_batch"]["corrections"], left["remaining"],
                                      strict=True))


def test_the_advice_gives_the_point_its_interval_and_the_next_batchs_numbers():
    # every number differs from the others, so a swapped field or a wrong scale shows
    left = {"available": True, "remaining": [12.2, 47.6, 103.4], "unreviewed_rows": 2800,
            "point_from": "controls",
            "next_batch": {"size": 200, "rate": [0.031, 0.084, 0.152],
                           "corrections": [6.2, 16.9, 30.4], "at_queue_rate": 16.9},
            "controls": {"rate": 0.1, "found_since": 0, "rate_left": 0.1},
            "point_below_queue": False, "queue_beats_random": True,
            "queue_vs_random_p": 0.001, "stop_rate": 0.05, "advice": "continue"}
    assert advice_text(left) == (
        "About 48 wrong labels remain in the 2800 unreviewed training rows (95% interval 12 to "
        "103; the point: the random controls' rate). The next 200 tasks would correct about 17 "
        "(95% interval 6 to 30), a rate of 8.4%. Continue: the next batch's expected rate, "
        "8.4%, is above loop.stop_rate = 5.0%.")
    # an expected rate below the stop rate with an upper bound above it: said so
    left["next_batch"]["rate"] = [0.001, 0.02, 0.077]
    left["window"] = {"tasks": 100, "corrected": 2}
    assert advice_text(left).endswith(
        "Continue, on the upper bound alone: the expected rate, 2.0%, is below loop.stop_rate = "
        "5.0%, but its 95% upper bound, 7.7%, is not (2 corrected of the latest round's last 100 "
        "tasks). Answers that change right labels (an annotator's mistakes) keep a queue's rate "
        "above zero after the wrong labels run out: if the latest corrections look like such "
        "mistakes, stopping is sound.")


def test_the_latest_rate_is_the_latest_rounds_tail_not_the_round_before_it():
    # the demo: round 1's tail all corrected, round 2's last 100 tasks 2 corrected; a window of
    # the last 200 answered tasks took in round 1's tail and said "continue"
    rng = np.random.default_rng(0)
    r1 = [True] * 190
    r2 = list(rng.random(90) < 0.3) + [False] * 98 + [True] * 2
    ids = [f"r{i:04d}" for i in range(190 + 190 + 20)]
    source = ["flagged"] * 380 + ["random_control"] * 20
    rounds = [1] * 190 + [2] * 190 + [1] * 10 + [2] * 10
    manifest, corrections = _rows(ids, source, rounds, r1 + r2 + [False] * 20)
    manifest["rank"] = list(range(1, 191)) * 2 + [None] * 20
    left = estimate_remaining(manifest, corrections, 4000, next_batch=200, stop_rate=0.05)
    assert left["window"] == {"tasks": 190, "corrected": int(sum(r2))}  # no task of round 1


def test_a_point_that_rounds_to_what_the_queue_promises_is_no_disagreement():
    # the queue promises 40; a point of 39.6 reads "about 40" too: within half a correction
    # the two agree, and the report says nothing of it
    manifest, answers, n = _fully_corrected_queue()
    near = estimate_remaining(manifest, answers, n, next_batch=40, stop_rate=0.05,
                              model_wrong=80 + 39.6)
    assert near["remaining"][1] == pytest.approx(39.6)
    assert near["next_batch"]["at_queue_rate"] == pytest.approx(40)
    assert not near["point_below_queue"] and "read the interval" not in advice_text(near)
    below = estimate_remaining(manifest, answers, n, next_batch=40, stop_rate=0.05,
                               model_wrong=80 + 39.4)
    assert below["point_below_queue"] and "read the interval" in advice_text(below)


def test_a_queue_whose_tail_ran_dry_says_stop_though_its_window_found_many_early():
    # the demo's round 2: 27 corrections in its first 90 tasks, 2 in its last 100; the window's
    # own bound (29 of 190: 21%) said continue where nothing was left; the decay bounds it
    ids = [f"r{i:04d}" for i in range(400)]
    hits = [True] * 190 + [True] * 27 + [False] * 63 + [False] * 49 + [True] + [False] * 49 \
        + [True] + [False] * 20
    manifest, corrections = _rows(ids, ["flagged"] * 380 + ["random_control"] * 20,
                                  [1] * 190 + [2] * 190 + [1] * 10 + [2] * 10, hits)
    manifest["rank"] = list(range(1, 191)) * 2 + [None] * 20
    left = estimate_remaining(manifest, corrections, 4000, next_batch=200, stop_rate=0.05)
    low, mid, high = left["next_batch"]["rate"]
    assert left["window"] == {"tasks": 190, "corrected": 29}
    assert mid < 0.02 and high < 0.05 and left["advice"] == "stop"
    assert advice_text(left).endswith(f"Stop: the next batch's correction rate is below "
                                      f"loop.stop_rate = 5.0% (its 95% upper bound, "
                                      f"{100 * high:.1f}%).")
    # a queue still finding one in four at its end goes on
    hits = [True] * 190 + [True, False, False, False] * 47 + [True, False] + [False] * 20
    manifest, corrections = _rows(ids, ["flagged"] * 380 + ["random_control"] * 20,
                                  [1] * 190 + [2] * 190 + [1] * 10 + [2] * 10, hits)
    manifest["rank"] = list(range(1, 191)) * 2 + [None] * 20
    left = estimate_remaining(manifest, corrections, 4000, next_batch=200, stop_rate=0.05)
    assert left["advice"] == "continue" and left["next_batch"]["rate"][2] > 0.05
