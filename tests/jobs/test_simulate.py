"""simulate: the contract of simulation.json on a real dataset with the packaged MiniLM."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.cli import main
from relabeler.debias import DEFAULT_MITIGATION
from relabeler.errors import ConfigError
from relabeler.jobs.simulate import METHODS, simulation_config
from relabeler.jobs.simulate_eval_audit import audit_at, stored_audit
from relabeler.report.metrics import detection_metrics
from relabeler.selectors.confidence import cleanlab_scores
from relabeler.store import RunStore


def test_detection_metrics_by_hand():
    score = np.array([0.9, 0.8, 0.7, 0.1])
    truth = np.array([True, False, True, False])
    m = detection_metrics(score, truth)
    assert m["k"] == 2
    assert m["precision_at_k"] == 0.5 and m["recall_at_k"] == 0.5
    assert m["auroc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    with pytest.raises(ValueError, match="needs both wrong and right"):
        detection_metrics(score, np.zeros(4, bool))
    assert detection_metrics(score, truth, k=3)["precision_at_k"] == pytest.approx(2 / 3)
    assert detection_metrics(score, truth, k=0)["precision_at_k"] == 0.0
    with pytest.raises(ValueError, match=r"k: expected a review budget in \[0, 4\], got 5"):
        detection_metrics(score, truth, k=5)


def test_cleanlab_scores_are_suspect_scores(monkeypatch):
    import multiprocessing

    def no_fork(*args, **kwargs):
        raise AssertionError("cleanlab forked a Pool: a fork beside Ray's threads can deadlock")

    monkeypatch.setattr(multiprocessing, "Pool", no_fork)
    labels = np.array([0, 0, 1, 1, 0, 1] * 5)
    probs = np.tile([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.2, 0.8], [0.6, 0.4]],
                    (5, 1))
    scores = cleanlab_scores(labels, probs)
    np.testing.assert_allclose(scores["cleanlab_self_confidence"],
                               1 - probs[np.arange(30), labels], atol=1e-6)
    flagged = scores["cleanlab_find_label_issues"] > 0
    assert flagged[4] and not flagged[0]  # [0.2, 0.8] labeled 0 is an issue
    p_given = probs[np.arange(30), labels]
    np.testing.assert_allclose(scores["cleanlab_find_label_issues"][flagged],
                               2 - p_given[flagged], atol=1e-6)


def audited_eval() -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Ten eval rows, e0-e2 flipped; the model predicts the true label except on e2 (it agrees
    with the wrong label) and e9 (wrong). Ranked e0, e5, e1, e6, e2, then the rest."""
    ids = [f"e{i}" for i in range(10)]
    true = ["a", "b"] * 5
    label = ["b", "a", "b"] + true[3:]
    pred = true[:2] + ["b"] + true[3:9] + ["a"]
    evaluation = pd.DataFrame({"label": label, "true_label": true,
                               "flipped": [i < 3 for i in range(10)]}, index=ids)
    order = ["e0", "e5", "e1", "e6", "e2", "e3", "e4", "e7", "e8", "e9"]
    return evaluation, pd.Series(order), pd.Series(pred, index=ids)


def test_audit_at_answers_the_top_rows_like_an_oracle():
    evaluation, ranked, pred = audited_eval()
    # clean accuracy 0.8 (e2, e9 wrong), noisy 0.7
    assert audit_at(evaluation, ranked, pred, 0) == {"budget": 0, "found": 0, "audited": 0.7}
    assert audit_at(evaluation, ranked, pred, 1) == {"budget": 1, "found": 1, "audited": 0.8}
    # e0 and e1 fixed, e2 still wrong where the model agrees with it: the audited labels
    # overstate the accuracy (0.9 against 0.8 on the clean labels)
    assert audit_at(evaluation, ranked, pred, 3) == {"budget": 3, "found": 2, "audited": 0.9}
    assert audit_at(evaluation, ranked, pred, 5) == {"budget": 5, "found": 3, "audited": 0.8}


