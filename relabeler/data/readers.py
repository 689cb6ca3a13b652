"""Read a table from Parquet, CSV/TSV, JSONL or a Hugging Face dataset into object columns.

Values keep the types the format can express (CSV cells are ``str``; JSONL and Parquet keep
ints, floats and bools); missing values are ``None``, so validation sees one null. A file may be
a local path or any fsspec URI (``s3://``, ``gs://``, ``file://``, ``memory://``). Text files are
UTF-8 (a byte-order mark is dropped); anything else is an error naming the line.

CSV is parsed record by record, so a broken record is named by its line: a record whose field
count differs from the header's, and a quoted field that runs over line breaks and swallows
lines that read as whole rows on their own (an unbalanced quote closed rows later, which
merges those rows into one text under the last row's label). A text that spans lines is kept
when none of its inner lines reads as a row of the file's width; a quote closed on the very
next line cannot be told from such a text. Such a record is left out whole, each of its lines
named (which quote is wrong cannot be told), except a quote never closed: it swallows every
line to the end of the file, so reading resumes at the line after it and those lines are kept
or named on their own. A JSONL string that is not valid Unicode (a lone surrogate escape such as
``\\ud83d``) makes its line a broken record naming the column.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from relabeler.errors import DataError, StoreError
from relabeler.redact import mask_url
from relabeler.storage_errors import REMOTE_ERRORS, filesystem_error

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


def is_uri(path: str | os.PathLike) -> bool:
    """True for an fsspec URI (``s3://bucket/x.csv``), False for a local path or ``hf:`` name."""
    return isinstance(path, str) and "://" in path


@dataclass(frozen=True)
class BadLine:
    """A record the reader could not take as one row: its 0-based data row, the 1-based line
    of the file where it starts, and the problem."""

    row: int
    line: int
    problem: str


@dataclass
class TableRead:
    """What a reader made of a file: the good rows, each row's 0-based data row in the file
    (``rows``, parallel to ``frame``), the records left out (``bad``) and, for text files,
    each good row's 1-based line where its record starts (``lines``; None for Parquet and
    Hugging Face datasets, which have no lines)."""

    frame: pd.DataFrame
    rows: list[int]
    bad: list[BadLine] = field(default_factory=list)
    lines: list[int] | None = None


def read_table(path: str | os.PathLike, *, fmt: str | None = None) -> pd.DataFrame:
    """Read a table from a file or a Hugging Face dataset.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.parquet``/``.pq``, ``.csv``, ``.tsv`` or ``.jsonl``/``.ndjson`` file (a local path
        or an fsspec URI), or ``"hf:NAME[:SPLIT]"`` (split defaults to ``train``; needs
        ``pip install datasets``).
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
        The file is missing, a folder or unreadable, its format is unknown, it is not UTF-8,
        or a record is broken (a JSONL line that is not a JSON object, a CSV record of another
        width than the header, a quote that swallows rows); the message names the line.
    StoreError
        A remote filesystem refused (missing credentials); the message names the URI.
    """
    read = read_table_rows(path, fmt=fmt)
    if read.bad:
        first = read.bad[0]
        raise DataError(f"cannot read file {path}, line {first.line}: {first.problem}")
    return read.frame


def read_table_rows(path: str | os.PathLike, *, fmt: str | None = None) -> TableRead:
    """:func:`read_table` that hands back broken records instead of raising at the first."""
    if isinstance(path, str) and path.startswith("hf:"):
        frame = _read_hf(path)
        return TableRead(frame, list(range(len(frame))))
    name = os.fspath(path)
    fs, location = _filesystem(name)
    if _is_folder(fs, location, name):
        raise DataError(f"cannot read file {mask_url(name)}: it is a folder, not a file")
    kind = _table_format(name, fmt)
    try:
        if kind == "parquet":
            frame = _arrow_to_frame(_read_parquet(fs, location, name))
            return TableRead(frame, list(range(len(frame))))
        text = _decode(_read_bytes(fs, location, name), name)
        if kind == "jsonl":
            return _read_jsonl(text)
        return _read_csv(text, name, sep="\t" if kind == "tsv" else ",")
    except DataError:
        raise
    except (ValueError, pa.ArrowException) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"cannot read file {mask_url(name)} as {kind}: {exc}") from exc


