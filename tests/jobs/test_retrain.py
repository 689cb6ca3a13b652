"""retrain + report: corrections to a new dataset version, a retrained model, the report."""

import json

import pandas as pd
import pyarrow as pa
import pytest

from relabeler.config import RunConfig
from relabeler.errors import DataError
from relabeler.jobs import StageError
from relabeler.jobs.retrain import (
    apply_corrections,
    audit_eval,
    dataset_versions,
    run_retrain,
    split_eval_answers,
)
from relabeler.jobs.train import run_train
from relabeler.queue_plan import write_manifest
from relabeler.report.build import write_report
from relabeler.store import RunStore
from tests.conftest import head_config

TRAIN = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["t1", "t2", "t3", "t4"],
                      "label": ["pos", "neg", "pos", "neg"]})
POOL = pd.DataFrame({"id": ["p1", "p2"], "text": ["u1", "u2"], "label": [None, None]})


def _corrections(rows):
    return pd.DataFrame(rows, columns=["id", "old_label", "new_label", "action"])


def _trained(tmp_path, synthetic_csv, tiny_bert_dir, *, epochs: int = 2, model=None, **data):
    """A head-mode run of the tiny model on the synthetic set, trained: (config, store).
    ``model`` and ``data``: [model] and [data] settings."""
    config = head_config(tmp_path / "run", synthetic_csv, tiny_bert_dir, max_length=48,
                         epochs=epochs)
    for key, value in (model or {}).items():
        setattr(config.model, key, value)
    for key, value in data.items():
        setattr(config.data, key, value)
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    return config, store


def test_apply_corrections_by_action():
    corrections = _corrections([("a", "pos", "neg", "relabel"), ("b", "neg", "neg", "keep"),
                                ("c", "pos", None, "drop"), ("d", "neg", None, "unsure"),
                                ("p1", None, "pos", "relabel"), ("p2", None, None, "unsure")])
    out, counts = apply_corrections(TRAIN, POOL, corrections, ["neg", "pos"])
    labels = dict(zip(out["id"], out["label"], strict=True))
    assert labels == {"a": "neg", "b": "neg", "d": "neg", "p1": "pos"}
    sources = dict(zip(out["id"], out["label_source"], strict=True))
    assert sources == {"a": "corrected", "b": "reviewed", "d": "original", "p1": "acquired"}
    assert out.set_index("id").loc["a", "previous_label"] == "pos"
    assert counts == {"reviewed": 4, "changed": 1, "dropped": 1, "unsure": 1, "acquired": 1,
                      "n_train_before": 4, "n_train_after": 4}
    assert TRAIN["label"].tolist() == ["pos", "neg", "pos", "neg"]  # the input is untouched


@pytest.mark.parametrize("rows, message", [
    ([], "is empty: there is nothing to retrain on"),
    ([("zz", "pos", "neg", "relabel")], "row 0: id 'zz' is in neither"),
    ([("a", "pos", "maybe", "relabel")], "row 0: new_label 'maybe' is not a class"),
    ([("a", "pos", "neg", "flip")], "row 0: action 'flip' is not one of"),
    ([("a", "pos", "neg", "relabel"), ("a", "pos", "pos", "keep")], "'a' appears more than"),
])
def test_bad_corrections_are_clear_errors(rows, message):
    with pytest.raises(ValueError, match=message):
        apply_corrections(TRAIN, POOL, _corrections(rows), ["neg", "pos"])


def test_retrain_and_report_need_their_inputs(tmp_path):
    store = RunStore(tmp_path / "run")
    config = RunConfig(run_dir=str(tmp_path / "run"))
    with pytest.raises(StageError, match="retrain needs labels/corrections.parquet"):
        run_retrain(store, config)
    with pytest.raises(StageError, match="report needs a retrained model"):
        write_report(store)


