"""A folder for the local Ray a benchmark's simulations start (``ray.temp_dir``), removed when
the process exits: Ray's session folders would otherwise stay in ``/tmp/ray``. It is a short
fresh folder in ``/tmp``, not one under ``--out``: Ray's socket paths under it must fit in 107
bytes, which a deep ``--out`` would not leave room for. A script imports it as a sibling
(``benchmarks/`` is on ``sys.path`` when one runs)."""

from __future__ import annotations

import atexit
import functools
import shutil
import sys
import tempfile


def _remove(path: str) -> None:
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()  # before its folder goes (Ray's own exit hook may run after this one)
    shutil.rmtree(path, ignore_errors=True)


@functools.cache
def ray_temp_dir() -> str:
    """The process's one Ray temp folder (made on the first call, removed at exit)."""
    path = tempfile.mkdtemp(prefix="rlb-bench-ray-", dir="/tmp")
    atexit.register(_remove, path)
    return path
