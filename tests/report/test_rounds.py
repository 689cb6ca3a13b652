"""Rounds in the report: the queue-vs-random test and the burn-down."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from relabeler.report.remaining import estimate_remaining
from relabeler.report.rounds import (
    burn_down,
    burn_down_text,
    queue_test,
    remaining_plot,
    review_answers,
)


def answers(ids, corrected):
    return pd.DataFrame({"id": ids, "action": ["relabel" if c else "keep" for c in corrected],
                         "old_label": "a", "new_label": ["b" if c else "a" for c in corrected],
                         "n_annotations": 3})


def two_rounds():
    """Round 1: 36 flagged (24 corrected) and 4 controls (0); round 2: 18 flagged (6) and 2
    controls (1); 1000 training rows, 60 of them wrong."""
    ids = [f"r{i:04d}" for i in range(1000)]
    manifest = pd.DataFrame({
        "id": ids[:36] + ids[500:504] + ids[36:54] + ids[600:602],
        "source": ["flagged"] * 36 + ["random_control"] * 4 + ["flagged"] * 18
        + ["random_control"] * 2,
        "round": [1] * 40 + [2] * 20,
        "rank": list(range(1, 37)) + [500, 501, 502, 503] + list(range(37, 55)) + [600, 601]})
    corrected = [i < 24 for i in range(36)] + [False] * 4 + [i < 6 for i in range(18)] + \
        [True, False]
    train = pd.DataFrame({"id": ids, "flipped": [i < 30 or 500 <= i < 501 or 900 <= i < 929
                                                 for i in range(1000)]})
    return manifest, answers(list(manifest["id"]), corrected), train


def test_the_latest_rounds_flagged_tasks_are_tested_against_all_controls():
    manifest, corrections, _ = two_rounds()
    test = queue_test(manifest, corrections)
    assert test["round"] == 2 and test["flagged"] == {"answered": 18, "corrected": 6,
                                                      "rate": 6 / 18}
    assert test["controls"] == {"answered": 6, "corrected": 1, "rate": 1 / 6}
    assert 0.05 < test["p_value"] < 0.6 and not test["beats_random"]
    first = queue_test(manifest[manifest["round"] == 1], corrections)
    assert first["round"] == 1 and first["beats_random"] and first["p_value"] < 0.05
    assert not queue_test(manifest.iloc[:0], corrections.iloc[:0])["available"]


def test_without_answered_controls_there_is_no_test():
    # studio.control_share = 0: rounds of flagged tasks only (round 1 has 36 answered)
    manifest, corrections, _ = two_rounds()
    flagged_only = manifest[manifest["source"] == "flagged"]
    test = queue_test(flagged_only, corrections)
    assert test == {"available": False,
                    "why": "needs a round with at least 10 answered flagged tasks and answered "
                           "random controls"}


def test_the_burn_down_reads_each_round_with_the_answers_its_tasks_have():
    manifest, corrections, train = two_rounds()
    late = corrections[~corrections["id"].isin(manifest.loc[manifest["round"] == 2, "id"][:5])]
    rows = burn_down(manifest, late, train, next_batch=20, stop_rate=0.05)
    assert [(r["round"], r["tasks"], r["answered"], r["corrections"], r["labels_spent"])
            for r in rows] == [(1, 40, 40, 24, 120), (2, 20, 15, 2, 45)]
    low, mid, high = rows[0]["remaining"]
    assert low <= mid <= high and rows[0]["advice"] in ("continue", "stop")
    # the truth: 60 wrong; round 1 reviewed 31 of them (rows 0-29 and 500), round 2 none
    assert [r["true_remaining"] for r in rows] == [29, 29]
    assert burn_down_text(rows, {"available": False}) == \
        "2 rounds: 26 labels changed by the reviewers for 165 labels spent on review tasks " \
        "(flagged and random controls)."


def test_what_is_left_and_the_burn_downs_last_round_agree_with_acquired_answers():
    # the demo's case: acquired pool rows answered (relabeled from no label) beside the review
    # tasks; they are no wrong training labels found, so neither total may count them
    manifest, corrections, train = two_rounds()
    acquired = pd.DataFrame({"id": ["p1", "p2", "p3"], "source": "acquired", "round": 1,
                             "rank": [1, 2, 3]})
    answered = pd.DataFrame({"id": ["p1", "p2", "p3"], "action": "relabel", "old_label": None,
                             "new_label": "b", "n_annotations": 3})
    manifest = pd.concat([manifest, acquired], ignore_index=True)
    corrections = pd.concat([corrections, answered], ignore_index=True)
    for model_wrong in (33.0, 70.0):  # 31 found: the 3 acquired counted too left 36, not 39
        rows = burn_down(manifest, corrections, train, next_batch=20, stop_rate=0.05,
                         model_wrong=model_wrong)
        left = estimate_remaining(manifest, corrections, len(train), next_batch=20,
                                  stop_rate=0.05, model_wrong=model_wrong)
        assert rows[-1]["remaining"] == left["remaining"]
        assert left["flagged"]["corrected"] + left["controls"]["corrected"] == 31
        assert left["unreviewed_rows"] == 1000 - 60
    # with the scorings' chances: the report reads the review tasks and their answers as the
    # burn-down does (review_answers), so the acquired answers change neither
    ids = train["id"].tolist()
    chances = {r: pd.Series(np.linspace(0.9, 0.01, 1000) / r, index=ids) for r in (1, 2)}
    rows = burn_down(manifest, corrections, train, next_batch=20, stop_rate=0.05,
                     wrong_probability=chances)
    review, theirs = review_answers(manifest, corrections)
    left = estimate_remaining(review, theirs, len(train), next_batch=20, stop_rate=0.05,
                              wrong_probability=chances)
    assert rows[-1]["remaining"] == left["remaining"]
    assert left["point_from"] == "controls"  # round 2's 7 corrections are too few to calibrate
    assert set(review["source"]) == {"flagged", "random_control"} and len(theirs) == 60
    first = estimate_remaining(*review_answers(manifest, corrections, upto_round=1),
                               len(train), next_batch=20, stop_rate=0.05,
                               wrong_probability=chances)
    assert first["point_from"] == "calibrated score" and rows[0]["remaining"] == \
        first["remaining"]


def test_the_burn_down_plot_is_a_png():
    manifest, corrections, train = two_rounds()
    rows = burn_down(manifest, corrections, train, next_batch=20, stop_rate=0.05)
    images = remaining_plot(rows, lambda fig: _png(fig))
    assert list(images) == ["burndown.png"] and images["burndown.png"][:4] == b"\x89PNG"
    assert remaining_plot([], _png) == {}
    assert np.isfinite(rows[1]["remaining"]).all()


def _png(fig) -> bytes:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_a_round_with_a_handful_of_answers_is_not_tested_yet():
    # round 2 has 4 answers: its 1 of 4 says nothing against the controls; round 1 stands
    manifest, corrections, _ = two_rounds()
    started = set(manifest.loc[manifest["round"] == 1, "id"]) | set(
        manifest.loc[(manifest["round"] == 2) & (manifest["source"] == "flagged"), "id"][:4])
    test = queue_test(manifest, corrections[corrections["id"].isin(started)])
    assert test["round"] == 1 and test["flagged"]["answered"] == 36 and test["beats_random"]
    few = manifest.iloc[:9]  # round 1 with 9 answered flagged tasks only
    assert not queue_test(few, corrections)["available"]


def test_the_test_is_decisive_only_where_the_controls_could_show_a_better_queue():
    manifest, corrections, _ = two_rounds()
    # round 2: 6 of 18 flagged tasks against 1 of 6 controls; even 0 of 6 would give p > 0.05
    test = queue_test(manifest, corrections)
    assert test["p_best"] > 0.05 and not test["decisive"] and not test["beats_random"]
    assert queue_test(manifest[manifest["round"] == 1], corrections)["decisive"]
    # a queue corrected less often than its controls is no better, however few they are
    worse = corrections.assign(action="keep", new_label="a")
    worse.loc[worse["id"].isin(manifest.loc[manifest["source"] == "random_control", "id"]),
              ["action", "new_label"]] = ["relabel", "b"]
    test = queue_test(manifest, worse)
    assert test["decisive"] and not test["beats_random"]


def test_the_verdicts_of_the_flagged_tasks_against_the_controls():
    from relabeler.report.stats import queue_against_controls

    # the demo on 500 rows: 37 of 57 against 0 of 3; the best 3 controls allow is p = 0.05
    small = queue_against_controls(37, 57, 0, 3)
    assert small["verdict"] == "undecided" and small["p_value"] == small["p_best"]
    assert small["p_best"] == pytest.approx(0.0525, abs=1e-3)
    assert queue_against_controls(37, 57, 0, 20)["verdict"] == "beats"
    assert queue_against_controls(12, 57, 4, 20)["verdict"] == "no better"  # 21% vs 20%
    assert queue_against_controls(1, 57, 1, 3)["verdict"] == "no better"  # 2% vs 33%
    assert queue_against_controls(0, 57, 0, 3)["verdict"] == "no better"


def test_a_skip_is_no_label_spent():
    # a skip gives no label: the annotators' counts leave it out, and so do the labels spent
    # (one answer and one skip were 2 labels; a task only skipped was 1)
    from relabeler.report.rounds import labels_given

    frame = pd.DataFrame({"n_annotations": [2, 1, 3, None], "n_skipped": [1, 1, 0, None]})
    assert labels_given(frame).tolist() == [1, 0, 3, 1]
    assert labels_given(frame.drop(columns="n_skipped")).tolist() == [2, 1, 3, 1]
    assert labels_given(frame.drop(columns=["n_annotations", "n_skipped"])).tolist() == [1] * 4
