"""Label Studio tasks from the run's artifacts: pure functions, no HTTP, no files.

One task per sample::

    {"data": {text, panel, sample_id, priority, given_label},
     "predictions": [{"model_version", "score", "result": [choices, labels...]}]}

(``score``: the suggestion's confidence, on acquisition and eval-audit tasks only; a review
task shows no number that follows its rank, see :func:`suspect_samples`.)
The prediction pre-fills the answer with the suggested label and marks the top evidence spans
in two colours: spans that support the suggestion and spans that support the given label, each
with a per-region score in [0, 1] (the span's attribution over the largest shown). Every
prediction is checked against the labeling config by :func:`validate_prediction` before a task
leaves :func:`build_task`; a mismatch raises :class:`PredictionError`.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from relabeler.errors import DataError, PluginError
from relabeler.plugin.labeling import (
    GIVEN_COLOUR,
    SUGGESTION_COLOUR,
    SUPPORTS_GIVEN,
    SUPPORTS_SUGGESTION,
    LabelingSpec,
)
from relabeler.selectors.text_units import SINGLE_UNIT_RANGES

MODEL_VERSION = "relabeler"
SAMPLE_ID_FIELD = "sample_id"
PRIORITY_FIELD = "priority"
#: the round that sent the task (push sets it on every task's data)
ROUND_FIELD = "round"
GIVEN_LABEL_FIELD = "given_label"
NO_ATTRIBUTIONS_NOTE = ("No evidence regions: this run has no attributions.parquet (run "
                        "`relabeler attribute` to add them).")
_EXAMPLE_CHARS = 240
_CJK_CHARS = re.compile(rf"[{SINGLE_UNIT_RANGES}]+")
_CJK_CHAR = re.compile(rf"[{SINGLE_UNIT_RANGES}]")
#: a character of the CJK Symbols and Punctuation block or the full-width forms (、。，！)
_CJK_MARK = re.compile(r"[\u3000-\u303f\uff00-\uffef]")
_WORD = re.compile(r"\w")


class PredictionError(PluginError, ValueError):
    """A prediction does not match the labeling config or the task's text; nothing was sent."""


@dataclass(frozen=True)
class Span:
    """A character span of the sample's text and its attribution toward one target label."""

    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Example:
    """A training example shown beside the task: its text and label, and why it is shown."""

    id: str
    text: str
    label: str
    score: float


