"""benchmarks/pooling.py's helpers: the one shared pass gives every pool_layers' features as
relabeler encodes them, the seed-paired summary pairs by seed, the dataset list parses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from relabeler.model import encode, encoder_head_states, load_classifier, load_tokenizer

ROOT = Path(__file__).parents[1]
_spec = importlib.util.spec_from_file_location("pooling_benchmark",
                                               ROOT / "benchmarks" / "pooling.py")
pooling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pooling)

TEXTS = ["a short text", "another, somewhat longer text with more words in it",
         "three words here", "x"]


@pytest.mark.parametrize("layers", [1, 2])
def test_one_pass_gives_what_mean_pooling_over_those_layers_encodes(tiny_bert_dir, layers):
    tokenizer = load_tokenizer(tiny_bert_dir)
    shared = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=1)
    means = pooling.layer_means(shared, tokenizer, TEXTS, layers=2, max_length=32,
                                batch_size=3, device=torch.device("cpu"))
    assert means.shape == (len(TEXTS), 2, 32)
    np.testing.assert_allclose(np.linalg.norm(means, axis=-1), 1.0, rtol=1e-5)
    model = load_classifier(tiny_bert_dir, ["a", "b"], pooling="mean", pool_layers=layers)
    with torch.inference_mode():
        expected = encoder_head_states(model, encode(tokenizer, TEXTS, 32)).numpy()
    np.testing.assert_allclose(pooling.pooled_features(means, layers), expected, atol=1e-5)


def test_pooled_features_average_the_normalised_means_and_check_the_count():
    means = np.array([[[1.0, 0.0], [0.0, 1.0]]], dtype=np.float32)  # 1 text, 2 layers
    np.testing.assert_allclose(pooling.pooled_features(means, 1), [[0.0, 1.0]])
    np.testing.assert_allclose(pooling.pooled_features(means, 2), [[2 ** -0.5, 2 ** -0.5]],
                               rtol=1e-6)
    for bad in (0, 3):
        with pytest.raises(ValueError, match=r"layers must be in 1\.\.2"):
            pooling.pooled_features(means, bad)


def test_layer_summary_pairs_each_seed_with_its_baseline():
    runs = [{"seed": s, "layers": n, "accuracy": acc, "auprc": 0.5}
            for s, n, acc in [(0, 1, 0.60), (0, 3, 0.70), (1, 1, 0.80), (1, 3, 0.84)]]
    base, three = pooling.layer_summary(runs, [1, 3])
    assert (base["layers"], base["accuracy_diff"], base["mean_accuracy_diff"]) == (1, "", 0.0)
    assert three["accuracy"] == pooling.format_interval([0.70, 0.84])
    assert three["accuracy_diff"] == pooling.format_interval([0.10, 0.04])
    assert three["accuracy_diffs"] == pytest.approx([0.10, 0.04])
    assert three["mean_accuracy_diff"] == pytest.approx(0.07)
    assert three["mean_auprc_diff"] == 0.0
    # against another baseline, L = 3 itself
    assert pooling.layer_summary(runs, [1], base=3)[0]["mean_accuracy_diff"] == \
        pytest.approx(-0.07)
    with pytest.raises(ValueError, match=r"lack \(seed, layers\) \[\(1, 3\)\]"):
        pooling.layer_summary(runs[:-1], [1, 3])


def test_parse_data_keeps_the_order_and_reads_every_row_by_default():
    assert list(pooling.parse_data("drug-review,sms-spam:2000").items()) == [
        ("drug-review", 0), ("sms-spam", 2000)]
    with pytest.raises(ValueError, match="dataset 'imdb': expected one of"):
        pooling.parse_data("imdb:100")
    with pytest.raises(ValueError, match="must be an integer"):
        pooling.parse_data("sms-spam:many")
    with pytest.raises(ValueError, match="must be >= 0"):
        pooling.parse_data("sms-spam:-1")
    with pytest.raises(ValueError, match="no dataset"):
        pooling.parse_data(" , ")
