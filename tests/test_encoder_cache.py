"""The head-mode encoder cache: same states as encoding, each text encoded once, keyed by the
encoder (not the head), the tokenizer and max_length."""

import os

import numpy as np
import pytest
import torch

import relabeler.training as training
from relabeler.encoder_cache import EncoderCache, cache_root, encoder_fingerprint, text_keys
from relabeler.errors import ConfigError
from relabeler.model import load_classifier, load_tokenizer
from relabeler.training import encoder_cls

TEXTS = ["the movie was great", "awful story", "a long " + "and long " * 40 + "film",
         "the movie was great", "Héllo wörld 😀"]
CPU = torch.device("cpu")


@pytest.fixture()
def model_and_tokenizer(tiny_bert_dir):
    return load_classifier(tiny_bert_dir, ["neg", "pos"]), load_tokenizer(tiny_bert_dir)


def test_states_equal_encoding_and_each_text_is_encoded_once(model_and_tokenizer, tmp_path,
                                                             monkeypatch, caplog):
    model, tokenizer = model_and_tokenizer
    with torch.inference_mode():
        expected = encoder_cls(model, tokenizer, TEXTS, max_length=32, batch_size=2,
                               device=CPU)
    cache = EncoderCache(tmp_path, model, tokenizer, 32)
    encoded: list[list[str]] = []
    original = training.encoder_cls  # states() looks it up in relabeler.training

    def counting(model, tokenizer, texts, **kwargs):
        encoded.append(list(texts))
        return original(model, tokenizer, texts, **kwargs)

    monkeypatch.setattr(training, "encoder_cls", counting)
    first = cache.states(TEXTS[:3], batch_size=2, device=CPU)
    np.testing.assert_allclose(first.numpy(), expected[:3].numpy(), atol=1e-5)
    caplog.set_level("INFO", logger="relabeler.encoder_cache")
    caplog.clear()
    both = cache.states(TEXTS, batch_size=2, device=CPU)
    # a copy of a text is not a cache hit: 4 distinct texts, 3 found, 1 encoded
    assert caplog.messages == ["encoder cache: 3 of 4 distinct texts cached, 1 encoded now "
                               "(5 texts with copies)"]
    np.testing.assert_allclose(both.numpy(), expected.numpy(), atol=1e-5)
    # the second call encoded only the one new text; the repeated one was never encoded twice
    assert encoded == [TEXTS[:3], [TEXTS[4]]]
    assert len(list(cache.folder.glob("part-*.parquet"))) == 2
    # a new cache object (another process) reads the parts back
    again = EncoderCache(tmp_path, model, tokenizer, 32).states(TEXTS, batch_size=2,
                                                                device=CPU)
    np.testing.assert_array_equal(again.numpy(), both.numpy())
    assert len(encoded) == 2
    # states made under CUDA's bf16 autocast live apart: a GPU run never hands them to a CPU
    # run or the other way round
    gpu = cache._folder(torch.device("cuda"))
    assert gpu.name == f"{cache.folder.name}-cuda-bf16" and cache._folder(CPU) == cache.folder
    assert cache._load(gpu, text_keys(TEXTS)) == {}
    # a lookup returns the states of the keys asked for, and only those
    some = cache._load(cache.folder, text_keys([TEXTS[4], TEXTS[1], "never encoded"]))
    assert set(some) == set(text_keys([TEXTS[4], TEXTS[1]]))
    np.testing.assert_array_equal(some[text_keys([TEXTS[1]])[0]], both[1].numpy())


