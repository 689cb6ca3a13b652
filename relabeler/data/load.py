"""Read, validate and split a labelled text dataset: :func:`load_dataset`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from relabeler.data.split import stratified_sample, stratified_split
from relabeler.data.validate import (
    BadRows,
    Columns,
    Rejected,
    Source,
    check_label_spellings,
    check_reserved_labels,
    drop_duplicate_ids,
    open_source,
    stage_rows,
)
from relabeler.errors import DataError

logger = logging.getLogger(__name__)

ON_BAD_ROWS = ("fail", "skip")


@dataclass
class LoadedDataset:
    """A validated dataset split into train, eval and pool.

    Attributes
    ----------
    train, eval : pandas.DataFrame
        Columns ``id``, ``text``, ``label``, all ``str`` (object dtype).
    pool : pandas.DataFrame
        Columns ``id``, ``text``, ``label``; ``label`` is ``None`` everywhere (object dtype).
    classes : list of str
        Sorted class names seen in ``train``.
    rejected : pandas.DataFrame
        Columns ``row`` (int), ``source`` (str), ``reason`` (str); empty unless
        ``on_bad_rows="skip"`` dropped rows.
    """

    train: pd.DataFrame
    eval: pd.DataFrame
    pool: pd.DataFrame
    classes: list[str]
    rejected: pd.DataFrame


def _split_frame(records: list[dict[str, Any]], *, with_labels: bool) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": pd.Series([r["id"] for r in records], dtype=object),
            "text": pd.Series([r["text"] for r in records], dtype=object),
            "label": pd.Series(
                [r["label"] if with_labels else None for r in records], dtype=object
            ),
        }
    )
    extra_names = list(dict.fromkeys(name for r in records for name in r.get("extra", {})))
    for name in extra_names:
        frame[name] = pd.Series([r["extra"].get(name) for r in records], dtype=object)
    if not with_labels and any(r["label"] is not None for r in records):
        # a pool carved from labeled data keeps the hidden label beside it: simulations
        # answer as oracle annotators from it; nothing trains on it
        frame["true_label"] = pd.Series([r["label"] for r in records], dtype=object)
    return frame


def load_dataset(
    source: str,
    *,
    id_col: str | None = "id",
    text_col: str = "text",
    label_col: str = "label",
    split_col: str | None = None,
    eval_fraction: float = 0.2,
    pool_fraction: float = 0.0,
    sample: int | None = None,
    seed: int = 0,
    on_bad_rows: str = "fail",
    eval_source: str | None = None,
    pool_source: str | None = None,
    require_id: bool = False,
) -> LoadedDataset:
    """Read, validate and split a labelled text dataset.

    Parameters
    ----------
    source : str
        A file, local or an fsspec URI (see :func:`read_table`), ``"hf:NAME[:SPLIT]"`` or a
        demo dataset name (``sms-spam``, ``bbc-news``, ``drug-review``).
    id_col, text_col, label_col : str
        The source's column names; the output columns are always ``id``, ``text``, ``label``.
        With ``id_col=None``, or the default ``"id"`` absent from the source (logged once at
        WARNING), ids are generated as ``"r" + sha1(f"{row}\\x00{text}")[:16]``
        (``eval_source``/``pool_source`` rows prefix ``"eval\\x00"``/``"pool\\x00"`` so their
        ids cannot collide with the source's).
        Ids and labels are cast to ``str`` (``0`` and ``0.0`` give ``"0"``); labels that would
        merge or differ only in spelling (``1`` and ``"1"``, ``True`` and ``"true"``,
        ``"spam"`` and ``"Spam"``) are a :class:`DataError` naming the values and rows.
    split_col : str, optional
        Column holding ``train``, ``eval`` or ``pool`` per row; the fractions are then ignored.
    eval_fraction, pool_fraction : float
        Used when no split column or file decides: per class (stratified), seeded, and at least
        one row of every class stays in train. Pool rows lose their labels.
    sample : int, optional
        First take a seeded stratified subsample of this many rows of the source.
    seed : int
        Seed of the ``np.random.default_rng`` that samples and splits.
    on_bad_rows : {"fail", "skip"}
        ``fail`` raises :class:`DataError` at the first bad row. ``skip`` quarantines row-level
        problems (a broken CSV record or JSONL line, null id, null/empty/non-string text, null
        label, bad split value, duplicate id after its first row, eval label unknown to train)
        into ``rejected`` and logs a count at WARNING. Missing columns, unreadable files,
        labels that differ only in spelling and a single-class train set always raise.
    eval_source, pool_source : str, optional
        Files (paths or fsspec URIs) holding the eval rows and the pool rows (same column
        names; a pool file needs no label column). A split not given as a file is carved
        from ``source`` by its fraction.
    require_id : bool
        The caller chose ``id_col`` (``--id-col id``): a source without that column is a
        :class:`DataError` even when it is the default ``"id"``.

    Returns
    -------
    LoadedDataset
        Rows keep the source order within each split.

    Raises
    ------
    DataError
        Bad data; the message names the file, the 0-based data row and the column.
    ValueError
        Bad arguments (``on_bad_rows``, fractions, ``sample``, split options that conflict).
    """
    eval_fraction, pool_fraction = _check_arguments(
        on_bad_rows, eval_fraction, pool_fraction, sample, split_col, eval_source, pool_source
    )
    columns = Columns(id=id_col, text=text_col, label=label_col, split=split_col,
                      id_given=require_id)
    bad_rows = BadRows(on_bad_rows)
    main = open_source(source, "source")
    sources = [(main, None, "")]
    if eval_source is not None:
        sources.append((open_source(eval_source, "eval_source"), "eval", "eval\x00"))
    if pool_source is not None:
        sources.append((open_source(pool_source, "pool_source"), "pool", "pool\x00"))
    records = []
    for part, fixed_split, salt in sources:
        records += stage_rows(part, columns, bad_rows, fixed_split=fixed_split, id_salt=salt)
    generated = [part.where for part, _, _ in sources
                 if id_col == "id" and not require_id and "id" not in part.frame.columns]
    if generated:
        logger.warning("%s: no 'id' column and no id column chosen: ids are generated from "
                       "each row's position and text, so they change when rows move (set "
                       "data.id_col or --id-col to a column of stable ids)",
                       " and ".join(generated))
    records = _check_records(records, columns, bad_rows)

    rng = np.random.default_rng(seed)
    main_records = _sample(main, [r for r in records if r["source"] is main], sample, rng)
    if split_col is None:
        splits = stratified_split(
            [r["label"] for r in main_records],
            0.0 if eval_source is not None else eval_fraction,
            0.0 if pool_source is not None else pool_fraction,
            rng,
        )
        for record, split in zip(main_records, splits, strict=True):
            record["split"] = split
    records = main_records + [r for r in records if r["source"] is not main]

    train = [r for r in records if r["split"] == "train"]
    train_classes = sorted({r["label"] for r in train})
    evaluation = _known_eval(records, train_classes, bad_rows, label_col)
    pool = [r for r in records if r["split"] == "pool"]
    if bad_rows.rejected:
        summary = ", ".join(f"{n} {problem}" for problem, n in bad_rows.counts.most_common())
        logger.warning("skipped %d bad rows of %s: %s", len(bad_rows.rejected), main.where, summary)
    _check_train(main, train, train_classes, label_col)
    if not evaluation and (eval_fraction > 0 or eval_source or split_col):
        logger.warning("%s: the eval set is empty", main.where)  # asked for, none came
    logger.info(
        "loaded %s: %d train, %d eval, %d pool rows, %d classes",
        main.where,
        len(train),
        len(evaluation),
        len(pool),
        len(train_classes),
    )
    # Records are in source order (the sample keeps it), so each split is too.
    return LoadedDataset(
        train=_split_frame(train, with_labels=True),
        eval=_split_frame(evaluation, with_labels=True),
        pool=_split_frame(pool, with_labels=False),
        classes=train_classes,
        rejected=bad_rows.frame(),
    )


def _check_records(records: list[dict[str, Any]], columns: Columns,
                   bad_rows: BadRows) -> list[dict[str, Any]]:
    """The checks across rows: duplicate ids (dropped after the first, or raised), labels that
    differ only in spelling, labels named like a reviewers' answer."""
    records = drop_duplicate_ids(records, columns, bad_rows)
    check_label_spellings(records, columns.label)
    check_reserved_labels(records, columns.label)
    return records


def check_frame(source: Source, columns: Columns, on_bad_rows: str = "fail"
                ) -> list[Rejected]:
    """Raise the :class:`DataError` :func:`load_dataset` would raise for ``source``'s rows,
    all of them taken as train rows, naming them as ``source`` does (a DataFrame given in
    Python: by its index labels, its columns by the arguments that chose them). Under
    ``skip``: the rows :func:`load_dataset` would leave out."""
    bad_rows = BadRows(on_bad_rows)
    records = stage_rows(source, columns, bad_rows, fixed_split="train", id_salt="")
    records = _check_records(records, columns, bad_rows)
    _check_train(source, records, sorted({r["label"] for r in records}), columns.label)
    return bad_rows.rejected


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_arguments(
    on_bad_rows: str,
    eval_fraction: float,
    pool_fraction: float,
    sample: int | None,
    split_col: str | None,
    eval_source: str | None,
    pool_source: str | None,
) -> tuple[float, float]:
    """Raise ValueError naming a bad argument; return the fractions as floats."""
    if on_bad_rows not in ON_BAD_ROWS:
        raise ValueError(f"on_bad_rows must be one of {ON_BAD_ROWS}, got {on_bad_rows!r}")
    eval_fraction = _check_fraction("eval_fraction", eval_fraction)
    pool_fraction = _check_fraction("pool_fraction", pool_fraction)
    if eval_fraction + pool_fraction >= 1:
        raise ValueError(
            f"eval_fraction + pool_fraction must be < 1, got {eval_fraction} + {pool_fraction}"
        )
    if sample is not None and (
        isinstance(sample, bool) or not isinstance(sample, int) or sample < 1
    ):
        raise ValueError(f"sample must be a positive int or None, got {sample!r}")
    if split_col is not None and (eval_source is not None or pool_source is not None):
        raise ValueError("split_col cannot be combined with eval_source or pool_source")
    return eval_fraction, pool_fraction


def _sample(
    main: Source, records: list[dict[str, Any]], sample: int | None, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """A seeded stratified subsample of ``sample`` records, in source order (all if fewer)."""
    if sample is None:
        return records
    if sample >= len(records):
        logger.warning("sample=%d is a cap: %s has %d rows, all of them are used", sample,
                       main.where, len(records))
        return records
    # Pool rows of a split column have no label: they form their own stratum.
    keys = [r["label"] if r["label"] is not None else "\x00pool" for r in records]
    return [records[i] for i in stratified_sample(keys, sample, rng)]


def _known_eval(
    records: list[dict[str, Any]], train_classes: list[str], bad_rows: BadRows, label_col: str
) -> list[dict[str, Any]]:
    """The eval records whose label is a train class; the others are bad rows."""
    known = set(train_classes)
    evaluation = []
    for record in (r for r in records if r["split"] == "eval"):
        if record["label"] in known:
            evaluation.append(record)
        else:
            bad_rows.report(
                record["source"],
                record["row"],
                label_col,
                "unknown eval label",
                f" {record['label']!r} is not among the train labels ({', '.join(train_classes)})",
                line=record["line"],
            )
    return evaluation


def _check_train(
    main: Source, train: list[dict[str, Any]], train_classes: list[str], label_col: str
) -> None:
    if not train:
        raise DataError(f"{main.where}: the train set is empty")
    if len(train_classes) < 2:
        raise DataError(
            f"{main.where}, {main.column(label_col)}: the train set has a single class "
            f"{train_classes[0]!r} ({len(train)} rows); need at least 2 classes"
        )