@pytest.mark.slow
def test_retrain_writes_a_new_version_and_the_report(tmp_path, tiny_bert_dir, synthetic_csv):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, epochs=10,
                             noise_rate=0.2)
    train = store.read_table("dataset/train.parquet").to_pandas()
    flipped = train[train["flipped"]]
    rows = [(r.id, r.label, r.true_label, "relabel") for r in flipped.itertuples()]
    rows += [(r.id, r.label, r.label, "keep") for r in train[~train["flipped"]].head(5)
             .itertuples()]
    corrections = _corrections(rows).assign(n_annotations=1)
    store.write_table("labels/corrections.parquet",
                      pa.Table.from_pandas(corrections, preserve_index=False))
    n_sent = len(corrections)
    manifest = pd.DataFrame({
        "id": corrections["id"], "task_id": pd.array(range(1, n_sent + 1), dtype="Int64"),
        "project_id": 1, "rank": pd.array(range(1, n_sent + 1), dtype="Int64"),
        "priority": range(1, n_sent + 1),
        "source": ["flagged"] * len(flipped) + ["random_control"] * 5,
        "pushed_at": pd.Timestamp("2026-12-05", tz="UTC")})
    write_manifest(store, manifest)
    info = run_retrain(store, config, progress=False)
    assert info["version"] == 1 and info["changed"] == len(flipped) == 19
    v1 = RunStore(store.path("retrain/v1"))
    new_train = v1.read_table("dataset/train.parquet").to_pandas()
    assert (new_train["label"] == new_train["true_label"]).all()
    assert store.read_table("dataset/train.parquet").to_pandas()["label"].tolist() == \
        train["label"].tolist()  # the original version is untouched
    assert v1.stage_info("data")["info"]["parent"] == store.uri
    assert run_retrain(store, config, progress=False)["version"] == 1  # same corrections: skip

    report = write_report(store)
    assert report["corrections"]["changed"] == 19
    assert report["labels_spent"] == 24
    assert report["queue"]["flagged"]["rate"] == 1.0
    assert report["queue"]["random_control"]["rate"] == 0.0
    # no control changed: no lift ratio, but its lower bound from the two Wilson intervals
    queue = report["queue"]
    assert queue["lift"] is None
    assert queue["lift_lower"] == pytest.approx(
        queue["flagged"]["ci95"][0] / queue["random_control"]["ci95"][1])
    assert 1.0 < queue["lift_lower"] < 19 / 5
    expected = {}
    for _, old, new, _ in rows:
        expected.setdefault(old, {}).setdefault(new, 0)
        expected[old][new] += 1
    assert report["correction_matrix"] == expected
    ev = report["eval"]["accuracy"]
    assert ev["ci95"][0] <= ev["delta"] <= ev["ci95"][1]
    html = (tmp_path / "run/report/report.html").read_text()
    assert "What the relabeling bought" in html and "data:image/png;base64," in html
    assert "not measurable: no random control needed a change; at least" in html
    left = report["remaining"]
    assert left["true_remaining"] == 0  # every flipped label was answered
    assert left["controls"] == {
        "reviewed": 5, "corrected": 0, "rate": 0.0, "ci95": queue["random_control"]["ci95"],
        # one round: its 5 controls stand for the rows outside its 19 flagged tasks and them
        "found_since": 0.0, "rate_left": 0.0,
        "cohorts": [{"round": 1, "controls": 5, "rows": len(train) - 24, "found_since": 0.0,
                     "waiting_flagged": 0.0, "waiting_controls": 0.0}]}
    assert left["remaining"][0] == 0 and left["remaining"][1] == 0  # no control was wrong
    assert left["unreviewed_rows"] == len(train) - 24
    assert "What is left" in html and left["advice"] in html
    assert (tmp_path / "run/report/accuracy.png").stat().st_size > 1000
    assert json.loads((tmp_path / "run/report/report.json").read_text())["version"] == 1
    # one round (a manifest from before rounds existed is round 1) in the burn-down
    [burn] = report["rounds"]["rows"]
    assert (burn["round"], burn["mode"], burn["tasks"], burn["answered"], burn["corrections"],
            burn["labels_spent"], burn["true_remaining"]) == (1, "ranked", 24, 24, 19, 24, 0)
    assert burn["remaining"] == left["remaining"] and burn["advice"] == left["advice"]
    assert "Rounds: the burn-down" in html and 'alt="burn-down"' in html
    assert report["rounds"]["text"].startswith("1 round: 19 labels changed by the reviewers "
                                               "for 24 labels")
    assert (tmp_path / "run/report/burndown.png").stat().st_size > 1000
    assert report["stale"] is None and "Out of date" not in html
    # a pull after the retrain: the report says its gain is the older answers'
    corrections = store.read_table("labels/corrections.parquet").to_pandas()
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        corrections.iloc[:-1], preserve_index=False))
    report = write_report(store)
    assert "answers changed after the last retrain (version 1)" in report["stale"]
    assert "Out of date:" in (tmp_path / "run/report/report.html").read_text()