def _read_parquet(fs: fsspec.AbstractFileSystem, location: str, name: str) -> pa.Table:
    """A local file is memory-mapped by pyarrow; a remote one read through fsspec."""
    try:
        if isinstance(fs, LocalFileSystem):
            return _checked_parquet(pq.ParquetFile(location, memory_map=True), name)
        with fs.open(location, "rb") as handle:
            return _checked_parquet(pq.ParquetFile(handle), name)
    except FileNotFoundError as exc:
        raise DataError(f"cannot read file {mask_url(name)}: no such file") from exc
    except pa.ArrowException:
        raise
    except OSError as exc:
        raise DataError(filesystem_error(exc, f"file {mask_url(name)}", "read it")) from exc
    except REMOTE_ERRORS as exc:
        raise StoreError(filesystem_error(exc, mask_url(name), "read it")) from exc


def _checked_parquet(file: pq.ParquetFile, name: str) -> pa.Table:
    """The file's table; a DataError naming a column that appears twice (a frame of it would
    keep one of the two without a word)."""
    names = file.schema_arrow.names
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"cannot read file {mask_url(name)}: column {twice[0]!r} appears twice "
                        f"(columns: {', '.join(map(repr, names))})")
    return file.read()


def _filesystem(name: str) -> tuple[fsspec.AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(name)
    except (ValueError, ImportError) as exc:  # an unknown protocol, a missing s3fs
        raise DataError(f"cannot read file {mask_url(name)}: {exc}") from exc


def file_version(name: str) -> str | None:
    """What tells one content of file ``name`` from another: ``sha256:<hex>`` of a local file's
    bytes; for a remote file its size and the store's content tag (S3's ETag, GCS's md5), else
    its modification time, without downloading it. None for ``hf:`` names, demo datasets and
    files that are not there."""
    if name.startswith("hf:") or not (is_uri(name) or Path(name).is_file()):
        return None
    fs, location = _filesystem(name)
    try:
        if not is_uri(name) or isinstance(fs, LocalFileSystem):
            digest = hashlib.sha256()
            with fs.open(location, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return f"sha256:{digest.hexdigest()}"
        fs.invalidate_cache(location)
        info = fs.info(location)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(filesystem_error(exc, f"file {mask_url(name)}", "read it")) from exc
    except REMOTE_ERRORS as exc:
        raise StoreError(filesystem_error(exc, mask_url(name), "read it")) from exc
    tag = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "mtime", "LastModified",
                                       "last_modified", "created") if info.get(k) is not None),
               "")
    return f"size:{info.get('size')}:{tag}"


def _is_folder(fs: fsspec.AbstractFileSystem, location: str, name: str) -> bool:
    try:
        return fs.isdir(location)
    except OSError as exc:
        raise DataError(filesystem_error(exc, f"file {mask_url(name)}", "look at it")) from exc
    except REMOTE_ERRORS as exc:
        raise StoreError(filesystem_error(exc, mask_url(name), "look at it")) from exc


