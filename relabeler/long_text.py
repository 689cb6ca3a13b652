"""Texts longer than ``max_length`` tokens: which windows of a text the model reads, and how
their outputs become the sample's (``[model] long_text``).

* ``truncate``: one window, the text cut at ``max_length`` tokens (the tokenizer's truncation).
* ``windows``: overlapping windows of at most ``max_length`` tokens, cut at words' edges, with
  at least ``stride`` tokens shared by consecutive windows; the
  sample's feature is the mean of its windows' features and its logits the mean of their logits
  (the final layer is linear, so the two agree: the logits of the mean feature).
* ``evidence``: the same windows; the sample is the one window whose class evidence (the
  model's largest class probability on that window alone) is highest, and the model classifies
  that window. The choice never looks at the given label, so a wrong label cannot pick the
  window that agrees with it.

:func:`text_windows` decides every sample's windows and :func:`pool_windows` their pooling;
training, extract, score (through the features), attribute and the Label Studio tasks all go
through them. A window is a character span ``[start, end)`` of the original text, so spans found
in a window map back to the original by adding ``start``. A text shorter than one window is one
window: the whole text, exactly what ``truncate`` reads.

``[model] long_text = auto`` (the default) is ``windows``, or ``truncate`` in head mode with a
head that cannot pool windows (:func:`relabeler.jobs.head_states.long_text_settings`).

A trained model records its long-text settings in its ``config.json`` (``relabeler_long_text``),
so every stage that loads it reads the windows it was trained on.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: ``[model] long_text`` values
MODES = ("truncate", "windows", "evidence")
#: the config.json key that records a trained model's long-text settings
CONFIG_KEY = "relabeler_long_text"


@dataclass(frozen=True)
class LongText:
    """How a model reads long texts: ``mode`` (one of :data:`MODES`), ``stride`` (tokens
    shared by consecutive windows), ``max_windows`` (windows kept per text from the start; 0 =
    all)."""

    mode: str = "truncate"
    stride: int = 32
    max_windows: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"long_text mode must be one of {', '.join(MODES)}, got "
                             f"{self.mode!r}")
        if self.stride < 0 or self.max_windows < 0:
            raise ValueError(f"stride and max_windows must be >= 0, got {self.stride}, "
                             f"{self.max_windows}")

    @property
    def windowed(self) -> bool:
        return self.mode != "truncate"

    def cache_tag(self) -> str:
        """What the encoder cache's fingerprint adds (empty for ``truncate``, whose entries are
        the texts themselves). ``windows`` and ``evidence`` read the same windows."""
        if not self.windowed:
            return ""
        return f"word-windows(stride={self.stride},max_windows={self.max_windows})"


#: reading the first ``max_length`` tokens (what a model relabeler never trained does)
TRUNCATE = LongText()


def long_text_of(model) -> LongText:
    """The settings a trained model recorded (``truncate`` for one relabeler never trained)."""
    return recorded_long_text({CONFIG_KEY: getattr(model.config, CONFIG_KEY, None)})


def recorded_long_text(saved_config: dict) -> LongText:
    """:func:`long_text_of` from a model's ``config.json`` as read (no model loaded)."""
    saved = saved_config.get(CONFIG_KEY)
    return LongText(**saved) if saved else TRUNCATE


def record_long_text(model, settings: LongText) -> None:
    """Store ``settings`` in ``model``'s config (saved with it by ``save_pretrained``)."""
    setattr(model.config, CONFIG_KEY, asdict(settings))


@dataclass(frozen=True)
class TextWindows:
    """The windows of N texts, M >= N in all, in text order.

    sample: (M,) int64 the text each window belongs to (non-decreasing, every text has >= 1);
    start, end: (M,) int64 character offsets of the window in its original text;
    cut: (N,) bool, the texts with windows past ``max_windows`` left unread (None: none left,
    or the tokenizer's truncation decides, as under ``truncate``).
    """

    sample: np.ndarray
    start: np.ndarray
    end: np.ndarray
    cut: np.ndarray | None = None

    @property
    def n_texts(self) -> int:
        return int(self.sample[-1]) + 1 if len(self.sample) else 0

    def texts(self, texts: Sequence[str]) -> list[str]:
        """The window texts, (M,): what the model reads."""
        return [texts[s][a:b] for s, a, b in zip(self.sample, self.start, self.end,
                                                 strict=True)]

    def counts(self) -> np.ndarray:
        """(N,) windows per text."""
        return np.bincount(self.sample, minlength=self.n_texts)


