"""The tables a pull reads and writes (``labels/corrections.parquet``,
``labels/unmapped.parquet``, the second opinions), and how this pull's rows replace the earlier
rows of the tasks it recomputed."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from relabeler.corrections import CORRECTIONS_SCHEMA
from relabeler.store import RunStore

log = logging.getLogger("relabeler.plugin.pull")  # the pull's messages, as they were

UNMAPPED_SCHEMA = pa.schema([
    pa.field("project_id", pa.int64()),
    pa.field("task_id", pa.int64()),
    pa.field("annotation_id", pa.int64()),
    pa.field("id", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("annotation", pa.string()),
])

DELETED_CAUSE = "every answer of their task was deleted"

#: why an annotation known only from webhook events is not taken as an answer
UNCONFIRMED = ("known only from a webhook event, and no pull saw it on the server: not taken as "
               "an answer (an event anyone who reads the webhook's secret can post, or an "
               "answer the server lost before any pull); if it is real, have it answered again")
#: why an update known only from a webhook event, of an answer the server showed, is not taken
UNCONFIRMED_UPDATE = (
    "an update known only from a webhook event, of an answer the server no longer shows, and no "
    "pull saw the update on the server: not taken, the answer as the server last showed it is "
    "kept (an event anyone who reads the webhook's secret can post, or an update the server "
    "lost before any pull); if it is real, have it answered again")
#: what is left to do about an answer set aside whose task is gone from the server: push and
#: ``next`` do not send a sample of the manifest again
_BY_HAND = ("the task cannot be answered again, and push and `next` do not send the sample "
            "again: if the {} is real, write the label it gives into labels/corrections.parquet "
            "by hand (README, \"Corrections made outside Label Studio\")")
#: :data:`UNCONFIRMED` and :data:`UNCONFIRMED_UPDATE` where the task is gone from the server
UNCONFIRMED_GONE = (
    "the task is gone from Label Studio (deleted there, or its whole project), and the answer "
    "is known only from a webhook event: no pull saw it on the server, so it is not taken as "
    "an answer (an event anyone who reads the webhook's secret can post, or an answer given "
    "before the task was deleted and no pull since); " + _BY_HAND.format("answer"))
UNCONFIRMED_UPDATE_GONE = (
    "the task is gone from Label Studio (deleted there, or its whole project), and this update "
    "of an answer the server showed is known only from a webhook event: no pull saw it on the "
    "server, so it is not taken, the answer as the server last showed it is kept (an event "
    "anyone who reads the webhook's secret can post, or an update made before the task was "
    "deleted and no pull since); " + _BY_HAND.format("update"))

def rows_frame(rows: list[dict[str, Any]], schema: pa.Schema) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=schema.names) if rows else schema.empty_table().to_pandas()


def concat_frames(frames: Sequence[pd.DataFrame], schema: pa.Schema) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else rows_frame([], schema)


def task_keys(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(list(zip(frame["project_id"], frame["task_id"], strict=True)),
                     index=frame.index, dtype=object)


def merge_corrections(previous: pd.DataFrame, rows: list[dict[str, Any]],
                      refreshed: set[tuple[int, int]],
                      causes: Mapping[tuple[int, int], str] | None = None
                      ) -> tuple[pd.DataFrame, int]:
    """The corrections after this pull, and how many earlier ones were withdrawn.

    The rows of the ``refreshed`` (project id, task id) pairs are replaced by ``rows``; a
    refreshed task without a new row (no answer left) withdraws its earlier row, logged with
    its cause from ``causes`` (by task; :data:`DELETED_CAUSE` where none is given). One row per
    sample: the one with the latest ``updated_at``.
    """
    keys = task_keys(previous)
    stale = keys.isin(refreshed)
    withdrawn = previous[stale & ~keys.isin({(r["project_id"], r["task_id"]) for r in rows})]
    why = pd.Series([(causes or {}).get(key, DELETED_CAUSE) for key in keys[withdrawn.index]],
                    index=withdrawn.index, dtype=object)
    for cause, samples in withdrawn["id"].groupby(why, sort=True):
        log.warning("pull: %d corrections withdrawn: %s (samples %s)", len(samples), cause,
                    sorted(samples))
    kept = previous[~stale]
    corrections = concat_frames([kept, rows_frame(rows, CORRECTIONS_SCHEMA)], CORRECTIONS_SCHEMA)
    corrections = corrections.sort_values(["updated_at", "id"], kind="stable")
    duplicated = corrections["id"].duplicated(keep="last")
    if duplicated.any():
        log.warning("pull: %d samples were answered in more than one task; the latest answer "
                    "is kept", int(duplicated.sum()))
    return corrections[~duplicated], len(withdrawn)


def merge_unmapped(previous: pd.DataFrame, rows: list[dict[str, Any]],
                   refreshed: set[tuple[int, int]]) -> pd.DataFrame:
    """Earlier unmapped answers of the tasks not recomputed, then this pull's."""
    return merge_task_rows(previous, rows, refreshed, UNMAPPED_SCHEMA)


def merge_task_rows(previous: pd.DataFrame, rows: list[dict[str, Any]],
                     refreshed: set[tuple[int, int]], schema: pa.Schema) -> pd.DataFrame:
    kept = previous[~task_keys(previous).isin(refreshed)]
    return concat_frames([kept, rows_frame(rows, schema)], schema)


def read_frame(store: RunStore, artifact: str, schema: pa.Schema) -> pd.DataFrame:
    """The table at ``artifact`` with every column of ``schema``: one written by another tool
    may hold only the columns the README asks for (``id``, ``new_label``, ``action``), and the
    others read as missing (None), as in rows pull made from no task."""
    if not store.exists(artifact):
        return rows_frame([], schema)
    frame = store.read_table(artifact).to_pandas()
    missing = [name for name in schema.names if name not in frame.columns]
    return frame.assign(**dict.fromkeys(missing)) if missing else frame


def frame_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as a table of ``schema`` (missing values as nulls)."""
    records = frame[schema.names].astype(object).where(frame[schema.names].notna(), None)
    return pa.Table.from_pylist(records.to_dict("records"), schema=schema)