def _read_bytes(fs: fsspec.AbstractFileSystem, location: str, name: str) -> bytes:
    """The whole file, local or remote; a missing file or a refusal is an error naming it."""
    try:
        with fs.open(location, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise DataError(f"cannot read file {mask_url(name)}: no such file") from exc
    except OSError as exc:
        raise DataError(filesystem_error(exc, f"file {mask_url(name)}", "read it")) from exc
    except REMOTE_ERRORS as exc:
        raise StoreError(filesystem_error(exc, mask_url(name), "read it")) from exc


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode Text", and others
            raise DataError(f"cannot read file {mask_url(name)}: it is UTF-16 (its first "
                            f"bytes are a UTF-16 byte-order mark); save it as UTF-8 "
                            f"(iconv -f utf-16 -t utf-8)") from exc
        line = data[: exc.start].count(b"\n") + 1
        found = _written_in(data, line)
        raise DataError(
            f"cannot read file {mask_url(name)}, line {line}: not UTF-8 (byte "
            f"0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8 ("
            + (found or "from Latin-1 or Windows-1252: iconv -f cp1252 -t utf-8") + ")"
        ) from exc


#: CJK punctuation, kana, ideographs, Hangul and the full-width forms
_CJK_TEXT = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")


def _written_in(data: bytes, line: int) -> str | None:
    """For a Chinese, Japanese or Korean file (GBK, Big5, Shift JIS, EUC-KR and the like, where
    the hint of Windows-1252 would garble it): its encoding by charset-normalizer's guess,
    how ``line`` reads in it (so that a person can tell whether that is the text) and the
    iconv command that converts it. None where the guess is no such encoding (mostly CJK
    characters beyond ASCII): among the single-byte encodings of European text a few lines
    do not tell one from another (a Latin-1 "café" guesses as Windows-1250)."""
    from charset_normalizer import from_bytes

    guess = from_bytes(data).best()
    if guess is None:
        return None
    text = str(guess)
    beyond = sum(ord(char) > 127 for char in text)
    if len(_CJK_TEXT.findall(text)) < 0.5 * beyond:
        return None
    codec = codecs.lookup(guess.encoding).name
    lines = text.splitlines()
    shown = lines[line - 1].strip() if line <= len(lines) else ""
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    language = "" if guess.language in ("", "Unknown") else f", {guess.language}"
    iconv = codec.replace("_", "-").upper()  # glibc's spelling of Python's codec names
    return (f"it reads as {codec}{language}: line {line} then reads {shown!r}; "
            f"iconv -f {iconv} -t utf-8")


def _table_format(name: str, fmt: str | None) -> str:
    if fmt is not None:
        key = fmt.lower() if fmt.startswith(".") else "." + fmt.lower()
        if key not in _FORMATS:
            raise DataError(
                f"cannot read file {mask_url(name)}: unknown fmt {fmt!r} "
                f"(known: {', '.join(sorted({k[1:] for k in _FORMATS}))})"
            )
        return _FORMATS[key]
    suffix = Path(name.split("?", 1)[0]).suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(
            f"cannot read file {mask_url(name)}: unknown suffix {suffix or '(none)'!r} "
            f"(known: {', '.join(_FORMATS)}; a compressed file is read once unpacked)"
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


def _columns(records: list[list[str]], header: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            name: pd.Series([r[i] if r[i] != "" else None for r in records], dtype=object)
            for i, name in enumerate(header)
        }
    )


def _header(names: list[str], file: str) -> list[str]:
    header = [name or f"Unnamed: {i}" for i, name in enumerate(names)]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"cannot read file {file}, line 1: column {name!r} appears twice "
                            "in the header")
        seen.add(name)
    return header


def _csv_reader(lines: Any, sep: str) -> Any:
    # strict: a field that opens with a quote and goes on after its closing quote is an
    # error, not a text that silently loses its quotes
    return csv.reader(lines, delimiter=sep, strict=True)


def _taken_lines(row: int, start: int, end: int) -> list[BadLine]:
    """The lines after ``start`` up to ``end`` of a quoted record left out whole, each named."""
    return [BadLine(row, n, f"inside the quoted field of line {start}; left out with it")
            for n in range(start + 1, end + 1)]


def _from(lines: list[str], start: int) -> Iterator[str]:
    """The physical lines from index ``start`` on, without copying them."""
    return (lines[i] for i in range(start, len(lines)))


