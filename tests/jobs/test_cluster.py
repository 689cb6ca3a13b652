"""Stages as Ray jobs on a real multi-node Ray cluster on 127.0.0.1 (``ray_cluster``: a head
with no CPUs and two one-CPU worker nodes), a worker node killed mid-extract, and the sharded
kNN actors (on the session's local Ray)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from relabeler.config import RunConfig
from relabeler.jobs._ray import plan_pool
from relabeler.jobs.extract import FeatureExtractor
from relabeler.jobs.knn_shards import knn_on_ray
from relabeler.jobs.train import run_train
from relabeler.selectors.knn import knn
from relabeler.store import RunStore
from tests.conftest import head_config, synthetic_frame

pytestmark = pytest.mark.slow

RELABELER = str(Path(sys.executable).with_name("relabeler"))
RAY = str(Path(sys.executable).with_name("ray"))


def _trained_run(tmp_path: Path, tiny_bert_dir: str, n_rows: int) -> RunConfig:
    """A run directory with a dataset and a head-mode model of the tiny BERT."""
    csv = tmp_path / "reviews.csv"
    synthetic_frame(n_rows).to_csv(csv, index=False)
    config = head_config(tmp_path / "run", csv, tiny_bert_dir, max_length=64, epochs=2)
    run_train(RunStore(config.run_dir), config, progress=False)
    return config


def _reference(store: RunStore, split: str) -> dict[str, np.ndarray]:
    """Features of ``split`` from the extractor called in this process: no Ray, no shards."""
    from relabeler.model import class_names, load_classifier

    dataset = store.read_table(f"dataset/{split}.parquet").to_pandas()
    classes = class_names(load_classifier(store.path("model")))
    extractor = FeatureExtractor(store.path("model"), max_length=64, num_threads=1)
    out = extractor({"text": dataset["text"].to_numpy(dtype=object),
                     "label_index": np.array([classes.index(x) for x in dataset["label"]])})
    return {"id": dataset["id"].to_numpy(dtype=object), **out}


def _submit(cluster, working_dir: Path, *args: str, timeout: float = 600,
            wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [RAY, "job", "submit", "--address", cluster.dashboard,
           "--working-dir", str(working_dir), "--", RELABELER, *args]
    if wait:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _assert_features_equal(store: RunStore, split: str, reference: dict) -> None:
    features = store.read_table(f"features/{split}").to_pandas()
    ids = features["id"].tolist()
    assert len(ids) == len(set(ids)), "duplicated rows"
    assert ids == reference["id"].tolist()  # none lost, split order
    np.testing.assert_allclose(np.stack(features["embedding"].to_numpy()),
                               reference["embedding"], atol=1e-4)
    np.testing.assert_allclose(np.stack(features["probs"].to_numpy()), reference["probs"],
                               atol=1e-4)


def _extractor_nodes(cluster, job_id: str | None = None) -> dict[str, int]:
    """Worker node name -> restarts of each extract actor (of ``job_id``, else of any job),
    as the node it runs, or last ran, on."""
    from ray.util.state import list_actors

    actors = list_actors(address=cluster.dashboard, detail=True, limit=1000,
                         raise_on_missing_output=False)
    restarts = {a.node_id: int(a.num_restarts) for a in actors
                if "FeatureExtractor" in a.class_name
                and (job_id is None or _job_of(cluster, job_id) == a.job_id)}
    return {name: restarts[node["node_id"]] for node in cluster.all_nodes()
            if node["node_id"] in restarts
            for name in cluster.nodes if name in node["resources_total"]}


def _job_of(cluster, submission_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(cluster.dashboard).get_job_info(submission_id).job_id


def test_extract_submitted_to_a_multi_node_cluster(ray_cluster, tiny_bert_dir, tmp_path):
    config = _trained_run(tmp_path, tiny_bert_dir, 160)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    # the config travels with the job (--working-dir); the job runs where the head puts it
    (job_dir / "relabeler.toml").write_text(
        f'run_dir = "{config.run_dir}"\n[model]\nmax_length = 64\ncache_dir = "off"\n'
        '[extract]\nsplits = ["train", "eval"]\nnum_actors = 2\nbatch_size = 8\n'
        'shard_size = 32\n')
    result = _submit(ray_cluster, job_dir, "extract", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout + result.stderr
    store = RunStore(config.run_dir)
    for split in ("train", "eval"):
        _assert_features_equal(store, split, _reference(store, split))
    assert not store.stage_done("extract.pool")
    # the head has no CPUs: the actors ran on the worker nodes (on both, unless the work was
    # done before the second actor started)
    nodes = set(_extractor_nodes(ray_cluster))
    assert nodes and nodes <= {"worker-a", "worker-b"}


def test_extract_job_with_the_run_directory_on_s3(ray_cluster, s3_options, tiny_bert_dir,
                                                  tmp_path):
    """No shared disk: the driver and the actors read the dataset and the model from S3, and
    the parts go back there."""
    import json

    import fsspec

    config = _trained_run(tmp_path, tiny_bert_dir, 160)
    uri = f"s3://relabeler-test/run-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("s3", **s3_options)
    fs.put(config.run_dir + "/", uri + "/", recursive=True)
    shutil.rmtree(config.run_dir)  # nothing left on a local disk
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "relabeler.toml").write_text(
        f'run_dir = "{uri}"\n[model]\nmax_length = 64\ncache_dir = "off"\n'
        '[extract]\nsplits = ["train"]\nnum_actors = 2\nbatch_size = 8\nshard_size = 32\n')
    # how every process of the job finds the S3 server: fsspec reads FSSPEC_S3 (JSON)
    runtime_env = {"env_vars": {"FSSPEC_S3": json.dumps(s3_options)}}
    result = subprocess.run(
        [RAY, "job", "submit", "--address", ray_cluster.dashboard, "--working-dir",
         str(job_dir), "--runtime-env-json", json.dumps(runtime_env), "--",
         RELABELER, "extract", "-q"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    store = RunStore(uri, storage_options=s3_options)
    assert store.stage_done("extract.train")
    assert store.finished_shards("features/train") == {0, 1, 2, 3}
    local = tmp_path / "check"
    fs.get(uri + "/", str(local) + "/", recursive=True)
    _assert_features_equal(store, "train", _reference(RunStore(local), "train"))


# ---------------------------------------------------------------------------------------------
# a worker node killed mid-extract

KILL_ROWS = 3000  # 2,400 in train: 24 parts of 100 rows, batches of 2 (about 30 s on one CPU)
# cache_dir off: the driver would read train's cached states and no actor would run
KILL_TOML = ('[model]\nmax_length = 64\ncache_dir = "off"\n[extract]\nsplits = ["train"]\n'
             'num_actors = 1\nbatch_size = 2\nshard_size = 100\n')


@pytest.fixture(scope="module")
def trained_3k(tmp_path_factory, tiny_bert_dir) -> dict:
    """A trained run of KILL_ROWS texts and the reference features of its train split."""
    config = _trained_run(tmp_path_factory.mktemp("run3k"), tiny_bert_dir, KILL_ROWS)
    store = RunStore(config.run_dir)
    return {"run_dir": config.run_dir, "reference": _reference(store, "train")}


def _fresh_copy(trained: dict, tmp_path: Path, extra_toml: str = "") -> tuple[RunStore, Path]:
    """A copy of the trained run and a job folder whose relabeler.toml points at it."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained["run_dir"], run_dir)
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "relabeler.toml").write_text(f'run_dir = "{run_dir}"\n{KILL_TOML}{extra_toml}')
    return RunStore(run_dir), job_dir


