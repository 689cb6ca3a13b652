"""attribution: spans index the original text, IG is captum's IG, batching changes nothing."""

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relabeler.attribution import (
    CPU_MAX_SAMPLE_STEPS,
    MAX_CHARS_PER_TOKEN,
    Span,
    TokenAttributor,
    encode_texts,
    keep_spans,
    plan_batch,
    remove_spans,
    word_spans,
)
from relabeler.model import load_classifier, load_tokenizer

CLASSES = ["neg", "pos", "mixed"]
TEXTS = [
    "a wonderful movie about people and music",
    "terrible",
    "Héllo wörld 😀 don't\r\n  stop   the music, it was dreadful!!",
    "the story was really quite long and boring, with some short scenes and lovely music "
    "and a few people",
    "Ã©tÃ© cafÃ©\x92 naïve façade",
    "中文字 ok 👍🏽 e\u0301",
]

# pieces that break naive offset handling: accents (composed and combining), emoji with
# modifiers, CRLF, runs of spaces, Latin-1 mojibake, C1 and C0 controls, a lone surrogate,
# CJK, special-token look-alikes, apostrophes and punctuation
FRAGMENTS = ["é", "e\u0301", "😀", "👍🏽", "👨\u200d👩\u200d👧", "\r\n", "\n\n", "   ", "\t",
             "Ã©", "â€™", "\x92", "\x00", "\x01", "\udc92", "中文", "[SEP]", "[PAD]", "don't",
             "...", "ß", "İ", "ﬁ", "\u200b", "\ufeff", "a", "word", "Spam", "FREE!!", "£1000",
             "http://x.co/a?b=1"]
texts_strategy = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=25).map("".join)


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir):
    return load_tokenizer(tiny_bert_dir)


@pytest.fixture(scope="module")
def model(tiny_bert_dir):
    torch.manual_seed(0)
    return load_classifier(tiny_bert_dir, CLASSES)


@pytest.fixture(scope="module")
def attributor(model, tokenizer):
    return TokenAttributor(model, tokenizer, max_length=48)


def check_spans(text: str, spans: list[Span]) -> None:
    previous_end = 0
    for span in spans:
        assert 0 <= span.start < span.end <= len(text)
        assert text[span.start:span.end] == span.text
        assert span.start >= previous_end  # sorted, non-overlapping
        previous_end = span.end
        assert np.isfinite(span.score)


# --- offsets -----------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts_strategy, max_length=st.sampled_from([3, 8, 64]), seed=st.integers(0, 9))
def test_spans_index_the_original_text(tokenizer, text, max_length, seed):
    (encoded,) = encode_texts(tokenizer, [text], max_length)
    scores = np.random.default_rng(seed).normal(size=len(encoded.input_ids))
    spans = word_spans(text, encoded, scores)
    check_spans(text, spans)
    # every token the model saw that has characters lies inside one span
    for i, (start, end) in enumerate(encoded.offsets):
        if encoded.word_ids[i] is not None and not encoded.special[i] and end > start:
            assert any(s.start <= start and end <= s.end for s in spans)
    # scores are only regrouped: the spans carry the scores of the tokens with characters
    with_chars = {encoded.word_ids[i] for i, (s, e) in enumerate(encoded.offsets)
                  if encoded.word_ids[i] is not None and not encoded.special[i] and e > s}
    expected = sum(scores[i] for i, w in enumerate(encoded.word_ids)
                   if w in with_chars and not encoded.special[i])
    assert sum(s.score for s in spans) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(text=texts_strategy, max_length=st.sampled_from([3, 8, 64]))
def test_truncated_says_whether_the_model_saw_everything(tokenizer, text, max_length):
    (encoded,) = encode_texts(tokenizer, [text], max_length)
    assert len(encoded.input_ids) <= max_length
    full = tokenizer(re.sub("[\ud800-\udfff]", "\ufffd", text))["input_ids"]
    if len(text) > max_length * MAX_CHARS_PER_TOKEN:
        assert encoded.truncated  # cut by characters first
    else:
        assert encoded.truncated == (len(full) > max_length)
    if not encoded.truncated:
        assert encoded.input_ids == full


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(texts_strategy, min_size=1, max_size=3),
       method=st.sampled_from(["ig", "grad_x_input"]))
def test_attributions_of_any_text_index_it(attributor, texts, method):
    results = attributor.attribute(texts, [i % 3 for i in range(len(texts))], n_steps=2,
                                   method=method)
    for text, result in zip(texts, results, strict=True):
        check_spans(text, result.spans)
        assert np.all(np.isfinite(result.scores)) and len(result.scores) == len(result.tokens)


