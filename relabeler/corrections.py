"""``labels/corrections.parquet``: the people's answers, one row per sample.

``plugin.pull`` writes it and ``jobs.retrain`` reads it; its path, actions and schema live here
so that neither imports the other; the path and columns come from :mod:`relabeler.artifacts`.
"""

from __future__ import annotations

import pyarrow as pa

from relabeler import artifacts

CORRECTIONS = artifacts.CORRECTIONS.path
KEEP, RELABEL, DROP_ACTION, UNSURE = "keep", "relabel", "drop", "unsure"
ACTIONS = (KEEP, RELABEL, DROP_ACTION, UNSURE)
#: every column pull writes: the ones retrain needs, then the provenance
CORRECTIONS_SCHEMA = pa.schema([*artifacts.CORRECTIONS.schema, *artifacts.CORRECTIONS.optional])


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
