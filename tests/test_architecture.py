"""The repository's own contract: the documented layout matches the code, layers point down,
and nothing refers to files outside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.errors import StoreError
from relabeler.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _generated(doc: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:begin[^>]*-->\n(.*?)\n<!-- {name}:end -->", doc, re.S)
    assert match, f"docs/architecture.md lacks the {name} markers"
    return match.group(1)


def _regenerated(doc: str) -> str:
    for name, table in (("artifacts", artifacts.markdown_table()),
                        ("stages", artifacts.stage_table())):
        doc = doc.replace(_generated(doc, name), table)
    return doc


def test_the_architecture_document_matches_the_artifact_registry():
    doc = (ROOT / "docs/architecture.md").read_text()
    assert doc == _regenerated(doc), (
        "docs/architecture.md is behind relabeler/artifacts.py: run "
        "`python -m tests.test_architecture --write`")


def test_every_table_artifact_has_a_writer_and_a_reader_or_is_a_final_output():
    read = {a.path for reads in artifacts.STAGE_READS.values() for a in reads}
    for artifact in artifacts.ARTIFACTS:
        assert artifact.writer in (*artifacts.STAGE_READS, "every stage"), artifact.path
        if artifact.kind == "table" and artifact.writer not in ("report", "pull", "data"):
            assert artifact.path in read or artifact is artifacts.EVAL_PREDICTIONS or \
                artifact is artifacts.DYNAMICS, artifact.path


def test_the_layers_point_down_only():
    linter = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(linter)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


OUTSIDE = re.compile(r"\.\./shared|shared/(DESIGN|RESEARCH|STYLE)|\b(DESIGN|RESEARCH|STYLE)\.md\b|"
                     r"/work/(main|shared)")


def test_no_file_of_the_repository_points_outside_it():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in (".png", ".jpg", ".parquet") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line) and name != "tests/test_architecture.py":
                offenders.append(f"{name}:{number}: {line.strip()[:80]}")
    assert offenders == []


def test_a_table_that_breaks_its_artifact_is_refused_naming_the_column(tmp_path):
    store = RunStore(tmp_path / "run")
    good = pa.table({"id": ["a"], "text": ["x"], "label": ["pos"], "source_tag": ["web"]})
    store.write_table(artifacts.TRAIN.path, good)  # dataset splits keep the source's columns
    with pytest.raises(StoreError, match=r"dataset/train.parquet.*column 'label' is missing"):
        store.write_table(artifacts.TRAIN.path, good.drop_columns(["label"]))
    with pytest.raises(StoreError, match=r"column 'label' is int64, expected string"):
        store.write_table(artifacts.TRAIN.path, good.set_column(2, "label", pa.array([1])))
    acquire = pa.table({"id": ["p1"], "rank": [1], "near_id": ["e1"],
                        "similarity": pa.array([0.5], pa.float32())})
    store.write_table(artifacts.ACQUIRE.path, acquire)
    with pytest.raises(StoreError, match=r"scores/acquire.parquet.*column 'extra' is not part"):
        store.write_table(artifacts.ACQUIRE.path, acquire.append_column("extra", pa.array([1])))
    assert store.read_table(artifacts.ACQUIRE.path).equals(acquire)  # the old file survives
    assert store.list("scores") == ["scores/acquire.parquet"]  # and no partial file


def test_untyped_empty_columns_take_the_declared_type(tmp_path):
    store = RunStore(tmp_path / "run")
    table = pa.table({"id": ["a"], "split": ["eval"],
                      "coverage_score": pa.array([0.1], pa.float32()),
                      "density": pa.array([0.2], pa.float32()),
                      "label_agreement": pa.array([1.0], pa.float32()),
                      "nearest_ids": pa.array([[]], pa.list_(pa.null())),
                      "is_undercovered": [False]})
    store.write_table(artifacts.COVERAGE.path, table)
    assert store.read_table(artifacts.COVERAGE.path).schema.field("nearest_ids").type == \
        pa.list_(pa.string())


def test_parts_and_dataset_versions_are_checked_as_their_artifact():
    assert artifacts.table_artifact("features/eval/part-00012.parquet") is artifacts.FEATURES
    assert artifacts.table_artifact("retrain/v3/dataset/train.parquet") is artifacts.TRAIN
    assert artifacts.table_artifact("attributions/part-00000.parquet") is \
        artifacts.ATTRIBUTION_PARTS
    assert artifacts.table_artifact("notes/anything.parquet") is None
    assert artifacts.FEATURES(split="pool") == "features/pool"
    assert "scores/suspects.parquet" in artifacts.stage_outputs("score")


def test_stages_name_artifacts_through_the_registry_not_literals():
    paths = [a.path for a in artifacts.ARTIFACTS if "{" not in a.path and "/" in a.path]
    literal = re.compile(r"""(?<![\w/{])["'](""" + "|".join(map(re.escape, paths)) + r""")["']""")
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in sorted((ROOT / "relabeler").rglob("*.py")) if path.name != "artifacts.py"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if literal.search(line)]
    assert found == []


if __name__ == "__main__":  # python -m tests.test_architecture --write
    if sys.argv[1:] == ["--write"]:
        path = ROOT / "docs/architecture.md"
        path.write_text(_regenerated(path.read_text()))