def _kill_the_extractor_node_midway(cluster, store: RunStore, job_id: str,
                                    total_parts: int) -> str:
    """Wait until a few parts are written, then SIGKILL the worker node that runs the
    extract actor. Returns that node's name."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard)
    deadline = time.monotonic() + 240
    while len(store.finished_shards("features/train")) < 3:
        status = client.get_job_status(job_id)
        assert not status.is_terminal(), client.get_job_logs(job_id)[-3000:]
        assert time.monotonic() < deadline, "extract wrote no parts in 240 s"
        time.sleep(0.2)
    victim = cluster.node_of_actor("FeatureExtractor")
    assert victim in ("worker-a", "worker-b")
    done_at_kill = len(store.finished_shards("features/train"))
    cluster.kill_node(victim)
    assert done_at_kill < total_parts, "the job finished before the kill; make it longer"
    return victim


def _wait_for_job(cluster, job_id: str, timeout: float = 300):
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard)
    deadline = time.monotonic() + timeout
    while not (status := client.get_job_status(job_id)).is_terminal():
        assert time.monotonic() < deadline, f"job still {status} after {timeout} s"
        time.sleep(1)
    return status, client.get_job_logs(job_id)


def _submit_no_wait(cluster, job_dir: Path, *args: str) -> str:
    job_id = f"rlb-{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [RAY, "job", "submit", "--address", cluster.dashboard, "--submission-id", job_id,
         "--no-wait", "--working-dir", str(job_dir), "--", RELABELER, *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return job_id


def test_a_worker_node_killed_mid_extract_costs_a_retry_not_the_run(ray_cluster, trained_3k,
                                                                     tmp_path):
    from ray.job_submission import JobStatus

    store, job_dir = _fresh_copy(trained_3k, tmp_path)
    job_id = _submit_no_wait(ray_cluster, job_dir, "extract", "-q")
    victim = _kill_the_extractor_node_midway(ray_cluster, store, job_id, total_parts=24)
    try:
        status, logs = _wait_for_job(ray_cluster, job_id)
        assert status == JobStatus.SUCCEEDED, logs[-4000:]
        # one job wrote every row: Ray restarted the actor on the other node and retried
        assert store.stage_info("extract.train")["info"]["rows_this_run"] == 2400
        _assert_features_equal(store, "train", trained_3k["reference"])  # none lost or doubled
        # the job's one extract actor was restarted once, on the node that survived
        survivor = ({"worker-a", "worker-b"} - {victim}).pop()
        assert _extractor_nodes(ray_cluster, job_id) == {survivor: 1}
    finally:
        ray_cluster.add_worker(victim)


def test_a_job_that_cannot_finish_fails_clearly_and_a_rerun_resumes(ray_cluster, trained_3k,
                                                                    tmp_path):
    from ray.job_submission import JobStatus

    store, job_dir = _fresh_copy(trained_3k, tmp_path)
    job_id = _submit_no_wait(ray_cluster, job_dir, "extract", "-q",
                             "--set", "ray.max_restarts=0")
    victim = _kill_the_extractor_node_midway(ray_cluster, store, job_id, total_parts=24)
    try:
        status, logs = _wait_for_job(ray_cluster, job_id)
    finally:
        ray_cluster.add_worker(victim)
    assert status == JobStatus.FAILED
    assert "extract could not finish: Ray workers were lost" in logs
    assert "max_restarts=0" in logs and "run the same command again" in logs
    kept = store.finished_shards("features/train")
    assert 3 <= len(kept) < 24 and not store.stage_done("extract.train")

    result = _submit(ray_cluster, job_dir, "extract", "-q")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows_now = store.stage_info("extract.train")["info"]["rows_this_run"]
    assert rows_now == 2400 - 100 * len(kept)  # only the parts that were missing
    _assert_features_equal(store, "train", trained_3k["reference"])


# ---------------------------------------------------------------------------------------------
# kNN with the database sharded over actors (the session's local Ray)


def _random_features(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_sharded_self_join_equals_one_process_knn(ray_session, metric):
    database = _random_features(1500, 16, seed=1)
    plan = plan_pool(num_actors=2, num_threads=1)
    found = knn_on_ray(database, k=7, metric=metric, plan=plan, query_block=400)
    expected = knn(database, k=7, metric=metric)
    np.testing.assert_array_equal(found.indices, expected.indices)
    np.testing.assert_allclose(found.scores, expected.scores, rtol=1e-5, atol=1e-5)
    assert not (found.indices == np.arange(len(database))[:, None]).any()  # own row excluded


def test_the_local_ray_relabeler_starts_listens_on_loopback_only(ray_session):
    nodes = ray_session.nodes()
    assert {node["NodeManagerAddress"] for node in nodes} == {"127.0.0.1"}
    # on a machine with a network address (this one may have none), in a fresh process
    script = ("from ray._private import services\n"
              "services.node_ip_address_from_perspective = lambda address=None: '192.0.2.2'\n"
              "before = services.get_node_ip_address()\n"
              "from relabeler.jobs._ray import loopback_only\n"
              "loopback_only()\n"
              "print(before, services.get_node_ip_address())\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env={k: v for k, v in os.environ.items()
                                          if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"})
    assert out.stdout.split() == ["192.0.2.2", "127.0.0.1"]


def test_sharded_search_with_queries_and_more_shards_than_rows(ray_session):
    database = _random_features(3, 8, seed=2)
    queries = _random_features(50, 8, seed=3)
    plan = plan_pool(num_actors=2, num_threads=1)
    found = knn_on_ray(database, queries, k=5, plan=plan, query_block=16)
    expected = knn(database, queries, k=5)
    np.testing.assert_array_equal(found.indices, expected.indices)  # padded with -1 past 3
    np.testing.assert_allclose(found.scores, expected.scores, rtol=1e-5, atol=1e-5)


def test_sharded_search_names_the_bad_argument(ray_session):
    with pytest.raises(ValueError, match="queries has shape"):
        knn_on_ray(_random_features(10, 4, 0), _random_features(5, 3, 0), k=2)
    with pytest.raises(TypeError, match="database must hold floats"):
        knn_on_ray(np.ones((4, 2), dtype=np.int64), k=2)


# ---------------------------------------------------------------------------------------------
# tokenization as a CPU stage in front of the model actors (the default on GPU clusters)


def test_extract_with_tokenization_on_cpu_tasks_equals_in_actor(ray_session, tiny_bert_dir,
                                                                tmp_path):
    from relabeler.jobs._ray import PoolPlan
    from relabeler.jobs.extract import extract_splits

    config = _trained_run(tmp_path, tiny_bert_dir, 160)
    store = RunStore(config.run_dir)
    plan = PoolPlan(num_actors=1, num_cpus=1.0, num_gpus=0.0, torch_threads=1)
    written = extract_splits(store, ["train"], max_length=64, batch_size=8, shard_size=32,
                             plan=plan, cpu_tokenize=True, progress=False)
    assert written == {"train": 128}
    _assert_features_equal(store, "train", _reference(store, "train"))
    features = store.read_table("features/train").to_pandas()
    assert "input_ids" not in features.columns and features["n_tokens"].min() > 0


@pytest.mark.parametrize("ray_settings, nodes, message", [
    ({"gpus_per_actor": 2.0}, [{"CPU": 8, "GPU": 1, "memory": 2**34}] * 2,
     r"ray.gpus_per_actor = 2: no node of the cluster has that many GPUs \(the most on one "
     r"node: 1, 2 in all\)"),
    ({"cpus_per_actor": 16.0}, [{"CPU": 8, "GPU": 0, "memory": 2**34}],
     r"ray.cpus_per_actor = 16: no node .* \(the most on one node: 8\)"),
    ({"memory_per_actor_gib": 32.0}, [{"CPU": 8, "GPU": 0, "memory": 2**34}],
     r"ray.memory_per_actor_gib = 32: no node .* 16.0 GiB\)"),
])
def test_an_actor_no_node_can_hold_is_a_config_error(monkeypatch, ray_settings, nodes, message):
    from relabeler.config import RayConfig
    from relabeler.errors import ConfigError
    from relabeler.jobs import _ray

    totals = (sum(n["CPU"] for n in nodes), sum(n["GPU"] for n in nodes))
    monkeypatch.setattr(_ray, "cluster_resources", lambda: totals)
    monkeypatch.setattr(_ray, "node_resources", lambda: nodes)
    monkeypatch.setattr(_ray, "free_resources", lambda: totals)
    with pytest.raises(ConfigError, match=message):
        _ray.plan_from_config(RayConfig(**ray_settings))
    fitting = _ray.plan_from_config(RayConfig())  # the defaults fit
    assert fitting.num_gpus == (1.0 if totals[1] else 0.0)


def test_a_cluster_without_free_cpus_now_says_the_actors_wait(monkeypatch, caplog):
    # every CPU held by another job: train and extract printed their plan, then nothing
    from relabeler.jobs import _ray

    nodes = [{"CPU": 2.0, "GPU": 0.0, "memory": 2**34}]
    free = [(0.0, 0.0)]
    monkeypatch.setattr(_ray, "cluster_resources", lambda: (2.0, 0.0))
    monkeypatch.setattr(_ray, "node_resources", lambda: nodes)
    monkeypatch.setattr(_ray, "free_resources", lambda: free[0])
    monkeypatch.setattr(_ray, "BUSY_GRACE_S", 0.3)
    with caplog.at_level("WARNING", logger="relabeler.jobs._ray"):
        plan = _ray.plan_pool(num_actors=1)
    assert plan.num_cpus == 2.0
    assert ("the Ray cluster has 0 of its 2 CPUs free now (other work holds the rest): the 1 "
            "actor(s) of 2 CPU each wait until Ray can place them") in caplog.text
    caplog.clear()
    free[0] = (2.0, 0.0)
    with caplog.at_level("WARNING", logger="relabeler.jobs._ray"):
        _ray.plan_pool(num_actors=2)
    assert caplog.text == ""


def test_more_shards_than_the_cluster_can_run_at_once_is_a_config_error(ray_session):
    # every query block waits on every shard actor: a shard Ray cannot place held the search
    # back forever. The session's Ray has 2 CPUs, so 3 one-CPU shard actors cannot all run
    from relabeler.errors import ConfigError

    plan = plan_pool(num_actors=3, num_threads=1)
    assert plan.num_cpus == 1.0
    with pytest.raises(ConfigError, match=r"score.knn_shards = 3: the cluster can run 2 such "
                                          r"actors at once \(0 GPU, 1 CPU each, on 1 node"):
        knn_on_ray(_random_features(30, 4, 0), k=2, plan=plan)


def test_a_ray_worker_without_a_gpu_sees_none(ray_session):
    # Ray leaves CUDA_VISIBLE_DEVICES alone for a task that asked for no GPU, so on a GPU node
    # its "auto" device took a GPU the scheduler had given to other actors. Now it is set to
    # none (here on a machine without GPUs: unset before)
    @ray_session.remote(num_gpus=0)
    def visible():
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    assert ray_session.get(visible.remote()) == ""