def test_stored_audit_reads_a_finished_simulation(tmp_path):
    evaluation, ranked, pred = audited_eval()
    store = RunStore(str(tmp_path / "run"))
    store.write_table(artifacts.EVAL.path, pa.Table.from_pandas(
        evaluation.rename_axis("id").reset_index().assign(text="t")))
    score = np.linspace(1, 0, 10, dtype=np.float32)
    given = evaluation["label"].reindex(ranked).to_numpy()
    store.write_table(artifacts.EVAL_SUSPECTS.path, pa.Table.from_pandas(pd.DataFrame({
        "id": ranked, "rank": np.arange(1, 11), "suspect_score": score, "given_label": given,
        "suggested_label": given, "suggested_confidence": score, "margin": score,
        "knn_margin": score, "wrong_probability": score})))
    store.write_table(artifacts.EVAL_PREDICTIONS.path, pa.table({
        "id": pred.index.tolist(), "label": evaluation["label"].tolist(), "pred": pred.tolist(),
        "probs": pa.array([[0.5, 0.5]] * 10, pa.list_(pa.float32(), 2))}))
    store.mark_done("data", {"eval_noise_rate": 0.3})
    # no budget: R x eval size = 3 rows
    assert stored_audit(store) == {"budget": 3, "found": 2, "audited": 0.9, "n_flipped": 3,
                                   "clean": 0.8}
    # the product's default of 50 is capped at the 10 eval rows
    assert stored_audit(store, 50) == {"budget": 10, "found": 3, "audited": 0.8,
                                       "n_flipped": 3, "clean": 0.8}


def test_rounds_more_than_the_largest_budget_is_an_error_before_training(tmp_path):
    from relabeler.jobs.simulate import _check_rounds

    store = RunStore(tmp_path / "run")
    store.write_table("dataset/train.parquet", pa.table({
        "id": [f"r{i}" for i in range(40)], "text": ["t"] * 40, "label": ["a", "b"] * 20}))
    _check_rounds(store, [0.05, 0.1], 4)  # 4 tasks for 4 rounds
    with pytest.raises(ConfigError, match=r"--rounds 5: the largest budget, 0.1 of 40 training "
                                          r"rows, is 4 tasks"):
        _check_rounds(store, [0.05, 0.1], 5)


def test_no_test_rows_refuses_what_is_measured_on_them_before_any_stage(tmp_path, monkeypatch,
                                                                         capsys):
    # --test-fraction 0 ran data, train, extract and score, then the gain crashed in torch.cat
    # on an empty list of test rows
    from relabeler.jobs import simulate

    def reached(*args, **kwargs):
        raise RuntimeError("the data stage was reached")

    monkeypatch.setattr(simulate, "prepare_dataset", reached)
    base = ["simulate", "--data", "sms-spam", "--noise", "0.1", "--test-fraction", "0",
            "--out", str(tmp_path / "sim"), "-q"]
    assert main(base) == 2  # the default budgets
    err = capsys.readouterr().err
    assert ("--test-fraction 0 leaves no test rows, and the gain of relabeling (--budgets, and "
            "--rounds with it) is the retrained model's accuracy on them: give a "
            "--test-fraction above 0, or --budgets none") in err
    assert main([*base, "--budgets", "none", "--shortcut", "zzq:spam:0.5",
                 "--undercover", "label=spam"]) == 2
    err = capsys.readouterr().err
    assert ("--test-fraction 0 leaves no test rows, and --shortcut measures the eval accuracy "
            "with and without the token on them; --undercover measures the held-out group's "
            "eval accuracy on them: give a --test-fraction above 0, or no --shortcut and no "
            "--undercover") in err
    assert not (tmp_path / "sim").exists()  # nothing ran, nothing was made
    # detection alone and the annotators need no test rows
    with pytest.raises(RuntimeError, match="data stage was reached"):
        main([*base, "--budgets", "none", "--annotators", "0.9,0.8"])


def test_a_split_that_leaves_no_test_rows_is_refused_before_training(tmp_path):
    from relabeler.jobs import simulate

    source = tmp_path / "tiny.csv"
    pd.DataFrame({"text": [f"text {i}" for i in range(20)],
                  "label": ["a", "b"] * 10}).to_csv(source, index=False)
    config = simulation_config(data=str(source), out=tmp_path / "sim", noise=0.1,
                               test_fraction=0.01, pool_fraction=0.0)
    with pytest.raises(ConfigError, match=r"^the dataset has no test rows \(--test-fraction "
                                          r"0.01, too small a share of each class\), and the "
                                          r"gain of relabeling .*: give more test rows, or "
                                          r"--budgets none$"):
        simulate.run_simulation(config, tmp_path / "sim", budgets=[0.1], progress=False)
    store = RunStore(config.run_dir)
    # the dataset of the refused split goes with it: the corrected command, another
    # --test-fraction, was refused in turn for "data.eval_fraction was 0.01" without --force
    assert not store.stage_done("data") and not store.exists("dataset")
    from relabeler.jobs.dataset import prepare_dataset

    corrected = simulation_config(data=str(source), out=tmp_path / "sim", noise=0.1,
                                  test_fraction=0.2, pool_fraction=0.0)
    assert prepare_dataset(store, corrected)["n_eval"] == 4


