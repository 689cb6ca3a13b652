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



def _spy_on_tick_labels(monkeypatch) -> list[list[str]]:
    """The tick labels every plot draws from now on, in order."""
    import matplotlib.axes

    drawn: list[list[str]] = []
    for name in ("set_yticks", "set_xticks"):
        original = getattr(matplotlib.axes.Axes, name)

        def spy(self, ticks, labels=None, *args, _original=original, **kwargs):
            drawn.append(list(labels))
            return _original(self, ticks, labels, *args, **kwargs)

        monkeypatch.setattr(matplotlib.axes.Axes, name, spy)
    return drawn

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
    assert ("Lowest eval recall (the baseline model's, scored before relabeling): "
            "<b>neg (50.0%)</b>.") in page
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


def test_a_token_the_fonts_cannot_draw_is_plotted_by_its_row_number(monkeypatch):
    import warnings


    section = {"alpha": 0.01, "n_tested": 10, "p_threshold": 0.001, "min_count": 10,
               "n_significant": 2, "lowest_recall": ["垃圾"],
               "top": [{"token": "免费", "class": "垃圾", "count": 30, "class_share": 0.9,
                        "z": 8.0, "p_value": 1e-9, "association": 0.7, "attribution": None,
                        "examples": ["免费领取"]},
                       {"token": "call", "class": "垃圾", "count": 20, "class_share": 0.6,
                        "z": 5.0, "p_value": 1e-6, "association": 0.4, "attribution": 0.2,
                        "examples": ["call now"]}],
               "balance": [{"class": "垃圾", "count": 40, "share": 0.4, "eval_count": 10,
                            "eval_recall": 0.5},
                           {"class": "ham", "count": 60, "share": 0.6, "eval_count": 10,
                            "eval_recall": 0.9}]}
    drawn = _spy_on_tick_labels(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would fail here
        images = shortcut_plots(section, _png)
    assert sorted(images) == ["balance.png", "shortcuts.png"]
    # a token the fonts cannot draw is its row number, a class its number: the plot has no
    # legend of its colours, so the class is in each label
    assert drawn == [["#1 (class 1)", "call (class 1)"], ["class 1", "ham"]]
    assert "The shortcut plot names a token its fonts cannot draw #N: row N of the table of " \
        "tokens above." in shortcut_html(section, images)
    assert "The plots name the classes their fonts cannot draw by number: class 1 = 垃圾." \
        in shortcut_html(section, images)
    page = shortcut_html(section, images)
    assert "<th>#</th><th>token</th>" in page and "<tr><td>1</td><td>免费</td>" in page


def test_the_corrections_plot_names_an_undrawable_class_by_its_number(monkeypatch):
    import warnings

    import matplotlib.axes

    from relabeler.report.fonts import class_label
    from relabeler.report.render import plots

    classes = ["垃圾", "ham"]
    assert [class_label(c, classes) for c in classes] == ["class 1", "ham"]
    report = {"eval": {"accuracy": {"before": 0.9, "after": 0.92, "delta": 0.02,
                                    "ci95": [0.0, 0.04]}},
              "labels_spent": 40, "classes": classes,
              "correction_matrix": {"垃圾": {"ham": 3, "垃圾": 5}, "(pool)": {"ham": 2}}}
    drawn: list[list[str]] = []
    for name in ("set_yticks", "set_xticks"):
        original = getattr(matplotlib.axes.Axes, name)

        def spy(self, ticks, labels=None, *args, _original=original, **kwargs):
            drawn.append(None if labels is None else list(labels))
            return _original(self, ticks, labels, *args, **kwargs)

        monkeypatch.setattr(matplotlib.axes.Axes, name, spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        images = plots(report)
    assert "corrections.png" in images
    assert ["ham", "class 1"] in drawn and ["(pool)", "class 1"] in drawn


def test_a_long_class_name_is_cut_in_the_plots_and_named_in_full_beside_them(monkeypatch):

    from relabeler.report.fonts import class_label, class_legend

    # 200 characters were drawn in full as a tick and a legend entry; two names that begin
    # alike must not be cut to one label
    first, second = "a" * 40 + " first" + "x" * 154, "a" * 40 + " second" + "y" * 153
    classes = ["ham", first, second]
    assert [class_label(c, classes) for c in classes] == [
        "ham", "a" * 19 + "… (class 2)", "a" * 19 + "… (class 3)"]
    assert class_label("b" * 31, ["b" * 31]) == "b" * 19 + "… (class 1)"
    assert class_label("b" * 30, ["b" * 30]) == "b" * 30
    assert class_legend(classes) == (
        f"<p>The plots cut the class names longer than 30 characters and name them by number: "
        f"class 2 = {first}; class 3 = {second}.</p>")
    section = {"alpha": 0.01, "n_tested": 10, "p_threshold": 0.001, "min_count": 10,
               "n_significant": 1, "lowest_recall": [first],
               "top": [{"token": "free", "class": first, "count": 30, "class_share": 0.9,
                        "z": 8.0, "p_value": 1e-9, "association": 0.7, "attribution": None,
                        "examples": ["free now"]}],
               "balance": [{"class": c, "count": 10 * (i + 1), "share": (i + 1) / 6,
                            "eval_count": 10, "eval_recall": 0.5}
                           for i, c in enumerate(classes)]}
    drawn = _spy_on_tick_labels(monkeypatch)
    shortcut_plots(section, _png)
    assert drawn == [["free (" + "a" * 19 + "… (class 2))"],
                     ["ham", "a" * 19 + "… (class 2)", "a" * 19 + "… (class 3)"]]
    page = shortcut_html(section, {})
    assert f"<td>{first}</td>" in page and f"class 2 = {first}; class 3 = {second}." in page
    assert "#N" not in page  # every token drawn: no row numbers to explain
