"""simulate --undercover: parsing the spec, choosing the group and moving it to the pool."""

import json

import numpy as np
import pandas as pd
import pytest

from relabeler import artifacts
from relabeler.cli import main
from relabeler.config import RunConfig, ScoreConfig, apply_overrides
from relabeler.data import read_split
from relabeler.errors import ConfigError
from relabeler.jobs.dataset import prepare_dataset
from relabeler.jobs.simulate_coverage import (
    UndercoverSpec,
    check_classes_left,
    check_held,
    group_members,
    held_out_errors,
    hold_out,
    measured_rows,
    move_group,
    parse_undercover,
    subgroup_measure,
)
from relabeler.selectors.eval_support import steering
from relabeler.store import RunStore


def test_specs_are_parsed_and_values_may_hold_colons():
    assert parse_undercover("source=web:forum,app") == UndercoverSpec(
        "source=web:forum,app", column="source", values=("web:forum", "app"))
    assert parse_undercover("cluster:6", keep=0.0) == UndercoverSpec("cluster:6", clusters=6,
                                                                      keep=0.0)
    assert parse_undercover("label=a b").values == ("a b",)


@pytest.mark.parametrize("spec, keep, message", [
    ("source", 0.1, "--undercover: expected COLUMN=VALUE"),
    ("=web", 0.1, "--undercover: expected COLUMN=VALUE"),
    ("source=", 0.1, "--undercover: expected COLUMN=VALUE"),
    ("cluster:1", 0.1, "--undercover: cluster:K needs K >= 2, got 1"),
    ("cluster:x", 0.1, "--undercover: cluster:K needs an integer K >= 2"),
    ("cluster:4", 1.0, r"--undercover-keep: expected a share in \[0, 1\), got 1.0"),
    ("cluster:4", -0.1, r"--undercover-keep: expected a share in \[0, 1\)"),
])
def test_a_bad_spec_names_the_flag(spec, keep, message):
    with pytest.raises(ConfigError, match=message):
        parse_undercover(spec, keep=keep)


def _frame(n: int = 200) -> pd.DataFrame:
    """Two classes; a ``source`` column with a rare value 'web:forum' (every 5th row), whose
    texts share their own words."""
    rows = []
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        forum = i % 5 == 0
        words = (["thread", "reply", "forum", "post", "moderator", "topic"] if forum
                 else ["shop", "order", "basket", "checkout", "delivery", "parcel"]) + \
            [("great" if label == "pos" else "awful"), f"w{i % 7}"]
        rows.append({"id": f"s{i:04d}", "text": " ".join(words), "label": label,
                     "source": "web:forum" if forum else "app"})
    return pd.DataFrame(rows)


def _store(tmp_path, pool_fraction: float = 0.2) -> tuple[RunStore, RunConfig]:
    path = tmp_path / "d.csv"
    _frame().to_csv(path, index=False)
    config = apply_overrides(RunConfig(), {
        "run_dir": str(tmp_path / "run"), "data.source": str(path), "data.seed": 3,
        "data.eval_fraction": 0.2, "data.pool_fraction": pool_fraction})
    store = RunStore(config.run_dir)
    prepare_dataset(store, config)
    return store, config


def _splits(store):
    return {s: read_split(store.read_table(artifacts.SPLIT(split=s)))
            for s in ("train", "eval", "pool")}


def test_the_data_stage_keeps_the_source_columns(tmp_path):
    store, _ = _store(tmp_path)
    splits = _splits(store)
    for name, frame in splits.items():
        assert "source" in frame.columns, name
    train = splits["train"]
    assert (train["source"] == np.where(train["text"].str.startswith("thread"), "web:forum",
                                        "app")).all()


