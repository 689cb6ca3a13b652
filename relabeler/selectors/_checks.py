"""Input checks shared by the selectors: errors name the argument, the shape seen and the
shape expected, so a bad call never fails deep inside numpy or faiss."""

from __future__ import annotations

import numpy as np


def as_matrix(name: str, value, *, rows: int | None = None, cols: int | None = None,
              finite: bool = True) -> np.ndarray:
    """A 2-D float32 array; ints are a TypeError, NaN/inf a ValueError naming the row."""
    array = np.asarray(value)
    if array.dtype.kind not in "f":
        raise TypeError(f"{name}: expected a float array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (N, D), got shape {array.shape}")
    if rows is not None and array.shape[0] != rows:
        raise ValueError(f"{name}: expected {rows} rows, got shape {array.shape}")
    if cols is not None and array.shape[1] != cols:
        raise ValueError(f"{name}: expected {cols} columns, got shape {array.shape}")
    if finite:
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            raise ValueError(f"{name}: row {int(np.flatnonzero(bad)[0])} has NaN or inf "
                             f"({int(bad.sum())} such rows of {len(array)})")
    return np.ascontiguousarray(array, dtype=np.float32)


def as_labels(name: str, value, *, n: int | None = None,
              num_classes: int | None = None) -> np.ndarray:
    """A 1-D int64 array of class ids in [0, num_classes)."""
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of class ids, got shape {array.shape}")
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class ids, got dtype {array.dtype}")
    if n is not None and len(array) != n:
        raise ValueError(f"{name}: expected {n} labels to match the other inputs, got "
                         f"{len(array)}")
    if len(array) and array.min() < 0:
        raise ValueError(f"{name}: class ids must be >= 0, got {int(array.min())}")
    if num_classes is not None and len(array) and array.max() >= num_classes:
        raise ValueError(f"{name}: class id {int(array.max())} is out of range for "
                         f"{num_classes} classes")
    return array.astype(np.int64, copy=False)


def as_count(name: str, value, minimum: int = 1) -> None:
    """Check that ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")


def probs_and_labels(probs, labels, *, name: str = "probs") -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, C) probabilities and (N,) class ids in [0, C) that match them."""
    probs = as_probs(name, probs)
    return probs, as_labels("labels", labels, n=len(probs), num_classes=probs.shape[1])


def as_probs(name: str, value, *, rows: int | None = None, atol: float = 1e-3) -> np.ndarray:
    """(N, C) probabilities: finite, in [0, 1], rows summing to 1."""
    probs = as_matrix(name, value, rows=rows)
    if probs.shape[1] < 2:
        raise ValueError(f"{name}: expected at least 2 classes, got shape {probs.shape}")
    if probs.min() < -atol or probs.max() > 1 + atol:
        raise ValueError(f"{name}: probabilities must lie in [0, 1]")
    sums = probs.sum(axis=1)
    bad = np.abs(sums - 1) > atol
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: row {row} sums to {sums[row]:.4f}, not 1")
    return probs
