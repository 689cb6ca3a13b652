"""Row-level validation of a source: ids, texts, labels and split values as ``str``.

A bad row either raises :class:`DataError` naming the source, the line where its record
starts (text files), the 0-based data row and the column (``on_bad_rows="fail"``) or is
quarantined as a :class:`Rejected` (``"skip"``).
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from relabeler.corrections import RESERVED_LABELS, reserved_answer
from relabeler.data.demos import DEMO_DATASETS
from relabeler.data.readers import BadLine, is_null, is_uri, read_table_rows
from relabeler.errors import DataError
from relabeler.redact import mask_url

SPLITS = ("train", "eval", "pool")

@dataclass(frozen=True)
class Rejected:
    """One row quarantined by ``on_bad_rows="skip"``.

    ``row`` is the 0-based data row in ``source`` (a path, ``hf:`` name or demo name),
    ``line`` the 1-based line of a text file where its record starts (None for Parquet,
    Hugging Face and demo datasets).
    """

    row: int
    source: str
    reason: str
    line: int | None = None


def locate(row: int, line: int | None) -> str:
    """How a message names a row: ``line 7 (data row 2)`` in a text file, else ``row 2``."""
    return f"row {row}" if line is None else f"line {line} (data row {row})"


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


#: the spellings of a missing value that pandas' read_csv and R's read.csv take for one
#: (lower case): a label that reads so is a row nobody labelled, not a class
MISSING_MARKERS = frozenset({"na", "n/a", "#n/a", "#n/a n/a", "#na", "nan", "-nan", "null",
                             "none", "<na>", "-1.#ind", "1.#ind", "-1.#qnan", "1.#qnan"})


#: separators, controls, format, surrogate, private-use and unassigned characters, combining marks
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn", "Mn"})


def _visible(text: str) -> bool:
    """Whether ``text`` holds a character a reader sees: not only spaces, controls, format
    characters (zero-width space, byte-order mark) and combining marks, which tokenize to
    nothing and would reach annotators as a blank task."""
    return any(unicodedata.category(c) not in _INVISIBLE for c in text)


#: U+0000: a text, id or label holding it cannot be stored by a Label Studio on PostgreSQL
#: (``\u0000 cannot be converted to text``: the import of every task of its batch fails, and a
#: task's panel holds its neighbours' texts), so it is a bad row. Other control characters are
#: kept: Label Studio stores and shows them, and the tokenizer reads them as it reads spaces.
NUL = "\x00"


def _nul_detail(value: str) -> str:
    at = value.index(NUL)
    return (f" at character {at} ({ascii(value[max(0, at - 20):at + 20])}): a Label Studio on "
            f"PostgreSQL cannot store it; remove it from the data, or replace it (U+FFFD)")


def _generated_id(row: int, text: object, salt: str = "") -> str:
    return "r" + hashlib.sha1(f"{salt}{row}\x00{text}".encode()).hexdigest()[:16]


#: names the dataset tables use themselves; a source column of that name is not carried along
RESERVED_COLUMNS = frozenset({"id", "text", "label", "split", "true_label", "flipped",
                              "shortcut", "undercover"})


@dataclass(frozen=True)
class Columns:
    """The source's column names for each output column (``id`` None = generated ids).
    ``id_given``: the id column was chosen, so it must exist even when it is the default
    ``"id"`` (which, not chosen, may be absent: ids are then generated)."""

    id: str | None
    text: str
    label: str
    split: str | None
    id_given: bool = False


@dataclass(frozen=True)
class Source:
    name: str  # path or name as given; goes to rejected.source (a URL's password masked)
    where: str  # how messages name it: "file x.csv", "demo dataset sms-spam"
    frame: pd.DataFrame
    rows: list[int] | None = None  # each frame row's data row in the file (None: the same)
    bad: tuple[BadLine, ...] = ()  # records the reader could not take as rows
    lines: list[int] | None = None  # each frame row's first line in a text file (None: no lines)
    #: a DataFrame given in Python: its index labels, by which messages name its rows
    index: list | None = None
    #: a DataFrame given in Python: the argument that chose each column, by which messages
    #: name it (``text='body'``; None: ``column 'body'``)
    arguments: dict[Any, str] | None = None

    def row(self, position: int) -> int:
        """The 0-based data row in the file of frame row ``position``."""
        return position if self.rows is None else self.rows[position]

    def line(self, position: int) -> int | None:
        """The 1-based line of a text file where frame row ``position`` starts; None when the
        source has no lines."""
        return None if self.lines is None else self.lines[position]

    def locate(self, row: int, line: int | None) -> str:
        """How a message names data row ``row``: by its index label in a DataFrame given in
        Python (``index 'k3'``), else by :func:`locate`."""
        if self.index is None:
            return locate(row, line)
        label = self.index[row]
        # a label that several rows carry is no place: their position is
        return f"index {label!r}" + (f" (position {row})" if label in self._repeated else "")

    @functools.cached_property
    def _repeated(self) -> set:
        """The index labels that more than one row of a DataFrame carries."""
        return set(pd.Index(self.index)[pd.Index(self.index).duplicated()])

    def column(self, name: object) -> str:
        """How a message names column ``name``: ``column 'body'``, or ``text='body'`` where an
        argument chose it."""
        argument = (self.arguments or {}).get(name)
        return f"column {name!r}" if argument is None else f"{argument}={name!r}"


def _file_source(name: str, where: str) -> Source:
    read = read_table_rows(name)
    return Source(name, where, read.frame, read.rows, tuple(read.bad), read.lines)


def open_source(source: str | os.PathLike, role: str) -> Source:
    name = os.fspath(source)
    if name.startswith("hf:"):
        return _file_source(name, f"Hugging Face dataset {name}")
    if is_uri(name) or Path(name).exists() or Path(name).is_symlink():
        return _file_source(name, f"file {mask_url(name)}")
    if role == "source" and name in DEMO_DATASETS:
        return Source(name, f"demo dataset {name}", DEMO_DATASETS[name]())
    demos = f" and is not a demo dataset ({', '.join(DEMO_DATASETS)})" if role == "source" else ""
    raise DataError(f"cannot read {role} {name!r}: no such file{demos}")


def _check_columns(source: Source, columns: Columns, *, label_needed: bool, split: bool) -> bool:
    """Raise on missing columns; return whether ids must be generated."""
    present = list(source.frame.columns)
    needed = [columns.text] + ([columns.label] if label_needed else [])
    if split and columns.split is not None:
        needed.append(columns.split)
    # The default "id" may be absent (ids are generated); a name the user chose may not.
    generate = columns.id is None or (columns.id == "id" and not columns.id_given
                                      and "id" not in present)
    if not generate:
        needed.insert(0, columns.id)
    for column in needed:
        if column not in present:
            near = [name for name in present
                    if str(name).strip().lstrip("\ufeff").strip() == str(column).strip()]
            hint = (f"; {near[0]!r} differs only by spaces or a byte-order mark" if near
                    else _separator_hint(present))
            raise DataError(
                f"{source.where} has no column {column!r} "
                f"(columns: {', '.join(map(repr, present)) or 'none'}){hint}"
            )
    return generate


def _separator_hint(present: list) -> str:
    """A word on a header read as one column that holds another separator (a ;-separated
    .csv, a tab-separated .csv): relabeler reads , in .csv and tabs in .tsv."""
    if len(present) != 1:
        return ""
    for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
        if sep in str(present[0]):
            return (f"; the header is one column holding {name}: relabeler reads commas in "
                    f".csv and tabs in .tsv files; save it with commas (or tabs, as .tsv)")
    return ""


class BadRows:
    """Raises on the first bad row (``fail``) or collects it into ``rejected`` (``skip``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.rejected: list[Rejected] = []
        self.counts: Counter[str] = Counter()

    def report(self, source: Source, row: int, column: str, problem: str, detail: str, *,
               line: int | None = None) -> None:
        if self.mode == "fail":
            raise DataError(f"{source.where}, {source.locate(row, line)}, "
                            f"{source.column(column)}: {problem}{detail}")
        self.rejected.append(Rejected(row, source.name, f"{problem}{detail}", line))
        self.counts[problem] += 1

    def report_line(self, source: Source, bad: BadLine) -> None:
        """A record the reader could not take as a row (a broken quote, a wrong field count,
        a line that is not JSON)."""
        if self.mode == "fail":
            hint = _separator_hint(list(source.frame.columns))
            raise DataError(f"{source.where}, {source.locate(bad.row, bad.line)}: {bad.problem}"
                            + (hint or " (--on-bad-rows skip quarantines such records)"))
        self.rejected.append(Rejected(bad.row, source.name, f"line {bad.line}: {bad.problem}",
                                      bad.line))
        self.counts["broken record"] += 1

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "row": pd.Series([r.row for r in self.rejected], dtype="int64"),
                # Int64 only where a source has no lines: int64 otherwise, as read_split gives
                "line": pd.Series([r.line for r in self.rejected],
                                  dtype="Int64" if any(r.line is None for r in self.rejected)
                                  else "int64"),
                # rejected.parquet is a file of the run folder: a source URL goes without its
                # password
                "source": pd.Series([mask_url(r.source) for r in self.rejected], dtype=object),
                "reason": pd.Series([r.reason for r in self.rejected], dtype=object),
            }
        )


