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
# head mode's encoder cache lives in the session's own folder, never in $HOME
if "RELABELER_CACHE_DIR" not in os.environ:
    import atexit

    os.environ["RELABELER_CACHE_DIR"] = tempfile.mkdtemp(prefix="rlb-cache-", dir="/tmp")
    atexit.register(shutil.rmtree, os.environ["RELABELER_CACHE_DIR"], ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    """Kill any multiprocessing child a test left behind, so the interpreter's exit cannot hang.

    A forked child deadlocked on a lock inherited from Ray's or torch's threads ignores SIGTERM
    and the exit-time join waits forever: one did, and a CI run sat until its 90 minutes ran out.
    """
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout=5)


POSITIVE = ["great", "wonderful", "excellent", "lovely", "superb", "fantastic"]
NEGATIVE = ["awful", "terrible", "horrible", "dreadful", "poor", "boring"]
FILLER = ["the", "movie", "was", "really", "quite", "a", "story", "about", "people", "and",
          "music", "with", "some", "scenes", "long", "short"]


def head_config(run_dir, source, model: str, *, max_length: int, epochs: int):
    """A RunConfig that trains ``model`` (a tiny BERT) in head mode on ``source``."""
    from relabeler.config import RunConfig

    config = RunConfig(run_dir=str(run_dir))
    config.data.source = str(source)
    config.model.name = model
    config.model.max_length = max_length
    config.train.mode = "head"
    config.train.epochs = epochs
    return config


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


@pytest.fixture(scope="session")
def s3_options():
    """A real S3-compatible server (moto) on 127.0.0.1 with the bucket ``relabeler-test``;
    yields s3fs options. Each test names a run folder of its own."""
    import s3fs
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "testing",
               "secret": "testing", "client_kwargs": {"region_name": "eu-west-1"}}
    try:
        s3fs.S3FileSystem(**options).mkdir("relabeler-test")
        yield options
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_options():
    """A GCS emulator on 127.0.0.1 with the bucket ``relabeler-test``
    (:mod:`tests.gcs_emulator`); yields gcsfs options. Each test names a run folder of its
    own."""
    from tests.gcs_emulator import running_emulator

    with running_emulator(free_port(), bucket="relabeler-test") as options:
        yield options


@pytest.fixture(params=["s3", "gs"])
def object_store(request):
    """``(uri, storage_options)`` of a new run folder on each object store relabeler is tested
    against: S3 (moto) and GCS (an emulator)."""
    import uuid

    options = request.getfixturevalue("s3_options" if request.param == "s3" else "gcs_options")
    return f"{request.param}://relabeler-test/run-{uuid.uuid4().hex[:8]}", options


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
    try:  # a head stopping cleanly takes a second or two; the rest is lost time
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)
    log.close()
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def similarity_calls(monkeypatch) -> list[tuple[str, str]]:
    """Every pair of texts the duplicates' text check compares from now on, in order."""
    from relabeler.selectors import duplicates

    compared: list[tuple[str, str]] = []
    similarity = duplicates._similarity

    def counted(x, y, *args):
        compared.append((x, y))
        return similarity(x, y, *args)

    monkeypatch.setattr(duplicates, "_similarity", counted)
    return compared


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    path = tmp_path / "reviews.csv"
    synthetic_frame().to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------
# a real multi-node Ray cluster on 127.0.0.1: a head and worker nodes, each from `ray start`

# the head notices a dead node within about 3 s (Ray's default is about 30 s)
FAST_NODE_FAILURE_ENV = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


# `ray start --address=...` for a worker node, minus its platform guard: that guard refuses to join
# while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, and with it at 1 Ray swaps 127.0.0.1 for the host's
# network address. This is the code `ray start --block` runs (and ray.cluster_utils.Cluster's
# add_node), with the node's address fixed at 127.0.0.1.
_WORKER_NODE_MAIN = """
import json, signal, sys, time
from ray._private.node import Node
from ray._private.parameter import RayParams

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
node = Node(RayParams(**json.loads(sys.argv[1])), head=False, shutdown_at_exit=True,
            spawn_reaper=True)
print("worker node started", flush=True)
while True:
    time.sleep(1)
"""


# per node: small, so three nodes fit in a shared /dev/shm
OBJECT_STORE_BYTES = 256 * 1024 * 1024


def _node_ports() -> list[str]:
    """Ports that differ between nodes on one host (Ray's defaults would collide)."""
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]


