import json
import shutil

import numpy as np
import pytest
import torch

from relabeler.encoder_cache import encoder_fingerprint
from relabeler.model import (
    FeatureCapture,
    ModelError,
    checkpoint_pooling,
    class_names,
    encode,
    final_linear,
    head_spec,
    length_batches,
    load_classifier,
    load_tokenizer,
    pool_layers_of,
    pooling_of,
    read_labels,
    resolve_model,
    save_model,
    shuffled_length_batches,
    token_lengths,
)
from relabeler.training import encoder_cls


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


def _mean_pooling_folder(source: str, target) -> str:
    shutil.copytree(source, target)
    (target / "1_Pooling").mkdir()
    (target / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True}))
    return str(target)


def test_mean_pooling_is_the_masked_mean_of_the_token_states_normalised(tiny_bert_dir):
    model = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean")
    tokenizer = load_tokenizer(tiny_bert_dir)
    texts = ["a short text", "another, somewhat longer text with more words in it"]
    enc = encode(tokenizer, texts, 32)
    assert enc["attention_mask"][0].sum() < enc["attention_mask"][1].sum()  # padding in row 0
    capture = FeatureCapture(model)
    with torch.inference_mode():
        logits = model(**enc).logits
        features = capture.pop()
        hidden = model.bert(**enc).last_hidden_state
        mask = enc["attention_mask"][..., None].float()
        expected = (hidden * mask).sum(1) / mask.sum(1)
        expected = expected / expected.norm(dim=1, keepdim=True)
        torch.testing.assert_close(features, expected)
        torch.testing.assert_close(features.norm(dim=1), torch.ones(2))
        # the padded row pools as it does alone
        alone = model.bert(**encode(tokenizer, texts[:1], 32)).pooler_output
        torch.testing.assert_close(alone[0], features[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.classifier(features), logits)
    capture.remove()
    assert pooling_of(model) == "mean"
    assert pooling_of(load_classifier(tiny_bert_dir, ["a", "b"])) == "cls"


def test_head_mode_under_mean_pooling_caches_the_pooled_vector(tiny_bert_dir):
    model = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean")
    tokenizer = load_tokenizer(tiny_bert_dir)
    texts = ["one text", "and a second, longer text", "a third"]
    states = encoder_cls(model, tokenizer, texts, max_length=32, batch_size=2,
                         device=torch.device("cpu"))
    with torch.inference_mode():
        logits = model(**encode(tokenizer, texts, 32)).logits
        torch.testing.assert_close(head_spec(model).forward(model, states), logits,
                                   atol=1e-5, rtol=1e-5)
    plain = load_classifier(tiny_bert_dir, ["a", "b"])
    assert encoder_fingerprint(model, tokenizer, 32) != encoder_fingerprint(plain, tokenizer, 32)


def test_the_pooling_is_saved_with_the_model_and_cannot_be_changed(tiny_bert_dir, tmp_path):
    model = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean")
    tokenizer = load_tokenizer(tiny_bert_dir)
    save_model(model, tokenizer, tmp_path / "m", ["a", "b"])
    assert json.loads((tmp_path / "m" / "config.json").read_text())["relabeler_pooling"] == "mean"
    enc = encode(tokenizer, ["some text to classify", "more"], 32)
    for pooling in (None, "auto", "mean"):
        again = load_classifier(tmp_path / "m", pooling=pooling)
        assert pooling_of(again) == "mean"
        with torch.inference_mode():
            torch.testing.assert_close(again(**enc).logits, model(**enc).logits)
    with pytest.raises(ModelError, match="trained with pooling 'mean'.*'cls' cannot change"):
        load_classifier(tmp_path / "m", pooling="cls")
    with pytest.raises(ModelError, match="model.pooling: expected one of cls, mean, auto"):
        load_classifier(tiny_bert_dir, ["a", "b"], pooling="max")


def test_pool_layers_average_the_last_layers_normalised_means(tiny_bert_dir):
    # tiny_bert_dir has 2 layers: the default (4) is capped at the model's depth
    model = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=0)
    assert pool_layers_of(model) == 2
    tokenizer = load_tokenizer(tiny_bert_dir)
    enc = encode(tokenizer, ["a short text", "another, somewhat longer text with more words"], 32)
    capture = FeatureCapture(model)
    with torch.inference_mode():
        logits = model(**enc).logits
        features = capture.pop()
        hidden = model.bert(**enc, output_hidden_states=True).hidden_states
        mask = enc["attention_mask"][..., None].float()
        means = [(h * mask).sum(1) / mask.sum(1) for h in hidden[-2:]]
        expected = sum(m / m.norm(dim=1, keepdim=True) for m in means) / 2
        expected = expected / expected.norm(dim=1, keepdim=True)
        torch.testing.assert_close(features, expected)
        torch.testing.assert_close(model.classifier(features), logits)
        # two forwards in a row: the hooks' states do not pile up
        torch.testing.assert_close(model.bert(**enc).pooler_output, features)
    capture.remove()
    one = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=1)
    assert pool_layers_of(one) == 1
    assert encoder_fingerprint(model, tokenizer, 32) != encoder_fingerprint(one, tokenizer, 32)
    assert pool_layers_of(load_classifier(tiny_bert_dir, ["a", "b"], pool_layers=0)) == 1  # cls