def test_force_drops_an_earlier_hold_out_instead_of_refusing(tmp_path, monkeypatch):
    from relabeler.jobs import simulate

    config = simulation_config(data="sms-spam", out=tmp_path, noise=0.1,
                               noise_kind="uniform", seed=0)
    store = RunStore(config.run_dir)
    store.mark_done("simulate.undercover", {"spec": "label=spam", "keep": 0.1})
    with pytest.raises(ConfigError, match="--undercover: the run .* was made with"):
        simulate.run_simulation(config, tmp_path, budgets=None)

    def reached(*args, **kwargs):
        raise RuntimeError("the data stage was reached")

    monkeypatch.setattr(simulate, "prepare_dataset", reached)
    with pytest.raises(RuntimeError, match="data stage was reached"):
        simulate.run_simulation(config, tmp_path, force=True, budgets=None)
    assert not store.stage_done("simulate.undercover")


@pytest.mark.slow
def test_simulate_writes_the_contract(ray_session, tmp_path, capsys):
    out = tmp_path / "sim"
    assert main(["simulate", "--data", "sms-spam", "--sample", "500", "--noise", "0.1",
                 "--noise-kind", "uniform", "--seed", "1", "--out", str(out), "--mode",
                 "head", "--folds", "3", "--pool-fraction", "0.2", "--budgets", "0.1",
                 "-q"]) == 0
    result = json.loads((out / "simulation.json").read_text())
    assert {"dataset", "n_train", "n_test", "n_flipped", "classes", "detection",
            "seconds"} <= set(result)
    assert result["dataset"] == "sms-spam"
    assert result["n_train"] == 300 and result["n_test"] == 100 and result["n_flipped"] == 30
    assert result["classes"] == ["ham", "spam"]
    assert set(result["detection"]) == set(METHODS)
    for metrics in result["detection"].values():
        assert set(metrics) >= {"auroc", "auprc", "precision_at_k", "recall_at_k"}
    det = result["detection"]
    assert det["relabeler"]["auprc"] >= 0.7
    assert det["relabeler"]["auprc"] > det["random"]["auprc"] + 0.5
    assert set(result["seconds"]) == {"data", "train", "extract", "score", "retrain"}
    gain = result["gain"]
    assert gain["budgets"] == [0.1] and gain["budget_samples"] == [30]
    for name in ("relabeler", "cleanlab", "random"):
        assert len(gain["accuracy"][name]) == 1 and 0 < gain["accuracy"][name][0] <= 1
        assert len(gain["macro_f1"][name]) == 1
    gap = gain["accuracy"]["clean"] - gain["accuracy"]["noisy"]
    expected = (gain["accuracy"]["relabeler"][0] - gain["accuracy"]["noisy"]) / gap \
        if gap > 0 else None
    assert gain["gap_recovered"]["relabeler"][0] == pytest.approx(expected)
    coverage = result["coverage"]
    assert set(coverage) >= {"selected", "random"}
    assert 0 < coverage["k"] <= 100 and coverage["n_heldout"] > 0
    assert "| relabeler |" in (out / "simulation.md").read_text()
    assert "| relabeler |" in capsys.readouterr().out


