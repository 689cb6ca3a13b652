import pandas as pd
import pytest

from relabeler.queue_plan import (
    ACQUIRED,
    CONTROL,
    EVAL_AUDIT,
    FLAGGED,
    plan_next_round,
    plan_round,
    plan_settings,
    plan_training_queue,
    queue_priorities,
    read_plan,
    split_budget,
    write_plan,
)
from relabeler.store import RunStore

IDS = [f"s{i:03d}" for i in range(300)]


def pushed(rows):
    return pd.DataFrame(rows, columns=["id", "source"])


def test_budget_splits_into_flagged_and_controls():
    assert split_budget(200, 0.05) == (190, 10)
    assert split_budget(10, 0.05) == (9, 1)
    assert split_budget(0, 0.05) == (0, 0)
    with pytest.raises(ValueError, match="control_share"):
        split_budget(10, 1.0)


def test_first_plan_is_top_of_queue_plus_random_controls():
    flagged, controls = plan_training_queue(IDS, IDS, pushed([]), budget=40,
                                            control_share=0.1, seed=3)
    assert flagged == IDS[:36]
    assert len(controls) == 4 and not set(controls) & set(flagged)
    assert len(set(controls)) == 4


def test_controls_are_uniform_over_training_samples():
    picks = []
    for seed in range(200):
        _, controls = plan_training_queue(IDS[:10], IDS, pushed([]), budget=11,
                                          control_share=0.05, seed=seed)
        picks += controls
    counts = pd.Series([int(p[1:]) // 100 for p in picks]).value_counts()
    assert counts.min() > 40  # three equal thirds of the id range, ~66 each


def test_planning_again_adds_nothing():
    flagged, controls = plan_training_queue(IDS, IDS, pushed([]), budget=40,
                                            control_share=0.1, seed=0)
    done = pushed([(x, FLAGGED) for x in flagged] + [(x, CONTROL) for x in controls])
    assert plan_training_queue(IDS, IDS, done, budget=40, control_share=0.1, seed=0) == ([], [])


def test_a_reranked_queue_adds_only_the_new_top_samples():
    flagged, _ = plan_training_queue(IDS, IDS, pushed([]), budget=10, control_share=0.0)
    reranked = ["s299", *IDS[:299]]
    done = pushed([(x, FLAGGED) for x in flagged])
    assert plan_training_queue(reranked, IDS, done, budget=10, control_share=0.0) == \
        (["s299"], [])


def test_priorities_keep_rank_order_and_spread_controls():
    flagged = IDS[:50]
    controls = IDS[200:205]
    prio = queue_priorities(flagged, controls, seed=1)
    # a step apart, so a re-rank can move a task between two others with one update
    assert sorted(prio.values()) == list(range(1000, 56_000, 1000))
    assert [prio[x] for x in flagged] == sorted(prio[x] for x in flagged)
    assert len({prio[x] for x in controls}) == 5
    assert prio == queue_priorities(flagged, controls, seed=1)


RANKING = pd.DataFrame({"id": IDS, "rank": range(1, len(IDS) + 1)})
PICKS = pd.DataFrame({"id": ["p2", "p1", "p3"], "rank": [2, 1, 3]})


def manifest(rows):
    return pd.DataFrame(rows, columns=["id", "source"])


def test_a_plan_lists_every_task_of_the_round_in_queue_order():
    plan = plan_round(RANKING, IDS, manifest([]), budget=20, control_share=0.1, seed=3,
                      pool_picks=PICKS)
    review = plan[plan["source"] != ACQUIRED]
    assert review["position"].tolist() == list(range(1000, 21_000, 1000))
    assert sorted(review.loc[review["source"] == FLAGGED, "id"]) == IDS[:18]
    flagged_ranks = review.loc[review["source"] == FLAGGED, "rank"].tolist()
    assert flagged_ranks == list(range(1, 19))  # rank order, controls spread among them
    controls = review.loc[review["source"] == CONTROL]
    assert len(controls) == 2 and not set(controls["id"]) & set(IDS[:18])
    assert controls["rank"].tolist() == [int(x[1:]) + 1 for x in controls["id"]]
    acquired = plan[plan["source"] == ACQUIRED]
    assert acquired["id"].tolist() == ["p1", "p2", "p3"]
    assert acquired["position"].tolist() == [1, 2, 3]
    assert not plan["pushed"].any()


def test_planning_after_a_push_names_the_same_tasks_as_sent():
    first = plan_round(RANKING, IDS, manifest([]), budget=20, control_share=0.1, seed=3,
                       pool_picks=PICKS)
    sent = manifest(list(zip(first["id"], first["source"], strict=True)))
    again = plan_round(RANKING, IDS, sent, budget=20, control_share=0.1, seed=3,
                       pool_picks=PICKS)
    pd.testing.assert_frame_equal(again.drop(columns="pushed"), first.drop(columns="pushed"))
    assert again["pushed"].all()


def test_a_larger_budget_keeps_what_was_sent_and_adds_the_next_ranks():
    first = plan_round(RANKING, IDS, manifest([]), budget=10, control_share=0.0, seed=0,
                       pool_picks=PICKS.iloc[:0])
    sent = manifest(list(zip(first["id"], first["source"], strict=True)))
    more = plan_round(RANKING, IDS, sent, budget=15, control_share=0.0, seed=0,
                      pool_picks=PICKS.iloc[:0])
    assert more["id"].tolist() == IDS[:15]
    assert more["pushed"].tolist() == [True] * 10 + [False] * 5


def test_the_plan_round_trips_through_the_run_directory(tmp_path):
    store = RunStore(tmp_path / "run")
    assert read_plan(store) is None
    plan = plan_round(RANKING, IDS, manifest([]), budget=12, control_share=0.25, seed=1,
                      pool_picks=PICKS)
    write_plan(store, plan, plan_settings(12, 0.25, 1))
    stored, settings = read_plan(store)
    pd.testing.assert_frame_equal(stored, plan)
    assert settings == {"budget": 12, "control_share": 0.25, "seed": 1}


def test_eval_picks_follow_the_other_projects_in_rank_order():
    picks = pd.DataFrame({"id": ["e3", "e1", "e2"], "rank": [3, 1, 2]})
    first = plan_round(RANKING, IDS, manifest([]), budget=10, control_share=0.0, seed=0,
                       pool_picks=PICKS, eval_picks=picks)
    assert first["source"].tolist() == [FLAGGED] * 10 + [ACQUIRED] * 3 + [EVAL_AUDIT] * 3
    audit = first[first["source"] == EVAL_AUDIT]
    assert audit["id"].tolist() == ["e1", "e2", "e3"]
    assert audit["position"].tolist() == [1, 2, 3] and not audit["pushed"].any()
    sent = manifest(list(zip(first["id"], first["source"], strict=True)))
    again = plan_round(RANKING, IDS, sent, budget=10, control_share=0.0, seed=0,
                       pool_picks=PICKS, eval_picks=picks)
    assert again["pushed"].all()
    without = plan_round(RANKING, IDS, manifest([]), budget=10, control_share=0.0, seed=0,
                         pool_picks=PICKS)
    assert EVAL_AUDIT not in set(without["source"])


def manifest_of(rows):
    """A review manifest: (id, source, priority, round) rows."""
    return pd.DataFrame(rows, columns=["id", "source", "priority", "round"])


def test_a_later_round_queues_the_top_of_the_unsent_ranking_behind_every_task():
    ranking = pd.DataFrame({"id": IDS, "rank": range(1, 301)})
    sent = manifest_of([(x, FLAGGED, i + 1, 1) for i, x in enumerate(IDS[:36])]
                       + [("s250", CONTROL, 37, 1)])
    plan = plan_next_round(ranking.sample(frac=1, random_state=0), IDS, sent, batch=20,
                           control_share=0.1, seed=0, round_no=2)
    flagged = plan[plan["source"] == FLAGGED]
    controls = plan[plan["source"] == CONTROL]
    assert sorted(flagged["id"]) == IDS[36:54]  # the top 18 never sent, in rank order
    assert list(flagged.sort_values("position")["rank"]) == list(range(37, 55))
    assert len(controls) == 2 and not set(controls["id"]) & (set(sent["id"]) | set(IDS[:54]))
    assert sorted(plan["position"]) == list(range(1037, 21_037, 1000))  # behind priority 37
    assert not plan["pushed"].any()
    # the same inputs give the same round; another round draws other controls
    again = plan_next_round(ranking, IDS, sent, batch=20, control_share=0.1, seed=0,
                            round_no=2)
    assert again.sort_values("id").reset_index(drop=True).equals(
        plan.sort_values("id").reset_index(drop=True))
    later = plan_next_round(ranking, IDS, sent, batch=20, control_share=0.1, seed=0,
                            round_no=3)
    assert set(later.loc[later["source"] == CONTROL, "id"]) != set(controls["id"])


def test_a_random_round_draws_its_batch_uniformly_and_keeps_a_ranked_probe():
    ranking = pd.DataFrame({"id": IDS, "rank": range(1, 301)})
    sent = manifest_of([(x, FLAGGED, i + 1, 1) for i, x in enumerate(IDS[:36])])
    plan = plan_next_round(ranking, IDS, sent, batch=40, control_share=0.1, seed=1,
                           round_no=2, random_fill=True)
    assert sorted(plan.loc[plan["source"] == FLAGGED, "id"]) == IDS[36:40]
    drawn = plan.loc[plan["source"] == CONTROL, "id"]
    assert len(drawn) == 36 and not set(drawn) & set(IDS[:40])
    # a uniform draw, not the next ranks: its ranks spread over the rest of the queue
    ranks = plan.loc[plan["source"] == CONTROL, "rank"].astype(int)
    assert ranks.median() > 100


def test_a_later_round_never_sends_a_sample_twice_and_stops_when_all_were_sent():
    ranking = pd.DataFrame({"id": IDS[:30], "rank": range(1, 31)})
    sent = manifest_of([(x, FLAGGED, i + 1, 1) for i, x in enumerate(IDS[:25])])
    plan = plan_next_round(ranking, IDS[:30], sent, batch=20, control_share=0.1, seed=0,
                           round_no=2)
    assert sorted(plan["id"]) == IDS[25:30]
    everything = manifest_of([(x, FLAGGED, i + 1, 1) for i, x in enumerate(IDS[:30])])
    assert plan_next_round(ranking, IDS[:30], everything, batch=20, control_share=0.1, seed=0,
                           round_no=2).empty
    with pytest.raises(ValueError, match="round_no"):
        plan_next_round(ranking, IDS, sent, batch=5, control_share=0.1, seed=0, round_no=0)


def test_samples_answered_in_another_project_are_never_planned_again():
    from relabeler.queue_plan import plan_next_round, plan_round

    ranking = pd.DataFrame({"id": [f"t{i}" for i in range(10)] + ["p7"], "rank": range(1, 12)})
    manifest = pd.DataFrame({"id": ["t0", "t3", "p7"], "priority": [1, 1, 1],
                             "source": ["flagged", "counterexample", "acquired"]})
    train_ids = [f"t{i}" for i in range(10)] + ["p7"]  # p7 joined the training set
    nxt = plan_next_round(ranking, train_ids, manifest, batch=4, control_share=0.0, seed=0,
                          round_no=2)
    assert nxt["id"].tolist() == ["t1", "t2", "t4", "t5"]
    plan = plan_round(ranking, train_ids, manifest, budget=5, control_share=0.2, seed=0,
                      pool_picks=pd.DataFrame({"id": [], "rank": []}))
    review = plan[plan["source"].isin(["flagged", "random_control"])]
    assert not {"t3", "p7"} & set(review["id"]) and len(review) == 5
