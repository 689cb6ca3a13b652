"""``labels/corrections.parquet``: the people's answers, one row per sample.

``plugin.pull`` writes it and ``jobs.retrain`` reads it; its path, actions and schema live here
so that neither imports the other. This module imports nothing from the project.
"""

from __future__ import annotations

import pyarrow as pa

CORRECTIONS = "labels/corrections.parquet"
KEEP, RELABEL, DROP_ACTION, UNSURE = "keep", "relabel", "drop", "unsure"
ACTIONS = (KEEP, RELABEL, DROP_ACTION, UNSURE)

CORRECTIONS_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("old_label", pa.string()),
    pa.field("new_label", pa.string()),
    pa.field("action", pa.string(), nullable=False),
    pa.field("annotators", pa.list_(pa.string())),
    pa.field("n_annotations", pa.int64()),
    pa.field("agreement", pa.float64()),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    pa.field("source", pa.string()),
    pa.field("needs_review", pa.bool_()),
    pa.field("n_skipped", pa.int64()),
    pa.field("votes", pa.list_(pa.string())),
    pa.field("comments", pa.list_(pa.string())),
    pa.field("annotation_ids", pa.list_(pa.int64())),
    pa.field("project_id", pa.int64()),
    pa.field("task_id", pa.int64()),
    pa.field("via", pa.string()),
])