@pytest.mark.slow
def test_simulate_plants_a_shortcut_and_score_ranks_it_first(ray_session, tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--data", "sms-spam", "--sample", "400", "--noise", "0.1",
                 "--seed", "1", "--out", str(out), "--mode", "head", "--folds", "2",
                 "--pool-fraction", "0", "--budgets", "none", "--shortcut", "ZQXV:spam:0.5",
                 "-q"]) == 0
    result = json.loads((out / "simulation.json").read_text())
    shortcut = result["shortcut"]
    train = pd.read_parquet(out / "run" / "dataset" / "train.parquet")
    n_spam = int((train["label"] == "spam").sum())
    assert shortcut["n_planted"] == round(0.5 * n_spam) == int(train["shortcut"].sum())
    assert (train.loc[train["shortcut"], "label"] == "spam").all()
    assert shortcut["rank"] == 1 and shortcut["top"][0] == "zqxv"
    assert shortcut["n_significant"] >= 1 and "shortcut" in result["seconds"]
    for block in ("accuracy", "anti_accuracy"):
        assert set(shortcut[block]) == {"clean", "shortcut", "mitigated"}
        assert 0.5 < shortcut[block]["clean"] <= 1 and 0 < shortcut[block]["shortcut"] <= 1
    assert shortcut["mitigation"] == DEFAULT_MITIGATION
    assert shortcut["mitigation_tokens"][0] == "zqxv"
    for name in ("reweight", "mask"):
        assert 0.5 < shortcut["mitigations"][name]["accuracy"] <= 1
    mitigated = shortcut["mitigations"][DEFAULT_MITIGATION]
    assert shortcut["accuracy"]["mitigated"] == mitigated["accuracy"]
    assert shortcut["anti_accuracy"]["mitigated"] == mitigated["anti_accuracy"]
    # the mitigation wins back anti-shortcut accuracy the shortcut cost
    assert mitigated["anti_accuracy"] >= shortcut["anti_accuracy"]["shortcut"]
    assert "Shortcut 'ZQXV' planted" in (out / "simulation.md").read_text()


@pytest.mark.slow
def test_simulate_audits_eval_labels_flipped_on_purpose(ray_session, tmp_path):
    out = tmp_path / "sim"
    assert main(["simulate", "--data", "sms-spam", "--sample", "1000", "--noise", "0.1",
                 "--eval-noise", "0.1", "--seed", "2", "--out", str(out), "--mode", "head",
                 "--folds", "3", "--pool-fraction", "0", "--budgets", "none",
                 "--annotators", "0.95,0.8,0.65", "-q"]) == 0
    result = json.loads((out / "simulation.json").read_text())
    crowd = result["annotators"]
    assert crowd["accuracies"] == [0.95, 0.8, 0.65] and crowd["tasks"] == 80
    # relabeler's consensus (Dawid-Skene with the model as prior) against majority vote and
    # cleanlab's CROWDLAB on the same answers (benchmarks/annotators.py measures it over seeds)
    assert crowd["consensus_accuracy"] >= crowd["majority_accuracy"]
    assert crowd["consensus_accuracy"] >= crowd["crowdlab_accuracy"]
    audit = result["eval_audit"]
    assert audit["rate"] == 0.1 and audit["n_flipped"] == 20 and audit["budget"] == 20
    assert 0 <= audit["found"] <= 20
    # the audit push sends by default (studio.eval_audit_budget = 50) beside the strict one
    configured = audit["configured"]
    assert configured["budget"] == 50 and audit["found"] <= configured["found"] <= 20
    assert 0 < configured["audited"] <= 1
    assert "at studio.eval_audit_budget = 50" in (out / "simulation.md").read_text()
    assert audit["auprc"] > 0.5
    assert set(audit["cleanlab_auprc"]) == {"cleanlab_self_confidence",
                                            "cleanlab_normalized_margin",
                                            "cleanlab_find_label_issues"}
    acc = audit["accuracy"]
    # flipped eval labels make a good model look worse; the audit takes most of that back
    assert acc["noisy"] < acc["clean"] - 0.05
    assert abs(acc["audited"] - acc["clean"]) < abs(acc["noisy"] - acc["clean"])
    evaluation = RunStore(str(out / "run")).read_table("dataset/eval.parquet").to_pandas()
    assert int(evaluation["flipped"].sum()) == 20
    assert (evaluation.loc[~evaluation["flipped"], "label"] ==
            evaluation.loc[~evaluation["flipped"], "true_label"]).all()


def test_shares_in_the_markdown_keep_the_precision_they_need():
    from relabeler.jobs.simulate_markdown import _share

    assert [_share(v) for v in (0.005, 0.025, 0.2, 0.7321, None)] == \
        ["0.5%", "2.5%", "20%", "73.2%", "n/a"]


def _minimal_result(**parts) -> dict:
    return {"dataset": "d", "n_train": 100, "n_flipped": 10, "n_test": 20,
            "settings": {"noise": 0.1, "noise_kind": "uniform", "seed": 0, "mode": "head",
                         "folds": 3},
            "detection": {}, "signals": {}, "suggestion_accuracy_on_flipped": 0.5,
            "seconds": {"train": 1.0}, **parts}