def _read_csv(text: str, file: str, *, sep: str) -> TableRead:
    csv.field_size_limit(sys.maxsize)  # a long text is data, not an attack on the parser
    lines: list[str] | None = None  # the physical lines, split only when a record spans some
    reader = _csv_reader(io.StringIO(text, newline=""), sep)
    header_record: list[str] | None = []
    try:
        while header_record == []:  # blank lines before the header are skipped, as pandas does
            header_record = next(reader, None)
    except csv.Error as exc:
        raise DataError(f"cannot read file {file}, line {reader.line_num} (the header): "
                        f"{exc}") from None
    if not header_record:
        raise DataError(f"cannot read file {file}: it is empty (no header line)")
    header = _header(header_record, file)
    width = len(header)
    records: list[list[str]] = []
    rows: list[int] = []
    starts: list[int] = []
    bad: list[BadLine] = []
    # (index in records, (line, its fields) for each line between that has the header's
    # width, the record's last line)
    spanning: list[tuple[int, list[tuple[int, list[str]]], int]] = []
    offset = 0  # lines of the file before the text the reader reads
    end = reader.line_num
    row = 0
    while True:
        resume = False
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start, end = end + 1, offset + reader.line_num
            bad.append(BadLine(row, start, (
                f"{exc}: a field that opens with a quote must end with it; quote the whole "
                f"field and double the quotes inside it")))
            # a quote never closed took every line to the end of the file: only its first
            # line is broken, and the lines after it are read again as rows of their own;
            # a record that broke lines later is left out whole, each line of it named
            record, resume = None, end > start and "unexpected end of data" in str(exc)
            if end > start and not resume:
                bad.extend(_taken_lines(row, start, end))
        else:
            start, end = end + 1, offset + reader.line_num
            if not record:  # a blank line
                continue
        if record is not None and end > start:
            if lines is None:
                lines = list(io.StringIO(text, newline=""))
            # the last line carries the closing quote and the fields after it, in a broken
            # record and in a text that spans lines alike: only the lines between tell, and
            # they are judged once every record is read (:func:`_swallowing`)
            between = [(n, fields) for n in range(start + 1, end)
                       if (fields := _split(lines[n - 1], sep, width))]
            if between and record is not None and len(record) == width:
                spanning.append((len(records), between, end))
        if resume:
            if lines is None:
                lines = list(io.StringIO(text, newline=""))
            reader, offset, end = _csv_reader(_from(lines, start), sep), start, start
        elif record is not None:
            if len(record) != width:
                bad.append(BadLine(row, start, f"{len(record)} fields, the header has {width} "
                                   f"({', '.join(header)})"))
            elif record == header_record:
                bad.append(BadLine(row, start, "a copy of the header line (files joined with "
                                   "their headers?)"))
            else:
                records.append(record)
                rows.append(row)
                starts.append(start)
        row += 1
    if spanning:
        records, rows, starts = _swallowing(records, rows, starts, spanning, width, bad)
    return TableRead(_columns(records, header), rows, bad, starts)


def _split(line: str, sep: str, width: int) -> list[str] | None:
    """The fields of one physical line read alone, when they are ``width`` (>= 2) of them."""
    fields = next(csv.reader([line.rstrip("\r\n")], delimiter=sep), [])
    return fields if width >= 2 and len(fields) == width else None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


#: single-line records a column needs before its few values are taken for its only values
_CATEGORICAL_MIN_ROWS = 10


def _column_tests(records: list[list[str]], width: int) -> list[Callable[[str], bool] | None]:
    """Per column, what a value of it looks like in ``records`` (the records on one line
    each): a number where every value is one, one of its values where the column repeats a
    few (a label), else nothing to tell."""
    tests: list[Callable[[str], bool] | None] = []
    for values in zip(*records, strict=True) if records else [()] * width:
        given = [v for v in values if v != ""]
        if given and all(map(_is_number, given)):
            tests.append(_is_number)
        elif len(given) >= _CATEGORICAL_MIN_ROWS and len(set(given)) <= len(given) / 2:
            tests.append(set(given).__contains__)
        else:
            tests.append(None)
    return tests


