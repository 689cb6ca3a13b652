"""The report's "Shortcuts and balance" section from score's tables."""

import numpy as np
import pyarrow as pa

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.jobs.shortcuts import score_shortcuts
from relabeler.report.render import _png
from relabeler.report.shortcuts import shortcut_html, shortcut_plots, shortcut_section
from relabeler.store import RunStore
from tests.conftest import synthetic_frame


def _scored(tmp_path, *, plant: bool) -> RunStore:
    frame = synthetic_frame(200, seed=3)
    if plant:
        pos = frame.index[frame["label"] == "pos"][::2]
        frame.loc[pos, "text"] = frame.loc[pos, "text"] + " reuters"
    store = RunStore(tmp_path / "run")
    store.write_table(artifacts.TRAIN.path, pa.Table.from_pandas(frame, preserve_index=False))
    store.write_table(artifacts.EVAL_PREDICTIONS.path, pa.table({
        "id": ["e0", "e1", "e2", "e3"], "label": ["neg", "neg", "pos", "pos"],
        "pred": ["neg", "pos", "pos", "pos"],
        "probs": pa.array([[0.5, 0.5]] * 4, pa.list_(pa.float32(), 2))}))
    # the cue words (6 per class, ~17 texts each) are real features; a high min_count leaves
    # only the planted tag
    summary = score_shortcuts(store, ["neg", "pos"], ScoreConfig(shortcut_min_count=30))
    store.write_json(artifacts.SUMMARY.path, {"shortcuts": summary})
    return store


def test_the_section_shows_the_planted_token_with_examples_and_the_thin_class(tmp_path):
    store = _scored(tmp_path, plant=True)
    section = shortcut_section(store)
    assert section["n_significant"] == 1
    top = section["top"][0]
    assert (top["token"], top["class"], top["count"]) == ("reuters", "pos", 50)
    assert len(top["examples"]) == 2 and all(x.endswith("reuters") for x in top["examples"])
    assert section["lowest_recall"] == ["neg"]  # recall 0.5 against 1.0; of two classes, one
    images = shortcut_plots(section, _png)
    assert sorted(images) == ["balance.png", "shortcuts.png"]
    assert all(data[:4] == b"\x89PNG" for data in images.values())
    page = shortcut_html(section, images)
    assert "Shortcuts and balance" in page and "reuters" in page
    assert "Lowest eval recall: <b>neg (50.0%)</b>." in page
    assert f"p &lt; {section['p_threshold']:.2g}" in page
    assert page.count("<img") == 2 and "None found" not in page


def test_no_shortcut_is_said_plainly(tmp_path):
    store = _scored(tmp_path, plant=False)
    section = shortcut_section(store)
    assert section["n_significant"] == 0 and section["top"] == []
    assert np.isclose(section["p_threshold"], 0.01 / section["n_tested"])
    images = shortcut_plots(section, _png)
    assert sorted(images) == ["balance.png"]
    page = shortcut_html(section, images)
    assert "<b>None found</b>" in page and "50.0%" in page  # neg's recall


def test_a_run_without_the_tables_has_no_section(tmp_path):
    store = RunStore(tmp_path / "run")
    assert shortcut_section(store) == {}
    assert shortcut_html({}, {}) == "" and shortcut_plots({}, _png) == {}
