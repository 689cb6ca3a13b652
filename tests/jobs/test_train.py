"""train: fresh head, dynamics, out-of-fold probabilities as Ray tasks, the real MiniLM."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from relabeler.config import RunConfig
from relabeler.errors import StageError
from relabeler.jobs.dataset import prepare_dataset
from relabeler.jobs.train import prior_only, run_train
from relabeler.model import class_names, load_classifier
from relabeler.store import RunStore
from tests.conftest import synthetic_frame


def _config(tmp_path, source, model, **train):
    config = RunConfig(run_dir=str(tmp_path / "run"))
    config.data.source = str(source)
    config.model.name = str(model)
    config.model.max_length = 64
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def test_head_training_writes_model_dynamics_and_metrics(tiny_bert_dir, tmp_path,
                                                         synthetic_csv):
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=4)
    store = RunStore(config.run_dir)
    info = run_train(store, config, progress=False)
    assert info["mode"] == "head" and info["n_train"] == 96 and info["classes"] == ["neg", "pos"]
    assert json.loads((tmp_path / "run/model/labels.json").read_text()) == ["neg", "pos"]
    assert class_names(load_classifier(store.path("model"))) == ["neg", "pos"]
    dynamics = store.read_table("train/dynamics.parquet").to_pandas()
    assert len(dynamics) == 4 * 96
    assert set(dynamics["id"]) == set(store.read_table("dataset/train.parquet")
                                      .column("id").to_pylist())
    metrics = store.read_json("train/metrics.json")
    assert metrics["eval"]["n"] == 24
    assert 0 <= metrics["eval"]["accuracy"] <= 1
    assert not store.exists("train/oof.parquet")


def test_head_training_with_mean_pooling_predicts_as_the_saved_model(tiny_bert_dir, tmp_path,
                                                                    synthetic_csv):
    from relabeler.model import load_tokenizer, pooling_of
    from relabeler.training import predict_probs

    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=3)
    config.model.pooling = "mean"
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    model = load_classifier(store.path("model"))
    assert pooling_of(model) == "mean"
    saved = store.read_table("train/eval_predictions.parquet").to_pandas()
    evaluation = store.read_table("dataset/eval.parquet").to_pandas().set_index("id")
    probs = predict_probs(model, load_tokenizer(store.path("model")),
                          evaluation.loc[saved["id"], "text"].tolist(), max_length=64,
                          batch_size=8, device=torch.device("cpu"))
    # the head trained on cached pooled vectors is the model that extract and attribute load
    np.testing.assert_allclose(probs, np.stack(saved["probs"].to_numpy()), atol=1e-5)
    # what pool_layers 0 came to, asked by its value, and pooling auto: no change, kept
    from relabeler.model import pool_layers_of

    stamp = store.stage_info("train")["finished_at"]
    config.model.pool_layers = pool_layers_of(model)
    config.model.pooling = "auto"
    run_train(store, config, progress=False)
    assert store.stage_info("train")["finished_at"] == stamp
    config.model.pool_layers = 1 if pool_layers_of(model) != 1 else 2
    with pytest.raises(StageError, match=rf"model.pool_layers was {pool_layers_of(model)}, "
                                         rf"now {config.model.pool_layers}"):
        run_train(store, config, progress=False)


def test_training_is_reproducible_with_a_seed(tiny_bert_dir, tmp_path, synthetic_csv):
    runs = []
    for name in ("a", "b"):
        config = _config(tmp_path / name, synthetic_csv, tiny_bert_dir, mode="head", epochs=3,
                         seed=7)
        store = RunStore(config.run_dir)
        run_train(store, config, progress=False)
        runs.append(store.read_table("train/dynamics.parquet").to_pandas())
    np.testing.assert_array_equal(runs[0]["gold_prob"], runs[1]["gold_prob"])


def test_a_finished_stage_is_skipped_unless_forced(tiny_bert_dir, tmp_path, synthetic_csv):
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=2)
    store = RunStore(config.run_dir)
    first = run_train(store, config, progress=False)
    stamp = store.stage_info("train")["finished_at"]
    assert run_train(store, config, progress=False) == first
    assert store.stage_info("train")["finished_at"] == stamp
    config.train.epochs = 3
    with pytest.raises(StageError, match=r"other settings: train.epochs was 2, now 3\. Give "
                                         r"the settings it was trained with \(each value after "
                                         r"\"was\": its flag or --set section.key=value\) to "
                                         r"keep it, or pass --force"):
        run_train(store, config, progress=False)
    assert store.stage_info("train")["finished_at"] == stamp
    run_train(store, config, force=True, progress=False)
    assert len(store.read_table("train/dynamics.parquet")) == 3 * 96


def test_noise_injection_keeps_the_truth_beside_the_labels(tmp_path, synthetic_csv):
    config = RunConfig(run_dir=str(tmp_path / "run"))
    config.data.source = str(synthetic_csv)
    config.data.noise_rate = 0.25
    info = prepare_dataset(RunStore(config.run_dir), config)
    train = RunStore(config.run_dir).read_table("dataset/train.parquet").to_pandas()
    assert info["n_flipped"] == 24 == int(train["flipped"].sum())
    assert (train["label"] != train["true_label"]).tolist() == train["flipped"].tolist()


@pytest.mark.slow
def test_minilm_head_training_with_ray_folds_on_sms_spam(ray_session, minilm_dir, tmp_path):
    config = _config(tmp_path, "sms-spam", "", mode="head", epochs=20, folds=3)
    config.data.sample = 400
    store = RunStore(config.run_dir)
    info = run_train(store, config, progress=False)
    assert info["n_train"] == 320
    metrics = store.read_json("train/metrics.json")
    assert metrics["eval"]["accuracy"] >= 0.9
    oof = store.read_table("train/oof.parquet").to_pandas()
    train = store.read_table("dataset/train.parquet").to_pandas()
    assert sorted(oof["id"]) == sorted(train["id"])
    assert sorted(oof["fold"].unique().tolist()) == [0, 1, 2]
    probs = np.stack(oof["probs"].to_numpy())
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert metrics["oof_accuracy"] >= 0.85


def test_a_failed_force_keeps_the_old_model_and_marker(tiny_bert_dir, tmp_path, synthetic_csv):
    from relabeler.errors import ModelError

    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=2)
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run = tmp_path / "run"
    before = {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    config.model.name = str(tmp_path / "no-such-model")
    with pytest.raises(ModelError, match="no-such-model"):
        run_train(store, config, force=True, progress=False)
    after = {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    assert after == before
    assert store.stage_done("train")


def test_a_force_whose_model_cannot_be_written_keeps_the_old_model(tiny_bert_dir, tmp_path,
                                                                   synthetic_csv, monkeypatch):
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=2)
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    model = {p.name: p.read_bytes() for p in (tmp_path / "run/model").iterdir() if p.is_file()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "put_dir", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_train(store, config, force=True, progress=False)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run/model").iterdir()
            if p.is_file()} == model
    assert not store.stage_done("train")  # unfinished: the next run trains again
    monkeypatch.undo()
    run_train(store, config, progress=False)
    assert store.stage_done("train")


def test_too_many_folds_for_a_class_fail_before_training(tiny_bert_dir, tmp_path):
    from relabeler.errors import ConfigError

    source = tmp_path / "small.csv"
    source.write_text("id,text,label\n" + "".join(
        f"r{i},text {i},{'b' if i < 4 else 'a'}\n" for i in range(30)))
    # no model exists at that path: the fold check comes before any model is loaded
    config = _config(tmp_path, source, tmp_path / "no-model-needed", mode="head", folds=5)
    config.data.eval_fraction = 0.0
    with pytest.raises(ConfigError, match="train.folds = 5 needs at least 5 training rows per "
                                          "class: 'b' has 4; use --folds 4 or fewer, or add "
                                          "rows to those classes"):
        run_train(RunStore(config.run_dir), config, progress=False)
    assert not (tmp_path / "run" / "model").exists()
    assert not (tmp_path / "run" / "train").exists()


def test_the_fold_models_hold_out_every_copy_of_a_text_together(ray_session, tiny_bert_dir,
                                                                 tmp_path, caplog):
    # copies of a text in different folds predicted each other out of fold
    frame = synthetic_frame(60)
    for first in range(0, 30, 3):  # ten texts with three copies each, one in other spacing
        frame.loc[first + 1, "text"] = frame.loc[first, "text"]
        frame.loc[first + 2, "text"] = "  " + frame.loc[first, "text"].upper().replace(" ",
                                                                                      "   ")
        frame.loc[[first + 1, first + 2], "label"] = frame.loc[first, "label"]
    # but a class of copies of one text, in one fold, left that fold's model without the class
    removed = pd.DataFrame({"id": [f"r{i}" for i in range(6)], "label": "removed",
                            "text": ["[removed]"] * 5 + ["[Removed] "]})
    source = tmp_path / "copies.csv"
    pd.concat([frame, removed]).to_csv(source, index=False)
    config = _config(tmp_path, source, tiny_bert_dir, mode="head", epochs=2, folds=3)
    config.data.eval_fraction = 0.0
    store = RunStore(config.run_dir)
    with caplog.at_level("WARNING", logger="relabeler.jobs.train"):
        run_train(store, config, progress=False)
    oof = store.read_table("train/oof.parquet").to_pandas().set_index("id")
    folds = [oof.loc[frame["id"][first:first + 3], "fold"].nunique()
             for first in range(0, 30, 3)]
    assert folds == [1] * 10
    assert sorted(oof["fold"].value_counts().tolist()) == [22, 22, 22]
    assert sorted(oof.loc[removed["id"], "fold"].tolist()) == [0, 0, 1, 1, 2, 2]
    assert "the rows of 'removed' are copies of too few texts" in caplog.text


def test_training_that_diverges_is_refused_and_keeps_the_old_model(tiny_bert_dir, tmp_path,
                                                                   synthetic_csv):
    # NaN probabilities were saved as a finished model, with a warning blaming a learning rate
    # too low; score then failed on them with a bare ValueError
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=3,
                     learning_rate=1e38, warmup_ratio=0.5)  # (Adam's first steps overflow)
    store = RunStore(config.run_dir)
    with pytest.raises(StageError, match=r"train: training diverged: the training "
                                         r"probabilities of epoch \d of 3 are not finite \(NaN "
                                         r"or inf\) for \d+ of \d+ rows \(first id 's\d+'\); "
                                         r"nothing was saved. Lower train.learning_rate \(now "
                                         r"1e\+38\), e.g. with --set train.learning_rate=0.01"):
        run_train(store, config, progress=False)
    assert not store.stage_done("train")
    assert not (tmp_path / "run/model").exists() and not (tmp_path / "run/train").exists()
    config.train.learning_rate = 0.0  # the default: a model; --force with 1e38 keeps it
    run_train(store, config, progress=False)
    model = (tmp_path / "run/model/model.safetensors").read_bytes()
    config.train.learning_rate = 1e38
    with pytest.raises(StageError, match="training diverged"):
        run_train(store, config, force=True, progress=False)
    assert store.stage_done("train")
    assert (tmp_path / "run/model/model.safetensors").read_bytes() == model


def test_divergence_names_the_rates_of_full_mode_and_the_fold_models():
    from relabeler.jobs.train import check_dynamics, refuse_divergence
    from relabeler.training import FitOptions

    opts = FitOptions.resolve(mode="full", epochs=3, batch_size=8, learning_rate=1e-3,
                              weight_decay=0.0, warmup_ratio=0.0, max_length=32, seed=0,
                              device=torch.device("cpu"), head_learning_rate=0.5)
    ids = np.array(["a", "b", "c"], dtype=object)
    refuse_divergence("probabilities", np.full((3, 2), 0.5), ids, opts)  # finite: no error
    with pytest.raises(StageError, match=r"the out-of-fold probabilities of fold model 1 are "
                                         r"not finite \(NaN or inf\) for 1 of 3 rows \(first "
                                         r"id 'c'\); nothing was saved. Lower "
                                         r"train.learning_rate \(now 0.001\) and "
                                         r"train.head_learning_rate \(now 0.5\), e.g. with "
                                         r"--set train.learning_rate=3e-05"):
        refuse_divergence("the out-of-fold probabilities of fold model 1",
                          np.array([[0.5, 0.5], [1.0, 0.0], [np.inf, 0.0]]), ids, opts)
    dynamics = pd.DataFrame({"id": list(ids) * 2, "epoch": [0] * 3 + [1] * 3,
                             "gold_prob": [0.5] * 3 + [np.nan, 0.5, np.nan],
                             "margin": [0.0] * 6})
    with pytest.raises(StageError, match=r"probabilities of epoch 2 of 3 are not finite "
                                         r"\(NaN or inf\) for 2 of 3 rows \(first id 'a'\)"):
        check_dynamics(dynamics, opts)


def test_prior_only_names_a_model_that_predicts_one_class():
    labels = np.array([0, 1, 2, 0, 1])
    assert prior_only(np.array([2, 2, 2, 2, 2]), labels) == 2
    assert prior_only(np.array([2, 2, 1, 2, 2]), labels) is None
    # one class in the labels too: predicting it is no sign of a prior-only model
    assert prior_only(np.zeros(3, int), np.zeros(3, int)) is None


def test_a_failed_fold_is_the_folds_own_error_or_a_stage_error_saying_why():
    from types import SimpleNamespace

    from ray import exceptions as rex

    from relabeler.errors import DataError
    from relabeler.jobs.train import _task_failure

    plan = SimpleNamespace(max_restarts=3)
    bad = DataError("fold 2: dataset/train.parquet row 7 has no text")
    wrapped = rex.RayTaskError("_train_fold", "Traceback ...", bad)
    assert _task_failure(wrapped, plan, 5) is bad
    crashed = _task_failure(rex.WorkerCrashedError(), plan, 5)
    assert isinstance(crashed, StageError)
    assert "the 5 out-of-fold models could not finish: Ray lost a worker more often than " \
        "[ray] max_restarts=3 allows (WorkerCrashedError" in str(crashed)
    other = _task_failure(rex.RayTaskError("_train_fold", "tb", ValueError("nan loss")), plan, 3)
    assert isinstance(other, StageError) and "a fold failed" in str(other)


def test_a_fold_model_trains_with_the_main_models_loss_weights(tiny_bert_dir, tmp_path,
                                                              synthetic_csv):
    from dataclasses import replace

    from relabeler.jobs.folds import stratified_folds
    from relabeler.jobs.train import _train_fold, fit_options
    from relabeler.training import LongText

    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=40)
    opts = fit_options(config, torch.device("cpu"), progress=False)
    opts = replace(opts, long_text=LongText())
    rng = np.random.default_rng(0)
    n = 60
    labels = np.arange(n) % 2
    hidden = torch.tensor(rng.normal(size=(n, 32)), dtype=torch.float32)
    fold = stratified_folds(labels, 3, 0)
    args = (tiny_bert_dir, ["a", "b"], ["t"] * n, labels, np.array([str(i) for i in range(n)],
            dtype=object), fold, 0, opts, hidden, 1)
    plain = _train_fold(*args)["probs"]
    again = _train_fold(*args, sample_weights=np.ones(n))["probs"]
    weighted = _train_fold(*args, sample_weights=np.where(labels == 0, 1.0, 1e-3))["probs"]
    np.testing.assert_allclose(plain, again, atol=1e-5)  # weights of 1 are no weights
    assert weighted[:, 0].mean() > plain[:, 0].mean() + 0.05  # class a weighs: it is favoured


def test_on_a_ray_cluster_the_main_model_trains_as_a_ray_task(ray_session, tiny_bert_dir,
                                                               tmp_path, synthetic_csv, caplog):
    # a RayJob's driver runs on the head node, which has no GPU: the model must train on a
    # worker. The same model as a local fit, mean pooling (which does not pickle) included
    config = _config(tmp_path / "remote", synthetic_csv, tiny_bert_dir, mode="head", epochs=3)
    config.model.pooling = "mean"
    config.ray.address = ray_session.get_runtime_context().gcs_address
    with caplog.at_level("INFO", logger="relabeler.jobs.train"):
        run_train(RunStore(config.run_dir), config, progress=False)
    assert "the main model as a Ray task on the cluster" in caplog.text
    local = config.model_copy(deep=True)
    local.run_dir, local.ray.address = str(tmp_path / "local"), ""
    run_train(RunStore(local.run_dir), local, progress=False)
    remote_eval = RunStore(config.run_dir).read_table("train/eval_predictions.parquet")
    local_eval = RunStore(local.run_dir).read_table("train/eval_predictions.parquet")
    np.testing.assert_allclose(np.stack(remote_eval.column("probs").to_numpy()),
                               np.stack(local_eval.column("probs").to_numpy()), atol=1e-3)
    saved = load_classifier(RunStore(config.run_dir).get_dir("model"))
    assert class_names(saved) == class_names(load_classifier(
        RunStore(local.run_dir).get_dir("model")))
    assert saved.config.relabeler_max_length == 64


@pytest.mark.parametrize("mode", ["head", "full"])
def test_fold_models_predict_the_unmasked_texts_they_hold_out(tiny_bert_dir, tmp_path,
                                                             synthetic_csv, mode):
    # debias = mask trains on masked texts; the fold models predicted their held-out rows
    # masked too, while extract reads every row as it is: the out-of-fold scores mixed views
    from dataclasses import replace

    from relabeler.jobs.folds import stratified_folds
    from relabeler.jobs.train import _train_fold, fit_main

    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode=mode, epochs=1)
    given = ["the film was good", "a bad film", "good good film", "bad acting", "fine", "meh"]
    masked = [t.replace("film", "[MASK]") for t in given]
    labels, ids = np.array([1, 0, 1, 0, 1, 0]), np.array(list("abcdef"), dtype=object)
    main = fit_main(config, ["neg", "pos"], masked, labels, ids, [], None, progress=False,
                    given=given)
    texts, hidden = main.held_out
    assert texts == given
    if mode == "head":
        unmasked = fit_main(config, ["neg", "pos"], given, labels, ids, [], None,
                            progress=False).cls_hidden
        torch.testing.assert_close(hidden, unmasked)
        assert not torch.allclose(main.cls_hidden[0], unmasked[0])  # row 0 was masked
    else:
        assert hidden is None
    fold = stratified_folds(labels, 2, 0)
    args = (str(tiny_bert_dir), ["neg", "pos"], masked, labels, ids, fold, 0,
            replace(main.opts, progress=False), main.cls_hidden, 1)
    held = np.flatnonzero(fold == 0)
    seen = _train_fold(*args, held_out=main.held_out)
    unseen = _train_fold(*args)  # the same fold model (seeded), predicting the masked rows
    np.testing.assert_array_equal(seen["held_idx"], held)
    changed = np.array([given[i] != masked[i] for i in held])
    assert changed.any() and not changed.all()
    np.testing.assert_allclose(seen["probs"][~changed], unseen["probs"][~changed], atol=1e-6)
    assert not np.allclose(seen["probs"][changed], unseen["probs"][changed], atol=1e-6)


def test_auto_mode_is_no_change_from_the_mode_it_resolved_to(tiny_bert_dir, tmp_path,
                                                              synthetic_csv):
    # auto became head on this CPU: `--mode head` next (or auto after head) was refused as
    # "train.mode was 'auto', now 'head'"; a mode that differs from what was trained still is
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="auto", epochs=1)
    store = RunStore(config.run_dir)
    first = run_train(store, config, progress=False)
    assert first["mode"] == "head"
    config.train.mode = "head"
    assert run_train(store, config, progress=False) == first
    config.train.mode = "auto"
    assert run_train(store, config, progress=False) == first
    config.train.mode = "full"
    with pytest.raises(StageError, match="train.mode was 'head', now 'full'"):
        run_train(store, config, progress=False)


def test_a_later_verb_takes_the_dataset_as_prepared_when_no_data_setting_is_given(
        tmp_path, synthetic_csv, tiny_bert_dir, caplog):
    # `data --sample 60`, then `train` without it: the defaults were taken for a change, and
    # the advice (`data --force`) rebuilt the whole file in place of the sample
    from relabeler.jobs.dataset import prepare_dataset

    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=1)
    made = config.model_copy(deep=True)
    made.data.sample = 60
    made.data.noise_rate = 0.1
    info = prepare_dataset(RunStore(config.run_dir), made)
    later = RunConfig(run_dir=config.run_dir)  # what `train --run R` reads: nothing given
    later.model.name, later.model.max_length = config.model.name, 64
    later.train.mode, later.train.epochs = "head", 1
    later.data = later.data.model_validate({"source": str(synthetic_csv)})
    with caplog.at_level("INFO"):
        run_train(RunStore(config.run_dir), later, progress=False)
    assert "kept as prepared" in caplog.text and "data.sample = 60" in caplog.text
    assert (later.data.sample, later.data.noise_rate) == (60, 0.1)
    assert len(RunStore(config.run_dir).read_table("dataset/train.parquet")) == info["n_train"]
    # a setting given now that differs is still an error, with both ways out
    given = later.model_copy(deep=True)
    given.data = given.data.model_validate({"source": str(synthetic_csv), "sample": 80})
    # (only the setting given is named as asked for; the one not given is named as what a
    # dataset made again would lose: it was listed as a change, and --force dropped it)
    with pytest.raises(StageError, match=r"data.sample was 60, now 80\. Give the settings it "
                                         r"was made with \(--set data.sample=60, or in the "
                                         r"config file\), or run `relabeler data --run .* "
                                         r"--force` with the settings you want \(the old "
                                         r"dataset stays until the new one is complete; made "
                                         r"again, it would take the defaults of the settings "
                                         r"not given now as well \(data.noise_rate was 0.1, now "
                                         r"0.0\): give those to keep them\)$"):
        prepare_dataset(RunStore(config.run_dir), given)


def test_a_setting_given_as_what_its_auto_came_to_keeps_the_model(tiny_bert_dir, tmp_path,
                                                                  synthetic_csv):
    # `--set model.long_text=windows` (or window_stride=16, what auto and 0 came to) on a
    # finished run was refused as "model.long_text was 'auto', now 'windows'", as was
    # model.cache_max_gb, which bounds the encoder cache on disk and never what is trained
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=1)
    config.model.pooling = "mean"  # a head linear in the states: auto reads windows
    store = RunStore(config.run_dir)
    first = run_train(store, config, progress=False)
    recorded = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert recorded["relabeler_long_text"] == {"mode": "windows", "stride": 16,
                                               "max_windows": 0}
    assert "cache_max_gb" not in first["settings"]["model"]
    config.model.long_text, config.model.window_stride = "windows", 16
    config.model.cache_max_gb = 5
    assert run_train(store, config, progress=False) == first
    config.model.window_stride = 8
    with pytest.raises(StageError, match=r"other settings: model.window_stride was 16, now 8\."):
        run_train(store, config, progress=False)
    config.model.window_stride = 0
    config.model.long_text = "evidence"
    with pytest.raises(StageError,
                       match=r"other settings: model.long_text was 'windows', now 'evidence'\."):
        run_train(store, config, progress=False)


def test_a_run_that_recorded_cache_max_gb_is_kept_at_any_size(tiny_bert_dir, tmp_path,
                                                              synthetic_csv):
    # a run trained before the cache's size was left out of the settings recorded it; neither
    # its value nor another one is a change
    config = _config(tmp_path, synthetic_csv, tiny_bert_dir, mode="head", epochs=1)
    store = RunStore(config.run_dir)
    first = run_train(store, config, progress=False)
    marker = store.stage_info("train")
    marker["info"]["settings"]["model"]["cache_max_gb"] = 10.0
    store.write_json("_stages/train.json", marker)
    for size in (10.0, 5.0, 0.0):
        config.model.cache_max_gb = size
        assert run_train(store, config, progress=False)["settings"]["model"][
            "cache_max_gb"] == 10.0
    assert store.stage_info("train")["finished_at"] == marker["finished_at"]
    assert first["mode"] == "head"


def test_training_texts_the_model_reads_as_unknown_are_warned_of_and_recorded(
        tiny_bert_dir, tmp_path, synthetic_csv, caplog):
    # MiniLM's English vocabulary holds 中 and 国 but not 球 or 们: half of each text unknown
    source = tmp_path / "zh.csv"
    source.write_text("id,text,label\n" + "".join(
        f"r{i},球{'们' if i % 2 else '球'}中国,{'a' if i % 2 else 'b'}\n" for i in range(40)),
        encoding="utf-8")
    config = _config(tmp_path, source, tiny_bert_dir, mode="head", epochs=1)
    config.data.eval_fraction = 0.0
    store = RunStore(config.run_dir)
    with caplog.at_level("WARNING", logger="relabeler.jobs.train"):
        info = run_train(store, config, progress=False)
    assert info["unknown_share"] == 0.5
    assert store.read_json("train/metrics.json")["unknown_share"] == 0.5
    warnings = [r.getMessage() for r in caplog.records if "[UNK]" in r.getMessage()]
    assert len(warnings) == 1
    assert "reads 50% of the training texts' tokens as unknown ([UNK]: 80 of 160 tokens in " \
           "40 texts), most often '球' (60), '们' (20)" in warnings[0]
    assert "model.name" in warnings[0] and "multilingual" in warnings[0]

    # English texts: nothing unknown, no warning
    caplog.clear()
    english = _config(tmp_path / "en", synthetic_csv, tiny_bert_dir, mode="head", epochs=1)
    with caplog.at_level("WARNING", logger="relabeler.jobs.train"):
        info = run_train(RunStore(english.run_dir), english, progress=False)
    assert info["unknown_share"] == 0.0
    assert not [r for r in caplog.records if "[UNK]" in r.getMessage()]
