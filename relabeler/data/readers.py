"""Read a table from Parquet, CSV/TSV, JSONL or a Hugging Face dataset into object columns.

Values keep the types the format can express (CSV cells are ``str``; JSONL and Parquet keep
ints, floats and bools); missing values are ``None``, so validation sees one null.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from relabeler.errors import DataError

# Format names by file suffix; ``fmt=`` takes the same names with or without the dot.
_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def is_null(value: object) -> bool:
    """True for ``None``, ``pd.NA``, ``pd.NaT`` and float NaN: what each format uses for missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def read_table(path: str | os.PathLike, *, fmt: str | None = None) -> pd.DataFrame:
    """Read a table from a file or a Hugging Face dataset.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.parquet``/``.pq``, ``.csv``, ``.tsv`` or ``.jsonl``/``.ndjson`` file, or
        ``"hf:NAME[:SPLIT]"`` (split defaults to ``train``; needs ``pip install datasets``).
    fmt : str, optional
        Format to use instead of the one the suffix implies: ``parquet``, ``pq``, ``csv``,
        ``tsv``, ``jsonl`` or ``ndjson``.

    Returns
    -------
    pandas.DataFrame
        Object-dtype columns holding the values the format can express (CSV cells are ``str``,
        JSONL and Parquet keep ints, floats and bools); missing values are ``None``. In CSV/TSV
        only an empty field is missing: a text reading ``NA`` stays ``"NA"``.

    Raises
    ------
    DataError
        The file is missing or unreadable, its format is unknown, or a JSONL line is not a
        JSON object (the message names the 1-based line number).
    """
    if isinstance(path, str) and path.startswith("hf:"):
        return _read_hf(path)
    file = Path(path)
    if not file.exists():
        raise DataError(f"cannot read file {file}: no such file")
    kind = _table_format(file, fmt)
    try:
        if kind == "parquet":
            return _arrow_to_frame(pq.read_table(file))
        if kind == "jsonl":
            return _read_jsonl(file)
        return _read_csv(file, sep="\t" if kind == "tsv" else ",")
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"cannot read file {file} as {kind}: not UTF-8 ({exc})") from exc
    except (OSError, ValueError, pa.ArrowException) as exc:
        # pandas' parser errors and pyarrow's ArrowInvalid are ValueErrors.
        raise DataError(f"cannot read file {file} as {kind}: {exc}") from exc


def _table_format(file: Path, fmt: str | None) -> str:
    if fmt is not None:
        key = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
        if key not in _FORMATS:
            raise DataError(
                f"cannot read file {file}: unknown fmt {fmt!r} "
                f"(known: {', '.join(sorted({k[1:] for k in _FORMATS}))})"
            )
        return _FORMATS[key]
    suffix = file.suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(
            f"cannot read file {file}: unknown suffix {suffix or '(none)'!r} "
            f"(known: {', '.join(_FORMATS)}; or pass fmt=)"
        )
    return _FORMATS[suffix]


def _arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    # to_pylist keeps ints as ints even next to nulls (pandas would make them floats).
    return pd.DataFrame(
        {
            name: pd.Series(table.column(name).to_pylist(), dtype=object)
            for name in table.column_names
        }
    )


def _read_csv(file: Path, *, sep: str) -> pd.DataFrame:
    frame = pd.read_csv(
        file, sep=sep, dtype=object, keep_default_na=False, na_values=[""], encoding="utf-8"
    )
    return pd.DataFrame(
        {
            name: pd.Series([None if is_null(v) else v for v in frame[name]], dtype=object)
            for name in frame.columns
        }
    )


def _read_jsonl(file: Path) -> pd.DataFrame:
    records: list[dict[str, Any]] = []
    with open(file, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"cannot read file {file}: line {lineno} is not valid JSON "
                    f"({exc.msg} at column {exc.colno})"
                ) from exc
            if not isinstance(record, dict):
                raise DataError(
                    f"cannot read file {file}: line {lineno} is a JSON {type(record).__name__}, "
                    "expected an object"
                )
            records.append(record)
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return pd.DataFrame(
        {name: pd.Series([r.get(name) for r in records], dtype=object) for name in names}
    )


def _read_hf(spec: str) -> pd.DataFrame:
    name, _, split = spec[len("hf:") :].partition(":")
    if not name:
        raise DataError(f"cannot read {spec!r}: expected 'hf:NAME[:SPLIT]'")
    split = split or "train"
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"reading {spec!r} needs the Hugging Face datasets package: pip install datasets"
        ) from exc
    try:
        hf_dataset = datasets.load_dataset(name, split=split)
    except Exception as exc:  # datasets raises many unrelated types; re-raised with context
        raise DataError(
            f"cannot load Hugging Face dataset {name!r} split {split!r}: {exc}"
        ) from exc
    frame = hf_dataset.to_pandas()
    columns = {}
    for column in frame.columns:
        values = [None if is_null(v) else v for v in frame[column].tolist()]
        feature = hf_dataset.features.get(column)
        if isinstance(feature, datasets.ClassLabel):
            # Class ids become names; -1 marks an unlabelled row in HF test splits.
            values = [None if v is None or v < 0 else feature.int2str(int(v)) for v in values]
        columns[column] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)
