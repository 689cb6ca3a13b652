"""benchmarks/gain.py --json writes the numbers its table prints, with or without --rounds."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_json_holds_the_table_numbers_without_rounds(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("gain_benchmark", BENCHMARKS / "gain.py")
    gain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gain)
    accuracies = {0: (0.90, 0.80, 0.88, 0.85, 0.82), 1: (0.90, 0.70, 0.86, 0.80, 0.72)}

    def simulate(dataset, kind, rate, seed, out, pooling, **options):
        clean, noisy, relabeler, cleanlab, random = accuracies[seed]
        return {"gain": {"budget_samples": [10], "accuracy": {
                    "clean": clean, "noisy": noisy, "relabeler": [relabeler],
                    "cleanlab": [cleanlab], "random": [random]}},
                "detection": {"relabeler": {"auprc": 0.9},
                              "cleanlab_self_confidence": {"auprc": 0.8}}}

    monkeypatch.setattr(gain, "simulate", simulate)
    monkeypatch.setattr(sys, "argv", ["gain.py", "--out", str(tmp_path), "--only",
                                      "sms-spam:uniform", "--seeds", "0,1",
                                      "--json", str(tmp_path / "gain.json")])
    gain.main()
    setting = json.loads((tmp_path / "gain.json").read_text())["sms-spam uniform 20%"]
    assert setting["budget"] == 10
    assert setting["gap"] == pytest.approx(0.15)
    relabeler = setting["recovered"]["relabeler"]
    assert relabeler["per_seed"] == pytest.approx([0.8, 0.8])
    assert relabeler["mean"] == pytest.approx(0.8)
    assert relabeler["pooled"] == pytest.approx(0.12 / 0.15)
    assert setting["recovered"]["random"]["per_seed"] == pytest.approx([0.2, 0.1])
    assert setting["vs_random"] == pytest.approx(0.12 / 0.02)
    assert setting["vs_cleanlab"] == pytest.approx(0.12 / 0.075)
    assert setting["seeds"]["1"] == {
        "accuracy": {"clean": 0.9, "noisy": 0.7, "relabeler": 0.86, "cleanlab": 0.8,
                     "random": 0.72},
        "detection_auprc": {"relabeler": 0.9, "cleanlab": 0.8}}