def test_the_markdown_holds_the_annotators_and_says_why_a_gap_share_is_missing():
    # simulation.md left out the --annotators block, and a gain table without shares (clean =
    # noisy accuracy) was headed "share of the noisy-to-clean gap recovered" all the same
    from relabeler.jobs.simulate import markdown_table

    crowd = {"accuracies": [0.9, 0.8, 0.7], "tasks": 24, "majority_accuracy": 0.875,
             "consensus_accuracy": 0.9166666, "crowdlab_accuracy": 0.8333333}
    text = markdown_table(_minimal_result(annotators=crowd))
    assert ("Simulated annotators of accuracy 0.9 / 0.8 / 0.7 answered the top 24 tasks of the "
            "queue; the resolved label is right on: majority vote 0.8750, relabeler's "
            "consensus 0.9167, cleanlab's CROWDLAB 0.8333.") in text
    assert "annotators" not in markdown_table(_minimal_result())

    def gain(clean, noisy, recovered):
        return {"budgets": [0.1], "budget_samples": [10],
                "accuracy": {"clean": clean, "noisy": noisy, "relabeler": [0.9]},
                "gap_recovered": {"relabeler": [recovered]}}

    text = markdown_table(_minimal_result(gain=gain(0.9, 0.9, None)))
    assert "(clean accuracy 0.9000, noisy 0.9000); accuracy (no gap: clean = noisy):" in text
    assert "| 10% | 10 | 0.9000 |" in text
    text = markdown_table(_minimal_result(gain=gain(0.85, 0.9, None)))
    assert "accuracy (no gap: clean < noisy):" in text
    text = markdown_table(_minimal_result(gain=gain(0.95, 0.85, 0.5)))
    assert "noisy 0.8500); share of the noisy-to-clean gap recovered:" in text
    assert "| 10% | 10 | 0.9000 (50%) |" in text


def test_the_markdown_says_when_the_audit_budget_was_the_whole_eval_split_and_too_small():
    # "at studio.eval_audit_budget = 6" for a budget of 50 capped at 6 eval rows, and AUPRC
    # 1.0 on 6 rows with no word of how little that says
    from relabeler.jobs.simulate import markdown_table

    audit = {"rate": 0.1, "budget": 1, "auprc": 1.0, "found": 1, "n_flipped": 1,
             "cleanlab_auprc": {"cleanlab_self_confidence": 1.0},
             "accuracy": {"clean": 1.0, "noisy": 0.8333, "audited": 1.0},
             "configured": {"budget": 6, "found": 1, "audited": 1.0, "asked": 50}}
    text = markdown_table(_minimal_result(n_test=6, eval_audit=audit))
    assert ("audited 1.0000 at studio.eval_audit_budget = 50 (every one of the 6 eval rows) "
            "(1 found). With 6 eval rows, one row is 16.7 points of accuracy: too few for "
            "these figures to say much.") in text
    audit["configured"] = {"budget": 50, "found": 9, "audited": 0.9, "asked": 50}
    text = markdown_table(_minimal_result(n_test=400, eval_audit=audit))
    assert "at studio.eval_audit_budget = 50 (9 found)." in text and "too few" not in text


def test_another_seed_on_the_same_out_says_how_simulate_redoes_it(tmp_path):
    from relabeler.errors import StageError
    from relabeler.jobs.dataset import prepare_dataset
    from relabeler.jobs.simulate import run_simulation

    source = tmp_path / "d.csv"
    source.write_text("id,text,label\n" + "".join(
        f"r{i},text {i},{'ab'[i % 2]}\n" for i in range(40)))
    first = simulation_config(data=str(source), out=tmp_path, noise=0.1,
                              noise_kind="uniform", seed=0)
    prepare_dataset(RunStore(first.run_dir), first)
    again = simulation_config(data=str(source), out=tmp_path, noise=0.1,
                              noise_kind="uniform", seed=3)
    with pytest.raises(StageError, match=r"data.seed was 0, now 3\. Pass --force to simulate "
                                         r"again in .*, or choose another --out"):
        run_simulation(again, tmp_path, budgets=None)


