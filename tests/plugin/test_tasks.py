import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relabeler.plugin.labeling import SUPPORTS_GIVEN, SUPPORTS_SUGGESTION, LabelingSpec
from relabeler.plugin.tasks import (
    NO_ATTRIBUTIONS_NOTE,
    AttributionIndex,
    Example,
    PredictionError,
    SampleInput,
    Span,
    build_prediction,
    build_task,
    panel_html,
    suspect_samples,
    validate_prediction,
)

SPEC = LabelingSpec.for_classes(["ham", "spam"])
TEXT = "WIN a free prize now, call 0800"


def sample(**kw):
    base = dict(id="s1", text=TEXT, given_label="ham", suggested_label="spam", confidence=0.93,
                suspect_score=0.81, reasons=("the model doubts its label",),
                examples=(Example("s9", "free entry <b>win</b>", "spam", 0.5),),
                suggestion_spans=(Span(0, 3, 0.9), Span(6, 10, 0.45), Span(11, 15, -0.2)),
                given_spans=(Span(22, 26, 0.3),))
    base.update(kw)
    return SampleInput(**base)


def test_prediction_prefills_the_suggestion_and_both_evidence_colours():
    pred = build_prediction(sample(), SPEC, top_spans=3)
    choices = [r for r in pred["result"] if r["type"] == "choices"]
    assert choices == [{"from_name": "answer", "to_name": "text", "type": "choices",
                        "value": {"choices": ["spam"]}}]
    regions = [(r["value"]["text"], r["value"]["labels"][0], r["score"])
               for r in pred["result"] if r["type"] == "labels"]
    assert regions == [("WIN", SUPPORTS_SUGGESTION, 1.0),
                       ("free", SUPPORTS_SUGGESTION, 0.5),
                       ("call", SUPPORTS_GIVEN, 0.3333)]
    assert pred["score"] == 0.93 and pred["model_version"] == "relabeler"


def test_top_spans_limits_regions_per_side():
    pred = build_prediction(sample(), SPEC, top_spans=1)
    assert [r["value"]["text"] for r in pred["result"] if r["type"] == "labels"] == \
        ["WIN", "call"]


def test_when_suggestion_equals_given_spans_support_the_given_label():
    pred = build_prediction(sample(suggested_label="ham"), SPEC)
    labels = {r["value"]["labels"][0] for r in pred["result"] if r["type"] == "labels"}
    assert labels == {SUPPORTS_GIVEN}


def test_task_carries_sample_id_priority_and_a_valid_prediction():
    task = build_task(sample(), SPEC, priority=7)
    assert task["data"]["sample_id"] == "s1" and task["data"]["priority"] == 7
    assert task["data"]["text"] == TEXT and task["data"]["given_label"] == "ham"
    validate_prediction(task["predictions"][0], SPEC, TEXT)


def test_a_label_outside_the_config_is_refused():
    with pytest.raises(PredictionError, match="answer"):
        build_task(sample(suggested_label="eggs"), SPEC, priority=1)


def test_a_region_outside_the_text_is_refused():
    with pytest.raises(PredictionError, match="outside the text"):
        build_task(sample(suggestion_spans=(Span(20, 99, 1.0),)), SPEC, priority=1)


def test_a_region_whose_text_differs_is_refused():
    pred = build_prediction(sample(), SPEC)
    pred["result"][1]["value"]["text"] = "LOSE"
    with pytest.raises(PredictionError, match="LOSE"):
        validate_prediction(pred, SPEC, TEXT)


def test_a_score_outside_unit_interval_is_refused():
    pred = build_prediction(sample(), SPEC)
    pred["score"] = 1.5
    with pytest.raises(PredictionError, match="score"):
        validate_prediction(pred, SPEC, TEXT)


def test_panel_shows_given_label_score_reasons_examples_and_escapes_html():
    html = panel_html(sample(), SPEC)
    assert "<b>Given label:</b> ham" in html and "0.81" in html
    assert "the model doubts its label" in html
    assert "1. <b>[spam]</b> free entry &lt;b&gt;win&lt;/b&gt;" in html


def test_without_attributions_the_panel_says_so():
    frame = pd.DataFrame({"id": ["a"], "rank": [1], "suspect_score": [0.5],
                          "given_label": ["ham"], "suggested_label": ["spam"],
                          "suggested_confidence": [0.6], "reasons": [["r"]],
                          "support_ids": [["b"]], "support_scores": [[0.4]]})
    texts, labels = {"a": "hello there", "b": "other"}, {"a": "ham", "b": "spam"}
    (only,) = suspect_samples(frame, texts, labels, AttributionIndex.empty())
    assert only.notes == (NO_ATTRIBUTIONS_NOTE,)
    assert only.examples == (Example("b", "other", "spam", 0.4),)
    assert NO_ATTRIBUTIONS_NOTE in panel_html(only, SPEC)
    assert [r["type"] for r in build_prediction(only, SPEC)["result"]] == ["choices"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=40),
       cuts=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40),
                               st.floats(0.01, 5.0)), max_size=6))
def test_any_in_range_spans_validate(text, cuts):
    spans = tuple(Span(min(a, b), max(a, b), s) for a, b, s in cuts
                  if min(a, b) < max(a, b) <= len(text))
    s = sample(text=text, suggestion_spans=spans, given_spans=spans)
    task = build_task(s, SPEC, priority=1)
    for region in task["predictions"][0]["result"][1:]:
        value = region["value"]
        assert value["text"] == text[value["start"]:value["end"]]
        assert 0.0 <= region["score"] <= 1.0


def test_a_task_carries_its_round_only_when_given():
    from relabeler.plugin.tasks import ROUND_FIELD

    assert ROUND_FIELD not in build_task(sample(), SPEC, priority=7)["data"]
    assert build_task(sample(), SPEC, priority=7, round_no=3)["data"][ROUND_FIELD] == 3
