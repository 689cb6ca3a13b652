"""benchmarks/priorities.py counts the task updates serve's re-ranks would send: with values a
step apart, a queue whose scores barely move costs a few updates a re-rank; packed values cost
many more, and a re-rank that changes nothing costs none either way."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _benchmark():
    spec = importlib.util.spec_from_file_location("priorities_benchmark",
                                                  BENCHMARKS / "priorities.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_values_a_step_apart_need_fewer_updates_than_packed_ones():
    bench = _benchmark()
    common = dict(reranks=10, answers=3, touched=0.05, drift=0.5, seed=0)
    packed = bench.updates(300, 1, **common)
    spaced = bench.updates(300, 1000, **common)
    assert spaced < packed / 2
    # nothing moves: no update, whatever the values
    still = dict(common, drift=0.0)
    assert bench.updates(300, 1, **still) == bench.updates(300, 1000, **still) == 0