def test_retrain_pools_as_the_baseline_did_whatever_the_config_says(tmp_path, tiny_bert_dir,
                                                                    synthetic_csv):
    from relabeler.model import load_classifier, pool_layers_of, pooling_of

    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir,
                             model={"pooling": "mean"})
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    other = "pos" if first["label"] == "neg" else "neg"
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(first["id"], first["label"], other, "relabel")]), preserve_index=False))
    config.model.pooling = "cls"  # changed since the baseline was trained
    config.model.pool_layers = 1  # likewise (the baseline averaged the tiny model's 2 layers)
    run_retrain(store, config, progress=False)
    retrained = load_classifier(store.path("retrain/v1/model"))
    assert (pooling_of(retrained), pool_layers_of(retrained)) == ("mean", 2)


EVAL = pd.DataFrame({"id": ["e1", "e2", "e3", "e4"], "text": ["x1", "x2", "x3", "x4"],
                     "label": ["pos", "pos", "neg", "neg"]})


def test_a_versions_pool_loses_the_rows_people_labeled_or_dropped():
    from relabeler.jobs.retrain import version_pool

    pool = pa.table({"id": ["p1", "p2", "p3", "p4", "p5"], "text": list("abcde"),
                     "label": pa.nulls(5, pa.string())})
    answers = pd.DataFrame({"id": ["p1", "p2", "p3", "p4", "t9"],
                            "action": ["relabel", "keep", "drop", "unsure", "relabel"]})
    kept = version_pool(pool, answers)
    # labeled (relabel, keep) and dropped rows leave; "Not sure" and unanswered ones stay
    assert kept.column("id").to_pylist() == ["p4", "p5"] and kept.schema == pool.schema


def test_eval_answers_never_reach_the_training_set():
    corrections = _corrections([("a", "pos", "neg", "relabel"), ("e1", "pos", "neg", "relabel"),
                                ("e3", "neg", "pos", "relabel")])
    corrections["source"] = ["flagged", "eval_audit", None]  # e3: an eval id, whatever source
    train_answers, eval_answers = split_eval_answers(corrections, set(EVAL["id"]))
    assert train_answers["id"].tolist() == ["a"]
    assert eval_answers["id"].tolist() == ["e1", "e3"]


def test_a_bad_answer_is_named_by_its_row_of_the_file_after_the_eval_answers_split_off():
    corrections = _corrections([("e1", "pos", "neg", "relabel"), ("a", "pos", "neg", "relabel"),
                                ("e3", "neg", "pos", "relabel"), ("zz", "pos", "neg", "keep"),
                                ("e4", "neg", "meh", "relabel")])
    train_answers, eval_answers = split_eval_answers(corrections, set(EVAL["id"]))
    with pytest.raises(DataError, match="row 3: id 'zz' is in neither"):
        apply_corrections(TRAIN, POOL, train_answers, ["neg", "pos"])
    with pytest.raises(DataError, match="row 4: eval answer new_label 'meh'"):
        audit_eval(EVAL, eval_answers, ["neg", "pos"])


def test_a_retrain_that_fails_leaves_no_half_built_version(tmp_path, tiny_bert_dir,
                                                          synthetic_csv, monkeypatch):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir)
    train = store.read_table("dataset/train.parquet").to_pandas()
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(train["id"].iloc[0], train["label"].iloc[0], train["label"].iloc[0],
                       "keep")]), preserve_index=False))

    def out_of_memory(*args, **kwargs):
        raise MemoryError("the fold models did not fit")

    monkeypatch.setattr("relabeler.jobs.retrain.run_train", out_of_memory)
    with pytest.raises(MemoryError):
        run_retrain(store, config, progress=False)
    assert store.list("retrain") == [] and not store.stage_done("retrain")


