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
    used, and the report says when the answers have changed since."""
    import hashlib
    import io

    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return hashlib.sha256(sink.getvalue()).hexdigest()[:16]
