"""benchmarks/reuse.py and the scripts that reuse stored results through it: a result made with
other arguments is refused, naming them and the file, never reprinted as this run's."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load(name: str, monkeypatch):
    """A benchmark script as a module (its siblings importable, as when it runs)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_differences_name_each_changed_argument_and_skip_unrecorded_ones(monkeypatch):
    reuse = load("reuse", monkeypatch)
    stored = {"sample": 200, "noise": 0.1, "layers": [1, 4], "annotators": None}
    assert reuse.differences(stored, {"sample": 200, "noise": 0.1, "layers": (1, 4)}) == []
    assert reuse.differences(stored, {"sample": 1000, "noise": 0.1, "eval_noise": 0.2,
                                      "layers": [1, 2], "annotators": [0.9]}) == [
        "--sample 1000 (stored: 200)", "--layers [1, 2] (stored: [1, 4])",
        "--annotators [0.9] (stored: null)"]


def test_stored_result_reads_a_match_refuses_a_mismatch_and_records(tmp_path, monkeypatch):
    reuse = load("reuse", monkeypatch)
    path = tmp_path / "run" / "simulation.json"
    assert reuse.stored_result(path, {"sample": 200}) is None
    path.parent.mkdir()
    path.write_text(json.dumps({"auprc": 0.5, "settings": {"sample": 200}}))
    assert reuse.record_settings(path, {"eval_noise": 0.1})["settings"] == {
        "sample": 200, "eval_noise": 0.1}
    assert reuse.stored_result(path, {"sample": 200, "eval_noise": 0.1})["auprc"] == 0.5
    with pytest.raises(SystemExit, match=rf"{path} was made with other arguments: --eval-noise "
                                         rf"0.2 \(stored: 0.1\)\. .*pass another --work"):
        reuse.stored_result(path, {"sample": 200, "eval_noise": 0.2}, out_flag="--work")


def test_eval_audit_refuses_a_finished_run_of_another_sample(tmp_path, monkeypatch):
    eval_audit = load("eval_audit", monkeypatch)
    out = tmp_path / "sms-spam-0"
    out.mkdir()
    (out / "simulation.json").write_text(json.dumps({  # as relabeler simulate writes it
        "eval_audit": {"auprc": 0.5}, "settings": {"noise": 0.1, "noise_kind": "uniform",
                                                   "seed": 0, "mode": "head", "folds": 2,
                                                   "sample": 200}}))
    kwargs = {"out": out, "noise": 0.1, "eval_noise": 0.1, "folds": 2}
    assert eval_audit.audit_run("sms-spam", 0, sample=200, **kwargs) == {"auprc": 0.5}
    with pytest.raises(SystemExit, match=r"--sample 1000 \(stored: 200\)"):
        eval_audit.audit_run("sms-spam", 0, sample=1000, **kwargs)


def test_gain_refuses_a_finished_simulation_without_the_annotators_asked(tmp_path, monkeypatch):
    gain = load("gain", monkeypatch)
    folder = tmp_path / "sms-spam-uniform-20-seed0-n300-f2"
    folder.mkdir()
    (folder / "simulation.json").write_text(json.dumps({"gain": {}, "settings": {
        "pooling": "auto", "pool_layers": 0, "annotators": None}}))
    args = ("sms-spam", "uniform", 0.2, 0, tmp_path, "auto")
    assert gain.simulate(*args, sample=300, folds=2) == {"gain": {}, "settings": {
        "pooling": "auto", "pool_layers": 0, "annotators": None}}
    with pytest.raises(SystemExit, match=r"--annotators \[0.9, 0.8\] \(stored: null\)"):
        gain.simulate(*args, sample=300, folds=2, annotators=[0.9, 0.8])


def test_pooling_refuses_a_stored_dataset_of_other_arguments(tmp_path, monkeypatch):
    pooling = load("pooling", monkeypatch)
    argv = ["pooling.py", "--data", "sms-spam:150", "--seeds", "0", "--layers", "1,4",
            "--kinds", "uniform", "--folds", "2", "--out", str(tmp_path)]
    settings = {"data": "sms-spam:150", "seeds": [0], "layers": [1, 4], "kinds": ["uniform"],
                "noise": 0.2, "folds": 2, "max_length": 128, "eval_fraction": 0.2,
                "check": 32}
    (tmp_path / "sms-spam.json").write_text(json.dumps({"settings": settings}))
    monkeypatch.setattr(sys, "argv", [*argv[:6], "1,2", *argv[7:]])
    with pytest.raises(SystemExit, match=r"sms-spam\.json was made with other arguments: "
                                         r"--layers \[1, 2\] \(stored: \[1, 4\]\)"):
        pooling.main()