def test_a_ten_megabyte_text_is_cut_before_tokenizing(tokenizer):
    text = ("word " * 2_000_000)[:10_000_000]
    (encoded,) = encode_texts(tokenizer, [text], 32)
    assert encoded.truncated and len(encoded.input_ids) == 32
    spans = word_spans(text, encoded, np.ones(32))
    check_spans(text, spans)
    assert len(spans) == 30 and spans[-1].end <= 32 * MAX_CHARS_PER_TOKEN


def test_a_cut_never_drops_tokens_the_model_reads(tokenizer):
    # 6,500 spaces are more characters than the cut keeps for 32 tokens, and no tokens at all
    text = "Subject:" + " " * 6_500 + "you won a free prize, click now to claim"
    (encoded,) = encode_texts(tokenizer, [text], 32)
    assert "prize" in encoded.tokens and not encoded.truncated
    assert encoded.tokens == tokenizer(text, truncation=True, max_length=32).tokens()
    # where the words do fill max_length past the first cut, the tokens are the full text's
    long = " " * 5_000 + "word " * 100
    (encoded,) = encode_texts(tokenizer, [long], 32)
    assert encoded.truncated and encoded.tokens.count("word") == 30


def test_a_span_keeps_the_combining_marks_of_its_word(tokenizer):
    text = "Le cafe\u0301 est ferme\u0301 a\u0308"  # decomposed accents (NFD)
    (encoded,) = encode_texts(tokenizer, [text], 32)
    spans = word_spans(text, encoded, np.ones(len(encoded.input_ids)))
    check_spans(text, spans)
    assert [s.text for s in spans] == ["Le", "cafe\u0301", "est", "ferme\u0301", "a\u0308"]


def test_remove_and_keep_spans():
    text = "a great movie, truly"
    spans = [Span(2, 7, "great", 1.0), Span(15, 20, "truly", 0.5)]
    assert remove_spans(text, spans) == "a  movie, "
    assert keep_spans(text, spans[::-1]) == "great truly"
    assert remove_spans(text, []) == text and keep_spans(text, []) == ""


# --- the attributor ----------------------------------------------------------------------------

def _log_probs(model, tokenizer, text, target, baseline=False):
    enc = tokenizer([text], truncation=True, max_length=48, return_tensors="pt",
                    return_special_tokens_mask=True)
    ids = enc["input_ids"]
    if baseline:
        ids = torch.where(enc["special_tokens_mask"].bool(), ids, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=enc["attention_mask"]).logits
    return float(logits.log_softmax(-1)[0, target])


def test_ig_is_complete_within_its_delta(attributor, model, tokenizer):
    targets = [0, 1, 2, 1, 0, 2]
    results = attributor.attribute(TEXTS, targets, n_steps=50)
    for text, target, result in zip(TEXTS, targets, results, strict=True):
        gap = (_log_probs(model, tokenizer, text, target)
               - _log_probs(model, tokenizer, text, target, baseline=True))
        total = float(result.scores.astype(np.float64).sum())
        assert total - gap == pytest.approx(result.delta, abs=1e-4)
        assert abs(result.delta) < 0.02 * abs(gap) + 1e-3
        assert sum(s.score for s in result.spans) == pytest.approx(total, abs=1e-5)
        special = [i for i, t in enumerate(result.tokens) if t in ("[CLS]", "[SEP]")]
        assert np.all(result.scores[special] == 0)
        check_spans(text, result.spans)


def test_ig_equals_plain_captum(attributor, model, tokenizer):
    from captum.attr import LayerIntegratedGradients

    def log_probs(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).logits.log_softmax(-1)

    lig = LayerIntegratedGradients(log_probs, model.get_input_embeddings())
    text = TEXTS[2]
    enc = tokenizer([text], return_tensors="pt", return_special_tokens_mask=True)
    baseline = torch.where(enc["special_tokens_mask"].bool(), enc["input_ids"],
                           tokenizer.pad_token_id)
    reference, delta = lig.attribute(enc["input_ids"], baselines=baseline, target=1,
                                     additional_forward_args=(enc["attention_mask"],),
                                     n_steps=16, return_convergence_delta=True)
    (result,) = attributor.attribute([text], [1], n_steps=16)
    np.testing.assert_allclose(result.scores, reference.sum(-1)[0].detach().numpy(), atol=1e-6)
    assert result.delta == pytest.approx(float(delta[0]), abs=1e-6)