def _swallowing(records: list[list[str]], rows: list[int], starts: list[int],
                spanning: list[tuple[int, list[tuple[int, list[str]]], int]], width: int,
                bad: list[BadLine]) -> tuple[list[list[str]], list[int], list[int]]:
    """Leave out the records over several lines that swallowed a row: a line between the
    first and the last that reads, alone, as a record whose every field looks like its
    column's in the records on one line (:func:`_column_tests`: a number, a label seen); a
    text over lines such as ``Pros: cheap, light, fast`` is kept. Where no column tells (no
    numbers, no labels seen), a line of the right width is taken for a row. Each line of a
    record left out is named in ``bad``, which is put back in file order."""
    spans = {index for index, _, _ in spanning}
    tests = _column_tests([r for i, r in enumerate(records) if i not in spans], width)
    judged = any(test is not None for test in tests)
    dropped = set()
    for index, between, end in spanning:
        for n, fields in between:
            if judged and not all(
                    test is None or value == "" or test(value)
                    for test, value in zip(tests, fields, strict=True)):
                continue
            start, row = starts[index], rows[index]
            bad.append(BadLine(row, start, (
                f"a quoted field runs from line {start} to line {end} and swallows line {n}, "
                f"which reads as a row of its own: a quote is probably not closed")))
            # which quote is wrong cannot be told: none of its lines is kept, each is named
            bad.extend(_taken_lines(row, start, end))
            dropped.add(index)
            break
    bad.sort(key=lambda b: b.line)
    kept = [i for i in range(len(records)) if i not in dropped]
    return ([records[i] for i in kept], [rows[i] for i in kept], [starts[i] for i in kept])


def _lone_surrogate(value: object) -> str | None:
    """The first character of a JSON value (a string, or one inside a list or object, keys
    included) that is a lone surrogate and so cannot be written as UTF-8; None if there is
    none."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return value[exc.start]
        return None
    if isinstance(value, dict):
        value = [item for pair in value.items() for item in pair]
    if isinstance(value, list):
        return next((c for c in map(_lone_surrogate, value) if c is not None), None)
    return None


def _read_jsonl(text: str) -> TableRead:
    records: list[dict[str, Any]] = []
    rows: list[int] = []
    starts: list[int] = []
    bad: list[BadLine] = []
    row = 0
    for lineno, line in enumerate(io.StringIO(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_one_value_a_key)
        except json.JSONDecodeError as exc:
            bad.append(BadLine(row, lineno, f"not valid JSON ({exc.msg} at column {exc.colno})"))
        except _KeyTwice as exc:
            bad.append(BadLine(row, lineno, f"the key {exc.args[0]!r} appears twice in the "
                               f"object (which value is meant cannot be told)"))
        else:
            if not isinstance(record, dict):
                bad.append(BadLine(row, lineno, f"a JSON {type(record).__name__}, expected an "
                                   "object"))
            elif (broken := _invalid_unicode(record)) is not None:
                bad.append(BadLine(row, lineno, broken))
            else:
                records.append(record)
                rows.append(row)
                starts.append(lineno)
        row += 1
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    frame = pd.DataFrame(
        {name: pd.Series([r.get(name) for r in records], dtype=object) for name in names}
    )
    return TableRead(frame, rows, bad, starts)


class _KeyTwice(Exception):
    """A JSON object with a key twice (``json`` keeps the last value without a word)."""


def _one_value_a_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) < len(pairs):
        seen: set[str] = set()
        raise _KeyTwice(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return record


def _invalid_unicode(record: dict[str, Any]) -> str | None:
    """Why a JSON object cannot be stored (a ``\\ud83d`` escape with no partner decodes to a
    lone surrogate, which no UTF-8 file or Arrow string can hold), naming the column; None
    when it can."""
    for key, value in record.items():
        # repr writes a surrogate as its escape, so the message itself can be printed
        char = _lone_surrogate(key)
        if char is not None:
            return f"column name {key!r}: invalid Unicode: lone surrogate U+{ord(char):04X}"
        char = _lone_surrogate(value)
        if char is not None:
            return f"column {key!r}: invalid Unicode: lone surrogate U+{ord(char):04X}"
    return None


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
