"""The score stage's distribution-bias step: shortcut tokens and class balance.

Reads ``dataset/train.parquet`` (texts and labels), ``train/eval_predictions.parquet`` (recall
per class, when present) and ``attributions.parquet`` (when present: ``attribute`` runs after
``score``, so the attribution column is filled when score runs again, e.g. ``--force`` in a later
round); writes

* ``scores/shortcuts.parquet``: the (token, class) pairs whose co-occurrence with the class is
  significantly above the class prior (:mod:`relabeler.selectors.shortcuts`), ranked by z and
  association merged; empty when none passes the threshold;
* ``scores/balance.parquet``: per class its training count and share, its eval count and the
  model's eval recall.

The test's settings and outcome (alpha, pairs tested, threshold, pairs found) go into
``scores/summary.json`` under ``"shortcuts"``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.errors import StageError
from relabeler.selectors import shortcuts
from relabeler.store import RunStore

log = logging.getLogger(__name__)

def shortcut_frame(texts: list[str], labels: np.ndarray, classes: list[str], *,
                   min_count: int, alpha: float, top: int,
                   attributed: list[tuple[int, list[tuple[str, float]]]] | None = None
                   ) -> tuple[pd.DataFrame, dict]:
    """The shortcuts table and its summary for training ``texts`` with class ids ``labels``."""
    found = shortcuts.token_class_stats(texts, labels, num_classes=len(classes),
                                        min_count=min_count, alpha=alpha,
                                        top=top if top > 0 else None)
    attribution = np.full(len(found), np.nan)
    if attributed and len(found):
        attribution = shortcuts.attribution_shares(found.tokens, found.classes, attributed,
                                                   num_classes=len(classes))
    names = np.asarray(classes, dtype=object)
    frame = pd.DataFrame({
        "token": pd.Series(found.tokens, dtype=object),
        "class": pd.Series(names[found.classes], dtype=object),
        "count": found.count.astype(np.int64),
        "class_count": found.class_count.astype(np.int64),
        "class_share": found.class_share.astype(np.float64),
        "z": found.z.astype(np.float64),
        "p_value": found.p_value.astype(np.float64),
        "association": found.association.astype(np.float64),
        "attribution": attribution.astype(np.float64),
        "rank": np.arange(1, len(found) + 1, dtype=np.int64),
    })
    summary = {"alpha": alpha, "min_count": min_count, "n_tested": found.n_tested,
               "p_threshold": None if np.isnan(found.p_threshold) else found.p_threshold,
               "n_significant": found.n_significant, "n_kept": len(found),
               "attributed_samples": len(attributed or [])}
    return frame, summary


def balance_frame(labels: np.ndarray, classes: list[str],
                  eval_predictions: pd.DataFrame | None) -> pd.DataFrame:
    """Per class: training count and share, eval count and the model's eval recall (NaN
    without eval predictions or eval rows of the class)."""
    counts = np.bincount(labels, minlength=len(classes))
    eval_count = np.zeros(len(classes), dtype=np.int64)
    recall = np.full(len(classes), np.nan)
    if eval_predictions is not None and len(eval_predictions):
        for i, name in enumerate(classes):
            rows = eval_predictions[eval_predictions["label"] == name]
            eval_count[i] = len(rows)
            if len(rows):
                recall[i] = float((rows["pred"] == name).mean())
    return pd.DataFrame({"class": pd.Series(classes, dtype=object),
                         "count": counts.astype(np.int64),
                         "share": counts / max(int(counts.sum()), 1),
                         "eval_count": eval_count, "eval_recall": recall})


def _attributed(store: RunStore, index: dict[str, int]) -> list[tuple[int, list]]:
    """(class id, [(span text, score)]) per attributed (sample, target label)."""
    if not store.exists(artifacts.ATTRIBUTIONS.path):
        return []
    table = store.read_table(artifacts.ATTRIBUTIONS.path, columns=["id", "target_label", "spans"])
    out, seen = [], set()
    for sample, target, spans in zip(*(table.column(c).to_pylist() for c in table.column_names),
                                     strict=True):
        if target not in index or (sample, target) in seen:
            continue
        seen.add((sample, target))
        out.append((index[target], [(s["text"], s["score"]) for s in spans or []]))
    return out


def score_shortcuts(store: RunStore, classes: list[str], cfg) -> dict:
    """Write the shortcuts and balance tables; returns the summary for summary.json."""
    tables, summary = shortcut_tables(store, classes, cfg)
    for artifact, table in tables.items():
        store.write_table(artifact, table)
    return summary


def shortcut_tables(store: RunStore, classes: list[str], cfg) -> tuple[dict, dict]:
    """The shortcuts and balance tables (artifact path -> table), unwritten, and the summary
    for summary.json."""
    train = store.read_table(artifacts.TRAIN.path, columns=["text", "label"]).to_pandas()
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(train["label"].dropna()) - set(index))
    if unknown or train["label"].isna().any():
        raise StageError(f"{artifacts.TRAIN.path} has labels the model does not know: "
                         f"{unknown or [None]}")
    labels = train["label"].map(index).to_numpy(dtype=np.int64)
    texts = train["text"].fillna("").astype(str).tolist()
    try:
        frame, summary = shortcut_frame(
            texts, labels, classes, min_count=cfg.shortcut_min_count, alpha=cfg.shortcut_alpha,
            top=cfg.shortcut_top, attributed=_attributed(store, index))
    except ValueError as exc:
        raise StageError(f"score: shortcuts: {exc}") from exc
    predictions = (store.read_table(artifacts.EVAL_PREDICTIONS.path,
                                    columns=["label", "pred"]).to_pandas()
                   if store.exists(artifacts.EVAL_PREDICTIONS.path) else None)
    balance = balance_frame(labels, classes, predictions)
    # two significant digits, as the report writes the threshold
    threshold = summary["p_threshold"]
    log.info("score: %d shortcut token(s) pass p < %s (alpha %g over %d token-class pairs)",
             len(frame), "none" if threshold is None else f"{threshold:.2g}",
             cfg.shortcut_alpha, summary["n_tested"])
    return {artifacts.SHORTCUTS.path: pa.Table.from_pandas(frame, preserve_index=False),
            artifacts.BALANCE.path: pa.Table.from_pandas(balance, preserve_index=False)}, summary