@dataclass(frozen=True)
class SampleInput:
    """Everything one task shows. ``given_label`` is None for an unlabeled pool sample.
    ``confidence`` (the suggestion's, in the panel and as the prediction's score) and
    ``reasons`` are None and empty on review tasks (:func:`suspect_samples`)."""

    id: str
    text: str
    given_label: str | None
    suggested_label: str | None
    confidence: float | None = None
    reasons: tuple[str, ...] = ()
    examples: tuple[Example, ...] = ()
    suggestion_spans: tuple[Span, ...] = ()
    given_spans: tuple[Span, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: (start, end) characters of ``text`` the evidence was read from, when that is a window
    #: of a long text (``[model] long_text``); the panel shows it first
    evidence_window: tuple[int, int] | None = None  # the suggestion's evidence (characters)
    given_window: tuple[int, int] | None = None     # the given label's, where it differs


# ---------------------------------------------------------------------------------------------
# the read-only panel


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _clip(text: str, limit: int = _EXAMPLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def panel_html(sample: SampleInput, spec: LabelingSpec) -> str:
    """The read-only panel: given label, suggested label (and its confidence, when the sample
    has one), reasons, similar training examples with their labels. It never shows the suspect
    score: a number that gives the rank away would tell a random control from a flagged task.

    Every piece of text from the dataset is HTML-escaped.
    """
    e = html.escape
    given = e(sample.given_label) if sample.given_label is not None else \
        "<i>none (unlabeled pool sample)</i>"
    head = [f"<b>Given label:</b> {given}"]
    if sample.suggested_label is not None:
        confidence = f" ({_fmt(sample.confidence)})" if sample.confidence is not None else ""
        head.append(f"<b>Suggested:</b> {e(sample.suggested_label)}{confidence}")
    parts = ["<div>"]
    parts.append("<p>" + " &nbsp;&middot;&nbsp; ".join(head) + "</p>")
    if sample.reasons:
        parts.append("<p style='margin-bottom:0'><b>Why it is here:</b></p>")
        parts += [f"<div style='margin-left:1em'>&bull; {e(r)}</div>" for r in sample.reasons]
    if sample.examples:
        parts.append("<p style='margin-bottom:0'><b>Similar training examples "
                     "(nearest by the model's features, with their labels):</b></p>")
        parts += [f"<div style='margin-left:1em'>{i}. <b>[{e(x.label)}]</b> "
                  f"{e(_clip(x.text))}</div>" for i, x in enumerate(sample.examples, start=1)]
    if sample.suggestion_spans or sample.given_spans:
        legend = [f"<span style='background:#56B4E9'>&nbsp;{e(SUPPORTS_SUGGESTION)}"
                  f"&nbsp;</span> pushes toward {e(sample.suggested_label or '')}"]
        if sample.given_spans and sample.given_label is not None:
            legend.append(f"<span style='background:#E69F00'>&nbsp;{e(SUPPORTS_GIVEN)}"
                          f"&nbsp;</span> pushes toward {e(sample.given_label)}")
        parts.append("<p><i>Highlights:</i> " + "; ".join(legend) + "</p>")
    parts += [f"<p><i>{e(note)}</i></p>" for note in sample.notes]
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# predictions


def window_html(sample: SampleInput, prediction: Mapping[str, Any], *,
                where: str = "below") -> str:
    """What the annotator reads first of a text longer than the model's window: the window the
    suggestion's evidence was read from (and the given label's, where that is another), its
    characters as they are in the text, the prediction's evidence regions inside it marked in
    their colours. Empty when the evidence was read from the whole text (the text below shows
    it all). ``where``: where the whole text is, seen from the page. Every piece of text from
    the dataset is HTML-escaped."""
    windows = [("Where the evidence for the suggestion is", sample.evidence_window)]
    if sample.given_window not in (None, sample.evidence_window):
        windows.append(("Where the evidence for the given label is", sample.given_window))
    colours = {SUPPORTS_SUGGESTION: SUGGESTION_COLOUR, SUPPORTS_GIVEN: GIVEN_COLOUR}
    regions = sorted((r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
                     for r in prediction.get("result") or ()
                     if r.get("type") == "labels" and "start" in r.get("value", {}))
    parts = []
    for title, window in windows:
        if window is None:
            continue
        start, end = window
        pieces, at = [], start
        for a, b, label in regions:
            if a < at or b > end:  # outside the window, or over a region already marked
                continue
            pieces.append(html.escape(sample.text[at:a]))
            pieces.append(f"<span style='background:{colours[label]}' "
                          f"title=\"{html.escape(label)}\">{html.escape(sample.text[a:b])}</span>")
            at = b
        pieces.append(html.escape(sample.text[at:end]))
        parts.append(f"<p style='margin-bottom:0'><b>{title}</b> (characters {start:,}-{end:,} "
                     f"of {len(sample.text):,}; the whole text, with the same highlights, is "
                     f"{where}):</p><blockquote style='margin:0.25em 1em; white-space:pre-wrap'>"
                     f"{''.join(pieces)}</blockquote>")
    return "<div>" + "".join(parts) + "</div>" if parts else ""


def evidence_spans(text: str, spans: Iterable[Span]) -> list[Span]:
    """The spans to choose evidence from, for Chinese and Japanese text.

    The tokenizer makes each CJK ideograph or kana a word of its own, so the top spans of such
    text were single characters (公, 司) and punctuation (、。). Here adjacent spans made only of
    such characters, whose scores have the same sign, become one span of the run, scored by
    the sum of their scores: attribution adds up as the word spans add their tokens' scores,
    so a run weighs what the same word would weigh as one span (the max would rank a
    two-character word as its stronger half). A span without a letter or digit goes when it
    holds CJK punctuation or touches a CJK character: a mark is no evidence to show an
    annotator. Every other span (all of text written with spaces) is kept as it is.
    """
    out: list[Span] = []
    n = len(text)
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if not 0 <= span.start < span.end <= n:  # not of this text: left to the region check
            out.append(span)
            continue
        piece = text[span.start:span.end]
        if not _WORD.search(piece) and (
                _CJK_MARK.search(piece)
                or (span.start > 0 and _CJK_CHAR.match(text[span.start - 1]))
                or (span.end < n and _CJK_CHAR.match(text[span.end]))):
            continue
        previous = out[-1] if out else None
        if (previous is not None and previous.end == span.start and span.end > span.start
                and _CJK_CHARS.fullmatch(piece)
                and _CJK_CHARS.fullmatch(text[previous.start:previous.end])
                and (previous.score > 0) == (span.score > 0)
                and (previous.score < 0) == (span.score < 0)):
            out[-1] = Span(previous.start, span.end, previous.score + span.score)
        else:
            out.append(span)
    return out


def _top_spans(spans: Iterable[Span], k: int) -> list[Span]:
    positive = [s for s in spans if s.score > 0 and math.isfinite(s.score)]
    return sorted(positive, key=lambda s: (-s.score, s.start))[:k]


def _one_side_each(sides: list[tuple[str, str, Sequence[Span]]], k: int
                   ) -> list[tuple[str, str, list[Span]]]:
    """Each side's top ``k`` spans, where a span that both sides would show is shown on the
    side where it weighs more (its score over the side's best), and the other side takes its
    next span: one word is not offered as evidence for two opposing labels."""
    best = {label: max((s.score for s in _top_spans(spans, 1)), default=0.0)
            for label, _, spans in sides}
    owner: dict[tuple[int, int], tuple[float, str]] = {}
    for label, _, spans in sides:
        for span in _top_spans(spans, k):
            weight = span.score / best[label]
            key = (span.start, span.end)
            if key not in owner or weight > owner[key][0]:
                owner[key] = (weight, label)
    shown = [(label, tag, _top_spans([s for s in spans
                                      if owner.get((s.start, s.end), (0.0, label))[1] == label],
                                     k))
             for label, tag, spans in sides]
    seen: set[tuple[int, int]] = set()
    out = []
    for label, tag, spans in shown:  # a next span that meets the other side's: shown once
        out.append((label, tag, [s for s in spans if (s.start, s.end) not in seen]))
        seen.update((s.start, s.end) for s in spans)
    return out


def build_prediction(sample: SampleInput, spec: LabelingSpec, *, top_spans: int = 3,
                     model_version: str = MODEL_VERSION) -> dict[str, Any]:
    """The prediction for one sample: the suggested label and the top evidence spans.

    top_spans: spans shown per side (supports the suggestion / supports the given label).
    When the suggestion equals the given label, its spans are shown as supporting the given
    label only. In Chinese or Japanese text the spans are runs of characters, never a
    punctuation mark (:func:`evidence_spans`).
    """
    if top_spans < 0:
        raise ValueError(f"top_spans must be >= 0, got {top_spans}")
    result: list[dict[str, Any]] = []
    if sample.suggested_label is not None:
        result.append({"from_name": spec.answer_name, "to_name": spec.text_name,
                       "type": "choices", "value": {"choices": [sample.suggested_label]}})
    same = sample.suggested_label is not None and sample.suggested_label == sample.given_label
    sides = [] if same else [(SUPPORTS_SUGGESTION, "s",
                              evidence_spans(sample.text, sample.suggestion_spans))]
    sides.append((SUPPORTS_GIVEN, "g", evidence_spans(sample.text, sample.given_spans)))
    shown = _one_side_each(sides, top_spans)
    top = max((s.score for _, _, spans in shown for s in spans), default=0.0)
    for label, tag, spans in shown:
        for i, span in enumerate(spans):
            result.append({
                "id": f"ev-{tag}{i}", "from_name": spec.evidence_name,
                "to_name": spec.text_name, "type": "labels",
                "value": {"start": int(span.start), "end": int(span.end),
                          "text": sample.text[span.start:span.end], "labels": [label]},
                "score": round(float(span.score / top), 4) if top > 0 else 0.0,
                # the model's evidence, display only: Label Studio lets no one move, relabel
                # or delete it (pull reads only the answer and the comment)
                "readonly": True,
            })
    prediction: dict[str, Any] = {"model_version": model_version, "result": result}
    if sample.confidence is not None and math.isfinite(sample.confidence):
        prediction["score"] = round(float(sample.confidence), 4)
    return prediction


def validate_prediction(prediction: Mapping[str, Any], spec: LabelingSpec, text: str, *,
                        interface: Any = None) -> None:
    """Raise PredictionError unless ``prediction`` fits the labeling config and ``text``.

    Checks, through the SDK's LabelInterface: every region names a control and object of the
    config and holds only values the config allows; then here: region offsets lie inside the
    text and their ``text`` equals the text they cover; scores are in [0, 1].

    interface: a ``spec.interface()`` to reuse across many calls (parsing costs ~1 ms).
    """
    interface = interface if interface is not None else spec.interface()
    problems = list(interface.validate_prediction(dict(prediction), return_errors=True) or [])
    score = prediction.get("score")
    if score is not None and not (isinstance(score, int | float) and 0.0 <= score <= 1.0):
        problems.append(f"prediction score must be a number in [0, 1], got {score!r}")
    for i, region in enumerate(prediction.get("result") or []):
        value = region.get("value") or {}
        if "start" in value or "end" in value:
            start, end = value.get("start"), value.get("end")
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end
                    <= len(text)):
                problems.append(f"region {i}: offsets [{start}, {end}) outside the text "
                                f"(length {len(text)})")
            elif "text" in value and value["text"] != text[start:end]:
                problems.append(f"region {i}: text {value['text']!r} is not the text at "
                                f"[{start}, {end}): {text[start:end]!r}")
        region_score = region.get("score")
        if region_score is not None and not (isinstance(region_score, int | float)
                                             and 0.0 <= region_score <= 1.0):
            problems.append(f"region {i}: score must be in [0, 1], got {region_score!r}")
    if problems:
        raise PredictionError("prediction does not match the labeling config: "
                              + "; ".join(problems))


def build_task(sample: SampleInput, spec: LabelingSpec, *, priority: int, top_spans: int = 3,
               model_version: str = MODEL_VERSION, interface: Any = None,
               round_no: int | None = None) -> dict[str, Any]:
    """One Label Studio task with its validated prediction (and its round, when given).
    Raises PredictionError. A NUL character (U+0000) of the text or an example's, which a
    Label Studio on PostgreSQL cannot store (``relabeler data`` refuses it; a dataset made
    before it did may hold one), is shown as U+FFFD: one character for one, so the evidence
    offsets stay right."""
    sample = _without_nul(sample)
    prediction = build_prediction(sample, spec, top_spans=top_spans, model_version=model_version)
    validate_prediction(prediction, spec, sample.text, interface=interface)
    data: dict[str, Any] = {spec.text_field: sample.text, SAMPLE_ID_FIELD: sample.id,
                            PRIORITY_FIELD: int(priority),
                            GIVEN_LABEL_FIELD: sample.given_label or ""}
    if round_no is not None:
        data[ROUND_FIELD] = int(round_no)
    if spec.panel_field:
        data[spec.panel_field] = panel_html(sample, spec)
    if spec.window_field:
        data[spec.window_field] = window_html(sample, prediction)
    elif spec.panel_field and (page := window_html(sample, prediction, where="above")):
        # a project made before the window's page: the panel, below the text, carries it
        data[spec.panel_field] = page + data[spec.panel_field]
    return {"data": data, "predictions": [prediction]}


def _without_nul(sample: SampleInput) -> SampleInput:
    """``sample`` with each U+0000 of its text and its examples' texts replaced by U+FFFD."""
    if "\x00" not in sample.text and not any("\x00" in x.text for x in sample.examples):
        return sample
    return replace(sample, text=sample.text.replace("\x00", "\ufffd"),
                   examples=tuple(replace(x, text=x.text.replace("\x00", "\ufffd"))
                                  for x in sample.examples))


# ---------------------------------------------------------------------------------------------
# from run tables to SampleInput


@dataclass(frozen=True)
class AttributionIndex:
    """Spans per (sample id, target label), from ``attributions.parquet``; empty when absent."""

    spans: Mapping[tuple[str, str], tuple[Span, ...]]
    truncated: frozenset[str]
    available: bool
    #: (sample id, target label) -> (start, end) of the window that row's attribution read,
    #: where that is a window of a longer text (``window_start``/``window_end``): under
    #: ``long_text = windows`` each target's evidence comes from its own window
    windows: Mapping[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> AttributionIndex:
        return cls(spans={}, truncated=frozenset(), available=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame | None) -> AttributionIndex:
        """frame: columns id, target_label, spans (list of {start, end, text, score}),
        optionally truncated. None = the run has no attributions."""
        if frame is None:
            return cls.empty()
        missing = {"id", "target_label", "spans"} - set(frame.columns)
        if missing:
            raise DataError(f"attributions need columns id, target_label, spans; missing "
                            f"{sorted(missing)}")
        spans: dict[tuple[str, str], tuple[Span, ...]] = {}
        truncated = frame["truncated"].fillna(False).astype(bool) if "truncated" in frame \
            else pd.Series(False, index=frame.index)
        for sid, target, row_spans in zip(frame["id"], frame["target_label"], frame["spans"],
                                          strict=True):
            items = _as_list(row_spans)
            spans[(str(sid), str(target))] = tuple(
                Span(int(s["start"]), int(s["end"]), float(s["score"])) for s in items)
        windows: dict[tuple[str, str], tuple[int, int]] = {}
        if {"window_start", "window_end"} <= set(frame.columns):  # absent before long_text
            for sid, target, start, end in zip(frame["id"], frame["target_label"],
                                               frame["window_start"], frame["window_end"],
                                               strict=True):
                windows.setdefault((str(sid), str(target)), (int(start), int(end)))
        return cls(spans=spans, truncated=frozenset(frame.loc[truncated, "id"].astype(str)),
                   available=True, windows=windows)

    def window(self, sample_id: str, text: str, target: str | None) -> tuple[int, int] | None:
        """The window the evidence toward ``target`` came from, when it is less than the whole
        ``text``."""
        found = self.windows.get((sample_id, target)) if target is not None else None
        return found if found is not None and found != (0, len(text)) else None

    def get(self, sample_id: str, target: str | None) -> tuple[Span, ...]:
        return () if target is None else self.spans.get((sample_id, target), ())


def _evidence_notes(sample_id: str, attributions: AttributionIndex, has_spans: bool
                    ) -> tuple[str, ...]:
    if not attributions.available:
        return (NO_ATTRIBUTIONS_NOTE,)
    notes = []
    if not has_spans:
        notes.append("No evidence regions were computed for this sample.")
    if sample_id in attributions.truncated:
        notes.append("Evidence covers only the first part of this long text.")
    return tuple(notes)


def _as_list(value: Any) -> list:
    """A list from a Parquet list cell (None, list or numpy array)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)


def _float_or_none(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def suspect_samples(suspects: pd.DataFrame, texts: Mapping[str, str],
                    labels: Mapping[str, str], attributions: AttributionIndex, *,
                    examples: int = 3) -> list[SampleInput]:
    """SampleInputs for rows of ``scores/suspects.parquet`` (training samples: review tasks).

    Flagged tasks and random controls are built alike from what every row has: the given and
    suggested labels, the nearest training rows (``neighbor_ids``, the kNN view's, every row
    has them) and the evidence regions. The suspect score, the suggestion's confidence and the
    reasons are left out: they follow the rank, so a control (usually low, with no reason)
    would stand out, and annotators who spot one confirm its label more readily.

    texts, labels: training text and label by sample id (the examples come from here).
    examples: nearest training examples shown per task.
    """
    out = []
    for row in suspects.itertuples(index=False):
        sid = str(row.id)
        if sid not in texts:
            raise DataError(f"suspect {sid!r} is not in dataset/train.parquet")
        near = _as_list(getattr(row, "neighbor_ids", None))
        similarity = _as_list(getattr(row, "neighbor_scores", None))
        shown = [Example(str(x), texts[str(x)], labels[str(x)], float(s))
                 for x, s in zip(near, similarity + [math.nan] * len(near), strict=False)
                 if str(x) in texts][:examples]
        suggested = getattr(row, "suggested_label", None)
        given = getattr(row, "given_label", None) or labels.get(sid)
        s_spans = attributions.get(sid, suggested)
        g_spans = attributions.get(sid, given)
        out.append(SampleInput(
            id=sid, text=texts[sid], given_label=given, suggested_label=suggested,
            examples=tuple(shown), suggestion_spans=s_spans, given_spans=g_spans,
            notes=_evidence_notes(sid, attributions, bool(s_spans or g_spans)),
            evidence_window=attributions.window(sid, texts[sid], suggested),
            given_window=attributions.window(sid, texts[sid], given)))
    return out


def pool_samples(acquire: pd.DataFrame, texts: Mapping[str, str],
                 predicted: Mapping[str, tuple[str, float | None]],
                 neighbours: Mapping[str, Sequence[str]], train_texts: Mapping[str, str],
                 train_labels: Mapping[str, str], attributions: AttributionIndex, *,
                 examples: int = 3) -> list[SampleInput]:
    """SampleInputs for rows of ``scores/acquire.parquet`` (unlabeled pool samples).

    predicted: the model's class and confidence per pool id (prefilled as the suggestion).
    neighbours: nearest training ids per pool id (shown as similar examples).
    """
    out = []
    for row in acquire.itertuples(index=False):
        sid = str(row.id)
        if sid not in texts:
            raise DataError(f"acquired sample {sid!r} is not in dataset/pool.parquet")
        label, confidence = predicted.get(sid, (None, None))
        near = [x for x in neighbours.get(sid, ()) if x in train_texts][:examples]
        shown = tuple(Example(x, train_texts[x], train_labels[x], math.nan) for x in near)
        reasons = ["it lies in a part of the data the training set covers thinly"]
        near_id = getattr(row, "near_id", None)
        if near_id is not None:
            reasons.append(f"it is close to under-covered sample {near_id} (similarity "
                           f"{_fmt(_float_or_none(getattr(row, 'similarity', None)))})")
        spans = attributions.get(sid, label)
        out.append(SampleInput(
            id=sid, text=texts[sid], given_label=None, suggested_label=label,
            confidence=confidence, reasons=tuple(reasons), examples=shown,
            suggestion_spans=spans, given_spans=(),
            notes=_evidence_notes(sid, attributions, bool(spans)),
            evidence_window=attributions.window(sid, texts[sid], label)))
    return out


# Label Studio accepts request bodies up to DATA_UPLOAD_MAX_MEMORY_SIZE (250 MiB by default);
# imports stay far below it so one slow request never holds the server for long.
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_BATCH_TASKS = 1000


def batch_tasks(tasks: Sequence[Mapping[str, Any]], *, batch_size: int = 500,
                max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[Mapping[str, Any]]]:
    """Split ``tasks`` into import batches of at most ``batch_size`` tasks and ``max_bytes`` of
    JSON, keeping order. A single task larger than ``max_bytes`` is an error."""
    if not 1 <= batch_size <= MAX_BATCH_TASKS:
        raise ValueError(f"batch_size must be in [1, {MAX_BATCH_TASKS}], got {batch_size}")
    batch: list[Mapping[str, Any]] = []
    size = 2
    for i, task in enumerate(tasks):
        task_bytes = len(json.dumps(task, ensure_ascii=False).encode()) + 1
        if task_bytes + 2 > max_bytes:
            raise ValueError(f"task {i} is {task_bytes} bytes of JSON, over the import limit "
                             f"of {max_bytes} bytes")
        if batch and (len(batch) >= batch_size or size + task_bytes > max_bytes):
            yield batch
            batch, size = [], 2
        batch.append(task)
        size += task_bytes
    if batch:
        yield batch


def same_prediction(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether a prediction Label Studio holds is ``wanted`` (scores to 4 places, as built)."""
    def score(value: Any) -> float | None:
        return None if value is None else round(float(value), 4)

    return (list(stored.get("result") or []) == list(wanted.get("result") or [])
            and score(stored.get("score")) == score(wanted.get("score")))