def test_hold_out_moves_all_but_keep_of_the_group_to_the_pool(tmp_path):
    store, _ = _store(tmp_path)
    before = _splits(store)
    group_train = before["train"][before["train"]["source"] == "web:forum"]
    spec = parse_undercover("source=web:forum", keep=0.25)
    info = hold_out(store, spec, seed=3)
    after = _splits(store)
    n_keep = int(np.floor(0.25 * len(group_train)))
    assert info["n_group_train"] == len(group_train) and info["n_kept"] == n_keep
    assert info["n_moved"] == len(group_train) - n_keep
    kept = after["train"][after["train"]["source"] == "web:forum"]
    assert len(kept) == n_keep and kept["undercover"].all()
    assert not after["train"].loc[after["train"]["source"] == "app", "undercover"].any()
    assert set(kept["id"]) <= set(group_train["id"])
    # moved rows: in the pool, label hidden, truth kept; the eval rows stay where they were
    moved = after["pool"][after["pool"]["id"].isin(group_train["id"])]
    assert len(moved) == info["n_moved"] and moved["label"].isna().all()
    truth = group_train.set_index("id")["label"]
    assert (moved.set_index("id")["true_label"] == truth.loc[moved["id"]]).all()
    assert after["eval"]["id"].tolist() == before["eval"]["id"].tolist()
    assert (after["eval"]["undercover"] == (after["eval"]["source"] == "web:forum")).all()
    assert info["n_group_pool"] == int(after["pool"]["undercover"].sum()) == \
        int((after["pool"]["source"] == "web:forum").sum())
    assert len(after["train"]) + len(after["pool"]) == \
        len(before["train"]) + len(before["pool"])
    # done once; another spec on the same run is refused, the same one is not redone
    assert hold_out(store, spec, seed=3) == info
    assert check_held(store, spec) is False
    with pytest.raises(ConfigError, match="--undercover: the run .* was made with "
                                          "--undercover source=web:forum"):
        check_held(store, parse_undercover("cluster:3"))


def test_cluster_groups_are_chosen_by_the_seed_and_hold_whole_clusters(tmp_path):
    store, _ = _store(tmp_path)
    splits = _splits(store)
    member, info = group_members(splits, parse_undercover("cluster:2"), seed=0)
    # the two kinds of text are the two clusters: the group is one of them
    for name, frame in splits.items():
        forum = (frame["source"] == "web:forum").to_numpy()
        assert (member[name] == forum).all() or (member[name] == ~forum).all(), name
    assert sorted(info["cluster_sizes"]) == [40, 160]
    again, _ = group_members(splits, parse_undercover("cluster:2"), seed=0)
    assert all((again[n] == member[n]).all() for n in member)


def _three_regions(rng):
    """Train, eval and pool frames over three 1-d regions at -4 (class a), -2 (a) and 4 (b),
    with their embeddings in split order."""
    centres, labels = np.array([-4.0, -2.0, 4.0]), np.array(["a", "a", "b"])
    frames, points = {}, []
    for name, per in (("train", 20), ("eval", 6), ("pool", 10)):
        region = np.repeat(np.arange(3), per)
        x = centres[region] + rng.normal(0, 0.3, len(region))
        points.append(np.stack([x, np.ones_like(x)], axis=1))
        frames[name] = pd.DataFrame({"id": [f"{name}{i}" for i in range(len(x))],
                                     "text": [f"t{v:.3f}" for v in x],
                                     "label": labels[region]})
    return frames, np.concatenate(points)


def test_the_probe_error_says_which_held_out_region_would_hurt():
    frames, space = _three_regions(np.random.default_rng(0))
    region = np.concatenate([np.repeat(np.arange(3), n) for n in (20, 6, 10)])
    part = np.repeat(["train", "eval", "pool"], [60, 18, 30])
    labels = np.concatenate([f["label"].to_numpy() for f in frames.values()])
    errors = held_out_errors(space, labels, region, part == "train", part == "eval",
                             np.array([0, 1, 2]))
    # without -4 or -2 the probe still calls it a (the side away from b); without 4 it has
    # one class left and calls it a
    assert errors.tolist() == [0.0, 0.0, 1.0]


def test_cluster_groups_on_embeddings_are_chosen_among_the_hurting_ones():
    frames, space = _three_regions(np.random.default_rng(1))
    for seed in range(6):
        member, info = group_members(frames, parse_undercover("cluster:3"), seed=seed,
                                     embeddings=space)
        assert info["clustered_on"] == "encoder"
        assert sorted(info["held_out_error"].values()) == [0.0, 0.0, 1.0]
        # always the one region a model without it misclassifies, whole
        assert (frames["train"]["label"][member["train"]] == "b").all()
        assert [int(m.sum()) for m in member.values()] == [20, 6, 10]


def test_hold_out_clusters_the_encoders_states_of_the_configured_model(tmp_path,
                                                                       tiny_bert_dir):
    store, config = _store(tmp_path)
    config = apply_overrides(config, {"model.name": tiny_bert_dir,
                                      "model.cache_dir": str(tmp_path / "cache")})
    info = hold_out(store, parse_undercover("cluster:3"), seed=0, config=config)
    assert info["clustered_on"] == "encoder" and sum(info["cluster_sizes"]) == 200
    assert set(info["held_out_error"]) <= {"0", "1", "2"}
    after = _splits(store)
    assert info["n_group_pool"] == int(after["pool"]["undercover"].sum()) > 0
    # the states were cached for train to reuse
    assert any((tmp_path / "cache").rglob("*.parquet"))


