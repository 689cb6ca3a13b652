"""The relabeler command: verbs, config precedence, clear errors with exit code 2."""

import pytest

from relabeler.cli import COMMANDS, READS_A_RUN, build_parser, demo_config, main, resolve_config
from relabeler.config import ConfigError, load_config
from relabeler.store import RunStore


def test_init_writes_a_template_that_loads(tmp_path, capsys):
    path = tmp_path / "relabeler.toml"
    assert main(["init", str(path)]) == 0
    assert load_config(path).train.mode == "auto"
    with pytest.raises(SystemExit) as exc:
        main(["init", str(path)])
    assert exc.value.code == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_a_config_from_init_reads_data_without_an_id_column(tmp_path, monkeypatch):
    # the template wrote id_col = "id" as a chosen key, and a chosen id column must exist:
    # `init`, then a data file of text and label only, stopped with "has no column 'id'"
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    rows = "".join(f"text {i} {'good' if i % 2 else 'bad'},{'pos' if i % 2 else 'neg'}\n"
                   for i in range(40))
    (tmp_path / "d.csv").write_text("text,label\n" + rows)
    config = (tmp_path / "relabeler.toml").read_text()
    assert '# id_col = "id"' in config
    (tmp_path / "relabeler.toml").write_text(config.replace('# source = "sms-spam"',
                                                            'source = "d.csv"'))
    assert main(["data", "-q", "--sample", "30"]) == 0
    store = RunStore(str(tmp_path / "runs/default"))
    made = len(store.read_table("dataset/train.parquet"))
    # and a later verb without --sample takes the dataset as it was made (the template's
    # sample = 0, written out, was taken for a change)
    from relabeler.cli import build_parser, resolve_config
    from relabeler.jobs.dataset import prepare_dataset

    config = resolve_config(build_parser().parse_args(["train"]))
    assert prepare_dataset(store, config)["n_train"] == made and config.data.sample == 30


def test_init_force_that_fails_to_write_leaves_the_old_file_whole(tmp_path, monkeypatch,
                                                                   capsys):
    path = tmp_path / "relabeler.toml"
    path.write_text("run_dir = 'mine'\n")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("relabeler.cli.render_template", lambda: "x" * 10)
    monkeypatch.setattr("pathlib.Path.write_text", full_disk)
    with pytest.raises(SystemExit) as exc:
        main(["init", str(path), "--force"])
    monkeypatch.undo()
    assert exc.value.code == 2
    assert "No space left on device" in capsys.readouterr().err
    assert path.read_text() == "run_dir = 'mine'\n"
    assert [p.name for p in tmp_path.iterdir()] == ["relabeler.toml"]


def test_flags_override_the_file_and_set_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relabeler.toml").write_text('run_dir = "runs/a"\n[train]\nepochs = 5\n'
                                             'folds = 2\n')
    args = build_parser().parse_args(["train", "--epochs", "9", "--set", "train.folds=4",
                                      "--set", "data.noise_rate=0.1"])
    config = resolve_config(args)
    assert config.run_dir == "runs/a"
    assert config.train.epochs == 9
    assert config.train.folds == 4
    assert config.data.noise_rate == 0.1


def test_long_text_flag_sets_the_model_key_and_a_bad_stride_names_its_key(tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["train", "--long-text", "evidence", "--max-length", "64"])
    assert resolve_config(args).model.long_text == "evidence"
    args = build_parser().parse_args(["train", "--long-text", "windows", "--max-length", "32",
                                      "--set", "model.window_stride=30"])
    with pytest.raises(ConfigError, match=r"window_stride must be < max_length - 2 = 30"):
        resolve_config(args)


def test_data_verb_prepares_the_dataset(tmp_path, synthetic_csv, capsys):
    run = tmp_path / "run"
    assert main(["data", "--run", str(run), "--data", str(synthetic_csv), "-q"]) == 0
    assert "96 train, 24 eval, 0 pool, 0 rejected" in capsys.readouterr().out
    assert (run / "dataset" / "train.parquet").exists()


