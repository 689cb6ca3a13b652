"""Thread settings for small tensor work on CPU.

A small problem (a linear head over a few thousand samples, an LBFGS refit) runs a few hundred
microseconds of work per step; split over OpenMP threads on a busy machine it waits 10-50x
longer at the barriers than it computes. Such work runs on one thread; torch's setting is
restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: Multiply-adds per step below which one thread is faster than several: the 5000 x 385 x 2
#: refit that waited 10-50x longer at the barriers stays below it; a 10k-row refit (7.7M, a few
#: ms per float64 pass) is 1.3x faster on two idle cores than on one.
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