def test_pool_layers_are_saved_and_bad_values_are_clear_errors(tiny_bert_dir, tmp_path):
    model = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=2)
    save_model(model, load_tokenizer(tiny_bert_dir), tmp_path / "m", ["a", "b"])
    assert json.loads((tmp_path / "m" / "config.json").read_text())[
        "relabeler_pool_layers"] == 2
    for asked in (None, 0, 2):
        assert pool_layers_of(load_classifier(tmp_path / "m", pool_layers=asked)) == 2
    with pytest.raises(ModelError, match="trained with pool_layers 2; model.pool_layers 1"):
        load_classifier(tmp_path / "m", pool_layers=1)
    # a model relabeler saved before pool_layers existed pooled its last layer only
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    del config["relabeler_pool_layers"]
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    assert pool_layers_of(load_classifier(tmp_path / "m", pool_layers=0)) == 1
    with pytest.raises(ModelError, match="pool_layers = 2 needs mean pooling"):
        load_classifier(tiny_bert_dir, ["a", "b"], pooling="cls", pool_layers=2)
    with pytest.raises(ModelError, match="pool_layers = 3: .* has 2 layers"):
        load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=3)
    with pytest.raises(ModelError, match="pool_layers must be >= 0"):
        load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=-1)


def test_auto_pooling_follows_a_sentence_transformers_checkpoint(tiny_bert_dir, minilm_dir,
                                                                 tmp_path):
    assert checkpoint_pooling(minilm_dir) == "mean"
    assert checkpoint_pooling(tiny_bert_dir) == "cls"
    folder = _mean_pooling_folder(tiny_bert_dir, tmp_path / "st")
    assert checkpoint_pooling(folder) == "mean"
    assert pooling_of(load_classifier(folder, ["a", "b"], pooling="auto")) == "mean"
    assert pooling_of(load_classifier(folder, ["a", "b"])) == "cls"  # only when asked
    (tmp_path / "st" / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="1_Pooling/config.json: cannot read"):
        checkpoint_pooling(folder)


def test_mean_pooling_needs_a_bert_family_model(tmp_path):
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32,
                              num_labels=2)
    DistilBertForSequenceClassification(config).save_pretrained(tmp_path / "d")
    with pytest.raises(ModelError, match="needs a BERT-family model.*'distilbert'"):
        load_classifier(tmp_path / "d", pooling="mean")
    (tmp_path / "d" / "1_Pooling").mkdir()
    (tmp_path / "d" / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": True}))
    assert checkpoint_pooling(tmp_path / "d") == "cls"
    assert pooling_of(load_classifier(tmp_path / "d", pooling="auto")) == "cls"


def test_a_head_for_other_classes_is_replaced_even_when_the_counts_agree(tmp_path, minilm_dir):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, num_labels=2,
                        id2label={0: "NEGATIVE", 1: "POSITIVE"},
                        label2id={"NEGATIVE": 0, "POSITIVE": 1})
    hub = BertForSequenceClassification(config)  # a sentiment checkpoint from the hub
    hub.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(tmp_path)
    ours = load_classifier(str(tmp_path), ["ham", "spam"])
    assert not torch.equal(ours.classifier.weight, hub.classifier.weight)
    assert torch.equal(ours.bert.embeddings.word_embeddings.weight,
                       hub.bert.embeddings.word_embeddings.weight)
    assert load_classifier(str(tmp_path), ["a", "b", "c"]).classifier.weight.shape == (3, 32)
    same = load_classifier(str(tmp_path), ["NEGATIVE", "POSITIVE"])
    assert torch.equal(same.classifier.weight, hub.classifier.weight)