def test_a_version_a_killed_retrain_left_is_removed_and_its_number_reused(
        tmp_path, tiny_bert_dir, synthetic_csv, caplog):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir)
    train = store.read_table("dataset/train.parquet").to_pandas()
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(train["id"].iloc[0], train["label"].iloc[0], train["label"].iloc[0],
                       "keep")]), preserve_index=False))
    # kill -9 runs no cleanup: what a retrain stopped after writing its dataset leaves
    stopped = RunStore(store.path("retrain/v1"))
    stopped.write_table("dataset/train.parquet", store.read_table("dataset/train.parquet"))
    stopped.write_json("_stages/data.json", {"info": {}})
    assert dataset_versions(store) == []
    info = run_retrain(store, config, progress=False)
    assert info["version"] == 1 and dataset_versions(store) == [1]
    assert "retrain: removing retrain/v1, left incomplete by a retrain that was stopped" in \
        caplog.text
    assert store.exists("retrain/v1/comparison.json")
    assert not store.exists("retrain/v1/_building.json")  # gone once the version is complete
    assert sorted({p.split("/")[1] for p in store.list("retrain")}) == ["v1"]
    # a version another live process is building (its holder: this very process) is left
    # alone, and the new one comes after it; one whose builder is gone is removed
    import os
    import socket

    building = RunStore(store.path("retrain/v2"))
    building.write_json("_building.json", {"host": socket.gethostname(), "pid": os.getpid()})
    gone = RunStore(store.path("retrain/v3"))
    gone.write_json("_building.json", {"host": socket.gethostname(), "pid": 2**22 + 7})
    info = run_retrain(store, config, progress=False, force=True)
    assert info["version"] == 3 and store.exists("retrain/v2/_building.json")
    assert store.exists("retrain/v3/comparison.json") and dataset_versions(store) == [1, 3]


def test_a_retrain_stopped_before_its_marker_keeps_its_finished_version(
        tmp_path, tiny_bert_dir, synthetic_csv, caplog):
    # a retrain killed after its version was complete and before the stage's marker: the
    # rerun built the same corrections again as version 2
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir)
    train = store.read_table("dataset/train.parquet").to_pandas()
    given = train["label"].iloc[0]
    other = sorted(set(train["label"]) - {given})[0]
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(train["id"].iloc[0], given, other, "relabel")]), preserve_index=False))
    first = run_retrain(store, config, progress=False)
    store.remove("_stages/retrain.json")
    again = run_retrain(store, config, progress=False)
    assert again["version"] == 1 and dataset_versions(store) == [1]
    assert {k: v for k, v in again.items() if k != "seconds"} == \
        {k: v for k, v in first.items() if k != "seconds"}
    assert "retrain: version 1 was built from these corrections by a retrain stopped" in \
        caplog.text
    assert store.stage_done("retrain")
    # other settings than the version's, or --force: a new version
    store.remove("_stages/retrain.json")
    assert run_retrain(store, config, progress=False, dedupe=False, folds=2)["version"] == 2
    assert run_retrain(store, config, progress=False, force=True)["version"] == 3


def test_audit_eval_makes_a_new_eval_version():
    answers = _corrections([("e1", "pos", "neg", "relabel"), ("e2", "pos", "pos", "relabel"),
                            ("e3", "neg", None, "drop"), ("e4", "neg", None, "unsure")])
    audited, counts = audit_eval(EVAL, answers, ["neg", "pos"])
    assert audited["id"].tolist() == ["e1", "e2", "e4"]
    assert audited["label"].tolist() == ["neg", "pos", "neg"]
    assert audited["previous_label"].tolist() == ["pos", "pos", "neg"]
    assert audited["label_source"].tolist() == ["corrected", "reviewed", "original"]
    assert counts == {"audited": 4, "changed": 1, "dropped": 1, "unsure": 1, "n_eval": 3}
    assert EVAL["label"].tolist() == ["pos", "pos", "neg", "neg"]  # the input is untouched
    with pytest.raises(DataError, match="'zz' is not an eval row"):
        audit_eval(EVAL, _corrections([("zz", "pos", "neg", "relabel")]), ["neg", "pos"])
    with pytest.raises(DataError, match="not a class"):
        audit_eval(EVAL, _corrections([("e1", "pos", "meh", "relabel")]), ["neg", "pos"])