def stage_rows(
    source: Source,
    columns: Columns,
    bad_rows: BadRows,
    *,
    fixed_split: str | None,
    id_salt: str,
) -> list[dict[str, Any]]:
    """Validate the row-level content of one source; return its good rows as records.

    ``fixed_split`` is the split every row goes to (``None``: decided later or by the split
    column). Pool rows need no label; their labels are dropped.
    """
    for bad in source.bad:
        bad_rows.report_line(source, bad)
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
        ids: list[object] = [_generated_id(source.row(position), text, id_salt)
                             for position, text in enumerate(texts)]
    else:
        ids = frame[columns.id].tolist()

    # the source's other columns travel along (a simulation holds out a sub-population by one)
    named = {columns.id, columns.text, columns.label, columns.split}
    extra_names = [c for c in frame.columns
                   if c not in named and str(c) not in RESERVED_COLUMNS]
    extras = [dict(zip(map(str, extra_names), values, strict=True))
              for values in zip(*(frame[c].tolist() for c in extra_names), strict=True)] \
        if extra_names else [{}] * n_rows
    staged = []
    for position, (raw_id, text, raw_label, split) in enumerate(
        zip(ids, texts, labels, splits, strict=True)
    ):
        row, line = source.row(position), source.line(position)
        report = _row_reporter(bad_rows, source, row, line)
        item_id = None if is_null(raw_id) else _scalar_to_str(raw_id)
        if item_id is None and not is_null(raw_id):
            report(columns.id or "id", "bad id", f" ({type(raw_id).__name__} {raw_id!r:.40}): "
                   f"ids must be strings, integers or whole floats")
            continue
        if item_id is None or not item_id.strip():
            report(
                columns.id or "id",
                "null id",
                f" (value {raw_id!r})" if not is_null(raw_id) else "",
            )
            continue
        if NUL in item_id:
            report(columns.id or "id", "NUL character", _nul_detail(item_id))
            continue
        if is_null(text):
            report(columns.text, "null text", "")
            continue
        if not isinstance(text, str):
            report(columns.text, "non-string text", f" ({type(text).__name__} {text!r:.40})")
            continue
        if not text.strip():
            report(columns.text, "empty text", f" (value {text!r:.40})")
            continue
        if not _visible(text):
            report(columns.text, "empty text", f" (only invisible characters: {ascii(text):.40})")
            continue
        if NUL in text:
            report(columns.text, "NUL character", _nul_detail(text))
            continue
        if uses_split_col and (not isinstance(split, str) or split not in SPLITS):
            report(columns.split, "bad split", f" {split!r} (expected one of {', '.join(SPLITS)})")
            continue
        label = None
        if split != "pool":
            if is_null(raw_label):
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
            if NUL in label:
                report(columns.label, "NUL character", _nul_detail(label))
                continue
            control = next((c for c in label if unicodedata.category(c) == "Cc"), None)
            if control is not None:
                report(columns.label, "control character in label", (
                    f" ({ascii(control)} in {ascii(label)[:60]}): a class name is a value of "
                    f"Label Studio's labeling config (XML), which cannot hold it as it is; "
                    f"rename the class"))
                continue
            if isinstance(raw_label, str) and label.strip().lower() in MISSING_MARKERS:
                report(columns.label, "missing-value label", (
                    f" (value {label!r}: pandas and R write and read a missing value so; a "
                    f"class of that name would hold the rows nobody labelled: rename the "
                    f"class, or fill the labels in)"))
                continue
        staged.append(
            {
                "id": item_id,
                "text": text,
                "label": label,
                "raw_label": raw_label,
                "split": split,
                "row": row,
                "line": line,
                "source": source,
                "extra": extras[position],
            }
        )
    return staged


