"""Label-noise injection: flip a known set of labels, for benchmarks with known wrong labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NOISE_KINDS = ("uniform", "asymmetric")

def _noise_labels(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    label_array = np.asarray(labels, dtype=object)
    if label_array.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {label_array.shape}")
    for position, value in enumerate(label_array):
        if not isinstance(value, str):
            raise TypeError(
                f"labels must be str, got {type(value).__name__} {value!r} at position {position}"
            )
    return label_array


def _asymmetric_mapping(
    classes: list[str], mapping: dict[str, str] | None, source_class: str | None
) -> dict[str, str]:
    if mapping is not None and source_class is not None:
        raise ValueError("give mapping or source_class, not both")
    if mapping is not None:
        for key, value in mapping.items():
            if key not in classes or value not in classes:
                raise ValueError(f"mapping {key!r} -> {value!r} names a class not in {classes}")
            if key == value:
                raise ValueError(f"mapping maps {key!r} to itself")
        return dict(mapping)
    following = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    if source_class is not None:
        if source_class not in classes:
            raise ValueError(f"source_class {source_class!r} is not one of {classes}")
        return {source_class: following[source_class]}
    if len(classes) == 2:
        return {classes[1]: classes[0]}
    return following


def inject_noise(
    labels: Sequence[str] | np.ndarray,
    rate: float,
    *,
    kind: str = "uniform",
    seed: int = 0,
    classes: Sequence[str] | None = None,
    mapping: dict[str, str] | None = None,
    source_class: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate * N)`` labels, for benchmarks with known wrong labels.

    Parameters
    ----------
    labels : sequence of str, shape (N,)
        Clean labels.
    rate : float
        Fraction of all N rows to flip, in [0, 1).
    kind : {"uniform", "asymmetric"}
        ``uniform``: the flipped rows are drawn from all rows and each gets a class drawn
        uniformly from the other classes. ``asymmetric``: each flipping class goes to one fixed
        confusable class, and the flipped rows are drawn from rows of flipping classes. By
        default class ``i`` of the sorted classes goes to class ``i + 1`` (cyclic); with two
        classes only the last sorted class flips (``spam -> ham`` for ham/spam).
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives the same result.
    classes : sequence of str, optional
        All class names (default: the labels seen); uniform noise may flip into any of them.
    mapping : dict of str to str, optional
        Asymmetric only: explicit ``{from_class: to_class}``; classes not in it never flip.
    source_class : str, optional
        Asymmetric only: the one class that flips (to the next class in sorted order).

    Returns
    -------
    noisy_labels : numpy.ndarray of object (str), shape (N,)
    flipped : numpy.ndarray of bool, shape (N,)
        True where ``noisy_labels`` differs from ``labels``.

    Raises
    ------
    ValueError
        ``rate`` outside [0, 1), unknown ``kind``, fewer than 2 classes, a label outside
        ``classes``, or asymmetric noise asking for more flips than rows of flipping classes.
    """
    label_array = _noise_labels(labels)
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.number) or not 0 <= rate < 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    class_list = sorted(set(label_array) if classes is None else set(classes))
    if len(class_list) < 2:
        raise ValueError(f"noise needs at least 2 classes, got {class_list}")
    unknown = set(label_array) - set(class_list)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in classes {class_list}")

    rng = np.random.default_rng(seed)
    n_rows = len(label_array)
    n_flip = round(float(rate) * n_rows)
    noisy = label_array.copy()
    if kind == "uniform":
        if mapping is not None or source_class is not None:
            raise ValueError("mapping and source_class apply to kind='asymmetric' only")
        rows = rng.choice(n_rows, size=n_flip, replace=False)
        position = {c: i for i, c in enumerate(class_list)}
        current = np.array([position[v] for v in label_array[rows]], dtype=np.int64)
        # An offset in 1..C-1 picks each other class with equal probability.
        offsets = rng.integers(1, len(class_list), size=n_flip)
        noisy[rows] = np.array(class_list, dtype=object)[(current + offsets) % len(class_list)]
    else:
        flip_to = _asymmetric_mapping(class_list, mapping, source_class)
        candidates = np.flatnonzero([v in flip_to for v in label_array])
        if n_flip > len(candidates):
            raise ValueError(
                f"rate={rate} asks for {n_flip} flips of {n_rows} rows, but only "
                f"{len(candidates)} rows have a class that flips ({sorted(flip_to)})"
            )
        rows = rng.choice(candidates, size=n_flip, replace=False)
        noisy[rows] = [flip_to[v] for v in label_array[rows]]
    flipped = np.zeros(n_rows, dtype=bool)
    flipped[rows] = True
    return noisy, flipped