@pytest.mark.parametrize("classes", [CLASSES[:2], CLASSES])
@pytest.mark.parametrize("rows", [5, 1000])
def test_shared_forward_ig_equals_captum(tiny_bert_dir, tokenizer, classes, rows):
    # one text twice with two targets (one shared forward) plus another; rows=5 splits the steps
    from captum.attr import LayerIntegratedGradients

    torch.manual_seed(0)
    attributor = TokenAttributor(load_classifier(tiny_bert_dir, classes), tokenizer,
                                 max_length=48)
    input_ids, mask, baseline = attributor._pad(
        encode_texts(tokenizer, [TEXTS[0], TEXTS[0], TEXTS[3]], 48))
    target = torch.tensor([0, 1, len(classes) - 1])
    lig = LayerIntegratedGradients(attributor._log_probs, attributor.embeddings)
    reference, reference_delta = lig.attribute(
        input_ids, baselines=baseline, target=target, additional_forward_args=(mask,),
        n_steps=8, method="gausslegendre", return_convergence_delta=True)
    scores, delta = attributor._integrated_gradients(input_ids, mask, baseline, target,
                                                     n_steps=8, rows=rows)
    np.testing.assert_allclose(scores, (reference.sum(-1) * mask).detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(delta, reference_delta.detach().numpy(), atol=1e-5)
    assert not np.allclose(scores[0], scores[1], atol=1e-3)  # the two targets differ


@pytest.mark.parametrize("method", ["ig", "grad_x_input"])
def test_batched_equals_one_at_a_time(model, tokenizer, method):
    targets = [1, 0, 2, 2, 1, 0]
    batched = TokenAttributor(model, tokenizer, max_length=48).attribute(
        TEXTS, targets, n_steps=10, method=method)
    # an internal batch smaller than the samples x steps makes captum split the steps too
    small = TokenAttributor(model, tokenizer, max_length=48, internal_batch_size=7).attribute(
        TEXTS, targets, n_steps=10, method=method)
    single = TokenAttributor(model, tokenizer, max_length=48)
    for i, (text, target) in enumerate(zip(TEXTS, targets, strict=True)):
        (alone,) = single.attribute([text], [target], n_steps=10, method=method)
        for other in (batched[i], small[i]):
            np.testing.assert_allclose(other.scores, alone.scores, atol=1e-5)
            assert [s.text for s in other.spans] == [s.text for s in alone.spans]
            assert other.tokens == alone.tokens and other.target == target
        if method == "ig":
            assert batched[i].delta == pytest.approx(alone.delta, abs=1e-5)


def test_a_mean_pooled_model_attributes_batched_as_alone_and_completely(tiny_bert_dir,
                                                                         tokenizer):
    # mean pooling reads the attention mask of every (expanded, split) IG batch
    torch.manual_seed(0)
    model = load_classifier(tiny_bert_dir, CLASSES, pooling="mean")
    targets = [1, 0, 2, 2, 1, 0]
    batched = TokenAttributor(model, tokenizer, max_length=48, internal_batch_size=7).attribute(
        TEXTS, targets, n_steps=20)
    single = TokenAttributor(model, tokenizer, max_length=48)
    for text, target, result in zip(TEXTS, targets, batched, strict=True):
        (alone,) = single.attribute([text], [target], n_steps=20)
        np.testing.assert_allclose(result.scores, alone.scores, atol=1e-5)
        gap = (_log_probs(model, tokenizer, text, target)
               - _log_probs(model, tokenizer, text, target, baseline=True))
        total = float(result.scores.astype(np.float64).sum())
        assert total - gap == pytest.approx(result.delta, abs=1e-4)


def test_grad_x_input_rank_agreement_with_ig(attributor):
    from scipy.stats import spearmanr

    from tests.conftest import synthetic_frame

    texts = synthetic_frame(12).text.tolist()
    ig = attributor.attribute(texts, [1] * len(texts), n_steps=20)
    fast = attributor.attribute(texts, [1] * len(texts), method="grad_x_input")
    rhos = []
    for a, b in zip(ig, fast, strict=True):
        assert [s.start for s in a.spans] == [s.start for s in b.spans]
        rhos.append(spearmanr([s.score for s in a.spans], [s.score for s in b.spans]).statistic)
    assert all(r.n_steps == 1 and np.isnan(r.delta) for r in fast)
    assert -1 <= min(rhos) and max(rhos) <= 1
    # a random, unsaturated model: the gradient at the input carries much of the path
    # integral (on a confident trained classifier it does not; benchmarks/attribution.py)
    assert np.mean(rhos) > 0.3


def test_targets_by_name_and_parameters_restored(attributor, model):
    flags = [p.requires_grad for p in model.parameters()]
    by_name = attributor.attribute(TEXTS[:2], ["pos", "mixed"], n_steps=4)
    by_index = attributor.attribute(TEXTS[:2], [1, 2], n_steps=4)
    for a, b in zip(by_name, by_index, strict=True):
        np.testing.assert_array_equal(a.scores, b.scores)
    assert [p.requires_grad for p in model.parameters()] == flags


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ig", "grad_x_input"])
def test_texts_without_words_get_no_spans(attributor, method):
    texts = ["", "   \r\n\t ", "\x00\x01\x02", "\u0301", TEXTS[0]]
    results = attributor.attribute(texts, [1] * len(texts), n_steps=4, method=method)
    for result in results[:4]:
        assert result.spans == [] and result.tokens == ["[CLS]", "[SEP]"]
        assert result.delta == 0.0 and not result.truncated
        np.testing.assert_array_equal(result.scores, [0.0, 0.0])
    assert [s.text for s in results[4].spans] == TEXTS[0].split()


def test_literal_special_tokens_in_the_text_are_words(attributor):
    text = "[SEP] [PAD] hi"
    (result,) = attributor.attribute([text], [1], n_steps=4)
    assert [s.text for s in result.spans] == ["[SEP]", "[PAD]", "hi"]
    check_spans(text, result.spans)


def test_a_ten_megabyte_word_is_one_unknown_token_not_a_crash(attributor):
    # the tokenizer reads the 10 MB word as one [UNK], so the words after it are in the
    # model's 48 tokens (as extract reads them): the cut must not hide them
    text = "spam " + "x" * 10_000_000 + " free prize"
    (result,) = attributor.attribute([text], [1], n_steps=4)
    assert not result.truncated and "[UNK]" in result.tokens
    check_spans(text, result.spans)
    assert [s.text for s in result.spans if len(s.text) < 10][-2:] == ["free", "prize"]


def test_bad_arguments_are_clear_errors(attributor):
    with pytest.raises(ValueError, match=r"targets\[0\]: class index 3 is outside"):
        attributor.attribute(["a"], [3])
    with pytest.raises(ValueError, match=r"targets\[1\]: class index -1 is outside"):
        attributor.attribute(["a", "b"], [0, -1])
    with pytest.raises(ValueError, match=r"label 'banana' is not one of"):
        attributor.attribute(["a"], ["banana"])
    with pytest.raises(TypeError, match=r"targets\[0\] must be a class index or name"):
        attributor.attribute(["a"], [1.0])
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str, got NoneType"):
        attributor.attribute(["a", None], [0, 0])
    with pytest.raises(ValueError, match="one entry per text"):
        attributor.attribute(["a", "b"], [0])
    with pytest.raises(ValueError, match="method must be one of ig, grad_x_input"):
        attributor.attribute(["a"], [0], method="saliency")
    with pytest.raises(ValueError, match="n_steps must be an int >= 1"):
        attributor.attribute(["a"], [0], n_steps=0)
    assert attributor.attribute([], []) == []


def test_cpu_batch_plan_is_bounded_and_never_touches_cuda(model, monkeypatch):
    def no_cuda(*args, **kwargs):
        raise AssertionError("the CPU path asked CUDA")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_cuda)
    cpu = torch.device("cpu")
    assert plan_batch(model.config, 16, cpu) == CPU_MAX_SAMPLE_STEPS
    assert 1 <= plan_batch(model.config, 100_000, cpu) < CPU_MAX_SAMPLE_STEPS
    assert plan_batch(model.config, 16, cpu, internal_batch_size=9) == 9
    with pytest.raises(ValueError, match="internal_batch_size must be >= 1"):
        plan_batch(model.config, 16, cpu, internal_batch_size=0)


def test_gpu_batch_plan_follows_free_memory(monkeypatch):
    from transformers import BertConfig

    base = BertConfig()  # BERT-base: 12 layers, 768 hidden
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * 1024**3, 0))
    rows = plan_batch(base, 128, gpu)
    assert 100 <= rows <= 4096  # tens of thousands of tokens per pass on an 80 GB card
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1024**3, 0))
    assert 1 <= plan_batch(base, 128, gpu) < rows / 40