@pytest.mark.parametrize("spec, message", [
    ("region=north", r"--undercover: the dataset has no column 'region' \(columns: label, "
                     r"source"),
    ("source=nowhere", r"--undercover: 'source=nowhere' matches no training row; values match "
                       r"exactly, case included: source's most common are '\S+' \(\d+\), "
                       r"'\S+' \(\d+\)$"),
    ("source=APP", r"'source=APP' matches no training row; values match exactly, case "
                   r"included: .*'app' \(\d+\)"),
    ("source=web:forum,app", "--undercover: 'source=web:forum,app' matches every training row"),
    ("cluster:500", r"--undercover: cluster:K needs 2 <= K <= 100"),
])
def test_a_group_that_cannot_be_held_out_names_the_flag(tmp_path, spec, message):
    store, _ = _store(tmp_path)
    with pytest.raises(ConfigError, match=message):
        hold_out(store, parse_undercover(spec), seed=0)
    assert not store.stage_done("simulate.undercover")


def test_too_many_clusters_is_refused_before_any_text_is_encoded(tmp_path, monkeypatch):
    from relabeler.config import RunConfig
    from relabeler.jobs import simulate_coverage

    def encoded(*args, **kwargs):
        raise AssertionError("the texts were encoded first")

    monkeypatch.setattr(simulate_coverage, "encoder_embeddings", encoded)
    store, _ = _store(tmp_path)
    with pytest.raises(ConfigError, match=r"cluster:K needs 2 <= K <= 100"):
        hold_out(store, parse_undercover("cluster:500"), seed=0, config=RunConfig())


def test_a_label_spec_follows_the_true_label_under_noise(tmp_path):
    store, _ = _store(tmp_path)
    splits = _splits(store)
    train = splits["train"]
    splits["train"] = train.assign(true_label=train["label"],
                                   label=np.where(train["label"] == "pos", "neg", "pos"))
    member, _ = group_members(splits, parse_undercover("label=pos"), seed=0)
    assert (member["train"] == (train["label"] == "pos").to_numpy()).all()


class _Oracle:
    """A refitter that predicts the true class of a row when some training row of that class
    lies in the group (rows >= 100), else class 0."""

    def __init__(self, truth):
        self.truth = truth

    def fit_predict(self, rows, labels, predict_rows):
        known = {int(c) for r, c in zip(rows, labels, strict=True) if r >= 100}
        probs = np.zeros((len(predict_rows), 2))
        for i, r in enumerate(predict_rows):
            probs[i, self.truth[r] if self.truth[r] in known else 0] = 1.0
        return probs


def test_the_picks_are_measured_on_eval_rows_that_did_not_steer_them():
    evaluation = pd.DataFrame({"id": [f"e{i}" for i in range(40)],
                               "undercover": [True] * 30 + [False] * 10})
    steer = steering(evaluation["id"].to_numpy(dtype=object), 0.5)
    rows = measured_rows(evaluation, ScoreConfig(acquire_targets="eval"), "label=x")
    assert rows.tolist() == (evaluation["undercover"].to_numpy() & ~steer).tolist()
    assert 0 < rows.sum() < 30
    # the undercovered acquisition (the default) never reads eval labels: every group row
    assert measured_rows(evaluation, ScoreConfig(), "label=x").sum() == 30
    with pytest.raises(ConfigError, match=r"--undercover label=x: none of the group's 30 eval "
                                          r"rows is left"):
        measured_rows(evaluation, ScoreConfig(acquire_targets="eval", acquire_eval_share=1.0),
                      "label=x")