def test_max_length_beyond_the_position_table_is_a_config_error(tiny_bert_dir):
    from types import SimpleNamespace

    from transformers import DebertaV2Config, RobertaConfig

    from relabeler.errors import ConfigError
    from relabeler.model import check_max_length

    model = load_classifier(tiny_bert_dir, ["a", "b"])  # 128 positions
    check_max_length(model, 128)
    with pytest.raises(ConfigError, match=r"model.max_length = 129: the model reads at most "
                                          r"128 tokens \(its position embeddings\); lower it, "
                                          r"or read long texts in windows \(model.long_text\)$"):
        check_max_length(model, 129)
    # windows already on: the advice to read windows was advice to do what it does
    for mode in ("windows", "evidence"):
        with pytest.raises(ConfigError, match=rf"reads at most 128 tokens \(its position "
                                              rf"embeddings\); lower it \(long texts are read "
                                              rf"in windows of max_length tokens already, "
                                              rf"model.long_text = {mode}\)$"):
            check_max_length(model, 512, mode)
    # as training resolves it: model.long_text = auto reads windows
    from relabeler.config import RunConfig
    from relabeler.jobs.head_states import long_text_settings
    from relabeler.training import FitOptions

    config = RunConfig()
    opts = FitOptions.resolve(mode="head", epochs=1, batch_size=8, learning_rate=0.0,
                              weight_decay=0.0, warmup_ratio=0.0, max_length=512, seed=0,
                              device=torch.device("cpu"), long_text=long_text_settings(config))
    with pytest.raises(ConfigError, match=r"lower it \(long texts are read in windows of "
                                          r"max_length tokens already, model.long_text = "
                                          r"windows\)$"):
        opts.new_classifier(tiny_bert_dir, ["a", "b"])
    roberta = SimpleNamespace(config=RobertaConfig(max_position_embeddings=514,
                                                   pad_token_id=1))  # 512 usable
    check_max_length(roberta, 512)
    with pytest.raises(ConfigError, match=r"reads at most 512 tokens"):
        check_max_length(roberta, 513)
    check_max_length(SimpleNamespace(config=DebertaV2Config(relative_attention=True)), 1024)


def test_a_checkpoint_saved_in_bf16_loads_in_float32(tiny_bert_dir, tmp_path):
    # transformers loads a checkpoint in the dtype it was saved in: a bf16 head met the fp32
    # cached states of head mode ("mat1 and mat2 must have the same dtype"), and full mode's
    # AdamW updated bf16 weights
    model = load_classifier(tiny_bert_dir, ["a", "b"]).to(torch.bfloat16)
    save_model(model, load_tokenizer(tiny_bert_dir), tmp_path / "bf16", ["a", "b"])
    assert "bfloat16" in (tmp_path / "bf16/config.json").read_text()
    loaded = load_classifier(tmp_path / "bf16")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    out = loaded.classifier(torch.zeros(1, loaded.config.hidden_size))  # fp32 states
    assert out.dtype == torch.float32


def test_a_trained_length_other_than_the_default_is_no_warning_unless_one_was_given(caplog):
    # extract and attribute warned "trained on 64 tokens ..., not model.max_length = 128"
    # where nobody had set max_length: 128 was the default
    from relabeler.config import RunConfig, apply_overrides
    from relabeler.model import trained_max_length

    saved = {"relabeler_max_length": 64}
    config = RunConfig()
    assert "max_length" not in config.model.model_fields_set
    with caplog.at_level("WARNING", logger="relabeler.model"):
        assert trained_max_length(saved, config.model, "extract") == 64
    assert caplog.text == ""
    apply_overrides(config, None, ["model.max_length=128"])
    assert "max_length" in config.model.model_fields_set
    with caplog.at_level("WARNING", logger="relabeler.model"):
        assert trained_max_length(saved, config.model, "extract") == 64
    assert "the model was trained on 64 tokens per text (or window); it reads that many, not " \
        "model.max_length = 128" in caplog.text


def test_loading_and_saving_print_no_reports_and_keep_transformers_settings(tiny_bert_dir,
                                                                             tmp_path, capfd):
    """A notebook sees no "LOAD REPORT ... MISSING" table (relabeler adds the head, as
    expected) nor progress bars, and its own transformers settings stay as they were."""
    from transformers.utils import logging as hf_logging

    from relabeler.model import load_classifier, load_tokenizer, save_model

    hf_logging.set_verbosity_warning()
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])  # a new head: missing weights
    save_model(model, load_tokenizer(tiny_bert_dir), tmp_path / "m", ["neg", "pos"])
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert hf_logging.get_verbosity() == hf_logging.WARNING
    assert hf_logging.is_progress_bar_enabled()
