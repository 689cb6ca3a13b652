"""The score stage's duplicate groups: ``scores/duplicates.parquet``.

Rows of train, eval and pool (the splits whose features exist) go into one search, so a group
can hold rows of several splits: an eval row grouped with a training row is leakage, a group
of training rows with several labels is a conflict, a large group of training rows is
redundancy. The algorithm is :func:`relabeler.selectors.duplicates.find_duplicates` (exact
text hashes, the features' kNN and a text check); this module aligns texts with the features
and writes the table.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.errors import ConfigError, StageError
from relabeler.selectors.duplicates import TextChecks, find_duplicates, group_label_conflicts
from relabeler.store import RunStore

log = logging.getLogger(__name__)

#: neighbours per row the near-duplicate search looks at, at least: fine-tuned features pack a
#: class tightly, so a row's near-duplicate can sit behind many rows of the same class
MIN_K = 20
COLUMNS = [f.name for f in artifacts.DUPLICATES.schema]


def split_texts(store: RunStore, split: str, ids: np.ndarray) -> list[str]:
    """The texts of ``ids`` from ``dataset/{split}.parquet``, in that order."""
    table = store.read_table(artifacts.SPLIT(split=split), columns=["id", "text"]).to_pandas()
    texts = table.set_index("id")["text"].reindex(pd.Index(ids, dtype=object))
    if texts.isna().any():
        missing = texts.index[texts.isna()][0]
        raise StageError(f"features/{split} has id {missing!r}, which "
                         f"{artifacts.SPLIT(split=split)} lacks; extract again with --force")
    return texts.astype(str).tolist()


def _texts(store: RunStore, split: str, view, read: Mapping[str, list[str]]) -> list[str]:
    """A view's texts: the ones it holds (the training view reads them to score), those the
    caller read already, else read."""
    held = getattr(view, "texts", None)
    if held is None:
        held = read.get(split)
    return list(held) if held is not None else split_texts(store, split, view.ids)


def duplicate_table(store: RunStore, views: dict, classes: list[str], cfg,
                    checks: TextChecks | None = None,
                    texts: Mapping[str, list[str]] | None = None) -> tuple[pd.DataFrame, dict]:
    """The duplicates table (group_id, id, split, similarity, label, text_hash) and a summary.

    ``views``: split name -> a view with ``ids``, ``labels`` (class ids, -1 = none) and
    ``features``, as :mod:`relabeler.jobs.score` loads them. ``checks``: the text check's
    answers kept from the score stage's duplicate-conflict signal (the same pairs are not
    compared again). ``texts``: split name -> the texts of a view, aligned with its ids, that
    the caller has read already (the others are read here).
    """
    for name in ("duplicate_threshold", "duplicate_text_threshold"):
        value = getattr(cfg, name)
        if not 0.0 < float(value) <= 1.0:
            raise ConfigError(f"score.{name} must lie in (0, 1], got {value}")
    names = [s for s in views if len(views[s].ids)]
    ids = np.concatenate([views[s].ids for s in names]).astype(object)
    split = np.concatenate([np.full(len(views[s].ids), s, dtype=object) for s in names])
    class_names = np.asarray([*classes, None], dtype=object)
    label = np.concatenate([class_names[views[s].labels] for s in names])  # -1 -> None
    features = np.concatenate([views[s].features for s in names])
    texts = [t for s in names for t in _texts(store, s, views[s], texts or {})]
    groups = find_duplicates(features, texts, threshold=cfg.duplicate_threshold,
                             text_threshold=cfg.duplicate_text_threshold,
                             k=max(int(cfg.k), MIN_K), checks=checks)
    member = groups.group >= 0
    frame = pd.DataFrame({
        "group_id": groups.group[member], "id": ids[member], "split": split[member],
        "similarity": groups.similarity[member], "label": label[member],
        "text_hash": groups.text_hash[member]}, columns=COLUMNS
    ).sort_values(["group_id", "split", "id"], kind="stable", ignore_index=True)
    in_train = frame.groupby("group_id")["split"].transform(lambda s: (s == "train").any())
    leaked = frame[(frame["split"] == "eval") & in_train]
    conflicts = group_label_conflicts(frame["group_id"].to_numpy(), frame["label"].to_numpy())
    summary = {
        "groups": groups.n_groups,
        "rows_in_groups": int(member.sum()),
        "exact_rows": int(groups.exact.sum()),
        "near_candidates": groups.n_candidates,
        "near_rejected_by_text": groups.n_rejected,
        "eval_leaked_from_train": int(len(leaked)),
        "conflicting_groups": int(frame.loc[conflicts, "group_id"].nunique()),
        "threshold": float(cfg.duplicate_threshold),
        "text_threshold": float(cfg.duplicate_text_threshold),
    }
    log.info("score: %d duplicate groups over %d rows (%d eval rows leaked from train, %d "
             "groups with conflicting labels; the text check turned down %d of %d "
             "near-duplicate candidates)", summary["groups"], summary["rows_in_groups"],
             summary["eval_leaked_from_train"], summary["conflicting_groups"],
             groups.n_rejected, groups.n_candidates)
    return frame, summary


def write_duplicates(store: RunStore, views: dict, classes: list[str], cfg) -> dict:
    """Compute and write ``scores/duplicates.parquet``; returns its summary."""
    frame, summary = duplicate_table(store, views, classes, cfg)
    store.write_table(artifacts.DUPLICATES.path,
                      pa.Table.from_pandas(frame, preserve_index=False))
    return summary