def test_bad_data_is_exit_code_2_naming_the_problem(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text,label\n1,hello,a\n2,,b\n3,world,a\n")
    assert main(["data", "--run", str(tmp_path / "run"), "--data", str(bad), "-q"]) == 2
    err = capsys.readouterr().err
    assert "relabeler: error:" in err and "bad.csv" in err and "row 1" in err
    assert "column 'text'" in err
    assert not (tmp_path / "run" / "dataset" / "train.parquet").exists()


def test_bad_config_key_is_exit_code_2(tmp_path, capsys):
    assert main(["data", "--run", str(tmp_path), "--set", "train.epoch=3", "-q"]) == 2
    assert capsys.readouterr().err == ("relabeler: error: --set: unknown key 'train.epoch' (did "
                                       "you mean 'train.epochs'?)\n")


def test_a_value_out_of_range_is_one_line_naming_the_key(tmp_path, capsys):
    assert main(["data", "--run", str(tmp_path), "--eval-fraction", "1.5", "-q"]) == 2
    assert capsys.readouterr().err == ("relabeler: error: --eval-fraction: data.eval_fraction: "
                                       "input should be less than 1, got float 1.5\n")
    assert main(["next", "--run", str(tmp_path), "--batch", "-1", "-q"]) == 2
    assert capsys.readouterr().err.startswith("relabeler: error: --batch: loop.batch: input "
                                              "should be greater than or equal to")
    assert main(["data", "--run", str(tmp_path), "--set", "data.eval_fraction=0.6",
                 "--pool-fraction", "0.5", "-q"]) == 2
    assert ("[data] eval_fraction + pool_fraction must be < 1, got 0.6 + 0.5"
            in capsys.readouterr().err)


def test_simulate_flags_are_checked_before_any_work(tmp_path, capsys):
    assert main(["simulate", "--data", "sms-spam", "--noise", "1.2", "--out",
                 str(tmp_path / "sim"), "-q"]) == 2
    assert "--noise (data.noise_rate): input should be less than 1, got float 1.2" in \
        capsys.readouterr().err
    assert main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--test-fraction", "1.2",
                 "--out", str(tmp_path / "sim"), "-q"]) == 2
    assert "--test-fraction (data.eval_fraction): input should be less than 1" in \
        capsys.readouterr().err
    assert main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--test-fraction", "0.9",
                 "--out", str(tmp_path / "sim"), "-q"]) == 2
    assert ("--test-fraction + --pool-fraction ([data] eval_fraction + pool_fraction, from the "
            "flags, else --set or --config, else simulate's defaults 0.2 and 0.2) must be < 1, "
            "got 0.9 + 0.2") in capsys.readouterr().err
    assert main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--set",
                 "data.eval_fraction=0.9", "--out", str(tmp_path / "sim"), "-q"]) == 2
    assert "from the flags, else --set or --config" in capsys.readouterr().err
    assert main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--folds", "1",
                 "--out", str(tmp_path / "sim"), "-q"]) == 2
    assert "--folds ([train] folds) must be 0 (none) or >= 2, got 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--out", str(tmp_path),
              "--budgets", "0.1,lots"])
    assert exc.value.code == 2
    assert "--budgets: expected shares in (0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()


def test_an_unknown_run_directory_protocol_is_one_line(capsys):
    assert main(["score", "--run", "nosuch://bucket/run", "-q"]) == 2
    assert capsys.readouterr().err == ("relabeler: error: run directory 'nosuch://bucket/run': "
                                       "Protocol not known: nosuch\n")


def test_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    """Only the project's own errors become one line; a ValueError from a bug propagates."""
    def broken(args, config):
        return int("not a number")

    monkeypatch.setitem(COMMANDS, "report", broken)
    with pytest.raises(ValueError, match="invalid literal for int"):
        main(["report", "--run", str(tmp_path), "-q"])