def test_the_key_follows_the_encoder_not_the_head(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    key = encoder_fingerprint(model, tokenizer, 32)
    assert len(key) == 64
    with torch.no_grad():
        model.classifier.weight.add_(1.0)  # a trained head: same encoder, same states
        model.base_model.pooler.dense.weight.add_(1.0)
    assert encoder_fingerprint(model, tokenizer, 32) == key
    assert encoder_fingerprint(model, tokenizer, 64) != key
    with torch.no_grad():
        model.base_model.encoder.layer[0].output.dense.bias.add_(1e-3)
    assert encoder_fingerprint(model, tokenizer, 32) != key


def test_off_and_unreadable_parts(model_and_tokenizer, tmp_path, monkeypatch):
    model, tokenizer = model_and_tokenizer
    monkeypatch.setenv("RELABELER_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root("") == tmp_path / "env"
    assert cache_root(str(tmp_path / "cfg")) == tmp_path / "cfg"
    assert cache_root("off") is None and cache_root("OFF") is None
    monkeypatch.delenv("RELABELER_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root("") == tmp_path / "home" / ".cache" / "relabeler"
    # a file where the folder would be: named before any text is encoded (it was a traceback
    # when the first states were saved, after all the encoding)
    (tmp_path / "afile").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^model.cache_dir = '.*/afile/sub': the encoder "
                                          r"cache cannot be a folder there \(Not a directory"):
        cache_root(str(tmp_path / "afile" / "sub"))
    monkeypatch.setenv("RELABELER_CACHE_DIR", str(tmp_path / "afile"))
    with pytest.raises(ConfigError, match=r"^RELABELER_CACHE_DIR = '.*/afile': .*File exists"):
        cache_root("")
    monkeypatch.delenv("RELABELER_CACHE_DIR")

    off = EncoderCache(None, model, tokenizer, 32)
    assert off.folder is None
    assert off.states(TEXTS[:2], batch_size=2, device=CPU).shape == (2, 32)

    cache = EncoderCache(tmp_path, model, tokenizer, 32)
    states = cache.states(TEXTS[:2], batch_size=2, device=CPU)
    (cache.folder / "part-broken.parquet").write_bytes(b"not parquet")
    np.testing.assert_array_equal(cache.states(TEXTS[:2], batch_size=2, device=CPU).numpy(),
                                  states.numpy())
    with pytest.raises(ValueError, match="no texts"):
        cache.states([], batch_size=2, device=CPU)


def test_a_tokenizer_used_once_names_the_same_folder(model_and_tokenizer, tmp_path):
    # the backend's truncation and padding, switched on by a call, went into the key: a second
    # cache object over the same tokenizer named another folder and missed every state
    model, tokenizer = model_and_tokenizer
    before = encoder_fingerprint(model, tokenizer, 32)
    EncoderCache(tmp_path, model, tokenizer, 32).states(TEXTS[:2], batch_size=2, device=CPU)
    assert encoder_fingerprint(model, tokenizer, 32) == before
    tokenizer.truncation_side = "left"  # another cut: other states
    assert encoder_fingerprint(model, tokenizer, 32) != before


def test_parts_empty_of_another_layout_or_not_finite_are_recomputed(model_and_tokenizer,
                                                                    tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    model, tokenizer = model_and_tokenizer
    cache = EncoderCache(tmp_path, model, tokenizer, 32)
    states = cache.states(TEXTS[:2], batch_size=2, device=CPU)
    good = next(cache.folder.glob("part-*.parquet"))
    table = pq.read_table(good)
    pq.write_table(table.slice(0, 0), cache.folder / "part-empty.parquet")
    pq.write_table(pa.table({"other": [1]}), cache.folder / "part-layout.parquet")
    nan = pa.array([[float("nan")] * 32] * 2, pa.list_(pa.float32(), 32))
    pq.write_table(table.set_column(1, "state", nan), cache.folder / "part-nan.parquet")
    good.unlink()  # only the broken parts are left: every text is encoded again
    again = cache.states(TEXTS[:2], batch_size=2, device=CPU)
    np.testing.assert_allclose(again.numpy(), states.numpy(), atol=1e-6)


def test_the_cache_keeps_under_its_size_dropping_the_states_used_longest_ago(
        model_and_tokenizer, tmp_path, caplog):
    model, tokenizer = model_and_tokenizer
    unlimited = EncoderCache(tmp_path, model, tokenizer, 32)
    unlimited.states(TEXTS[:1], batch_size=2, device=CPU)
    one_part = next(unlimited.folder.glob("part-*.parquet")).stat().st_size
    cache = EncoderCache(tmp_path, model, tokenizer, 32, max_gb=2.5 * one_part / 1e9)
    cache.states(TEXTS[1:2], batch_size=2, device=CPU)
    first, second = sorted(cache.folder.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    for age, part in ((300, first), (200, second)):  # written minutes apart
        os.utime(part, (part.stat().st_atime - age,) * 2)
    # a lookup uses the older part: now the newer one is the one used longest ago
    assert cache.cached(TEXTS[:1], device=CPU) is not None
    caplog.set_level("INFO", logger="relabeler.encoder_cache")
    cache.states(TEXTS[4:5], batch_size=2, device=CPU)  # a third part: over 2.5 parts' size
    assert first.exists() and not second.exists()
    assert len(list(cache.folder.glob("part-*.parquet"))) == 2
    assert "removed 1 part(s), 0.0 MB, of the states used longest ago" in caplog.text
    assert cache.cached(TEXTS[1:2], device=CPU) is None  # pruned: encoded again when needed
    assert cache.cached([TEXTS[0], TEXTS[4]], device=CPU) is not None


def test_pruning_takes_whole_encoders_folders_and_keeps_the_part_just_written(tmp_path):
    from relabeler.encoder_cache import prune

    old, new = tmp_path / "encoder/aaa", tmp_path / "encoder/bbb"
    for folder, age in ((old, 100), (new, 0)):
        folder.mkdir(parents=True)
        part = folder / "part-1.parquet"
        part.write_bytes(b"x" * 1000)
        when = part.stat().st_mtime - age
        os.utime(part, (when, when))
    assert prune(tmp_path, 1500) == 1000
    assert not old.exists() and new.is_dir()
    # the part just written stays even when it alone is over the size
    assert prune(tmp_path, 10, keep=new / "part-1.parquet") == 0
    assert (new / "part-1.parquet").exists()
    assert prune(tmp_path, 0) == 1000 and not new.exists()
