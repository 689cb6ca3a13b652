"""benchmarks/shortcut_mitigation.py: one seed has no interval, not one of width 0."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _module(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # it imports its siblings
    spec = importlib.util.spec_from_file_location("shortcut_mitigation_benchmark",
                                                  BENCHMARKS / "shortcut_mitigation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_seed_prints_no_interval_and_two_print_the_t_interval(monkeypatch):
    bench = _module(monkeypatch)
    # it printed "0.738 ± 0.000", and a recovered share its own rule meant to hold back
    assert bench.interval([0.738]) == "0.738 (one seed)"
    assert bench.half_width([0.1]) == float("inf")
    assert bench.interval([0.7, 0.8]) == "0.750 ± 0.635"  # t(1) = 12.71 x 0.05
    assert bench.half_width([0.7, 0.8]) == pytest.approx(0.6353, abs=1e-4)
