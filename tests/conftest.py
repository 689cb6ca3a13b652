"""Shared fixtures: tiny random BERT models, a synthetic dataset, one Ray per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# tests keep Ray's auth token out of $HOME: no token, loopback-only clusters
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# every Ray a test starts listens on 127.0.0.1 only
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

POSITIVE = ["great", "wonderful", "excellent", "lovely", "superb", "fantastic"]
NEGATIVE = ["awful", "terrible", "horrible", "dreadful", "poor", "boring"]
FILLER = ["the", "movie", "was", "really", "quite", "a", "story", "about", "people", "and",
          "music", "with", "some", "scenes", "long", "short"]


def synthetic_frame(n: int = 120, seed: int = 0):
    """Two classes told apart by one sentiment word among filler words; lengths vary."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = list(rng.choice(FILLER, size=int(rng.integers(3, 30))))
        cue = rng.choice(POSITIVE if label == "pos" else NEGATIVE)
        words.insert(int(rng.integers(0, len(words) + 1)), cue)
        rows.append({"id": f"s{i:04d}", "text": " ".join(words), "label": label})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    from relabeler.model import default_model_path

    return default_model_path()


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory, minilm_dir) -> str:
    """A tiny random BERT encoder (no classification head) with MiniLM's fast tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128, initializer_range=0.2,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(minilm_dir).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    """One local Ray for the whole test session, with its temp dir and token out of $HOME."""
    import ray

    # Ray's socket paths must stay short: keep its temp dir directly under /tmp
    temp_dir = tempfile.mkdtemp(prefix="rlb-ray-", dir="/tmp")
    from relabeler.jobs._ray import connect

    connect(num_cpus=2, temp_dir=temp_dir)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ray_bin() -> str:
    import sys

    return str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_head():
    """A real Ray head started with `ray start --head` on 127.0.0.1, with its dashboard (the
    job server). Yields (gcs_address, dashboard_url); stopped with its whole process group."""
    import signal
    import subprocess
    import time
    import urllib.request

    temp_dir = tempfile.mkdtemp(prefix="rlb-head-", dir="/tmp")
    gcs_port, dash_port = free_port(), free_port()
    cmd = [_ray_bin(), "start", "--head", "--block", f"--port={gcs_port}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
           "--include-dashboard=true", "--num-cpus=2", f"--temp-dir={temp_dir}",
           f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}",
           f"--dashboard-agent-grpc-port={free_port()}",
           f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}",
           "--disable-usage-stats"]
    log = open(Path(temp_dir) / "head.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash_port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/version", timeout=2):
                break
        except OSError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("ray head did not start: "
                                   + (Path(temp_dir) / "head.log").read_text()[-2000:]) from exc
            time.sleep(1)
    yield f"127.0.0.1:{gcs_port}", url
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    synthetic_frame().to_csv(path, index=False)
    return path
