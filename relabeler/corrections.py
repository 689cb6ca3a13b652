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
