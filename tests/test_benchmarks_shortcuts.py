"""benchmarks/shortcuts.py refuses --seeds below 1 before any work, naming the flag."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def test_seeds_below_one_is_refused_up_front(monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("shortcuts_benchmark",
                                                  BENCHMARKS / "shortcuts.py")
    shortcuts = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shortcuts)
    monkeypatch.setattr(shortcuts, "load_dataset", lambda *a, **k: pytest.fail("did work"))
    monkeypatch.setattr(sys, "argv", ["shortcuts.py", "--datasets", "drug-review",
                                      "--seeds", "0", "--rates", "0.5"])
    with pytest.raises(SystemExit) as exc:
        shortcuts.main()
    assert exc.value.code == 2
    assert "--seeds 0: the number of seeds to plant with, at least 1" in capsys.readouterr().err