def test_retrain_and_report_measure_the_gain_on_audited_eval_labels(tmp_path, tiny_bert_dir,
                                                                    synthetic_csv):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir)
    original_eval = store.read_table("dataset/eval.parquet").to_pandas()
    predicted = store.read_table("train/eval_predictions.parquet").to_pandas()
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    other = {"pos": "neg", "neg": "pos"}
    # the audit flips the labels of 3 eval rows the baseline got right (and drops one row): on
    # the audited labels the baseline gets exactly those 3 fewer right
    right = predicted[predicted["pred"] == predicted["label"]].head(3)
    rows = [(first["id"], first["label"], other[first["label"]], "relabel", "flagged")]
    rows += [(r.id, r.label, other[r.label], "relabel", "eval_audit") for r in right.itertuples()]
    dropped = predicted["id"].iloc[-1]
    rows.append((dropped, predicted["label"].iloc[-1], None, "drop", "eval_audit"))
    corrections = pd.DataFrame(rows, columns=["id", "old_label", "new_label", "action",
                                              "source"])
    store.write_table("labels/corrections.parquet",
                      pa.Table.from_pandas(corrections, preserve_index=False))
    info = run_retrain(store, config, progress=False)
    assert info["changed"] == 1 and info["n_train_after"] == info["n_train_before"]

    v1 = RunStore(store.path("retrain/v1"))
    audited = v1.read_table("dataset/eval_audited.parquet").to_pandas()
    assert len(audited) == len(original_eval) - 1 and dropped not in set(audited["id"])
    assert (audited["label_source"] == "corrected").sum() == 3
    pd.testing.assert_frame_equal(store.read_table("dataset/eval.parquet").to_pandas(),
                                  original_eval)  # never edited
    pd.testing.assert_frame_equal(v1.read_table("dataset/eval.parquet").to_pandas(),
                                  original_eval)
    comparison = json.loads((tmp_path / "run/retrain/v1/comparison.json").read_text())
    keep = predicted[predicted["id"] != dropped]
    expected_before = ((keep["pred"] == keep["label"]).sum() - 3) / len(keep)
    assert comparison["audited"]["before"]["accuracy"] == pytest.approx(expected_before)
    assert comparison["audited"]["n_eval"] == len(keep)
    assert comparison["audited"]["audit"]["changed"] == 3
    assert info["audited"]["before"] == pytest.approx(expected_before)

    report = write_report(store)
    gain = report["eval_audit"]["gain"]
    assert gain["original"]["delta"] == pytest.approx(report["eval"]["accuracy"]["delta"])
    assert gain["audited"]["before"] == pytest.approx(expected_before)
    assert gain["audited"]["after"] == pytest.approx(comparison["audited"]["after"]["accuracy"])
    assert gain["from_eval_errors"] == pytest.approx(gain["original"]["delta"]
                                                     - gain["audited"]["delta"])
    assert (gain["changed"], gain["dropped"]) == (3, 1)
    assert report["corrections"]["reviewed"] == 1  # eval answers are not training corrections
    html = (tmp_path / "run/report/report.html").read_text()
    assert "of the measured gain depend on eval labels the audit changed" in html
    # four answers: three labels changed, one row dropped, counted as the audit's answers are
    # (it said "3 eval labels audited: 3 changed, 1 eval rows dropped")
    assert "<p>4 eval labels audited: 0 confirmed, 3 changed, 1 dropped." in html


def test_an_audit_that_drops_every_eval_row_leaves_the_original_comparison(
        tmp_path, tiny_bert_dir, synthetic_csv, caplog):
    # it crashed on "need at least one array to stack" and rolled the version back
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, epochs=1)
    evaluation = store.read_table("dataset/eval.parquet").to_pandas()
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    rows = [(first["id"], first["label"], first["label"], "keep", "flagged")]
    rows += [(i, label, None, "drop", "eval_audit")
             for i, label in zip(evaluation["id"], evaluation["label"], strict=True)]
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(pd.DataFrame(
        rows, columns=["id", "old_label", "new_label", "action", "source"]),
        preserve_index=False))
    with caplog.at_level("WARNING"):
        info = run_retrain(store, config, progress=False)
    assert info["version"] == 1 and "audited" not in info
    assert f"the eval audit dropped all {len(evaluation)} eval rows" in caplog.text
    comparison = json.loads((tmp_path / "run/retrain/v1/comparison.json").read_text())
    assert "audited" not in comparison and comparison["before"]["accuracy"] >= 0


