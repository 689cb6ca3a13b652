"""Attribution on the real model: the packaged MiniLM with a head trained on sms-spam.

The tiny random BERTs of tests/test_attribution.py check the mechanics; this checks that the
highlights mean something on the model a user runs: removing the words IG ranks highest moves
the prediction far more than removing as many random words (comprehensiveness, DeYoung et al.
2020), and the scores add up to the change in log-probability (completeness)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from relabeler.attribution import TokenAttributor, remove_spans
from relabeler.data import DEMO_DATASETS
from relabeler.model import encode

_spec = importlib.util.spec_from_file_location(
    "attribution_benchmark", Path(__file__).parents[1] / "benchmarks" / "attribution.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

pytestmark = pytest.mark.slow

CLASSES = ["ham", "spam"]
MAX_LENGTH = 64


@torch.inference_mode()
def _probs(model, tokenizer, texts: list[str]) -> np.ndarray:
    return model(**encode(tokenizer, texts, MAX_LENGTH)).logits.float().softmax(-1).numpy()


def test_ig_highlights_on_the_packaged_minilm_are_complete_and_faithful():
    torch.manual_seed(0)
    frame = DEMO_DATASETS["sms-spam"]().sample(frac=1.0, random_state=0)
    spam, ham = frame[frame.label == "spam"], frame[frame.label == "ham"]
    train = [*spam.text[:100], *ham.text[:100]]
    labels = np.array([1] * 100 + [0] * 100)
    texts = [*spam.text[100:115], *ham.text[100:115]]
    # the head the attribution benchmark trains (head mode, 40 epochs)
    model, tokenizer = bench.trained_minilm(train, labels, max_length=MAX_LENGTH)
    assert bench.CLASSES == CLASSES
    full = _probs(model, tokenizer, texts)
    predicted = full.argmax(1)
    assert (predicted == np.array([1] * 15 + [0] * 15)).mean() >= 0.9

    found = TokenAttributor(model, tokenizer, max_length=MAX_LENGTH).attribute(
        texts, predicted.tolist(), n_steps=32)
    # completeness: the word scores sum to log p(x) - log p(baseline), within IG's delta
    assert np.median([abs(a.delta) for a in found]) < 0.05
    for text, attribution in zip(texts, found, strict=True):
        assert all(text[s.start:s.end] == s.text for s in attribution.spans)

    # comprehensiveness at the top 20% of words against 20% random words (10 draws)
    rng = np.random.default_rng(0)
    top, random = [], []
    for text, attribution in zip(texts, found, strict=True):
        spans = attribution.spans
        count = max(1, math.ceil(0.2 * len(spans)))
        top.append(remove_spans(text, sorted(spans, key=lambda s: -s.score)[:count]))
        random += [remove_spans(text, [spans[j] for j in rng.choice(len(spans), count,
                                                                    replace=False)])
                   for _ in range(10)]
    p = full[np.arange(len(texts)), predicted]
    drop_top = p - _probs(model, tokenizer, top)[np.arange(len(texts)), predicted]
    drop_random = np.repeat(p, 10) - _probs(model, tokenizer, random)[np.arange(len(random)),
                                                        np.repeat(predicted, 10)]
    # measured: 0.276 against 0.032
    assert drop_top.mean() > 3 * drop_random.mean(), (drop_top.mean(), drop_random.mean())
    assert drop_top.mean() > 0.1
    # and the words IG puts first for spam are spam's words
    spam_words = {s.text.lower() for a in found[:15] if a.target == 1
                  for s in sorted(a.spans, key=lambda s: -s.score)[:3]}
    assert spam_words & {"free", "call", "txt", "text", "win", "won", "prize", "claim",
                         "mobile", "stop", "reply", "urgent", "cash", "award", "guaranteed"}
