"""``labels/corrections.parquet``: the people's answers, one row per sample.

``plugin.pull`` writes it and ``jobs.retrain`` and the report read it; its path, actions, schema
and the split of the eval audit's answers from the rest live here so that none imports another;
the path and columns come from :mod:`relabeler.artifacts`.
"""

from __future__ import annotations

import logging
import unicodedata

import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.errors import DataError, listed
from relabeler.queue_plan import EVAL_AUDIT

log = logging.getLogger(__name__)

CORRECTIONS = artifacts.CORRECTIONS.path
KEEP, RELABEL, DROP_ACTION, UNSURE = "keep", "relabel", "drop", "unsure"
# the reviewers' answers besides the classes (Label Studio choices): no class may be named so
ANSWER_NOT_SURE, ANSWER_DROP = "Not sure", "Drop: not a valid sample"
RESERVED_LABELS = (ANSWER_NOT_SURE, ANSWER_DROP)
ACTIONS = (KEEP, RELABEL, DROP_ACTION, UNSURE)
#: every column pull writes: the ones retrain needs, then the provenance
CORRECTIONS_SCHEMA = pa.schema([*artifacts.CORRECTIONS.schema, *artifacts.CORRECTIONS.optional])


def reserved_answer(label: str) -> str | None:
    """The reviewers' answer ``label`` is spelled like, case, outer spaces and Unicode form
    aside (NFKC, as data.validate compares two spellings of a class): ``" not sure"`` gives
    ``"Not sure"``; None for any other label."""
    key = unicodedata.normalize("NFKC", label).strip().casefold()
    return next((answer for answer in RESERVED_LABELS if answer.casefold() == key), None)


def corrections_fingerprint(table: pa.Table) -> str:
    """A short hash of ``labels/corrections.parquet``'s content: retrain records the one it
    used, and the report says when the answers have changed since.

    It hashes the rows as JSON (columns by name, values as Python gives them), not the Parquet
    bytes: those carry the pyarrow version and schema metadata, so an upgrade read as changed
    answers (retrain redone, the report calling its gain stale)."""
    import hashlib
    import json

    rows = table.select(sorted(table.column_names)).to_pylist()
    text = json.dumps(rows, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_eval_answers(corrections: pd.DataFrame, eval_ids: set[str]
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training and pool answers, eval answers): an answer is the eval audit's when its
    source says so or its id is an eval row, so no eval answer can reach the training set.
    retrain, ``next`` and the report split the answers with it."""
    source = corrections.get("source", pd.Series(None, index=corrections.index, dtype=object))
    is_eval = (source == EVAL_AUDIT) | corrections["id"].isin(eval_ids)
    return corrections[~is_eval], corrections[is_eval]  # indexes kept: rows of the file


def empty_label(value: object) -> bool:
    """Whether a ``new_label`` is missing: None, NaN or blank text."""
    if isinstance(value, str):
        return not value.strip()
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def refuse_repeated_ids(answers: pd.DataFrame, *, source: str = CORRECTIONS,
                        what: str = "id") -> None:
    """DataError naming the rows of the file (the index) of the first id answered more than
    once, and the other such ids: which answer counts is not for retrain to guess."""
    repeated = answers["id"][answers["id"].duplicated(keep=False)]
    if not len(repeated):
        return
    first = repeated.iloc[0]
    rows = listed([str(row) for row in repeated.index[repeated == first]])
    others = list(dict.fromkeys(repeated[repeated != first]))
    more = (f" (and {len(others)} more id{'s' * (len(others) > 1)}: "
            f"{', '.join(repr(i) for i in others[:5])}{', ...' * (len(others) > 5)})"
            if others else "")
    raise DataError(f"{source}, rows {rows}: {what} {first!r} appears more than once{more}")


def warn_other_old_labels(answers: pd.DataFrame, labels: pd.Series, *,
                          source: str = CORRECTIONS, split: str = "training") -> None:
    """Warn of the answers whose ``old_label`` is not their id's label in ``labels`` (id ->
    label of the ``split``), naming the first rows (the index) and counting the rest. pull
    writes the split's label there, so a difference means a file written by hand or for other
    data; retrain goes by the split's label. A blank old_label (a pool row's) and an id not in
    ``labels`` are not compared."""
    if "old_label" not in answers.columns:
        return
    given = answers["id"].map(labels)
    old = answers["old_label"]
    differs = answers[~old.map(empty_label) & given.notna()
                      & (old.astype(str) != given.astype(str))]
    if not len(differs):
        return
    shown = [f"row {row}, id {item.id!r}: old_label {item.old_label!r}, {split} label "
             f"{labels[item.id]!r}" for row, item in zip(differs.index[:3],
                                                        differs[:3].itertuples(), strict=True)]
    if len(differs) > 3:
        shown.append(f"and {len(differs) - 3} more")
    one = len(differs) == 1
    answer = "eval answer" if split == "eval" else "answer"
    log.warning("%s: %d %s%s give%s an old_label other than the %s label of %s id (%s): the "
                "file may have been written by hand or for other data; retrain goes by the %s "
                "labels", source, len(differs), answer, "" if one else "s", "s" if one else "",
                split, "its" if one else "their", "; ".join(shown), split)