def test_the_report_measures_eval_steered_acquisition_without_the_rows_that_steered_it(
        tmp_path, tiny_bert_dir, synthetic_csv, capsys):
    from relabeler.cli import main
    from relabeler.report.stats import paired_bootstrap
    from relabeler.selectors.eval_support import steering

    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, pool_fraction=0.2)
    pool = store.read_table("dataset/pool.parquet").to_pandas()
    # four picks, two chosen by eval labels; three answered, one of each kind among them
    picks = pd.DataFrame({"id": pool["id"].head(4), "rank": range(1, 5),
                          "near_id": "x", "similarity": 0.5,
                          "targets": ["eval", "undercovered", "eval", "undercovered"]})
    store.write_table("scores/acquire.parquet",
                      pa.Table.from_pandas(picks.astype({"similarity": "float32"}),
                                           preserve_index=False))
    store.write_json("scores/summary.json", {"acquisition": {
        "targets": "eval", "eval_share": 0.5, "by_eval": 2}})

    def answer(ids):
        rows = [(i, None, "pos", "relabel") for i in ids]
        store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
            _corrections(rows), preserve_index=False))
        run_retrain(store, config, progress=False, force=True)
        return write_report(store)

    report = answer(picks["id"][:3])
    # the three labeled picks joined the version's training set and left its pool: no id is in
    # two splits (the pool was copied whole, so round 2 scored them as copies of themselves)
    v1 = RunStore(store.path("retrain/v1"))
    v1_train = set(v1.read_table("dataset/train.parquet").column("id").to_pylist())
    v1_pool = v1.read_table("dataset/pool.parquet")
    assert set(picks["id"][:3]) <= v1_train and not v1_train & set(v1_pool["id"].to_pylist())
    assert v1_pool.num_rows == len(pool) - 3
    assert v1_pool.schema == store.read_table("dataset/pool.parquet").schema
    gain = report["eval_unsteered"]
    predicted = store.read_table("train/eval_predictions.parquet").to_pandas()
    steered = steering(predicted["id"].to_numpy(dtype=object), 0.5)
    assert 0 < steered.sum() < len(predicted)
    assert (gain["picks"], gain["acquired"]) == (2, 3)
    assert (gain["n_steering"], gain["n_eval"]) == (steered.sum(), (~steered).sum())
    after = RunStore(store.path("retrain/v1")).read_table(
        "train/eval_predictions.parquet").to_pandas().set_index("id").loc[
        predicted["id"][~steered]]
    index = {"neg": 0, "pos": 1}
    kept = predicted[~steered]
    expected = paired_bootstrap(kept["label"].map(index).to_numpy(),
                                kept["pred"].map(index).to_numpy(),
                                after["pred"].map(index).to_numpy(), ["neg", "pos"])
    assert gain["accuracy"]["before"] == pytest.approx(
        (kept["pred"] == kept["label"]).mean())
    for key in ("before", "after", "delta"):
        assert gain["accuracy"][key] == pytest.approx(expected["accuracy"][key])
    assert gain["accuracy"]["ci95"] == pytest.approx(expected["accuracy"]["ci95"])
    html = (tmp_path / "run/report/report.html").read_text()
    assert "Acquisition was steered by eval labels" in html
    assert f"On the other {(~steered).sum()} eval rows" in html
    assert main(["report", "--run", str(tmp_path / "run"), "-q"]) == 0
    assert (f"on the {(~steered).sum()} eval rows that did not steer acquisition: "
            f"{gain['accuracy']['before']:.4f} -> {gain['accuracy']['after']:.4f}"
            in capsys.readouterr().out)

    # with every eval row allowed to steer, none is left to measure on, and the report says so
    store.write_json("scores/summary.json", {"acquisition": {
        "targets": "eval", "eval_share": 1.0, "by_eval": 2}})
    gain = write_report(store)["eval_unsteered"]
    assert (gain["n_steering"], gain["n_eval"]) == (len(predicted), 0) and "accuracy" not in gain
    assert "No eval row is left that did not steer it" in (
        tmp_path / "run/report/report.html").read_text()

    # acquired samples that eval labels did not choose leave the headline gain as it is
    report = answer(picks["id"][[1, 3]])
    assert report["eval_unsteered"] == {}
    assert "steered by eval labels" not in (tmp_path / "run/report/report.html").read_text()


