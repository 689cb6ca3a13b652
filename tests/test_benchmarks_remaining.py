"""benchmarks/remaining.py refuses a --runs folder without the runs it replays, naming the
flag and the layout it expects, instead of failing on an empty table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_runs_without_rounds4_refit_folders_is_refused(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("remaining_benchmark",
                                                  BENCHMARKS / "remaining.py")
    remaining = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(remaining)
    (tmp_path / "sms-spam-uniform-20-seed0-n300" / "rounds2-refit").mkdir(parents=True)
    monkeypatch.setattr(sys, "argv", ["remaining.py", "--runs", str(tmp_path), "--cache",
                                      str(tmp_path / "replay")])
    with pytest.raises(SystemExit) as exc:
        remaining.main()
    assert exc.value.code == 2
    assert (f"--runs {tmp_path} holds no run folder of benchmarks/gain.py --rounds 4 "
            "(--rescore refit): expected <dataset>-<kind>-<rate>-seed<S>[-n<N>][-b<B>][-f<F>]/"
            "rounds4-refit/simulation.json") in capsys.readouterr().err