def text_windows(tokenizer, texts: Sequence[str], *, max_length: int,
                 settings: LongText) -> TextWindows:
    """The windows the model reads of each of ``texts`` (N,) under ``settings``.

    ``truncate``, and any text that fits in one window: the whole text (the tokenizer cuts it
    at ``max_length``). Otherwise windows of at most ``max_length`` tokens (special tokens
    included), cut at words' edges, consecutive ones sharing at least ``stride`` tokens (fewer
    only around words of many pieces: :func:`_word_windows`), the first ``max_windows``
    of them when that is set (:func:`_word_windows`).
    """
    texts = list(texts)
    whole = TextWindows(np.arange(len(texts), dtype=np.int64),
                        np.zeros(len(texts), dtype=np.int64),
                        np.array([len(t) for t in texts], dtype=np.int64))
    if not settings.windowed or not texts:
        return whole
    special = tokenizer.num_special_tokens_to_add(pair=False)
    budget = max_length - special
    if settings.stride >= budget:
        raise ValueError(f"stride must be < max_length - {special} (special tokens), got "
                         f"stride {settings.stride}, max_length {max_length}")
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                    return_attention_mask=False, return_token_type_ids=False, verbose=False)
    sample, start, end, cut = [], [], [], np.zeros(len(texts), dtype=bool)
    for s, text in enumerate(texts):
        offsets = enc["offset_mapping"][s]
        if len(offsets) <= budget:  # fits in one window: the whole text, as truncate reads it
            sample.append(s), start.append(0), end.append(len(text))
            continue
        spans = _word_windows(enc.word_ids(s), budget, settings.stride)
        if settings.max_windows and len(spans) > settings.max_windows:
            spans, cut[s] = spans[:settings.max_windows], True
        for a, b in spans:
            # from the end of the token before: a word's token that carries its space (byte
            # BPE's "Ġword") is read back as that token, not as the bare word's pieces
            sample.append(s), start.append(offsets[a - 1][1] if a else 0)
            end.append(_past_marks(text, offsets[b - 1][1]))
    return TextWindows(np.asarray(sample, dtype=np.int64), np.asarray(start, dtype=np.int64),
                       np.asarray(end, dtype=np.int64),
                       cut=cut if settings.max_windows else None)


def _word_windows(word_ids: Sequence[int | None], budget: int,
                  stride: int) -> list[tuple[int, int]]:
    """Token ranges ``[a, b)`` of at most ``budget`` tokens covering every token, each starting
    and ending at a word's edge, consecutive ones sharing at least ``stride`` tokens.

    A window that began or ended inside a word would be read again from its characters as
    other word pieces (``##ization`` as ``i ##zation``): more tokens than ``budget``, its last
    ones cut. So an end inside a word moves back to the word's start, and the next window
    starts at the word holding its ``stride``-th last token. Two exceptions, both around words
    of many pieces (a URL, a hash; tens of pieces at the default ``max_length``): where that
    word began at or before the window's own start, the next window starts after it, so the
    two share fewer than ``stride`` tokens (still every token is read); and a word longer than
    a window is the one place a window edge stays inside a word.
    """
    n = len(word_ids)
    first = [i == 0 or word_ids[i] is None or word_ids[i] != word_ids[i - 1] for i in range(n)]
    spans, a = [], 0
    while True:
        b = min(a + budget, n)
        if b < n and not first[b]:
            edge = b
            while edge > a and not first[edge]:
                edge -= 1
            b = edge if edge > a else b
        spans.append((a, b))
        if b >= n:
            return spans
        nxt = max(b - stride, a + 1)
        while nxt > a + 1 and not first[nxt]:
            nxt -= 1
        if not first[nxt]:  # the word holding it began at or before a: start after it
            nxt = next((i for i in range(nxt, b) if first[i]), b)
        a = nxt


