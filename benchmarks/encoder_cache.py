"""Looking states up in a large head-mode encoder cache.

The cache (``relabeler/encoder_cache.py``) keeps one folder per encoder, shared by every data
set and run on the machine, and grows a part per call that encoded something. This builds a
cache of ``--texts`` states (MiniLM's 384 dimensions) in parts of ``--part`` texts, then looks
up ``--lookup`` texts of one data set (its parts, as a train stage writes them), with the
lookup that reads only the key column of parts without a wanted key (now) beside reading
every part whole (before), in the same process, each timed on a warm page cache:

    .venv/bin/python benchmarks/encoder_cache.py [--texts 200000] [--part 5000] [--lookup 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relabeler.encoder_cache import EncoderCache, text_keys  # noqa: E402


class _Folder(EncoderCache):
    """The cache's reading and writing over a folder, without a model to fingerprint."""

    def __init__(self, folder: Path):
        self.folder = folder


def read_every_part(folder: Path, keys: list[bytes]) -> np.ndarray:
    """The lookup before: every part read whole into one dictionary, then the wanted keys."""
    known: dict[bytes, np.ndarray] = {}
    for part in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(part)
        states = np.stack(table.column("state").to_numpy(zero_copy_only=False))
        known.update(zip(table.column("key").to_pylist(), states, strict=True))
    return np.stack([known[k] for k in keys])


def best_of(repeats: int, call) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--part", type=int, default=5_000)
    parser.add_argument("--lookup", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not 0 < args.lookup <= args.part <= args.texts:
        parser.error("need 0 < --lookup <= --part <= --texts")

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        cache = _Folder(Path(tmp) / "encoder" / "fingerprint")
        for start in range(0, args.texts, args.part):
            texts = [f"text {i}" for i in range(start, min(start + args.part, args.texts))]
            cache._save(cache.folder, text_keys(texts),
                        rng.standard_normal((len(texts), args.dim)).astype(np.float32))
        # the data set looked up: texts of the second part when there is one (a cache holds
        # other data sets' parts before it), else of the first
        start = args.part if args.texts >= args.part + args.lookup else 0
        wanted = [f"text {i}" for i in range(start, start + args.lookup)]
        keys = text_keys(wanted)
        cpu = torch.device("cpu")
        now, states = best_of(args.repeats, lambda: cache.cached(wanted, device=cpu))
        before, expected = best_of(args.repeats, lambda: read_every_part(cache.folder, keys))
        np.testing.assert_array_equal(states.numpy(), expected)
    print(f"{args.lookup} states from a cache of {args.texts} in parts of {args.part} "
          f"({args.dim} dimensions), best of {args.repeats}:")
    print(f"  now (key columns, then the wanted rows): {now:.3f} s")
    print(f"  before (every part read whole):          {before:.3f} s")
    print(f"  ratio before / now: {before / now:.1f}x")


if __name__ == "__main__":
    main()
