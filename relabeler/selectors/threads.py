"""Thread settings for small tensor work on CPU.

A small problem (a linear head over a few thousand samples, an LBFGS refit) does so little
work per step that, split over OpenMP threads on a busy machine, it waits at the barriers far
longer than it computes (docs/benchmarks.md, "Scoring"). Such work runs on one thread; torch's
setting is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Multiply-adds per step below which one thread is faster than several (a 5000 x 385 x 2
#: refit is below it, a 10k-row one above).
SMALL_WORK = 1 << 22


@contextmanager
def small_work_threads(work: int, device: torch.device) -> Iterator[None]:
    """One CPU thread while ``work`` (multiply-adds per step) is small."""
    if device.type != "cpu" or work > SMALL_WORK or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
