"""What the report's plots draw: legends that hide nothing and name every colour, and axes
that say what they count."""

from __future__ import annotations

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba

from relabeler.report import render
from relabeler.report.build import build_report
from tests.report.test_build import finished_run, relabels


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """The plots' figures by file name (``_png`` keeps each one instead of encoding it)."""
    figures: list = []

    def keep(fig) -> bytes:
        figures.append(fig)
        return f"{len(figures) - 1}".encode()

    monkeypatch.setattr(render, "_png", keep)
    by_name: dict = {}

    def plot(report: dict) -> dict:
        for name, key in render.plots(report).items():
            by_name[name] = figures[int(key)]
        return by_name

    return plot


def _report(tmp_path) -> dict:
    store = finished_run(tmp_path, relabels(["t00", "t01"], ["neg", "pos"], ["pos", "neg"]))
    return build_report(store)


def test_the_accuracy_legend_is_outside_the_axes(tmp_path, drawn):
    fig = drawn(_report(tmp_path))["accuracy.png"]
    ax = fig.axes[0]
    canvas = FigureCanvasAgg(fig)  # the figure was closed once saved
    canvas.draw()
    renderer = canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    # inside (lower right, before) it covered the low end of the interval bar
    assert not legend.overlaps(ax.get_window_extent(renderer))


def test_the_detection_plot_names_its_y_axis(tmp_path, drawn):
    report = {**_report(tmp_path), "detection": {
        "n_flipped": 2, "budget": [1, 2, 4], "precision": [1.0, 1.0, 0.5],
        "recall": [0.5, 1.0, 1.0]}}
    ax = drawn(report)["detection.png"].axes[0]
    assert ax.get_ylabel() == "share (precision or recall)"
    assert "scored before relabeling" in ax.get_title()


def test_the_balance_legend_shows_every_class_colour(tmp_path, drawn):
    section = {"top": [],
               "balance": [{"class": c, "share": s, "eval_recall": r, "eval_recall_after": a}
                           for c, s, r, a in (("ham", 0.6, 0.99, 1.0), ("spam", 0.3, 0.9, 0.93),
                                              ("$5-$10", 0.1, 0.5, 0.6))],
               "recall_version": 2}
    ax = drawn({**_report(tmp_path), "shortcuts": section})["balance.png"].axes[0]
    bars = {tick.get_text(): patch.get_facecolor()
            for tick, patch in zip(ax.get_xticklabels(), ax.patches, strict=True)}
    legend = ax.get_legend()
    swatches = {text.get_text(): handle.get_facecolor()
                for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True)
                if text.get_text().endswith(": share of training rows")}
    assert set(swatches) == {f"{c}: share of training rows" for c in ("ham", "spam", "$5-$10")}
    for name, colour in bars.items():
        assert to_rgba(swatches[f"{name}: share of training rows"]) == to_rgba(colour)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[-2:] == ["eval recall, baseline model", "eval recall, version 2 model"]
    assert all(not t.get_parse_math() for t in legend.get_texts())


def test_the_burn_down_counts_wrong_labels_on_its_y_axis():
    from relabeler.report.rounds import remaining_plot

    figures = []
    remaining_plot([{"round": 1, "corrections": 5, "remaining": [1.0, 3.0, 9.0],
                     "true_remaining": None}], lambda fig: figures.append(fig) or b"")
    assert figures[0].axes[0].get_ylabel() == "wrong labels"