def test_subgroup_measure_compares_picks_with_random_ones():
    truth = np.array([0] * 100 + [1] * 60)
    in_group = np.array([False] * 40 + [True] * 40)  # pool: rows 100..179 -> truth 0.. 1
    pool_rows = np.arange(100, 180)
    truth_pool = np.concatenate([np.zeros(40, np.int64), np.ones(40, np.int64)])
    refit = _Oracle(np.concatenate([truth, np.ones(40, np.int64)]))
    picks = np.arange(40, 50)  # all in the group
    result = subgroup_measure(refit, train_rows=np.arange(20), train_labels=np.zeros(20),
                              pool_rows=pool_rows, pool_truth=truth_pool,
                              in_group_pool=in_group, group_eval_rows=np.arange(150, 160),
                              group_eval_truth=np.ones(10, np.int64), picks=picks, seed=0)
    assert result["k"] == 10 and result["precision_selected"] == 1.0
    assert 0 < result["precision_random"] < 1
    assert result["accuracy"]["before"] == 0.0 and result["accuracy"]["selected"] == 1.0
    none = subgroup_measure(refit, train_rows=np.arange(20), train_labels=np.zeros(20),
                            pool_rows=pool_rows, pool_truth=truth_pool, in_group_pool=in_group,
                            group_eval_rows=np.arange(150, 160),
                            group_eval_truth=np.ones(10, np.int64),
                            picks=np.zeros(0, np.int64), seed=0)
    assert (none["k"], none["precision_selected"], none["precision_random"]) == (0, None, None)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # every stage of simulate on a shared CPU
def test_simulate_undercover_end_to_end(ray_session, tmp_path, tiny_bert_dir):
    out = tmp_path / "sim"
    assert main(["simulate", "--data", "sms-spam", "--sample", "300", "--noise", "0.05",
                 "--seed", "1", "--out", str(out), "--mode", "head", "--folds", "2",
                 "--pool-fraction", "0.3", "--budgets", "none", "--undercover", "cluster:4",
                 "--set", f"model.name={tiny_bert_dir}", "--set", "score.acquire_budget=20",
                 "--set", "score.acquire_targets=eval", "-q"]) == 0
    result = json.loads((out / "simulation.json").read_text())
    sub = result["coverage"]["subgroup"]
    assert sub["spec"] == "cluster:4" and sub["k"] == 20
    assert set(sub["accuracy"]) == {"before", "selected", "random"}
    assert all(0 <= v <= 1 for v in sub["accuracy"].values())
    assert 0 <= sub["precision_random"] <= 1 and 0 <= sub["precision_selected"] <= 1
    # measured on the group's eval rows that did not steer acquisition, and only on those
    evaluation = RunStore(out / "run").read_table(artifacts.EVAL.path).to_pandas()
    group = evaluation[evaluation["undercover"]]
    free = ~steering(group["id"].to_numpy(dtype=object), 0.5)
    assert sub["n_group_eval"] == len(group)
    assert sub["n_group_eval_measured"] == int(free.sum()) > 0
    assert {"selected", "random", "base"} <= set(result["coverage"])  # the existing measure
    store = RunStore(out / "run")
    pool = store.read_table(artifacts.POOL.path).to_pandas()
    assert sub["n_group_pool"] == int(pool["undercover"].sum()) > 0
    regions = store.read_table(artifacts.THIN_REGIONS.path).to_pandas()
    assert len(regions) >= 1 and (regions["n"] == regions["n_eval"] + regions["n_pool"]).all()
    assert {"undercover", "subgroup"} <= set(result["seconds"])


@pytest.mark.parametrize("flags, message", [
    (["--undercover", "cluster:1"], "--undercover: cluster:K needs K >= 2, got 1"),
    (["--undercover", "label=spam", "--set", "score.acquire_targets=eval", "--set",
      "score.acquire_eval_share=1"],
     "score.acquire_eval_share=1 leaves none"),
    (["--undercover", "label=spam", "--undercover-keep", "1"],
     r"--undercover-keep: expected a share in [0, 1), got 1.0"),
    (["--undercover", "label=spam", "--budgets", "none", "--noise", "0"],
     "--noise 0 flips no training label"),
    # without --undercover the share was neither checked nor used
    (["--undercover-keep", "7"], "--undercover-keep 7: the share of the held-out group left in "
     "train needs --undercover SPEC, the group"),
    (["--undercover-keep", "0.2", "--budgets", "none"], "--undercover-keep 0.2: the share"),
])
def test_the_cli_checks_the_flags_before_any_work(tmp_path, capsys, flags, message):
    assert main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--out",
                 str(tmp_path / "sim"), "-q", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()


