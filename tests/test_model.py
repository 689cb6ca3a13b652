import numpy as np
import pytest
import torch

from relabeler.model import (
    FeatureCapture,
    ModelError,
    class_names,
    encode,
    final_linear,
    head_spec,
    length_batches,
    load_classifier,
    load_tokenizer,
    read_labels,
    resolve_model,
    save_model,
    shuffled_length_batches,
    token_lengths,
)


def test_default_model_is_the_packaged_minilm(minilm_dir):
    assert resolve_model(None) == minilm_dir
    assert resolve_model("") == minilm_dir
    assert (resolve_model("default") + "/config.json").endswith("config.json")


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_new_head_gets_the_class_names(tiny_bert_dir):
    model = load_classifier(tiny_bert_dir, ["neg", "pos", "mixed"])
    assert class_names(model) == ["neg", "pos", "mixed"]
    assert final_linear(model).out_features == 3
    assert final_linear(model) is model.classifier


def test_save_and_reload_keeps_labels_and_weights(tiny_bert_dir, tmp_path):
    model = load_classifier(tiny_bert_dir, ["a", "b"])
    tokenizer = load_tokenizer(tiny_bert_dir)
    save_model(model, tokenizer, tmp_path / "m", ["a", "b"])
    assert read_labels(tmp_path / "m") == ["a", "b"]
    again = load_classifier(tmp_path / "m")
    assert class_names(again) == ["a", "b"]
    assert torch.equal(again.classifier.weight, model.classifier.weight)


def test_feature_capture_is_the_pooled_output(tiny_bert_dir):
    model = load_classifier(tiny_bert_dir, ["a", "b"])
    tokenizer = load_tokenizer(tiny_bert_dir)
    enc = encode(tokenizer, ["a short text", "another, somewhat longer text here"], 32)
    capture = FeatureCapture(model)
    with torch.inference_mode():
        logits = model(**enc).logits
        pooled = model.bert(**enc).pooler_output
        features = capture.pop()
        torch.testing.assert_close(features, pooled)
        torch.testing.assert_close(model.classifier(features), logits)
    capture.remove()


def test_head_forward_matches_the_full_model(tiny_bert_dir):
    model = load_classifier(tiny_bert_dir, ["a", "b"])
    tokenizer = load_tokenizer(tiny_bert_dir)
    enc = encode(tokenizer, ["one text", "and a second, longer text"], 32)
    spec = head_spec(model)
    with torch.inference_mode():
        logits = model(**enc).logits
        cls = model.base_model(**enc).last_hidden_state[:, 0]
        torch.testing.assert_close(spec.forward(model, cls), logits)
    assert spec.modules == ("classifier",)


def test_head_mode_rejects_unknown_families():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2,
                                                     vocab_size=50, num_labels=2))
    with pytest.raises(ModelError, match="head mode does not know.*gpt2.*'full'"):
        head_spec(model)


def test_length_batches_cover_every_index_once_longest_first():
    lengths = np.array([3, 9, 1, 7, 7, 2, 5])
    batches = length_batches(lengths, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(7))
    assert lengths[flat].tolist() == [9, 7, 7, 5, 3, 2, 1]


def test_shuffled_length_batches_are_a_partition_and_seeded():
    lengths = np.random.default_rng(1).integers(1, 100, size=503)
    a = shuffled_length_batches(lengths, 16, np.random.default_rng(0), window=4)
    b = shuffled_length_batches(lengths, 16, np.random.default_rng(0), window=4)
    assert sorted(np.concatenate(a).tolist()) == list(range(503))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # inside a batch lengths are sorted (longest first)
    assert all(np.all(np.diff(lengths[batch]) <= 0) for batch in a)


def test_token_lengths_respect_truncation(tiny_bert_dir):
    tokenizer = load_tokenizer(tiny_bert_dir)
    lengths = token_lengths(tokenizer, ["hello", "word " * 500], 16)
    assert lengths.tolist() == [3, 16]