def _past_marks(text: str, end: int) -> int:
    """``end`` moved past the combining marks that follow it: a normalising tokenizer drops an
    accent from its token's offsets, and a window must keep its last word whole."""
    while end < len(text) and unicodedata.combining(text[end]):
        end += 1
    return end


def evidence_choice(window_logits: np.ndarray, windows: TextWindows) -> np.ndarray:
    """(N,) the index (into the M windows) of each text's window with the most class evidence:
    the highest largest-class probability; ties go to the earliest window.

    window_logits: (M, C) float.
    """
    logits = np.asarray(window_logits, dtype=np.float64)
    shifted = logits - logits.max(1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True)
    evidence = probs.max(1)
    # sort by (text, -evidence, window): the first window of each text is its choice
    order = np.lexsort((np.arange(len(evidence)), -evidence, windows.sample))
    first = np.r_[True, windows.sample[order][1:] != windows.sample[order][:-1]]
    return order[first]


def mean_by_text(values: np.ndarray, windows: TextWindows) -> np.ndarray:
    """(N, D) the mean of each text's window rows of ``values`` (M, D)."""
    values = np.asarray(values)
    sums = np.zeros((windows.n_texts, values.shape[1]), dtype=np.float64)
    np.add.at(sums, windows.sample, values)
    return (sums / windows.counts()[:, None]).astype(values.dtype)


@dataclass(frozen=True)
class Pooled:
    """The per-text result of :func:`pool_windows`: ``features`` (N, D), ``logits`` (N, C),
    ``chosen`` (N,) the window each text's evidence is in (the first window unless
    ``evidence``)."""

    features: np.ndarray
    logits: np.ndarray
    chosen: np.ndarray


def pool_windows(window_features: np.ndarray, window_logits: np.ndarray, windows: TextWindows,
                 mode: str) -> Pooled:
    """Per-window features (M, D) and logits (M, C) to per-text ones under ``mode``:
    ``truncate`` (one window per text) keeps them, ``windows`` takes the means, ``evidence``
    the chosen window's (:func:`evidence_choice`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    first = np.flatnonzero(np.r_[True, windows.sample[1:] != windows.sample[:-1]])
    if mode == "windows":
        if len(first) == len(windows.sample):  # one window each: nothing to average
            return Pooled(np.asarray(window_features), np.asarray(window_logits), first)
        return Pooled(mean_by_text(window_features, windows),
                      mean_by_text(window_logits, windows), first)
    chosen = evidence_choice(window_logits, windows) if mode == "evidence" else first
    return Pooled(np.asarray(window_features)[chosen], np.asarray(window_logits)[chosen], chosen)


def attribution_choice(window_logits: np.ndarray, windows: TextWindows, targets: np.ndarray,
                       mode: str) -> np.ndarray:
    """(N,) the window (index into the M windows) whose words are attributed toward
    ``targets[i]`` (N,) class ids: the window the model classified (``evidence``), the window
    with the highest probability of the target (``windows``: where the evidence for that class
    is), or the only window (``truncate``)."""
    if mode == "evidence":
        return evidence_choice(window_logits, windows)
    first = np.flatnonzero(np.r_[True, windows.sample[1:] != windows.sample[:-1]])
    if mode != "windows" or len(first) == len(windows.sample):
        return first
    logits = np.asarray(window_logits, dtype=np.float64)
    log_probs = logits - logits.max(1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(1, keepdims=True))
    target_lp = log_probs[np.arange(len(logits)), np.asarray(targets)[windows.sample]]
    order = np.lexsort((np.arange(len(target_lp)), -target_lp, windows.sample))
    best = np.r_[True, windows.sample[order][1:] != windows.sample[order][:-1]]
    return order[best]
