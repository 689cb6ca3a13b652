"""The score stage's shortcut step on a run directory written by hand (no model, no Ray)."""

import math

import numpy as np
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.errors import StageError
from relabeler.jobs.shortcuts import score_shortcuts
from relabeler.store import RunStore
from tests.conftest import synthetic_frame

CLASSES = ["neg", "pos"]


def _run(tmp_path, *, plant: bool = True) -> RunStore:
    frame = synthetic_frame(200, seed=3)
    if plant:  # a source tag in every other "neg" text
        neg = frame.index[frame["label"] == "neg"][::2]
        frame.loc[neg, "text"] = "via-newswire " + frame.loc[neg, "text"]
    store = RunStore(tmp_path / "run")
    store.write_table(artifacts.TRAIN.path, pa.Table.from_pandas(frame, preserve_index=False))
    labels = ["pos"] * 10 + ["neg"] * 10
    preds = ["pos"] * 10 + ["neg"] * 6 + ["pos"] * 4
    store.write_table(artifacts.EVAL_PREDICTIONS.path, pa.table({
        "id": [f"e{i}" for i in range(20)], "label": labels, "pred": preds,
        "probs": pa.array([[0.5, 0.5]] * 20, pa.list_(pa.float32(), 2))}))
    return store


def test_score_writes_the_shortcuts_and_the_balance(tmp_path):
    store = _run(tmp_path)
    summary = score_shortcuts(store, CLASSES, ScoreConfig())
    table = store.read_table(artifacts.SHORTCUTS.path).to_pandas()
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    # the tag splits into two words found only together: one token, tied to "neg" in 50 texts
    top = table.iloc[0]
    assert (top["token"], top["class"]) == ("via newswire", "neg")
    assert not {"via", "newswire"} & set(table["token"])
    assert top["count"] == top["class_count"] == 50 and top["class_share"] == 1.0
    assert top["z"] == pytest.approx(0.5 / math.sqrt(0.25 / 50))
    assert table["attribution"].isna().all()  # nothing attributed yet
    assert (table["p_value"] < summary["p_threshold"]).all()
    assert summary["n_significant"] == summary["n_kept"] == len(table)
    assert summary["p_threshold"] == pytest.approx(0.01 / summary["n_tested"])
    balance = store.read_table(artifacts.BALANCE.path).to_pandas()
    assert balance["class"].tolist() == CLASSES
    assert balance["count"].tolist() == [100, 100]
    np.testing.assert_allclose(balance["share"], [0.5, 0.5])
    assert balance["eval_count"].tolist() == [10, 10]
    np.testing.assert_allclose(balance["eval_recall"], [0.6, 1.0])


def test_attributions_fill_the_attribution_share(tmp_path):
    store = _run(tmp_path)
    span = pa.struct([("start", pa.int32()), ("end", pa.int32()), ("text", pa.string()),
                      ("score", pa.float32())])
    spans = [[{"start": 0, "end": 3, "text": "via", "score": 0.3},
              {"start": 4, "end": 12, "text": "newswire", "score": 0.3},
              {"start": 13, "end": 18, "text": "awful", "score": 0.4}]]
    store.write_table(artifacts.ATTRIBUTIONS.path, pa.table({
        "id": ["s0001"], "source": ["flagged"], "rank": pa.array([1], pa.int32()),
        "target_role": ["given"], "target_label": ["neg"], "method": ["ig"],
        "n_steps": pa.array([20], pa.int32()), "spans": pa.array(spans, pa.list_(span)),
        "delta": pa.array([0.0], pa.float32()), "truncated": [False],
        "n_tokens": pa.array([5], pa.int32())}))
    score_shortcuts(store, CLASSES, ScoreConfig())
    table = store.read_table(artifacts.SHORTCUTS.path).to_pandas().set_index("token")
    assert table.loc["via newswire", "attribution"] == pytest.approx(0.6)
    assert table.loc["awful", "attribution"] == pytest.approx(0.4)  # a word of its own
    assert table[table["class"] == "pos"]["attribution"].isna().all()  # no "pos" attributions


def test_no_planted_tag_leaves_only_the_cue_words(tmp_path):
    store = _run(tmp_path, plant=False)
    score_shortcuts(store, CLASSES, ScoreConfig(shortcut_min_count=10))
    table = store.read_table(artifacts.SHORTCUTS.path).to_pandas()
    cues = {"great", "wonderful", "excellent", "lovely", "superb", "fantastic", "awful",
            "terrible", "horrible", "dreadful", "poor", "boring"}
    assert set(table["token"]) <= cues  # the filler words go with neither class


def test_a_training_label_the_model_does_not_know_is_refused(tmp_path):
    store = _run(tmp_path)
    with pytest.raises(StageError, match="labels the model does not know: \\['pos'\\]"):
        score_shortcuts(store, ["neg", "other"], ScoreConfig())


def test_the_log_writes_the_threshold_as_the_report_does(tmp_path, caplog):
    store = _run(tmp_path)
    with caplog.at_level("INFO", logger="relabeler.jobs.shortcuts"):
        summary = score_shortcuts(store, CLASSES, ScoreConfig())
    line = next(r.getMessage() for r in caplog.records if "shortcut token(s) pass" in
                r.getMessage())
    threshold = f"{summary['p_threshold']:.2g}"
    assert f"pass p < {threshold} (alpha 0.01 over {summary['n_tested']} " in line
    assert len(threshold) < 10  # not repr's 17 digits
