"""The out-of-fold folds: stratified by class, seeded, copies of a text kept in one fold
(:func:`stratified_folds`), and the check that every class can fill them (:func:`check_folds`).
The fold models themselves train in :mod:`relabeler.jobs.train`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from relabeler.errors import ConfigError

log = logging.getLogger("relabeler.jobs.train")  # the train stage says it ("train: ...")


def check_folds(labels: pd.Series, folds: int) -> None:
    """Raise a ConfigError naming every class with fewer training rows than ``folds``: each
    fold must be able to hold out a row of every class. Rows are counted, not texts:
    :func:`stratified_folds` spreads a class whose copies would all sit in one fold."""
    if not folds:
        return
    counts = labels.value_counts()
    small = counts[counts < folds]
    if len(small):
        shown = ", ".join(f"{label!r} has {n}" for label, n in small.sort_index().items())
        most = int(counts.min())
        fewer = (f"--folds {most} or fewer" if most >= 2 else
                 "--folds 0 (no folds: the noise model then reads the model's in-sample "
                 "probabilities)")
        raise ConfigError(f"train.folds = {folds} needs at least {folds} training rows per "
                          f"class: {shown}; use {fewer}, or add rows to those classes")


def stratified_folds(label_ids: np.ndarray, k: int, seed: int,
                     texts: Sequence[str] | None = None,
                     classes: Sequence[str] | None = None) -> np.ndarray:
    """Fold number of each sample; every class spread evenly over the folds, the same folds for
    the same ``seed``.

    With ``texts``, the copies of a text (equal once whitespace and case are normalised:
    :func:`relabeler.selectors.duplicates.text_hash`) share a fold, so no copy is predicted
    out of fold by a model trained on its twin. A group of copies counts toward the class most
    of its rows carry (ties: the first class); each class's groups, in a seeded random order,
    largest first, go to the fold holding the fewest rows of that class, then the fewest rows,
    then the lowest number. Without copies this is a round robin over each class's shuffled
    rows.

    Every fold model must see every class, which copies can forbid: a class whose rows are all
    copies of one text (``[removed]`` placeholders) would sit in one fold, and that fold's
    model would train on none of its rows. Such a class's rows are dealt out one by one, as
    without ``texts`` (logged with its name from ``classes``, else its index), until no fold
    holds all the rows of a class; their copies may then be predicted by a model trained on a
    twin."""
    if k < 2:
        raise ValueError(f"folds must be >= 2, got {k}")
    label_ids = np.asarray(label_ids, dtype=np.int64)
    counts = np.bincount(label_ids)
    if counts[counts > 0].min() < k:
        small = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
        raise ConfigError(f"train.folds = {k}: class index {small} has only {counts[small]} "
                          f"training samples; use fewer folds")
    if texts is None:
        return _deal_groups(np.arange(len(label_ids)), label_ids, counts, k, seed)
    from relabeler.selectors.duplicates import text_hash

    group = pd.factorize(text_hash(texts))[0]  # numbered by their first row
    spread: list[int] = []
    while True:
        fold = _deal_groups(group, label_ids, counts, k, seed)
        # a class all in one fold: that fold's model would train on none of its rows
        folds_of_class = np.bincount(np.unique(label_ids * k + fold) // k,
                                     minlength=len(counts))
        whole = np.flatnonzero(folds_of_class == 1).tolist()
        if not whole:
            break
        spread += whole
        rows = np.isin(label_ids, whole)
        group = group.copy()
        group[rows] = group.max() + 1 + np.arange(rows.sum())  # each row a group of its own
        group = pd.factorize(group)[0]
    if spread:
        names = ", ".join(repr(classes[c]) if classes is not None else f"class index {c}"
                          for c in sorted(spread))
        log.warning("train: the rows of %s are copies of too few texts to keep copies in one "
                    "fold (a fold model would never see the class): that class's rows are "
                    "spread over the %d folds, so a copy may be predicted out of fold by a model "
                    "trained on its twin", names, k)
    return fold


def _deal_groups(group: np.ndarray, label_ids: np.ndarray, counts: np.ndarray, k: int,
                 seed: int) -> np.ndarray:
    """The folds of :func:`stratified_folds` for rows in groups ``group`` (0..G-1, each row's
    group) that share a fold."""
    n_classes = len(counts)
    # (group, label) pairs with their rows; a group's class is its most common label
    pairs, rows = np.unique(group * n_classes + label_ids, return_counts=True)
    pair_group, pair_label = pairs // n_classes, pairs % n_classes
    by_count = np.lexsort((pair_label, -rows, pair_group))
    firsts = by_count[np.r_[True, pair_group[by_count][1:] != pair_group[by_count][:-1]]]
    group_class = pair_label[firsts]  # groups are 0..G-1, each with a pair
    size = np.bincount(group)
    mixed: dict[int, list[tuple[int, int]]] = {}  # groups of several labels: (label, rows)
    several = np.unique(pair_group[np.r_[pair_group[1:] == pair_group[:-1], False]])
    for g, a, b in zip(several.tolist(), np.searchsorted(pair_group, several).tolist(),
                       np.searchsorted(pair_group, several, side="right").tolist(), strict=True):
        mixed[g] = list(zip(pair_label[a:b].tolist(), rows[a:b].tolist(), strict=True))
    rng = np.random.default_rng(seed)
    per_class = [[0] * n_classes for _ in range(k)]
    total = [0] * k
    fold_of = np.empty(len(size), dtype=np.int64)
    for c in np.flatnonzero(counts).tolist():
        order = rng.permutation(np.flatnonzero(group_class == c))
        order = order[np.argsort(-size[order], kind="stable")]
        for g, n in zip(order.tolist(), size[order].tolist(), strict=True):
            f = min(range(k), key=lambda j: (per_class[j][c], total[j], j))
            fold_of[g] = f
            total[f] += n
            for label, m in mixed.get(g, ((c, n),)):
                per_class[f][label] += m
    return fold_of[group]
