"""Counterexamples to shortcuts: which training samples are picked, and their push to the
acquisition project of a real Label Studio server (see conftest.py)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.plugin.client import StudioClient
from relabeler.plugin.counterexamples import counterexample_picks
from relabeler.plugin.projects import acquisition_title
from relabeler.plugin.pull import CORRECTIONS, pull
from relabeler.plugin.push import push
from relabeler.queue_plan import ACQUIRED, COUNTEREXAMPLE, read_manifest
from tests.plugin.synthetic import make_run

CLASSES = ["neg", "pos"]


def shortcuts(*pairs: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"token": [t for t, _ in pairs], "class": [c for _, c in pairs],
                         "rank": np.arange(1, len(pairs) + 1)})


def test_picks_break_the_shortcut_by_label_or_prediction_in_turn_over_the_shortcuts():
    texts = {"a": "free prize now", "b": "free lunch", "c": "free call", "d": "call me",
             "e": "a free call", "f": "no token"}
    labels = {"a": "pos", "b": "neg", "c": "neg", "d": "neg", "e": "pos", "f": "neg"}
    probs = {"a": np.array([0.6, 0.4]), "b": np.array([0.3, 0.7]), "c": np.array([0.8, 0.2]),
             "d": np.array([0.1, 0.9]), "e": np.array([0.9, 0.1])}
    picks = counterexample_picks(shortcuts(("free", "pos"), ("call", "neg")), texts, labels,
                                 probs, CLASSES, count=10)
    # "free"/pos: b, c (labelled neg), a, e (labelled pos, predicted neg), by p(pos): b a c e;
    # "call"/neg: e (labelled pos), d (predicted pos), by p(neg): e d; c agrees: not picked.
    # In turn, skipping a sample picked already
    assert picks["id"].tolist() == ["b", "e", "a", "d", "c"]
    assert picks["token"].tolist() == ["free", "call", "free", "call", "free"]
    assert picks["pull"].tolist() == pytest.approx([0.7, 0.9, 0.4, 0.1, 0.2])
    fewer = counterexample_picks(shortcuts(("free", "pos"), ("call", "neg")), texts, labels,
                                 probs, CLASSES, count=2, exclude={"b"})
    assert fewer["id"].tolist() == ["a", "e"]
    assert counterexample_picks(shortcuts(("free", "pos")), texts, labels, probs, CLASSES,
                                count=0).empty
    with pytest.raises(ValueError, match="counterexamples must be >= 0"):
        counterexample_picks(shortcuts(), texts, labels, probs, CLASSES, count=-1)


def test_without_probabilities_only_the_label_counts():
    texts = {"a": "free prize", "b": "free lunch"}
    picks = counterexample_picks(shortcuts(("free", "pos")), texts, {"a": "pos", "b": "neg"},
                                 {}, CLASSES, count=5)
    assert picks["id"].tolist() == ["b"] and np.isnan(picks["pull"].iloc[0])


def write_shortcut(store, token: str, cls: str) -> None:
    store.write_table(artifacts.SHORTCUTS.path, pa.Table.from_pandas(pd.DataFrame({
        "token": [token], "class": [cls], "count": [50], "class_count": [48],
        "class_share": [0.96], "z": [6.0], "p_value": [1e-9], "association": [0.9],
        "attribution": [float("nan")], "rank": [1]}), schema=artifacts.SHORTCUTS.schema,
        preserve_index=False))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_counterexamples_queue_behind_the_pool_samples_once_and_pull_as_training_answers(
        studio, tmp_path):
    admin = StudioClient(studio.url, studio.token, retries=2, backoff=0.2)
    title = f"counterexamples {time.time_ns() % 10**9}"
    store = make_run(str(tmp_path / "run"), n_train=80)
    write_shortcut(store, "wonderful", "pos")
    train = store.read_table("dataset/train.parquet").to_pandas().set_index("id")
    wonderful = [s for s in train.index if "wonderful" in train.at[s, "text"].split()]
    # the model reads four "wonderful" texts labelled pos as neg: counterexamples by prediction
    fooled = sorted(s for s in wonderful if train.at[s, "label"] == "pos")[:4]
    store.write_table("train/oof.parquet", pa.table({
        "id": list(train.index), "fold": [0] * len(train),
        "probs": pa.array([[0.9, 0.1] if s in fooled else
                           ([0.2, 0.8] if train.at[s, "true_label"] == "pos" else [0.8, 0.2])
                           for s in train.index], pa.list_(pa.float32()))}))
    result = push(store, admin, project_title=title, budget=6, control_share=0.0,
                  counterexamples=3)
    manifest = read_manifest(store)
    review = set(manifest.loc[manifest["project_id"] == result.project_id, "id"])
    # labelled neg: the flipped ones, ranked first and in the review project already
    assert {s for s in wonderful if train.at[s, "label"] == "neg"} <= review
    assert result.new_acquired == 8 and result.new_counterexamples == 3
    counter = manifest[manifest["source"] == COUNTEREXAMPLE].sort_values("priority")
    assert counter["id"].tolist() == fooled[:3]  # equal pull towards pos: by id
    assert set(counter["project_id"]) == {result.acquire_project_id}
    acquired = manifest[manifest["source"] == ACQUIRED]
    assert counter["priority"].tolist() == [9, 10, 11]  # behind the 8 pool samples
    assert acquired["priority"].max() == 8
    assert admin.get_project(result.acquire_project_id).title == acquisition_title(title)
    assert admin.get_project(result.acquire_project_id).task_count == 8 + 3

    again = push(store, admin, project_title=title, budget=6, control_share=0.0,
                 counterexamples=3)
    assert again.new_counterexamples == 0 and again.new_acquired == 0
    assert admin.get_project(result.acquire_project_id).task_count == 8 + 3

    first = counter.iloc[0]
    response = studio.http().post(f"/api/tasks/{int(first.task_id)}/annotations/", json={
        "result": [{"from_name": "answer", "to_name": "text", "type": "choices",
                    "value": {"choices": ["pos"]}}]})
    assert response.status_code == 201, response.text
    pull(store, admin)
    rows = {r["id"]: r for r in store.read_table(CORRECTIONS).to_pylist()}
    row = rows[first.id]
    assert (row["source"], row["old_label"], row["new_label"], row["action"]) == (
        COUNTEREXAMPLE, "pos", "pos", "keep")