def eval_noise_run(tmp_path, *, pool_fraction: float = 0.0):
    """A dataset stage run with 30% of the eval labels flipped (``--eval-noise 0.3``) on the
    synthetic frame, whose cue word gives each text's true class."""
    from relabeler.jobs.dataset import prepare_dataset
    from tests.conftest import synthetic_frame

    synthetic_frame(200).to_csv(tmp_path / "d.csv", index=False)
    config = simulation_config(data=str(tmp_path / "d.csv"), out=tmp_path / "sim", noise=0.1,
                               eval_noise=0.3, seed=0, pool_fraction=pool_fraction)
    store = RunStore(config.run_dir)
    prepare_dataset(store, config)
    return store, config


class CueRefitter:
    """Predicts the true class of every cached text from its cue word, whatever it trains on:
    accuracy 1.0 against the truth, the flipped share lower against noisy labels."""

    def __init__(self, texts: list[str], classes: list[str]):
        from tests.conftest import POSITIVE

        self.truth = np.array([classes.index("pos" if set(t.split()) & set(POSITIVE) else "neg")
                               for t in texts])

    def fit_predict(self, rows, labels, predict_rows, *, sample_weights=None):
        return np.eye(2, dtype=np.float32)[self.truth[np.asarray(predict_rows)]]


