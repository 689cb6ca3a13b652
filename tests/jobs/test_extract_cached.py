"""extract in head mode reads the encoder states train cached: the same columns, within float
tolerance, as the model's own forward pass, under every long_text mode; resume unchanged."""

import logging

import numpy as np
import pytest

from relabeler.jobs.extract import FeatureExtractor, run_extract
from relabeler.jobs.train import run_train
from relabeler.model import class_names, load_classifier
from relabeler.store import RunStore
from tests.conftest import head_config

SPLITS = ("train", "eval", "pool")


def _config(tmp_path, tiny_bert_dir, synthetic_csv, long_text: str):
    config = head_config(tmp_path / "run", synthetic_csv, tiny_bert_dir, max_length=16,
                         epochs=2)
    config.data.eval_fraction = 0.25
    config.data.pool_fraction = 0.1
    config.model.cache_dir = str(tmp_path / "cache")  # this test's own: the pool uncached
    config.model.pooling = "mean"  # windows and evidence need a head linear in the states
    config.model.long_text = long_text
    config.model.window_stride = 4
    config.extract.shard_size = 32
    config.extract.batch_size = 8
    return config


def _reference(store: RunStore, split: str) -> dict[str, np.ndarray]:
    """What the Ray job's actor computes for ``split``: the whole model, run here."""
    dataset = store.read_table(f"dataset/{split}.parquet").to_pandas()
    classes = class_names(load_classifier(store.path("model")))
    index = {c: i for i, c in enumerate(classes)}
    extractor = FeatureExtractor(store.path("model"), max_length=16, num_threads=1,
                                 device="cpu")
    out = extractor({"text": dataset["text"].to_numpy(dtype=object),
                     "label_index": np.array([index.get(x, -1) if isinstance(x, str) else -1
                                              for x in dataset["label"]])})
    return {**out, "id": dataset["id"].tolist(), "label": dataset["label"].tolist(),
            "pred": [classes[i] for i in out["pred"]]}


@pytest.mark.parametrize("long_text", ["truncate", "windows", "evidence"])
def test_cached_extract_equals_the_models_forward_pass(long_text, tiny_bert_dir, tmp_path,
                                                       synthetic_csv, caplog, monkeypatch):
    config = _config(tmp_path, tiny_bert_dir, synthetic_csv, long_text)
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    import relabeler.jobs._ray as ray_helpers

    def no_ray(*args, **kwargs):
        raise AssertionError("the cached path started Ray")

    monkeypatch.setattr(ray_helpers, "connect", no_ray)
    with caplog.at_level(logging.INFO, logger="relabeler.jobs.extract"):
        info = run_extract(store, config, splits=list(SPLITS), progress=False)
    # train cached the train and eval texts; the pool's are encoded now (and cached)
    assert "extract: 108 of 120 rows from the encoder cache (12 encoded here and cached)" \
        in caplog.text
    assert {s: info[s]["rows"] for s in SPLITS} == {"train": 78, "eval": 30, "pool": 12}
    longest = 0
    for split in SPLITS:
        features = store.read_table(f"features/{split}")
        reference = _reference(store, split)
        assert features.column_names == ["id", "label", "embedding", "logits", "probs",
                                         "pred", "loss", "n_tokens"]
        got = features.to_pandas()
        assert got["id"].tolist() == reference["id"]  # the split's order, across parts
        assert features.column("label").to_pylist() == store.read_table(
            f"dataset/{split}.parquet").column("label").to_pylist()
        assert got["pred"].tolist() == reference["pred"]
        for name in ("embedding", "logits", "probs"):
            np.testing.assert_allclose(np.stack(got[name].to_numpy()), reference[name],
                                       atol=1e-5)
        np.testing.assert_allclose(got["loss"].to_numpy(), reference["loss"], atol=1e-5)
        assert got["n_tokens"].tolist() == reference["n_tokens"].tolist()
        longest = max(longest, int(got["n_tokens"].max()))
    if long_text != "truncate":
        assert longest > 16  # texts of several windows were read
    # the pool's states were added: a forced rerun reads every row from the cache
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="relabeler.jobs.extract"):
        run_extract(store, config, splits=list(SPLITS), force=True, progress=False)
    assert "extract: 120 of 120 rows from the encoder cache (0 encoded here" in caplog.text


def test_cached_extract_resumes_from_finished_parts(tiny_bert_dir, tmp_path, synthetic_csv):
    config = _config(tmp_path, tiny_bert_dir, synthetic_csv, "windows")
    config.extract.splits = ["train"]
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run_extract(store, config, progress=False)
    before = store.read_table("features/train")
    store.remove("features/train/part-00001.parquet")
    store.remove("_stages/extract.train.json")
    info = run_extract(store, config, progress=False)
    assert (info["train"]["rows"], info["train"]["rows_this_run"]) == (78, 32)
    assert store.read_table("features/train").equals(before)
    assert run_extract(store, config, progress=False)["train"]["rows_this_run"] == 32


@pytest.mark.slow
def test_on_a_cluster_the_rows_the_cache_lacks_go_to_the_ray_job(ray_session, tiny_bert_dir,
                                                                  tmp_path, synthetic_csv,
                                                                  caplog):
    from relabeler.encoder_cache import cache_root
    from relabeler.jobs._ray import PoolPlan
    from relabeler.jobs.extract import extract_splits
    from relabeler.jobs.extract_cached import CachedStates

    config = _config(tmp_path, tiny_bert_dir, synthetic_csv, "windows")
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    plan = PoolPlan(num_actors=1, num_cpus=1.0, num_gpus=0.0, torch_threads=1)
    with caplog.at_level(logging.INFO, logger="relabeler.jobs.extract"):
        written = extract_splits(store, list(SPLITS), max_length=16, batch_size=8,
                                 shard_size=32, plan=plan, progress=False,
                                 cached=CachedStates(cache_root(config.model.cache_dir),
                                                     encode_missing=False))
    assert written == {"train": 78, "eval": 30, "pool": 12}
    # train and eval from the driver's cache; the pool, never cached, through the actors
    assert "extract: 108 of 120 rows from the encoder cache\n" in caplog.text
    assert "the encoder cache lacks states of 12 rows: the Ray job reads them" in caplog.text
    for split in SPLITS:
        got = store.read_table(f"features/{split}").to_pandas()
        reference = _reference(store, split)
        assert got["id"].tolist() == reference["id"]
        np.testing.assert_allclose(np.stack(got["probs"].to_numpy()), reference["probs"],
                                   atol=1e-5)
