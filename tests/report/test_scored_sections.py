"""Sections built from ``scores/`` (scored before any relabeling) read with the dataset version
the report is about where it has its own figures, and say which data they show where not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.report.build import build_report
from relabeler.report.duplicates import render_duplicates
from relabeler.report.render import plots, render_html
from relabeler.report.shortcuts import shortcut_html
from relabeler.store import RunStore
from tests.report.test_build import finished_run, relabels


def _write(store: RunStore, artifact, frame: pd.DataFrame) -> None:
    store.write_table(artifact.path, pa.Table.from_pandas(frame, schema=artifact.schema,
                                                          preserve_index=False))


def _version_train(store: RunStore, changed: dict[str, str]) -> None:
    """Version 1's training split: the baseline's with the labels ``changed`` relabeled."""
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    train["label"] = train["id"].map(changed).fillna(train["label"])
    RunStore(store.path(artifacts.RETRAIN(n=1))).write_table(
        artifacts.TRAIN.path, pa.Table.from_pandas(train, preserve_index=False))


def _duplicates(store: RunStore) -> None:
    # scored labels: group 0 (t00 neg, t01 pos) conflicts; group 1 (t02 neg, t04 neg) not
    _write(store, artifacts.DUPLICATES, pd.DataFrame({
        "group_id": [0, 0, 1, 1], "id": ["t00", "t01", "t02", "t04"], "split": "train",
        "similarity": np.float32(1.0), "label": ["neg", "pos", "neg", "neg"],
        "text_hash": ["a", "a", "b", "b"]}))


def test_conflicting_groups_are_counted_with_the_versions_labels(tmp_path):
    # review relabeled t01 to neg (group 0 agrees now) and t04 to pos (group 1 conflicts)
    store = finished_run(tmp_path, relabels(["t01", "t04"], ["pos", "neg"], ["neg", "pos"]))
    _duplicates(store)
    _version_train(store, {"t01": "neg", "t04": "pos"})
    section = build_report(store)["duplicates"]
    assert section["conflicting"]["n"] == 1
    (group,) = section["conflicting"]["top"]
    assert group["group_id"] == 1 and group["labels"] == {"neg": 1, "pos": 1}
    assert section["labels_from"] == "dataset version 1's (retrain/v1/dataset/)"
    page = render_duplicates(section)
    assert "Groups with conflicting labels (1)" in page
    assert "Labels: dataset version 1&#x27;s (retrain/v1/dataset/)" in page


def test_the_most_repeated_texts_are_counted_in_the_versions_training_set(tmp_path):
    # after retrain --dedupe the section counted the baseline's rows ("copies in train 2") and
    # showed the text of a row the version dropped. Group 2 is t06, t08, t10; version 1 drops
    # t01 (group 0) and t06 (group 2)
    store = finished_run(tmp_path, relabels(["t03"], ["pos"], ["neg"]))
    _write(store, artifacts.DUPLICATES, pd.DataFrame({
        "group_id": [0, 0, 1, 1, 2, 2, 2],
        "id": ["t00", "t01", "t02", "t04", "t06", "t08", "t10"], "split": "train",
        "similarity": np.float32(1.0), "label": ["neg", "pos", "neg", "neg", "neg", "neg",
                                                 "neg"],
        "text_hash": ["a", "a", "b", "b", "c", "c", "c"]}))
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    kept = train[~train["id"].isin(["t01", "t06"])]
    RunStore(store.path(artifacts.RETRAIN(n=1))).write_table(
        artifacts.TRAIN.path, pa.Table.from_pandas(kept, preserve_index=False))
    section = build_report(store)["duplicates"]
    assert [(g["group_id"], g["train_copies"], g["text"]) for g in section["most_repeated"]
            ] == [(1, 2, "text t2"), (2, 2, "text t8")]
    assert [g["dropped"] for g in section["most_repeated"]] == [[], ["t06"]]
    assert section["dropped"] == {"n": 2, "ids": ["t01", "t06"]}
    page = render_duplicates(section)
    assert "copies in version 1&#x27;s training set" in page
    assert ("Version 1&#x27;s training set leaves out 2 training rows of the duplicate groups "
            "that the baseline&#x27;s holds (dropped by an answer or by retrain --dedupe): t01, "
            "t06." in page)


def test_without_the_versions_split_the_conflicts_say_they_are_the_baselines(tmp_path):
    store = finished_run(tmp_path, relabels(["t01"], ["pos"], ["neg"]))
    _duplicates(store)
    section = build_report(store)["duplicates"]
    assert section["conflicting"]["n"] == 1 and section["conflicting"]["top"][0][
        "group_id"] == 0
    assert section["labels_from"].startswith("the baseline dataset's (dataset/, version 0)")


def _no_shortcuts(store: RunStore) -> None:
    """An empty ``scores/shortcuts.parquet``: a corpus with no shortcut."""
    _write(store, artifacts.SHORTCUTS, pd.DataFrame(
        {name: pd.Series([], dtype=kind) for name, kind in (
            ("token", object), ("class", object), ("count", "int64"),
            ("class_count", "int64"), ("class_share", float), ("z", float),
            ("p_value", float), ("association", float), ("attribution", float),
            ("rank", "int64"))}))



def test_the_lowest_recall_is_the_retrained_models(tmp_path):
    store = finished_run(tmp_path, relabels(["t01"], ["pos"], ["neg"]))
    # the baseline misses neg rows (recall 0.5); version 1 misses pos rows e01, e03, e05
    evaluation = store.read_table(artifacts.EVAL_PREDICTIONS.path)
    pred = ["neg" if i in (1, 3, 5) else label
            for i, label in enumerate(evaluation.column("label").to_pylist())]
    RunStore(store.path(artifacts.RETRAIN(n=1))).write_table(
        artifacts.EVAL_PREDICTIONS.path, evaluation.set_column(
            evaluation.column_names.index("pred"), "pred", pa.array(pred)))
    _no_shortcuts(store)
    _write(store, artifacts.BALANCE, pd.DataFrame({
        "class": ["neg", "pos"], "count": [20, 20], "share": [0.5, 0.5],
        "eval_count": [10, 10], "eval_recall": [0.5, 1.0]}))
    report = build_report(store)
    section = report["shortcuts"]
    assert section["lowest_recall"] == ["pos"] and section["recall_version"] == 1
    assert [r["eval_recall_after"] for r in section["balance"]] == [1.0, 0.7]
    page = shortcut_html(section, {})
    assert "Lowest eval recall (the version 1 model's): <b>pos (70.0%)</b>." in page
    assert "<td>neg</td><td>20</td><td>50.0%</td><td>10</td><td>50.0%</td><td>100.0%</td>" \
        in page
    assert "Scored before relabeling (dataset version 0)" in page


def _balance(store: RunStore, recall_after: dict[str, float]) -> dict:
    """The shortcut section of a run of three classes whose version 1 model has the eval
    recall ``recall_after``."""
    from relabeler.report.shortcuts import shortcut_section

    _no_shortcuts(store)
    _write(store, artifacts.BALANCE, pd.DataFrame({
        "class": ["a", "b", "c"], "count": [10, 10, 10], "share": [1 / 3] * 3,
        "eval_count": [5, 5, 5], "eval_recall": [0.8, 1.0, 1.0]}))
    return shortcut_section(store, recall_after, version=6)


def test_the_lowest_recall_lists_only_classes_below_100_percent(tmp_path):
    # "Lowest eval recall: business (88.9%), politics (100.0%), entertainment (100.0%)"
    store = finished_run(tmp_path, relabels(["t01"], ["pos"], ["neg"]))
    section = _balance(store, {"a": 8 / 9, "b": 1.0, "c": 1.0})
    assert section["lowest_recall"] == ["a"]
    assert "Lowest eval recall (the version 6 model's): <b>a (88.9%)</b>." in shortcut_html(
        section, {})
    section = _balance(store, {"a": 1.0, "b": 1.0, "c": 1.0})
    assert section["lowest_recall"] == []
    assert ("Eval recall (the version 6 model's): 100.0% in every class with eval rows."
            in shortcut_html(section, {}))


def test_a_tie_at_the_lowest_recall_says_how_many_classes_share_it(tmp_path):
    # "Lowest eval recall: A (0.0%), B (0.0%), C (0.0%)" named 3 of 10 classes at 0%
    from relabeler.report.shortcuts import shortcut_plots, shortcut_section

    store = finished_run(tmp_path, relabels(["t01"], ["pos"], ["neg"]))
    _no_shortcuts(store)
    names = [f"class {i:02d}" for i in range(12)]
    _write(store, artifacts.BALANCE, pd.DataFrame({
        "class": names, "count": [5 + i for i in range(12)], "share": [1 / 12] * 12,
        "eval_count": [3] * 12, "eval_recall": [0.5] * 12}))
    recall = {name: (0.0 if i < 5 else 0.9) for i, name in enumerate(names)}
    section = shortcut_section(store, recall, version=1)
    assert section["lowest_recall"] == names[:3] and section["lowest_recall_tied"] == 5
    assert ("Lowest eval recall (the version 1 model's): <b>class 00 (0.0%), class 01 (0.0%), "
            "class 02 (0.0%); 5 classes are at 0.0%, those with the fewest training rows "
            "listed</b>.") in shortcut_html(section, {})
    recall["class 03"] = recall["class 04"] = 0.1
    section = shortcut_section(store, recall, version=1)
    assert section["lowest_recall_tied"] == 3
    assert "classes are at" not in shortcut_html(section, {})
    # twelve classes: one grey swatch, not twelve of ten colours that repeat
    assert len(shortcut_plots(section, _legend_entries)) == 1
    assert _legend_entries.seen == ["share of training rows", "eval recall, baseline model",
                                     "eval recall, version 1 model"]


def _legend_entries(fig) -> bytes:
    _legend_entries.seen = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    return b"png"


def test_sections_read_from_scores_say_so(tmp_path):
    store = finished_run(tmp_path, relabels(["t01"], ["pos"], ["neg"]), eval_suspects=True)
    _write(store, artifacts.THIN_REGIONS, pd.DataFrame({
        "region": [0], "n": [3], "n_eval": [2], "n_pool": [1], "coverage_mean": [0.2],
        "representation_mean": [0.5], "terms": [["w"]], "example_ids": [["e00"]],
        "example_texts": [["text"]]}))
    report = build_report(store)
    page = render_html(report, plots(report))
    assert ("scores/eval_suspects.parquet, scored before relabeling by the baseline model, "
            "dataset version 0") in page
    assert ("Scored before relabeling (dataset version 0): coverage is measured against the "
            "baseline training set") in page
