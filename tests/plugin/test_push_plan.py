import pandas as pd
import pytest

from relabeler.plugin.push import (
    CONTROL,
    FLAGGED,
    plan_training_queue,
    queue_priorities,
    split_budget,
)

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
    assert sorted(prio.values()) == list(range(1, 56))
    assert [prio[x] for x in flagged] == sorted(prio[x] for x in flagged)
    assert len({prio[x] for x in controls}) == 5
    assert prio == queue_priorities(flagged, controls, seed=1)
