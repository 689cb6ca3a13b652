"""extract: the actor equals a plain forward pass; the Ray job writes, shards and resumes."""

import numpy as np
import pytest
import torch

from relabeler import __version__
from relabeler.config import RunConfig
from relabeler.jobs import StageError
from relabeler.jobs.extract import FeatureExtractor, run_extract
from relabeler.jobs.train import run_train
from relabeler.model import encode, load_classifier, load_tokenizer
from relabeler.store import RunStore
from tests.conftest import head_config, synthetic_frame


def _plain_forward(model_dir, texts, labels):
    """A single-process reference: one text at a time, no padding, no batching tricks."""
    model = load_classifier(model_dir)
    tokenizer = load_tokenizer(model_dir)
    rows = []
    with torch.inference_mode():
        for text, label in zip(texts, labels, strict=True):
            enc = encode(tokenizer, [text], 128)
            out = model(**enc, output_hidden_states=False)
            pooled = model.bert(**enc).pooler_output[0]
            logits = out.logits[0]
            log_probs = logits.log_softmax(-1)
            loss = -log_probs[label].item() if label >= 0 else float("nan")
            rows.append((pooled.numpy(), logits.numpy(), log_probs.exp().numpy(), loss,
                         int(enc["attention_mask"].sum())))
    return rows


def test_actor_matches_a_plain_forward_pass(tiny_bert_dir, tmp_path):
    model = load_classifier(tiny_bert_dir, ["neg", "pos"])
    load_tokenizer(tiny_bert_dir).save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)
    frame = synthetic_frame(20)
    label_index = np.array([1 if x == "pos" else 0 for x in frame.label])
    label_index[3] = -1  # an unlabeled row (pool)
    extractor = FeatureExtractor(str(tmp_path), max_length=128, num_threads=1,
                                 driver_version=__version__)  # as the driver passes it
    out = extractor({"text": frame.text.to_numpy(dtype=object), "label_index": label_index,
                     "id": frame.id.to_numpy(dtype=object)})
    reference = _plain_forward(str(tmp_path), frame.text.tolist(), label_index.tolist())
    for i, (pooled, logits, probs, loss, n_tokens) in enumerate(reference):
        np.testing.assert_allclose(out["embedding"][i], pooled, atol=1e-4)
        np.testing.assert_allclose(out["logits"][i], logits, atol=1e-4)
        np.testing.assert_allclose(out["probs"][i], probs, atol=1e-4)
        assert out["n_tokens"][i] == n_tokens
        if label_index[i] >= 0:
            assert out["loss"][i] == pytest.approx(loss, abs=1e-4)
        else:
            assert np.isnan(out["loss"][i])
    assert out["pred"].tolist() == out["logits"].argmax(1).tolist()
    assert out["id"].tolist() == frame.id.tolist()
    assert "text" not in out


def _tiny_config(tmp_path, tiny_bert_dir, csv_path, **extract):
    config = head_config(tmp_path / "run", csv_path, tiny_bert_dir, max_length=64, epochs=3)
    config.data.eval_fraction = 0.25
    config.data.pool_fraction = 0.1
    # the Ray job's tests: without the encoder cache, extract runs the model in the actors
    # (tests/jobs/test_extract_cached.py tests head mode's reading of the cache)
    config.model.cache_dir = "off"
    for key, value in extract.items():
        setattr(config.extract, key, value)
    return config


@pytest.mark.slow
def test_ray_extract_writes_features_equal_to_plain_forward(ray_session, tiny_bert_dir,
                                                            tmp_path, synthetic_csv):
    config = _tiny_config(tmp_path, tiny_bert_dir, synthetic_csv, shard_size=16, batch_size=8)
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    info = run_extract(store, config, progress=False)
    assert {s: info[s]["rows"] for s in ("train", "eval", "pool")} == {
        "train": 78, "eval": 30, "pool": 12}
    assert store.finished_shards("features/train") == {0, 1, 2, 3, 4}
    features = store.read_table("features/train").to_pandas()
    dataset = store.read_table("dataset/train.parquet").to_pandas()
    assert features["id"].tolist() == dataset["id"].tolist()  # split order, across shards
    assert features["label"].tolist() == dataset["label"].tolist()
    classes = ["neg", "pos"]
    labels = [classes.index(x) for x in dataset["label"]]
    reference = _plain_forward(store.path("model"), dataset["text"].tolist(), labels)
    for row, (pooled, logits, probs, loss, n_tokens) in zip(features.itertuples(), reference,
                                                            strict=True):
        np.testing.assert_allclose(row.embedding, pooled, atol=1e-4)
        np.testing.assert_allclose(row.logits, logits, atol=1e-4)
        np.testing.assert_allclose(row.probs, probs, atol=1e-4)
        assert row.loss == pytest.approx(loss, abs=1e-4)
        assert row.n_tokens == n_tokens
        assert row.pred == classes[int(np.argmax(logits))]
    pool = store.read_table("features/pool").to_pandas()
    assert pool["label"].isna().all() and pool["loss"].isna().all()