def _row_reporter(bad_rows: BadRows, source: Source, row: int,
                  line: int | None) -> Callable[[str, str, str], None]:
    return lambda column, problem, detail: bad_rows.report(source, row, column, problem, detail,
                                                           line=line)


def drop_duplicate_ids(
    records: list[dict[str, Any]], columns: Columns, bad_rows: BadRows
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
            f" {record['id']!r} (first at {first['source'].locate(first['row'], first['line'])}"
            f"{elsewhere})",
            line=record["line"],
        )
    return kept


def _label_kind(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    return type(value).__name__


_INTEGER = re.compile(r"[+-]?(0|[1-9][0-9]*)")
#: an integer written as a decimal or with an exponent (``1.0``, ``1.``, ``1e0``, ``10E-1``)
_NUMBER = re.compile(r"[+-]?[0-9]{1,30}(\.[0-9]{0,30})?([eE][+-]?[0-9]{1,2})?")


def _label_key(label: str) -> str:
    """What two spellings of one class share: NFKC (``café`` typed with a combining accent
    looks the same but is another class), case and outer spaces aside; an integer written as
    a decimal or with an exponent (``1.0``, ``1e0``) keyed as the integer, so that it meets
    its plain spelling (``1``; a CSV reads both as text). Other decimals keep their spelling
    (``1.1`` and ``1.10`` may be two versions), and so do integers with leading zeros
    (``01`` is a code)."""
    key = unicodedata.normalize("NFKC", label).strip().casefold()
    if _INTEGER.fullmatch(key):
        return str(int(key))
    if not _NUMBER.fullmatch(key) or re.match(r"[+-]?0[0-9]", key):
        return key
    value = decimal.Decimal(key)
    return str(int(value)) if value == value.to_integral_value() else key


def check_reserved_labels(records: list[dict[str, Any]], label_col: str) -> None:
    """Raise when a label is one of the reviewers' extra answers ("Not sure", "Drop: not a
    valid sample"), case, outer spaces and Unicode form aside (``" not sure"`` too): Label
    Studio would show the class and the answer as one choice, so push refuses such a class;
    here it is refused before anything trains, naming its first row."""
    found: dict[str, list] = {}
    for record in records:
        if record["label"] is not None and reserved_answer(record["label"]):
            found.setdefault(record["label"], [record, 0])[1] += 1
    if not found:
        return
    def rows(n: int) -> str:
        return f"{n} row{'s' if n != 1 else ''}"

    label, (first, count) = next(iter(found.items()))
    others = "".join(f"; {other!r} too, {rows(n)}" for other, (_, n) in list(found.items())[1:])
    answer = reserved_answer(label)
    exact = all(reserved_answer(other) == other for other in found)
    raise DataError(
        f"{first['source'].where}, {first['source'].locate(first['row'], first['line'])}, "
        f"{first['source'].column(label_col)}: label {label!r} ({rows(count)}{others}) "
        f"{'is' if label == answer else f'reads as {answer!r},'} an answer reviewers give in "
        f"Label Studio besides the classes ({' and '.join(map(repr, RESERVED_LABELS))})"
        f"{'' if exact else ', case, outer spaces and Unicode form aside'}; rename the class "
        "in the source")


def check_label_spellings(records: list[dict[str, Any]], label_col: str) -> None:
    """Raise when labels that differ in type or spelling would become one class, or two that
    look like one: ``1``, ``"1"`` and ``1.0`` (all ``"1"`` as text); ``True``, ``"true"`` and
    ``"True"``; ``"spam"`` and ``"Spam "``; ``"café"`` written with a combining accent and
    with a precomposed ``é`` (NFKC). Labels are taken as given, so these are errors
    naming every variant with its first row and count; fix the source to one spelling.
    """
    groups: dict[str, dict[tuple[str, str], list]] = {}
    for record in records:
        if record["label"] is None:
            continue
        raw = record["raw_label"]
        # a label in another normal form looks the same printed: its escapes tell it apart
        shown = (ascii(raw) if isinstance(raw, str) and unicodedata.normalize("NFC", raw) != raw
                 else repr(raw.item() if isinstance(raw, np.generic) else raw))
        variant = (_label_kind(raw), shown)
        key = _label_key(record["label"])
        seen = groups.setdefault(key, {})
        if variant in seen:
            seen[variant][1] += 1
        else:
            seen[variant] = [record, 1]
    clashes = [variants for variants in groups.values() if len(variants) > 1]
    if not clashes:
        return
    first = next(iter(clashes[0].values()))[0]["source"]
    described = []
    for variants in clashes[:3]:
        parts = []
        for (kind, shown), (record, count) in variants.items():
            where = ("" if record["source"] is first else f" of {record['source'].where}")
            rows = f"{count} row{'s' if count != 1 else ''}"
            at = record["source"].locate(record["row"], record["line"])
            parts.append(f"{shown} ({kind}, first at {at}"
                         f"{where}, {rows})")
        described.append(" vs ".join(parts))
    more = f"; and {len(clashes) - 3} more" if len(clashes) > 3 else ""
    raise DataError(
        f"{first.where}, {first.column(label_col)}: labels differ only in type or spelling: "
        f"{'; '.join(described)}{more}. Labels are compared as given: write each class one "
        "way in the source"
    )