def test_the_coverage_measure_reads_the_eval_truth_under_eval_noise(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import pyarrow as pa

    from relabeler.jobs import score, simulate
    from relabeler.jobs.simulate_coverage import coverage_measure
    from tests.jobs.test_simulate import eval_noise_run

    store, config = eval_noise_run(tmp_path, pool_fraction=0.2)
    train, evaluation, pool = (_splits(store)[s] for s in ("train", "eval", "pool"))
    assert evaluation["flipped"].any()
    index = {"neg": 0, "pos": 1}
    # the features' row order is not the table's
    order = np.random.default_rng(0).permutation(len(evaluation))
    views = {"eval": SimpleNamespace(ids=evaluation["id"].to_numpy(dtype=object)[order],
                                     labels=evaluation["label"].map(index).to_numpy()[order],
                                     features=np.zeros((len(evaluation), 2))),
             "pool": SimpleNamespace(ids=pool["id"].to_numpy(dtype=object),
                                     labels=np.full(len(pool), -1),
                                     features=np.zeros((len(pool), 2)))}
    monkeypatch.setattr(score, "load_split", lambda store, split, classes: views[split])
    m = len(evaluation)
    store.write_table(artifacts.COVERAGE.path, pa.table({
        "id": evaluation["id"].tolist(), "split": ["eval"] * m,
        "coverage_score": pa.array(np.linspace(0, 1, m), pa.float32()),
        "density": pa.array(np.ones(m), pa.float32()),
        "label_agreement": pa.array(np.ones(m), pa.float32()),
        "nearest_ids": [[] for _ in range(m)], "is_undercovered": [False] * m}))
    seen = {}
    monkeypatch.setattr(simulate, "coverage_experiment", lambda refit, **kwargs:
                        seen.update(kwargs) or {})
    view = SimpleNamespace(ids=train["id"].to_numpy(dtype=object), classes=["neg", "pos"],
                           labels=train["label"].map(index).to_numpy())
    coverage_measure(store, config, view, None, (train, evaluation, pool))
    truth = evaluation["true_label"].map(index).to_numpy()[order]
    np.testing.assert_array_equal(seen["eval_labels"], truth)
    assert (seen["eval_labels"] != views["eval"].labels).any()  # not the flipped labels
    np.testing.assert_array_equal(seen["eval_rows"], len(train) + order)


@pytest.mark.parametrize("keep", [0.0, 0.01])
def test_a_hold_out_that_leaves_training_without_a_class_names_both_flags(tmp_path, keep):
    # keep 0, or a share of the ~80 'pos' rows that floors to 0 rows: no 'pos' left to train on
    store, _ = _store(tmp_path)
    before = _splits(store)
    with pytest.raises(ConfigError, match=rf"--undercover label=pos with --undercover-keep "
                                          rf"{keep:g}: the training rows left hold no row of the "
                                          rf"class 'pos' \(by true label\)"):
        hold_out(store, parse_undercover("label=pos", keep=keep), seed=0)
    assert not store.stage_done("simulate.undercover")
    for name, frame in _splits(store).items():  # nothing written
        assert frame["id"].tolist() == before[name]["id"].tolist()
    info = hold_out(store, parse_undercover("label=pos", keep=0.1), seed=0)
    assert info["n_kept"] == int(np.floor(0.1 * info["n_group_train"])) > 0


def test_flipped_rows_given_a_held_out_class_do_not_count_as_that_class():
    # asymmetric noise gave 'pos' to two 'neg' rows; holding every true 'pos' row out leaves
    # those two as the only training rows labeled 'pos': training lacks the class all the same
    train = pd.DataFrame({"id": [f"t{i}" for i in range(6)], "text": ["x"] * 6,
                          "label": ["pos", "pos", "neg", "neg", "neg", "neg"],
                          "true_label": ["neg", "neg", "neg", "neg", "pos", "pos"]})
    evaluation = pd.DataFrame({"id": ["e0", "e1"], "text": ["x"] * 2, "label": ["pos", "neg"]})
    pool = pd.DataFrame({"id": [], "text": [], "label": []}, dtype=object)
    splits = {"train": train, "eval": evaluation, "pool": pool}
    spec = parse_undercover("label=pos", keep=0.0)
    member, _ = group_members(splits, spec, seed=0)
    new, counts = move_group(splits, member, keep=0.0, seed=0)
    assert sorted(new["train"]["label"]) == ["neg", "neg", "pos", "pos"]
    with pytest.raises(ConfigError, match=r"no row of the class 'pos' \(by true label\)"):
        check_classes_left(new, spec, counts)
    check_classes_left({**new, "eval": evaluation[evaluation["label"] == "neg"]}, spec, counts)