class LocalRayCluster:
    """A Ray head (job server included) and named worker nodes on 127.0.0.1.

    Every node is one ``ray start --block`` in its own process group, so a node is stopped, or
    killed mid-job, by signalling its group: its raylet, object store and workers go with it.
    Nodes share one temp dir (Ray keeps one session folder per host) but not the folder where
    runtime environments are unpacked. A worker node carries the
    custom resource ``{name: 1}``, which tells its actors apart in Ray's state API.
    """

    def __init__(self, *, head_cpus: int = 0):
        import subprocess

        self.temp_dir = tempfile.mkdtemp(prefix="rlb-clu-", dir="/tmp")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        dash_port = free_port()
        self.dashboard = f"http://127.0.0.1:{dash_port}"
        self.nodes: dict[str, subprocess.Popen] = {}
        self._logs: list = []
        self._start("head", [
            _ray_bin(), "start", "--head", "--block", f"--port={self.port}",
            "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dash_port}",
            "--include-dashboard=true", f"--num-cpus={head_cpus}",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--ray-client-server-port={free_port()}", "--disable-usage-stats", *_node_ports()])
        try:
            self._wait_for_dashboard()
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, cmd: list[str]) -> None:
        import subprocess

        log = open(Path(self.temp_dir) / f"{name}.log", "w")
        self._logs.append(log)
        self.nodes[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True,
                                            env={**os.environ, **FAST_NODE_FAILURE_ENV})

    def _fail(self, what: str) -> RuntimeError:
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}"
                         for p in sorted(Path(self.temp_dir).glob("*.log")))
        return RuntimeError(f"{what}\n{logs}")

    def _wait_for_dashboard(self, timeout: float = 90) -> None:
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.dashboard}/api/version", timeout=2):
                    return
            except OSError:
                if self.nodes["head"].poll() is not None or time.monotonic() > deadline:
                    raise self._fail("the ray head did not start") from None
                time.sleep(1)

    def all_nodes(self) -> list[dict]:
        """Every node the head has seen, dead ones included, as Ray's state API lists them."""
        from ray.util.state import list_nodes

        return [dict(vars(n)) for n in list_nodes(address=self.dashboard, limit=1000,
                                                  raise_on_missing_output=False)]

    def alive_nodes(self) -> list[dict]:
        return [n for n in self.all_nodes() if n["state"] == "ALIVE"]

    def add_worker(self, name: str, *, num_cpus: int = 1, timeout: float = 90) -> None:
        """Start worker node ``name`` and wait until the head counts it alive."""
        import json
        import sys
        import time

        params = {"gcs_address": self.address, "node_ip_address": "127.0.0.1",
                  "temp_dir": self.temp_dir, "num_cpus": num_cpus, "num_gpus": 0,
                  "resources": {name: 1}, "node_name": name, "include_log_monitor": False,
                  # each node unpacks job packages (--working-dir) in a folder of its own, as
                  # on separate machines; a shared one is swapped under the driver's feet
                  "runtime_env_dir_name": f"runtime_resources_{name}",
                  "object_store_memory": OBJECT_STORE_BYTES,
                  "node_manager_port": 0, "min_worker_port": 0, "max_worker_port": 0,
                  **{key: free_port() for key in ("object_manager_port",
                                                  "dashboard_agent_listen_port",
                                                  "metrics_agent_port", "metrics_export_port",
                                                  "runtime_env_agent_port")}}
        self._start(name, [sys.executable, "-c", _WORKER_NODE_MAIN, json.dumps(params)])
        from ray.util.state.exception import ServerUnavailable

        deadline = time.monotonic() + timeout
        while True:
            try:
                if any(name in n["resources_total"] for n in self.alive_nodes()):
                    return
            except ServerUnavailable:  # the head's state API can lag its dashboard under load
                pass
            if self.nodes[name].poll() is not None or time.monotonic() > deadline:
                raise self._fail(f"worker node {name} did not join")
            time.sleep(0.5)

    def node_of_actor(self, class_name_part: str) -> str | None:
        """Name of the worker node where an alive actor whose class name contains
        ``class_name_part`` runs (``head`` for the head), or None."""
        from ray.util.state import list_actors

        actors = list_actors(address=self.dashboard, filters=[("state", "=", "ALIVE")],
                             raise_on_missing_output=False, detail=True)
        node_ids = {a.node_id for a in actors if class_name_part in a.class_name}
        for node in self.alive_nodes():
            if node["node_id"] in node_ids:
                return next((n for n in self.nodes if n in node["resources_total"]), "head")
        return None

    def kill_node(self, name: str) -> None:
        """SIGKILL a node's whole process group, as a lost machine would vanish."""
        import signal

        os.killpg(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait(timeout=30)

    def stop(self) -> None:
        import signal
        import subprocess

        # workers first, the head last; each node's processes by their process group
        for name in [n for n in self.nodes if n != "head"] + ["head"]:
            proc = self.nodes[name]
            if proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:  # a node stopping cleanly takes a second or two; the rest is lost time
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        subprocess.run(["pkill", "-9", "-f", self.temp_dir], check=False)
        for log in self._logs:
            log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    """A three-node Ray cluster on 127.0.0.1: a head with no CPUs (it runs job drivers only)
    and worker nodes ``worker-a`` and ``worker-b`` with one CPU each."""
    cluster = LocalRayCluster(head_cpus=0)
    try:
        cluster.add_worker("worker-a")
        cluster.add_worker("worker-b")
        yield cluster
    finally:
        cluster.stop()