@pytest.mark.slow
def test_ray_extract_resumes_from_finished_shards(ray_session, tiny_bert_dir, tmp_path,
                                                  synthetic_csv):
    config = _tiny_config(tmp_path, tiny_bert_dir, synthetic_csv, shard_size=16, batch_size=8,
                          splits=["train"])
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run_extract(store, config, progress=False)
    before = store.read_table("features/train")
    # a stage killed midway: shards 1 and 3 never finished, the marker was never written
    store.remove("features/train/part-00001.parquet")
    store.remove("features/train/part-00003.parquet")
    store.remove("_stages/extract.train.json")
    info = run_extract(store, config, progress=False)
    assert info["train"]["rows_this_run"] == 32
    after = store.read_table("features/train")
    assert after.column("id").to_pylist() == before.column("id").to_pylist()
    np.testing.assert_allclose(np.stack(after.column("embedding").to_pylist()),
                               np.stack(before.column("embedding").to_pylist()), atol=1e-5)
    # finished: a second run does nothing
    assert run_extract(store, config, progress=False)["train"]["rows_this_run"] == 32
    # killed again, then resumed with another rows-per-part: the old parts are not mixed in
    store.remove("features/train/part-00002.parquet")
    store.remove("_stages/extract.train.json")
    config.extract.shard_size = 20
    info = run_extract(store, config, progress=False)
    assert (info["train"]["rows"], info["train"]["rows_this_run"]) == (78, 78)
    assert store.read_table("features/train").column("id").to_pylist() == \
        before.column("id").to_pylist()
    # the model retrained: the finished features are stale and computed again
    run_train(store, config, force=True, progress=False)
    assert not store.stage_done("extract.train")
    assert run_extract(store, config, progress=False)["train"]["rows_this_run"] == 78
    assert store.stage_info("extract.train")["info"]["rows"] == 78
    assert store.stage_info("extract.train")["stage"] == "extract.train"


def test_extract_before_train_is_a_clear_error(tmp_path):
    config = RunConfig(run_dir=str(tmp_path / "run"))
    with pytest.raises(StageError, match="extract needs a trained model"):
        run_extract(RunStore(config.run_dir), config)


def test_unknown_split_is_rejected(tmp_path):
    store = RunStore(tmp_path / "run")
    store.mark_done("train")
    with pytest.raises(ValueError, match=r"unknown split\(s\) \['test'\]"):
        run_extract(store, RunConfig(run_dir=str(tmp_path / "run")), splits=["test"])


def test_count_truncated_counts_texts_that_fill_max_length():
    from relabeler.jobs.extract import count_truncated

    assert count_truncated(np.array([3, 12, 11, 12, 40], np.int32), 12) == 3
    assert count_truncated(np.zeros(0, np.int32), 12) == 0


@pytest.mark.slow
def test_extract_counts_and_reports_the_texts_cut_at_max_length(ray_session, tiny_bert_dir,
                                                                 tmp_path, synthetic_csv,
                                                                 caplog):
    from transformers import AutoTokenizer

    config = _tiny_config(tmp_path, tiny_bert_dir, synthetic_csv, splits=["train"])
    config.model.max_length = 12
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    config.model.max_length = 64  # changed since: the model reads what it was trained on
    with caplog.at_level("WARNING", logger="relabeler.jobs.extract"):
        info = run_extract(store, config, progress=False)["train"]
    assert "the model was trained on 12 tokens per text (or window); it reads that many, not " \
        "model.max_length = 64" in caplog.text
    texts = store.read_table("dataset/train.parquet").column("text").to_pylist()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    expected = sum(len(tokenizer(t)["input_ids"]) >= 12 for t in texts)
    assert 0 < expected < len(texts)
    assert info["n_truncated"] == expected and info["max_length"] == 12
    assert f"{expected} of {len(texts)} train texts reach model.max_length = 12" in caplog.text


def test_a_forced_extract_that_cannot_join_ray_keeps_the_finished_features(tmp_path,
                                                                          monkeypatch):
    # `extract --force` with a wrong RAY_ADDRESS removed features/* and the markers before it
    # tried to join, so the error left a run that score refused
    import pyarrow as pa

    import relabeler.jobs._ray as ray_helpers
    from relabeler.errors import ConfigError

    store = RunStore(tmp_path / "run")
    store.write_json("model/config.json", {})
    store.mark_done("train")
    for split in ("train", "eval"):
        vector = pa.list_(pa.float32(), 2)
        store.write_shard(f"features/{split}", 0, pa.table({
            "id": [f"{split}0"], "label": ["a"], "embedding": pa.array([[0.0, 1.0]], vector),
            "logits": pa.array([[0.0, 1.0]], vector), "probs": pa.array([[0.3, 0.7]], vector),
            "pred": ["b"], "loss": pa.array([1.2], pa.float32()),
            "n_tokens": pa.array([3], pa.int32())}))
        store.mark_done(f"extract.{split}")
    config = RunConfig(run_dir=str(tmp_path / "run"))
    config.extract.splits = ["train", "eval"]

    def unreachable(*args, **kwargs):
        raise ConfigError("RAY_ADDRESS = '127.0.0.1:1': nothing answers there")

    monkeypatch.setattr(ray_helpers, "connect", unreachable)
    with pytest.raises(ConfigError, match="nothing answers there"):
        run_extract(store, config, force=True)
    for split in ("train", "eval"):
        assert store.stage_done(f"extract.{split}")
        assert store.read_table(f"features/{split}").column("id").to_pylist() == [f"{split}0"]
    # a marker whose features were removed by hand is not "already done": it is extracted
    # again (here: the join is tried, and its error stops it)
    store.remove("features/eval")
    with pytest.raises(ConfigError, match="nothing answers there"):
        run_extract(store, config)
    assert store.stage_done("extract.train")