def test_retraining_measures_against_the_eval_truth_under_eval_noise(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from relabeler.data import read_split
    from relabeler.jobs import simulate, simulate_rounds

    store, config = eval_noise_run(tmp_path)
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    assert 0 < evaluation["flipped"].mean() < 1  # the eval labels are noisy
    classes = ["neg", "pos"]
    train = read_split(store.read_table(artifacts.TRAIN.path))
    view = SimpleNamespace(ids=train["id"].to_numpy(dtype=object), classes=classes,
                           labels=train["label"].map({"neg": 0, "pos": 1}).to_numpy())
    monkeypatch.setattr(simulate, "_refitter", lambda store, config, texts, classes, progress:
                        CueRefitter(texts, classes))
    seen = {}
    monkeypatch.setattr(simulate_rounds, "rounds_experiment",
                        lambda refit, view, **kwargs: seen.update(kwargs) or {})
    monkeypatch.setattr("relabeler.report.remaining.stored_chances", lambda store: None)
    store.write_json(artifacts.SUMMARY.path, {})
    rng = np.random.default_rng(0)
    scores = {"relabeler": rng.random(len(view.ids)),
              "cleanlab_self_confidence": rng.random(len(view.ids))}
    gain, coverage, _ = simulate._retraining_part(store, config, view, scores, [0.1], False,
                                                  rounds=2)
    # a model that is always right is measured right: 1.0, not the 70% of unflipped labels
    assert gain["accuracy"]["clean"] == gain["accuracy"]["noisy"] == 1.0
    assert gain["accuracy"]["relabeler"] == gain["accuracy"]["random"] == [1.0]
    assert gain["gap_recovered"]["relabeler"] == [None]  # no gap to recover
    assert coverage is None  # no pool
    truth = evaluation["true_label"].map({"neg": 0, "pos": 1}).to_numpy()
    np.testing.assert_array_equal(seen["test_labels"], truth)  # the rounds' measure too


def test_class_ids_name_a_label_outside_the_training_classes():
    from relabeler.errors import StageError
    from relabeler.jobs.simulate import class_ids

    np.testing.assert_array_equal(class_ids(pd.Series(["b", "a", "b"]), ["a", "b"],
                                            what="the eval split"), [1, 0, 1])
    # a cast would make 'c' -9223372036854775808 and count it as a wrong prediction
    with pytest.raises(StageError, match=r"simulate: the eval split holds the label 'c' \(2 "
                                         r"rows\), which is not one of the training classes "
                                         r"\(a, b\)"):
        class_ids(pd.Series(["a", "c", "c"]), ["a", "b"], what="the eval split")


def test_the_markdown_names_a_source_url_without_its_password():
    # a simulation.json written before the masking holds the password; the console summary
    # and simulation.md printed it
    from relabeler.jobs.simulate_markdown import markdown_table

    text = markdown_table(_minimal_result(dataset="http://alice:S3CRETPW@127.0.0.1:8/x.csv"))
    assert text.startswith("# Detection on http://alice:***@127.0.0.1:8/x.csv\n")
    assert "S3CRETPW" not in text


def test_the_simulation_names_a_source_url_without_its_password(tmp_path, monkeypatch):
    # simulation.json and simulation.md are results to share: they named the source URL with
    # its password. The stages are stubbed (the dataset is made beforehand from a local copy)
    from types import SimpleNamespace

    from relabeler.data import read_split
    from relabeler.jobs import simulate
    from relabeler.jobs.dataset import prepare_dataset
    from tests.conftest import synthetic_frame

    synthetic_frame(100).to_csv(tmp_path / "d.csv", index=False)
    config = simulation_config(data=str(tmp_path / "d.csv"), out=tmp_path / "sim", noise=0.1,
                               seed=0)
    store = RunStore(config.run_dir)
    prepare_dataset(store, config)
    store.mark_done("train", {"mode": "head"})
    train = read_split(store.read_table(artifacts.TRAIN.path))
    n, classes = len(train), ["neg", "pos"]
    rng = np.random.default_rng(0)
    store.write_table(artifacts.SUSPECTS.path, pa.table({
        "id": list(train["id"]), "rank": np.arange(1, n + 1),
        "suspect_score": rng.random(n).astype(np.float32), "given_label": list(train["label"]),
        "suggested_label": list(train["true_label"]),
        "suggested_confidence": np.ones(n, dtype=np.float32), "reasons": [[]] * n,
        "duplicate_ids": [[]] * n}))
    probs = rng.dirichlet([1.0, 1.0], n).astype(np.float32)
    monkeypatch.setattr(simulate, "load_train_view", lambda store: SimpleNamespace(
        ids=train["id"].to_numpy(dtype=object), classes=classes,
        labels=train["label"].map({"neg": 0, "pos": 1}).to_numpy(), probs=probs,
        oof_probs=None, features=rng.random((n, 4)).astype(np.float32)))
    for stage in ("_data", "_train", "run_extract", "run_score"):
        monkeypatch.setattr(simulate, stage, lambda *args, **kwargs: None)
    config.data.source = "http://alice:S3CRETPW@127.0.0.1:8/d.csv"
    result = simulate.run_simulation(config, tmp_path / "sim", budgets=None, progress=False)
    shown = "http://alice:***@127.0.0.1:8/d.csv"
    assert result["dataset"] == shown
    assert json.loads((tmp_path / "sim" / "simulation.json").read_text())["dataset"] == shown
    markdown = (tmp_path / "sim" / "simulation.md").read_text()
    assert markdown.startswith(f"# Detection on {shown}\n") and "S3CRETPW" not in markdown


def test_the_markdown_gives_the_round_sizes_as_they_were():
    # 24 tasks in 5 rounds were "5 rounds of 4 tasks" while rounds found 5 corrections
    from relabeler.jobs.simulate import markdown_table

    def rounds(**sizes):
        return {"R": 2, "found": [5, 4], "gap_recovered": [0.1, 0.2],
                "one_shot_gap_recovered": 0.15, "estimated_remaining": [[1, 2, 3], [0, 1, 2]],
                "true_remaining": [4, 0], **sizes}

    text = markdown_table(_minimal_result(rounds=rounds(budget_per_round=5,
                                                        round_sizes=[5, 4])))
    assert "2 rounds of 4-5 tasks (random controls included)" in text
    text = markdown_table(_minimal_result(rounds=rounds(budget_per_round=5,
                                                        round_sizes=[5, 5])))
    assert "2 rounds of 5 tasks (random controls included)" in text
    older = markdown_table(_minimal_result(rounds=rounds(budget_per_round=4)))  # no sizes
    assert "2 rounds of 4 tasks (random controls included)" in older


def test_the_markdown_header_says_the_noise_share_left_after_the_hold_out():
    # 45 of 195 training samples flipped read "(20% asymmetric noise...)": the flips are made
    # before --undercover moves most of the group's rows to the pool
    from relabeler.jobs.simulate import markdown_table

    plain = markdown_table(_minimal_result())
    assert "100 training samples, 10 labels flipped (10% uniform noise, seed 0)" in plain
    subgroup = {"spec": "source=app", "n_group_pool": 9, "n_pool": 30, "n_group_eval": 4,
                "k": 5, "precision_selected": 0.6, "precision_random": 0.2,
                "accuracy": {"before": 0.5, "selected": 0.75, "random": 0.5}}
    held = _minimal_result(n_train=80, coverage={"subgroup": subgroup})
    assert ("80 training samples, 10 labels flipped (10% uniform noise before the hold-out, "
            "12.5% of the training samples left, seed 0)") in markdown_table(held)
