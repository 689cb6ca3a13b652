import re

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
    evidence_spans,
    panel_html,
    suspect_samples,
    validate_prediction,
)

SPEC = LabelingSpec.for_classes(["ham", "spam"])
TEXT = "WIN a free prize now, call 0800"


def sample(**kw):
    base = dict(id="s1", text=TEXT, given_label="ham", suggested_label="spam", confidence=0.93,
                reasons=("the model doubts its label",),
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


def test_evidence_regions_are_read_only_and_still_valid():
    # the model's evidence is display only: Label Studio 1.23.2 lets no one move, relabel or
    # delete a region whose result says "readonly" (the answer stays editable)
    pred = build_prediction(sample(), SPEC, top_spans=3)
    assert [(r["type"], r.get("readonly")) for r in pred["result"]] == \
        [("choices", None), ("labels", True), ("labels", True), ("labels", True)]
    validate_prediction(pred, SPEC, TEXT)


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


def test_a_nul_character_is_shown_as_a_replacement_character_keeping_the_offsets():
    # a Label Studio on PostgreSQL cannot store U+0000 (a dataset made before `relabeler data`
    # refused it may hold one): one character for one, so the evidence regions stay in place
    import json

    text = TEXT.replace(" ", "\x00", 1)
    task = build_task(sample(text=text, examples=(Example("s9", "free\x00entry", "spam", 0.5),)),
                      SPEC, priority=7)
    shown = TEXT.replace(" ", "\ufffd", 1)
    assert task["data"]["text"] == shown and "free\ufffdentry" in task["data"]["panel"]
    assert "\\u0000" not in json.dumps(task) and "\x00" not in json.dumps(task,
                                                                          ensure_ascii=False)
    regions = [r["value"] for r in task["predictions"][0]["result"] if r["type"] == "labels"]
    assert [(r["start"], r["end"], r["text"]) for r in regions] == [
        (0, 3, "WIN"), (6, 10, "free"), (22, 26, "call")]
    validate_prediction(task["predictions"][0], SPEC, shown)


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


def test_panel_shows_given_label_suggestion_reasons_examples_and_escapes_html():
    html = panel_html(sample(), SPEC)
    assert "<b>Given label:</b> ham" in html and "<b>Suggested:</b> spam (0.93)" in html
    assert "the model doubts its label" in html
    assert "1. <b>[spam]</b> free entry &lt;b&gt;win&lt;/b&gt;" in html
    assert "Suspect score" not in html


def _review_rows() -> tuple[pd.DataFrame, dict, dict]:
    """A flagged row (rank 1: high score, reasons, representer support) and a random control
    (rank 900: low score, no reasons, no representer evidence), as score writes them."""
    frame = pd.DataFrame({
        "id": ["f", "c"], "rank": [1, 900], "suspect_score": [0.98, 0.43],
        "given_label": ["ham", "ham"], "suggested_label": ["spam", "spam"],
        "suggested_confidence": [0.97, 0.004],
        "reasons": [["the model doubts its label"], []],
        "support_ids": [["s1", "s2"], []], "support_scores": [[0.9, 0.8], []],
        "oppose_ids": [["n1"], []], "oppose_scores": [[-0.5], []],
        "neighbor_ids": [["n1", "s1"], ["n2", "n1"]],
        "neighbor_scores": [[0.97, 0.91], [0.95, 0.9]]})
    texts = {"f": "free prize call now", "c": "see you at lunch", "s1": "win a prize",
             "s2": "claim your reward", "n1": "call me now", "n2": "lunch at noon?"}
    labels = {"f": "ham", "c": "ham", "s1": "spam", "s2": "spam", "n1": "ham", "n2": "ham"}
    return frame, texts, labels


def test_a_random_control_looks_like_a_flagged_task():
    # a control showed a low suspect score, a suggestion at 0.00, no reasons and no examples,
    # where a flagged task showed 0.98, 0.97, its reasons and three examples
    frame, texts, labels = _review_rows()
    flagged, control = suspect_samples(frame, texts, labels, AttributionIndex.empty())
    panels = [panel_html(x, SPEC) for x in (flagged, control)]
    headings = [re.findall(r"<b>([^<\[][^<]*)</b>", html) for html in panels]
    assert headings[0] == headings[1] == [
        "Given label:", "Suggested:",
        "Similar training examples (nearest by the model's features, with their labels):"]
    for html, number in zip(panels, ("0.98", "0.43"), strict=True):
        assert number not in html and "Suspect score" not in html
        assert "Why it is here" not in html and "(0." not in html
    assert flagged.reasons == control.reasons == ()
    assert flagged.confidence is None and control.confidence is None
    assert "score" not in build_prediction(flagged, SPEC)
    assert "score" not in build_prediction(control, SPEC)


def test_similar_examples_are_the_nearest_neighbours_not_the_representer_support():
    # the panel's "similar" examples were the representer's support rows for the suggestion
    # (always of the suggested label, often mislabeled, not near): now the kNN neighbours
    frame, texts, labels = _review_rows()
    flagged, control = suspect_samples(frame, texts, labels, AttributionIndex.empty())
    assert flagged.examples == (Example("n1", "call me now", "ham", 0.97),
                                Example("s1", "win a prize", "spam", 0.91))
    assert control.examples == (Example("n2", "lunch at noon?", "ham", 0.95),
                                Example("n1", "call me now", "ham", 0.9))
    (first,) = suspect_samples(frame.head(1), texts, labels, AttributionIndex.empty(),
                               examples=1)
    assert first.examples == flagged.examples[:1]


def test_without_attributions_the_panel_says_so():
    frame = pd.DataFrame({"id": ["a"], "rank": [1], "suspect_score": [0.5],
                          "given_label": ["ham"], "suggested_label": ["spam"],
                          "suggested_confidence": [0.6], "reasons": [["r"]],
                          "neighbor_ids": [["b"]], "neighbor_scores": [[0.4]]})
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


def test_a_run_scored_before_neighbour_lists_says_how_to_add_them(tmp_path, caplog):
    from relabeler.plugin.evidence import RunEvidence
    from tests.plugin.synthetic import make_run

    store = make_run(str(tmp_path / "run"), n_train=30, n_acquire=0)
    run = RunEvidence.load(store)
    assert all(len(s.examples) == 3 for s in run.train_samples(list(run.suspects["id"])))
    old = store.read_table("scores/suspects.parquet").drop_columns(
        ["neighbor_ids", "neighbor_scores"])
    store.write_table("scores/suspects.parquet", old)
    with caplog.at_level("WARNING"):
        run = RunEvidence.load(store)
    assert "tasks show no similar training examples; run `relabeler score --run" in caplog.text
    assert all(s.examples == () for s in run.train_samples(list(run.suspects["id"])))


def test_a_word_both_sides_would_mark_is_shown_once_on_the_side_it_weighs_more():
    # "free" is the given label's best span (1.0 of its best) and the suggestion's second
    # (0.5 of its best): it supports the given label only, and the suggestion shows "call"
    both = sample(suggestion_spans=(Span(0, 3, 0.9), Span(6, 10, 0.45), Span(22, 26, 0.2)),
                  given_spans=(Span(6, 10, 0.3), Span(11, 16, 0.1)))
    pred = build_prediction(both, SPEC, top_spans=2)
    regions = [(r["value"]["text"], r["value"]["labels"][0])
               for r in pred["result"] if r["type"] == "labels"]
    assert regions == [("WIN", SUPPORTS_SUGGESTION), ("call", SUPPORTS_SUGGESTION),
                       ("free", SUPPORTS_GIVEN), ("prize", SUPPORTS_GIVEN)]


ZH = "苹果公司今天发布新手机，价格很高。"
ZH_SCORES = (0.2, 0.3, -0.1, -0.2, 0.05, -0.05, 0.1, 0.15, -0.3, 0.25, 0.2, 0.6, 0.1, -0.1,
             -0.2, -0.1, 0.7)


def test_chinese_evidence_is_runs_of_characters_never_a_punctuation_mark():
    # the tokenizer makes each character a word: the top spans were single characters and
    # the marks ，。 (the reviewer's 234 highlights: 170 single characters, 54 marks)
    spans = tuple(Span(i, i + 1, score) for i, score in enumerate(ZH_SCORES))
    given = (Span(2, 3, 0.3), Span(3, 4, 0.2), Span(14, 15, 0.1), Span(15, 16, 0.1))
    task = build_task(sample(text=ZH, suggestion_spans=spans, given_spans=given), SPEC,
                      priority=1)
    regions = [(r["value"]["start"], r["value"]["end"], r["value"]["text"],
                r["value"]["labels"][0], r["score"])
               for r in task["predictions"][0]["result"] if r["type"] == "labels"]
    assert regions == [(0, 2, "苹果", SUPPORTS_SUGGESTION, 1.0),
                       (9, 11, "手机", SUPPORTS_SUGGESTION, 0.9),
                       (6, 8, "发布", SUPPORTS_SUGGESTION, 0.5),
                       (2, 4, "公司", SUPPORTS_GIVEN, 1.0),
                       (14, 16, "很高", SUPPORTS_GIVEN, 0.4)]
    assert all(ZH[a:b] == text for a, b, text, _, _ in regions)


def test_evidence_spans_merge_only_adjacent_cjk_spans_of_one_sign():
    text = "iPhone，很好 的手机、OK"
    spans = [Span(0, 6, 0.5), Span(6, 7, 0.9), Span(7, 8, 0.2), Span(8, 9, 0.3),
             Span(10, 11, 0.4), Span(11, 12, 0.1), Span(12, 13, -0.2), Span(13, 14, 0.8),
             Span(14, 16, 0.1)]
    assert evidence_spans(text, spans) == [
        Span(0, 6, 0.5), Span(7, 9, 0.5), Span(10, 12, 0.5), Span(12, 13, -0.2),
        Span(14, 16, 0.1)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["free", "prize", ",", "!", "...", "2024", "$5", "é", ":)"]),
                min_size=1, max_size=12),
       st.lists(st.floats(-1, 1), min_size=12, max_size=12))
def test_evidence_spans_of_text_written_with_spaces_are_the_spans_given(words, scores):
    text = " ".join(words)
    spans, at = [], 0
    for word, score in zip(words, scores, strict=False):
        spans.append(Span(at, at + len(word), score))
        at += len(word) + 1
    assert evidence_spans(text, spans) == spans


def test_english_evidence_is_as_before():
    text = "Free entry, win $500 now!!! call: 0800"
    spans = (Span(0, 4, 0.5), Span(4, 5, 0.0), Span(5, 10, 0.4), Span(10, 11, 0.9),
             Span(12, 15, 0.3), Span(16, 17, 0.8), Span(17, 20, 0.2), Span(21, 24, -0.1),
             Span(24, 27, 0.7), Span(28, 32, 0.6), Span(32, 33, 0.65))
    pred = build_prediction(sample(text=text, suggestion_spans=spans, given_spans=()), SPEC)
    assert [(r["value"]["text"], r["score"]) for r in pred["result"] if r["type"] == "labels"] \
        == [(",", 1.0), ("$", 0.8889), ("!!!", 0.7778)]
