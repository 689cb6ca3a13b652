"""`ray job submit -- relabeler …` against a real `ray start --head` on 127.0.0.1."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from relabeler.jobs.train import run_train
from relabeler.store import RunStore
from tests.conftest import head_config

pytestmark = pytest.mark.slow


def test_extract_as_a_submitted_ray_job(ray_head, tiny_bert_dir, tmp_path, synthetic_csv):
    _, dashboard = ray_head
    config = head_config(tmp_path / "run", synthetic_csv, tiny_bert_dir, max_length=64,
                         epochs=2)
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)

    relabeler = str(Path(sys.executable).with_name("relabeler"))
    ray = str(Path(sys.executable).with_name("ray"))
    result = subprocess.run(
        [ray, "job", "submit", "--address", dashboard, "--",
         relabeler, "extract", "--run", config.run_dir,
         "--splits", "train,eval", "-q"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout + result.stderr
    features = store.read_table("features/train").to_pandas()
    train = store.read_table("dataset/train.parquet").to_pandas()
    assert features["id"].tolist() == train["id"].tolist()
    assert np.stack(features["embedding"].to_numpy()).shape == (96, 32)
    assert store.stage_done("extract.eval") and not store.stage_done("extract.pool")


def test_a_failing_job_exits_non_zero_with_the_reason(ray_head, tmp_path):
    _, dashboard = ray_head
    relabeler = str(Path(sys.executable).with_name("relabeler"))
    ray = str(Path(sys.executable).with_name("ray"))
    (tmp_path / "empty-run").mkdir()  # a run with nothing trained in it
    result = subprocess.run(
        [ray, "job", "submit", "--address", dashboard, "--",
         relabeler, "extract", "--run", str(tmp_path / "empty-run")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "extract needs a trained model" in result.stdout + result.stderr