@pytest.mark.parametrize("debias", ["reweight", "mask"])
def test_retrain_debias_records_its_mitigation(tmp_path, tiny_bert_dir, synthetic_csv, debias):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir)
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    words = first["text"].lower().split()
    tokens = [words[1], words[0], words[2]]  # by rank
    frame = pd.DataFrame({"token": [words[0], words[1], words[2]],
                          "class": [first["label"]] * 3, "count": [20] * 3,
                          "class_count": [18] * 3, "class_share": [0.9] * 3, "z": [5.0] * 3,
                          "p_value": [1e-6] * 3, "association": [0.5] * 3,
                          "attribution": [float("nan")] * 3, "rank": [2, 1, 3]})
    store.write_table("scores/shortcuts.parquet", pa.Table.from_pandas(frame,
                                                                       preserve_index=False))
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(first["id"], first["label"], first["label"], "keep")]),
        preserve_index=False))
    config.train.debias = debias
    config.train.debias_top = 2
    config.train.class_weights = "balanced"
    info = run_retrain(store, config, progress=False)
    comparison = json.loads((tmp_path / "run/retrain/v1/comparison.json").read_text())
    mitigation = comparison["mitigation"]
    assert mitigation["debias"] == debias and mitigation["class_weights"] == "balanced"
    assert mitigation["tokens"] == tokens[:2]
    assert info["mitigation"] == {"debias": debias, "class_weights": "balanced",
                                  "tokens": tokens[:2],
                                  **({"mask_rate": 1.0} if debias == "mask" else {})}
    assert run_retrain(store, config, progress=False)["version"] == 1  # done: skipped
    config.train.debias_top = 1  # fewer tokens: not skipped as already done
    assert run_retrain(store, config, progress=False)["version"] == 2
    if debias == "mask":  # another rate
        config.train.debias_mask_rate = 0.5
        assert run_retrain(store, config, progress=False)["version"] == 3
    config.train.debias = "none"  # another mitigation
    assert run_retrain(store, config, progress=False)["version"] == (4 if debias == "mask"
                                                                      else 3)


def test_retrain_debias_needs_the_shortcuts(tmp_path, tiny_bert_dir, synthetic_csv):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, epochs=1)
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([("x", "pos", "pos", "keep")]), preserve_index=False))
    config.train.debias = "reweight"
    with pytest.raises(StageError, match="retrain --debias reweight needs "
                                         "scores/shortcuts.parquet"):
        run_retrain(store, config, progress=False)
    # a corpus with no shortcut: the table holds none, and a "debiased" model would be an
    # ordinary one recorded as mitigated
    from relabeler.artifacts import SHORTCUTS

    store.write_table(SHORTCUTS.path, SHORTCUTS.schema.empty_table())
    config.train.debias = "mask"
    with pytest.raises(StageError, match=r"train.debias = mask: scores/shortcuts.parquet names "
                                         r"no shortcut token .*nothing to mitigate"):
        run_retrain(store, config, progress=False)
    assert not store.exists("retrain")