def test_serve_and_pull_offer_only_the_settings_they_use():
    parser = build_parser()
    assert parser.parse_args(["push", "--project-title", "t"]).__dict__[
        "studio.project_title"] == "t"
    for verb in ("serve", "pull"):
        with pytest.raises(SystemExit):
            parser.parse_args([verb, "--project-title", "t"])
    with pytest.raises(SystemExit):
        parser.parse_args(["score", "--method", "ensemble"])


def test_force_is_offered_only_where_a_finished_stage_can_be_redone():
    parser = build_parser()
    for verb in ("data", "train", "extract", "score", "attribute", "retrain", "run", "demo"):
        assert parser.parse_args([verb, "--force"]).force is True
    for verb in ("push", "pull", "next", "serve", "report"):
        with pytest.raises(SystemExit):
            parser.parse_args([verb, "--force"])
    with pytest.raises(SystemExit):
        parser.parse_args(["studio", "up", "--force"])


def test_a_demo_config_file_layers_over_the_demo_and_the_folder_file_is_not_read(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relabeler.toml").write_text('[data]\nsource = "mine.csv"\n')
    (tmp_path / "demo.toml").write_text("[train]\nepochs = 2\n[studio]\nbudget = 100\n")
    plain = demo_config(build_parser().parse_args(["demo"]))
    assert (plain.data.source, plain.studio.budget, plain.studio.overlap) == ("sms-spam", 400, 3)
    layered = demo_config(build_parser().parse_args(["demo", "--config", "demo.toml",
                                                     "--set", "loop.batch=50"]))
    assert (layered.train.epochs, layered.studio.budget, layered.loop.batch) == (2, 100, 50)
    # what the file leaves out stays the demo's
    assert (layered.data.source, layered.data.noise_rate, layered.studio.overlap) == (
        "sms-spam", 0.10, 3)
    (tmp_path / "bad.toml").write_text("[studio]\nbudget = -1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*studio\.budget"):
        demo_config(build_parser().parse_args(["demo", "--config", "bad.toml"]))


def test_extract_before_train_is_exit_code_2(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["extract", "--run", str(tmp_path / "run"), "-q"]) == 2
    assert "extract needs a trained model" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_extract_on_sms_spam_with_the_packaged_minilm(ray_session, tmp_path, capsys):
    run = str(tmp_path / "run")
    assert main(["train", "--run", run, "--data", "sms-spam", "--sample", "300",
                 "--mode", "head", "-q"]) == 0
    assert "eval accuracy" in capsys.readouterr().out
    assert main(["extract", "--run", run, "-q"]) == 0
    out = capsys.readouterr().out
    assert "features/train: 240 rows" in out and "features/eval: 60 rows" in out
    from relabeler.store import RunStore

    store = RunStore(run)
    features = store.read_table("features/eval").to_pandas()
    accuracy = (features["pred"] == features["label"]).mean()
    assert accuracy >= 0.9
    assert len(features["embedding"].iloc[0]) == 384


def test_retrain_debias_flags_set_the_train_keys(tmp_path):
    args = build_parser().parse_args(["retrain", "--run", str(tmp_path), "--debias", "mask",
                                      "--class-weights", "balanced"])
    config = resolve_config(args)
    assert (config.train.debias, config.train.class_weights) == ("mask", "balanced")
    assert (config.train.debias_top, config.train.debias_mask_rate) == (1, 1.0)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--debias", "drop"])


def test_the_demo_summary_shows_n_a_where_nothing_was_measured(tmp_path, monkeypatch, capsys):
    import relabeler.cli as cli
    import relabeler.jobs.loop as loop

    out = {"seconds": 9.0, "pushed": 40, "sources": {"flagged": 40}, "rounds": [1],
           "answered": 40, "answered_now": 0, "changed": 0,
           "burn_down": [{"round": 1, "mode": "ranked", "tasks": 40, "answered": 40,
                          "corrections": 0, "labels_spent": 40, "remaining": None,
                          "true_remaining": 3, "advice": "continue"}],
           "annotators": [{"annotator": "a", "answers": 40, "agreement_with_consensus": None,
                           "quality": float("nan")}],
           "flagged_rate": 0.1, "control_rate": None, "before": 0.9, "after": 0.9,
           "ci95": [0.0, 0.0], "url": "http://127.0.0.1:1", "username": "u", "report": "r"}
    monkeypatch.setattr(loop, "run_demo", lambda *args, **kwargs: out)
    monkeypatch.setattr(cli, "_print_queue_head", lambda run: None)
    assert main(["demo", "--run", str(tmp_path / "run"), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "40 answers by SIMULATED annotators (0 of them this run); 0 labels" in printed
    assert "40 labels; wrong labels left: n/a (no answered controls) (really 3)" in printed
    assert "agreement with the consensus n/a, quality n/a" in printed
    assert "correction rate: 10% of the flagged tasks, n/a of the random controls" in printed


def test_simulate_reads_its_settings_from_config_where_no_flag_is_given(tmp_path):
    from relabeler.cli import simulate_config

    toml = tmp_path / "sim.toml"
    toml.write_text('[data]\ntext_col = "body"\nsample = 500\nseed = 7\n'
                    '[train]\nmode = "head"\nfolds = 3\n')
    args = build_parser().parse_args(["simulate", "--data", "sms-spam", "--noise", "0.1",
                                      "--out", str(tmp_path / "sim"), "--config", str(toml)])
    config = simulate_config(args)
    assert (config.data.text_col, config.data.sample, config.data.seed) == ("body", 500, 7)
    assert (config.train.mode, config.train.folds) == ("head", 3)
    assert (config.data.pool_fraction, config.data.eval_fraction) == (0.2, 0.2)  # defaults
    assert config.extract.splits == ["train", "eval", "pool"]
    flags = build_parser().parse_args(["simulate", "--data", "sms-spam", "--noise", "0.1",
                                       "--out", str(tmp_path / "sim"), "--config", str(toml),
                                       "--folds", "4", "--seed", "2", "--pool-fraction", "0"])
    config = simulate_config(flags)
    assert (config.train.folds, config.data.seed, config.train.seed) == (4, 2, 2)
    assert config.extract.splits == ["train", "eval"] and config.data.text_col == "body"
    plain = simulate_config(build_parser().parse_args(
        ["simulate", "--data", "sms-spam", "--noise", "0.1", "--out", str(tmp_path / "s")]))
    assert (plain.train.folds, plain.train.mode, plain.data.text_col) == (5, "auto", "text")
    # --set lies over the file and under simulate's own flags, as for every other verb
    both = simulate_config(build_parser().parse_args(
        ["simulate", "--data", "sms-spam", "--noise", "0.1", "--out", str(tmp_path / "s"),
         "--config", str(toml), "--folds", "4", "--set", "train.folds=2",
         "--set", "data.sample=300", "--set", "data.noise_rate=0.3",
         "--set", "data.pool_fraction=0"]))
    assert (both.train.folds, both.data.sample, both.data.noise_rate) == (4, 300, 0.1)
    assert both.data.pool_fraction == 0.0 and both.extract.splits == ["train", "eval"]
    assert (both.data.text_col, both.data.eval_fraction) == ("body", 0.2)


def test_faiss_telling_which_build_it_loaded_is_not_logged(tmp_path):
    # "Could not load library with AVX512 support due to: ModuleNotFoundError" at INFO read
    # like an error on every score
    import subprocess
    import sys

    # the CLI, and a notebook that logs at INFO, both reach faiss through relabeler.selectors
    for setup in ("from relabeler.cli import _setup_logging\n_setup_logging(False)\n",
                  "import logging\nlogging.basicConfig(level=logging.INFO)\n"):
        script = (setup + "import logging\nlogging.getLogger('relabeler').info('shown')\n"
                  "import relabeler.selectors.knn\n")
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, cwd=tmp_path)
        assert "shown" in out.stderr
        assert "faiss" not in out.stderr


def test_remote_reads_and_gcsfs_give_up_lines_are_not_logged():
    """fsspec logs "AdaptiveReadaheadCache enabled" at INFO for each remote file read: 27 of
    the 31 lines `relabeler report` printed on gs://, around its one warning; gcsfs logs each
    request it gave up on with a traceback, before relabeler's line that names the run
    directory and the failure (150 lines on an unreachable endpoint)."""
    import subprocess
    import sys

    code = ("import logging\n"
            "from relabeler.cli import _setup_logging\n"
            "_setup_logging(False)\n"
            "on = lambda name, level: logging.getLogger(name).isEnabledFor(level)\n"
            "print(on('fsspec.caching', logging.INFO), on('fsspec', logging.WARNING),\n"
            "      on('gcsfs', logging.ERROR), on('gcsfs.retry', logging.ERROR),\n"
            "      on('relabeler', logging.INFO))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.split() == ["False", "True", "False", "False", "True"]


@pytest.mark.parametrize("verb", sorted(READS_A_RUN))
def test_a_verb_that_reads_a_run_makes_no_folder_for_a_mistyped_run(verb, tmp_path, capsys):
    missing = tmp_path / "rnu"
    assert main([verb, "--run", str(missing), "-q"]) == 2
    assert f"no run directory at {missing}" in capsys.readouterr().err
    assert not missing.exists()


def test_sigterm_stops_a_verb_as_ctrl_c_does_and_the_old_handler_comes_back(tmp_path,
                                                                          monkeypatch, capsys):
    import os
    import signal
    import time

    import relabeler.cli as cli

    def killed(args, config):
        os.kill(os.getpid(), signal.SIGTERM)  # kill, timeout, a pod stopping
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not stop the verb")

    monkeypatch.setitem(cli.COMMANDS, "score", killed)
    before = signal.getsignal(signal.SIGTERM)
    (tmp_path / "run").mkdir()
    assert main(["score", "--run", str(tmp_path / "run"), "-q"]) == 143
    assert capsys.readouterr().err.startswith(
        "relabeler: terminated (SIGTERM); nothing half-written is taken as finished: run it "
        "again")
    assert signal.getsignal(signal.SIGTERM) is before


def test_data_force_that_would_drop_pushed_samples_is_refused(tmp_path, synthetic_csv, capsys):
    import pandas as pd

    from relabeler.queue_plan import MANIFEST_SCHEMA, write_manifest
    from relabeler.store import RunStore

    run = str(tmp_path / "run")
    assert main(["data", "--run", run, "--data", str(synthetic_csv), "-q"]) == 0
    store = RunStore(run)
    train = store.read_table("dataset/train.parquet").to_pandas()
    pushed = list(train["id"][:30])
    write_manifest(store, pd.DataFrame({
        "id": pushed, "task_id": range(1, 31), "project_id": 1, "rank": range(1, 31),
        "priority": range(30, 0, -1), "source": "flagged",
        "pushed_at": pd.Timestamp("2026-01-01", tz="UTC"), "round": 1})[
        [*MANIFEST_SCHEMA.names, "round"]])
    before = (tmp_path / "run/dataset/train.parquet").read_bytes()
    # the same data again: every pushed sample is still there
    assert main(["data", "--run", run, "--data", str(synthetic_csv), "--force", "-q"]) == 0
    # a sample of it would leave pushed rows out
    assert main(["data", "--run", run, "--data", str(synthetic_csv), "--sample", "40",
                 "--force", "-q"]) == 2
    err = capsys.readouterr().err
    assert "leaves out" in err and "of the 30 samples this run pushed to Label Studio" in err
    assert "Prepare other data in a new run folder (--run)" in err
    assert (tmp_path / "run/dataset/train.parquet").read_bytes() == before
    # every row kept, but another seed deals them to other splits: a pushed training row in eval
    assert main(["data", "--run", run, "--data", str(synthetic_csv), "--data-seed", "5", "--force",
                 "-q"]) == 2
    err = capsys.readouterr().err
    assert "moves " in err and "sent as a train row, now in eval" in err
    assert (tmp_path / "run/dataset/train.parquet").read_bytes() == before


def test_a_push_without_eval_rows_warns_before_people_answer(tmp_path, capsys):
    # next, retrain and report refuse a run without eval rows, but only after labels were spent
    from types import SimpleNamespace

    import pyarrow as pa

    from relabeler.cli import _say_without_eval

    store = RunStore(str(tmp_path / "run"))
    empty = pa.array([], pa.string())
    store.write_table("dataset/eval.parquet", pa.table({"id": empty, "text": empty,
                                                        "label": empty}))
    _say_without_eval(SimpleNamespace(store=store))
    out = capsys.readouterr().out
    assert "has no eval rows" in out and "retrain, report and next" in out
    store.write_table("dataset/eval.parquet", pa.table({"id": ["e1"], "text": ["t"],
                                                        "label": ["a"]}))
    _say_without_eval(SimpleNamespace(store=store))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("given", ["0.9", "0.9,,0.8", "0.9,1.2", "a,b"])
def test_annotators_are_two_or_more_accuracies_and_an_empty_item_is_no_annotator(given, capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--data", "sms-spam", "--noise", "0.1", "--annotators", given, "-q"])
    assert (f"argument --annotators: expected two or more accuracies in (0, 1] separated by "
            f"commas; got {given!r}") in capsys.readouterr().err


def test_torch_logs_nothing_at_info_from_the_start(tmp_path):
    # Ctrl-C while torch was being imported: its atexit dump_cache_stats logged "FakeTensor
    # cache stats" at INFO after the interrupt line, torch not having set its loggers yet.
    # A fresh interpreter, as the CLI starts: torch is not imported when logging is set up
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # this checkout's relabeler
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    code = ("import logging, sys\n"
            "from relabeler.cli import _setup_logging\n"
            "_setup_logging(False)\n"
            "fake = logging.getLogger('torch._subclasses.fake_tensor')\n"
            "print('torch' in sys.modules, fake.isEnabledFor(logging.INFO),\n"
            "      fake.isEnabledFor(logging.WARNING),\n"
            "      logging.getLogger('relabeler').isEnabledFor(logging.INFO))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120, env=env)
    assert out.stdout.split() == ["False", "False", "True", "True"]


def test_the_queue_head_prints_one_line_a_sample_whatever_its_text_holds(capsys):
    # a carriage return or a terminal escape in a text rewrote the printed line
    from types import SimpleNamespace

    import pandas as pd

    from relabeler import cli

    texts = ["love you, call mom\rtonight", "\x1b[2Jclear\x1b]0;title\x07 me", "a\nb\tc"]
    suspects = pd.DataFrame({"rank": [1, 2, 3], "given_label": ["ham"] * 3,
                             "suggested_label": ["spam"] * 3,
                             "suggested_confidence": [0.9, 0.8, 0.7], "text": texts})
    cli._print_queue_head(SimpleNamespace(suspects=lambda: suspects))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3:] == ["    1. [ham -> spam 0.90] love you, call mom tonight",
                          "    2. [ham -> spam 0.80]  [2Jclear ]0;title  me",
                          "    3. [ham -> spam 0.70] a b c"]


def test_python_dash_m_relabeler_runs_the_command_line():
    import subprocess
    import sys
    from pathlib import Path

    from relabeler._version import __version__

    done = subprocess.run([sys.executable, "-m", "relabeler", "--version"], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[1])
    assert (done.returncode, done.stdout.strip()) == (0, f"relabeler {__version__}")
