"""The dataset's tables as the run directory stores them, and back.

``dataset/{train,eval,pool}.parquet`` (string ``id``, ``text``, ``label``; ``label`` nullable
only in pool; extra columns such as ``true_label`` travel along) and ``dataset/rejected.parquet``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.data.readers import is_null

if TYPE_CHECKING:
    from relabeler.data.load import LoadedDataset

def _split_schema(*, label_nullable: bool) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("label", pa.string(), nullable=label_nullable),
        ]
    )


REJECTED_SCHEMA = pa.schema(
    [
        pa.field("row", pa.int64(), nullable=False),
        pa.field("line", pa.int64(), nullable=True),  # null where the source has no lines
        pa.field("source", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)


def _frame_to_arrow(frame: pd.DataFrame, schema: pa.Schema, name: str) -> pa.Table:
    arrays = []
    for field in schema:
        if field.name not in frame.columns:
            raise ValueError(
                f"{name}: missing column {field.name!r} (columns: {list(frame.columns)})"
            )
        values = [None if is_null(v) else v for v in frame[field.name].tolist()]
        array = pa.array(values, type=field.type)
        if not field.nullable and array.null_count:
            raise ValueError(f"{name}: column {field.name!r} has {array.null_count} nulls")
        arrays.append(array)
    fields = list(schema)
    # extra columns (the truth kept beside injected noise, a loader's metadata) travel along
    for column in frame.columns:
        if column not in schema.names:
            values = [None if is_null(v) else v for v in frame[column].tolist()]
            try:
                array = pa.array(values)
            except (pa.ArrowException, OverflowError):
                # a source column of mixed types (or of integers past 64 bits) is kept as text
                # rather than failing the stage
                array = pa.array([None if v is None else str(v) for v in values], pa.string())
            if pa.types.is_nested(array.type):
                # objects and lists (a JSONL source's) are kept as JSON text: Parquet cannot
                # store some of them (an empty object), and no stage reads inside them
                array = pa.array([None if v is None else json.dumps(v, default=str)
                                  for v in values], pa.string())
            arrays.append(array)
            fields.append(pa.field(str(column), array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def write_split_tables(ds: LoadedDataset) -> dict[str, pa.Table]:
    """Arrow tables of a dataset as the run directory stores them.

    Returns
    -------
    dict of str to pyarrow.Table
        ``dataset/train.parquet``, ``dataset/eval.parquet``, ``dataset/pool.parquet``: string
        columns ``id``, ``text``, ``label`` (``label`` nullable only in pool);
        ``dataset/rejected.parquet``: ``row``, ``line`` (int64, null where the source has no
        lines), ``source``, ``reason`` (string).
    """
    tables = {
        artifacts.SPLIT(split=split): _frame_to_arrow(
            frame, _split_schema(label_nullable=split == "pool"), split
        )
        for split, frame in (("train", ds.train), ("eval", ds.eval), ("pool", ds.pool))
    }
    tables[artifacts.REJECTED.path] = _frame_to_arrow(ds.rejected, REJECTED_SCHEMA, "rejected")
    return tables


def split_table(frame: pd.DataFrame, split: str) -> pa.Table:
    """One split's frame (``train``, ``eval`` or ``pool``) as the run directory stores it, for
    stages that rewrite a split (simulations)."""
    return _frame_to_arrow(frame, _split_schema(label_nullable=split == "pool"), split)


_NULLABLE = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
             pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(),
             pa.uint16(): pd.UInt16Dtype(), pa.uint32(): pd.UInt32Dtype(),
             pa.uint64(): pd.UInt64Dtype()}


def read_split(table: pa.Table) -> pd.DataFrame:
    """Inverse of :func:`write_split_tables` for one table.

    Returns
    -------
    pandas.DataFrame
        String columns as object dtype with ``None`` for nulls, an integer column with nulls as
        pandas' nullable integer of its width (rejected's ``line``: Int64; pandas would make
        its numbers floats), other columns as pandas makes them (``row`` is int64): equal to
        the frame the table was written from.
    """
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
        elif pa.types.is_integer(column.type) and column.null_count:
            # the nullable dtype of the column's own width and sign (a uint64 hash past
            # 2**63 does not fit Int64)
            columns[name] = column.to_pandas(types_mapper=_NULLABLE.get)
        else:
            columns[name] = column.to_pandas()
    return pd.DataFrame(columns)