def test_retrain_trains_with_the_baseline_settings_whatever_the_config_says_now(
        tmp_path, tiny_bert_dir, synthetic_csv, caplog):
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, epochs=3)
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    other = "pos" if first["label"] == "neg" else "neg"
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(first["id"], first["label"], other, "relabel")]), preserve_index=False))
    config.train.epochs = 0  # changed since the baseline was trained: 0 means 40 in head mode
    config.train.seed = 7
    config.train.class_weights = "balanced"  # the retrain's own mitigation: taken
    config.train.batch_size = 16  # this machine's: taken, and named
    with caplog.at_level("WARNING", logger="relabeler.jobs.retrain"):
        run_retrain(store, config, progress=False)
    metrics = json.loads((tmp_path / "run/retrain/v1/train/metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert metrics["mitigation"]["class_weights"] == "balanced"
    settings = json.loads((tmp_path / "run/retrain/v1/_stages/train.json").read_text())
    assert settings["info"]["settings"]["train"]["seed"] == 0
    assert settings["info"]["settings"]["train"]["mode"] == "head"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "train.epochs was 3, now 40" in warned and "train.seed was 0, now 7" in warned
    assert "class_weights" not in warned
    assert settings["info"]["settings"]["train"]["batch_size"] == 16
    assert "taken from the config now, as this machine needs: train.batch_size was 32, now " \
        "16" in warned


def test_the_report_refuses_a_retrain_made_before_the_baseline_was_trained_again(
        tmp_path, tiny_bert_dir, synthetic_csv):
    # train --force after a retrain: the report paired the new baseline's eval with the old
    # version's and printed -72.5 points with no warning
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, epochs=1)
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(first["id"], first["label"], first["label"], "keep")]),
        preserve_index=False))
    run_retrain(store, config, progress=False)
    write_report(store)  # in date
    run_train(store, config, force=True, progress=False)
    html = (tmp_path / "run/report/report.html").read_text()  # no push: says why, not blank
    assert ("<h2>What is left</h2><p>Not available: nothing was pushed to Label Studio (no "
            "studio/manifest.parquet)") in html
    with pytest.raises(StageError, match=r"report: retrain version 1 was made before the "
                                         r"baseline it is compared with \(retrain is stale: "
                                         r"train finished again since retrain ran\): run "
                                         r"`relabeler retrain --run"):
        write_report(store)


def test_retrain_with_eval_noise_in_the_config_is_not_refused(tmp_path, tiny_bert_dir,
                                                              synthetic_csv):
    # the version's data marker records no settings, and eval noise read as a change there:
    # "dataset in .../retrain/v1 was prepared from other inputs: data.eval_noise_rate"
    config, store = _trained(tmp_path, synthetic_csv, tiny_bert_dir, epochs=1,
                             eval_noise_rate=0.1)
    first = store.read_table("dataset/train.parquet").to_pandas().iloc[0]
    store.write_table("labels/corrections.parquet", pa.Table.from_pandas(
        _corrections([(first["id"], first["label"], first["label"], "keep")]),
        preserve_index=False))
    assert run_retrain(store, config, progress=False)["version"] == 1


def test_the_baseline_config_names_no_auto_value_given_as_what_it_came_to(tmp_path, caplog):
    # `model.long_text = windows` (what the baseline's auto came to) was named as ignored
    # ("model.long_text was 'auto', now 'windows'"), and the cache's size on disk, this
    # machine's, was taken from the baseline of a run that recorded it
    from relabeler.jobs.retrain import baseline_config
    from relabeler.jobs.train import training_settings

    config = RunConfig(run_dir=str(tmp_path / "run"))
    store = RunStore(config.run_dir)
    recorded = training_settings(config)
    recorded["model"]["cache_max_gb"] = 10.0  # as runs trained before it was left out hold it
    store.mark_done("train", {"mode": "head", "settings": recorded})
    store.write_json("model/config.json", {
        "relabeler_pooling": "mean", "relabeler_pool_layers": 4,
        "relabeler_long_text": {"mode": "windows", "stride": 32, "max_windows": 0}})
    config.model.long_text, config.model.window_stride = "windows", 32
    config.model.cache_max_gb = 5.0
    with caplog.at_level("WARNING", logger="relabeler.jobs.retrain"):
        out = baseline_config(store, config, 0)
    assert [r.getMessage() for r in caplog.records] == []
    assert (out.model.long_text, out.model.window_stride) == ("auto", 0)  # the baseline's
    assert out.model.cache_max_gb == 5.0
    config.model.window_stride = 16
    with caplog.at_level("WARNING", logger="relabeler.jobs.retrain"):
        baseline_config(store, config, 0)
    assert "ignored: model.window_stride was 32, now 16 " in caplog.records[-1].getMessage()
