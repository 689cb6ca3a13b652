"""Seeded stratified subsampling and the train/eval/pool split.

Hand-written, not scikit-learn's ``StratifiedShuffleSplit``: that refuses a class of one row
and a held-out part smaller than the number of classes, and may leave a class with no training
row; the loader must accept all three (one line per class here does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _class_positions(keys: Sequence[str]) -> dict[str, np.ndarray]:
    key_array = np.asarray(keys, dtype=object)
    return {key: np.flatnonzero(key_array == key) for key in sorted(set(keys))}


def stratified_sample(keys: Sequence[str], size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of a stratified subsample of ``size`` rows (largest-remainder allocation)."""
    groups = _class_positions(keys)
    total = len(keys)
    exact = {key: size * len(rows) / total for key, rows in groups.items()}
    quota = {key: int(math.floor(value)) for key, value in exact.items()}
    by_remainder = sorted(groups, key=lambda key: (quota[key] - exact[key], key))
    for key in by_remainder[: size - sum(quota.values())]:
        quota[key] += 1
    # Every class keeps at least one row when the sample is big enough for that.
    for key in groups:
        if quota[key] == 0 and size >= len(groups):
            donor = max(groups, key=lambda k: (quota[k], k))
            quota[donor] -= 1
            quota[key] = 1
    chosen = [rng.permutation(rows)[: quota[key]] for key, rows in groups.items()]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def stratified_split(
    labels: Sequence[str], eval_fraction: float, pool_fraction: float, rng: np.random.Generator
) -> list[str]:
    """Split name per row: per class, round(fraction * n) rows to eval and pool, >= 1 to train."""
    splits = ["train"] * len(labels)
    for rows in _class_positions(labels).values():
        shuffled = rng.permutation(rows)
        n_eval, n_pool = round(eval_fraction * len(rows)), round(pool_fraction * len(rows))
        while n_eval + n_pool > len(rows) - 1:
            if n_pool > 0:
                n_pool -= 1
            else:
                n_eval -= 1
        for position in shuffled[:n_eval]:
            splits[position] = "eval"
        for position in shuffled[n_eval : n_eval + n_pool]:
            splits[position] = "pool"
    return splits

