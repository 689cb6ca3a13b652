"""Inputs where the run directory can be: data sources and model folders on fsspec
filesystems (memory://, a real S3 server: moto, and a GCS emulator), with the shipped
k8s/relabeler.toml."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from relabeler.cli import main
from relabeler.config import load_config
from relabeler.data import load_dataset, read_table
from relabeler.errors import ModelError
from relabeler.model import resolve_model
from relabeler.store import RunStore
from tests.conftest import free_port, synthetic_frame

REPO = Path(__file__).resolve().parents[1]


def _memory_root() -> str:
    return f"memory:///relabeler-remote-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_a_memory_source_reads_like_the_local_file(tmp_path, suffix):
    frame = synthetic_frame(30)
    local = tmp_path / f"rows.{suffix}"
    if suffix == "parquet":
        frame.to_parquet(local, index=False)
    elif suffix == "jsonl":
        frame.to_json(local, orient="records", lines=True)
    else:
        frame.to_csv(local, index=False, sep="\t" if suffix == "tsv" else ",")
    remote = f"{_memory_root()}/rows.{suffix}"
    fsspec.filesystem("memory").pipe(remote, local.read_bytes())
    pd.testing.assert_frame_equal(read_table(remote), read_table(local))


def test_data_from_a_memory_source_into_a_memory_run(capsys):
    root = _memory_root()
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{root}/data/train.csv", synthetic_frame(40).to_csv(index=False).encode())
    fs.pipe(f"{root}/data/eval.csv", synthetic_frame(10, seed=1).assign(
        id=lambda f: "e" + f["id"]).to_csv(index=False).encode())
    assert main(["data", "--run", f"{root}/run", "--data", f"{root}/data/train.csv",
                 "--eval-data", f"{root}/data/eval.csv", "-q"]) == 0
    assert "40 train, 10 eval, 0 pool, 0 rejected" in capsys.readouterr().out
    store = RunStore(f"{root}/run")
    info = store.stage_info("data")["info"]
    assert info["fingerprint"]["contents"]["source"].startswith("size:")
    assert store.read_table("dataset/eval.parquet").column("id").to_pylist()[0] == "es0000"


def test_a_model_folder_uri_is_copied_once_to_a_local_cache(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    root = _memory_root()
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{root}/models/tiny/config.json", b'{"model_type": "bert"}')
    fs.pipe(f"{root}/models/tiny/sub/vocab.txt", b"[PAD]\n")
    local = Path(resolve_model(f"{root}/models/tiny"))
    assert local.is_dir() and str(local).startswith(str(tmp_path / "tmp"))
    assert (local / "config.json").read_bytes() == b'{"model_type": "bert"}'
    assert (local / "sub" / "vocab.txt").read_bytes() == b"[PAD]\n"
    assert resolve_model(f"{root}/models/tiny") == str(local)  # the cached copy, reused
    with pytest.raises(ModelError, match=f"{root}/models/none"):
        resolve_model(f"{root}/models/none")
    fs.pipe(f"{root}/models/noconf/weights.bin", b"0")
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model(f"{root}/models/noconf")


# ---------------------------------------------------------------------------------------------
# a real S3-compatible server (moto), as the cluster's config reads it


@pytest.fixture(scope="module")
def s3_endpoint():
    s3fs = pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(),
                                            verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    try:
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing",
                               client_kwargs={"region_name": "eu-west-1"})
        for bucket in ("relabeler-data", "relabeler-runs"):
            fs.mkdir(bucket)
        yield endpoint
    finally:
        server.stop()


def _point_fsspec_at(protocol: str, options: dict, monkeypatch):
    """fsspec's defaults for ``protocol`` point at the server (what FSSPEC_S3 and FSSPEC_GS do
    for a job's processes); a filesystem to look at the buckets."""
    monkeypatch.setitem(fsspec.config.conf, protocol, options)
    return fsspec.filesystem(protocol, skip_instance_cache=True, **options)


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    return _point_fsspec_at("s3", {"endpoint_url": s3_endpoint, "key": "testing",
                                   "secret": "testing",
                                   "client_kwargs": {"region_name": "eu-west-1"}}, monkeypatch)


@pytest.fixture(params=["s3", "gs"])
def bucket_fs(request, monkeypatch):
    """``(protocol, filesystem)`` of S3 (moto) and GCS (an emulator), each with the buckets
    relabeler-data and relabeler-runs, as fsspec's defaults."""
    if request.param == "s3":
        return "s3", request.getfixturevalue("s3")
    fs = _point_fsspec_at("gs", request.getfixturevalue("gcs_options"), monkeypatch)
    for bucket in ("relabeler-data", "relabeler-runs"):
        if not fs.exists(bucket):
            fs.mkdir(bucket)
    return "gs", fs


@pytest.mark.slow
def test_the_shipped_k8s_config_reads_its_s3_source_into_its_s3_run(s3, tmp_path, monkeypatch,
                                                                     capsys):
    config = load_config(REPO / "k8s" / "relabeler.toml")
    assert config.data.source.startswith("s3://") and config.run_dir.startswith("s3://")
    buffer = io.BytesIO()
    synthetic_frame(50).to_parquet(buffer, index=False)
    s3.pipe(config.data.source, buffer.getvalue())
    run = f"{config.run_dir}-{uuid.uuid4().hex[:6]}"
    monkeypatch.chdir(tmp_path)
    assert main(["data", "--config", str(REPO / "k8s" / "relabeler.toml"), "--run", run,
                 "-q"]) == 0
    assert "40 train, 10 eval" in capsys.readouterr().out
    store = RunStore(run)
    assert store.stage_info("data")["info"]["fingerprint"]["contents"]["source"].startswith(
        "size:")
    assert store.read_table("dataset/train.parquet").num_rows == 40
    assert not [p for p in s3.find(run) if ".tmp-" in p]


@pytest.mark.slow
def test_a_bucket_csv_into_a_bucket_run_and_a_failed_force_keeps_it(bucket_fs, capsys):
    scheme, fs = bucket_fs
    base = f"relabeler-data/csv-{uuid.uuid4().hex[:6]}"
    fs.pipe(f"{base}/good.csv", synthetic_frame(40).to_csv(index=False).encode())
    fs.pipe(f"{base}/bad.csv", b"id,text,label\n1,a,x\n2,,y\n")
    run = f"{scheme}://relabeler-runs/csv-{uuid.uuid4().hex[:6]}"
    assert main(["data", "--run", run, "--data", f"{scheme}://{base}/good.csv", "-q"]) == 0
    before = {p: fs.cat(p) for p in fs.find(run)}
    capsys.readouterr()
    assert main(["data", "--run", run, "--data", f"{scheme}://{base}/bad.csv", "--force",
                 "-q"]) == 2
    assert (f"file {scheme}://{base}/bad.csv, line 3 (data row 1), column 'text'"
            in capsys.readouterr().err)
    fs.invalidate_cache()
    assert {p: fs.cat(p) for p in fs.find(run)} == before
    # new content behind the same URI: the finished stage says so
    fs.pipe(f"{base}/good.csv", synthetic_frame(60).to_csv(index=False).encode())
    assert main(["data", "--run", run, "--data", f"{scheme}://{base}/good.csv", "-q"]) == 2
    assert (f"the content of data.source {scheme}://{base}/good.csv changed"
            in capsys.readouterr().err)
    assert main(["data", "--run", run, "--data", f"{scheme}://{base}/good.csv", "--force",
                 "-q"]) == 0
    assert "48 train, 12 eval" in capsys.readouterr().out
    fs.invalidate_cache()
    assert not [p for p in fs.find(run) if ".tmp-" in p]


@pytest.mark.slow
def test_a_gcs_bucket_refusing_an_anonymous_caller_is_one_line_naming_the_uri(
        gcs_options, monkeypatch, tmp_path, capsys):
    """gcsfs goes on as anonymous where it finds no credentials; GCS answers 401, which gcsfs
    raises as its own HttpError: `relabeler data` ended in its traceback."""
    from tests.gcs_emulator import ANONYMOUS_REFUSED, refuse_anonymous

    _point_fsspec_at("gs", gcs_options, monkeypatch)
    refuse_anonymous(monkeypatch)
    good = tmp_path / "good.csv"
    synthetic_frame(20).to_csv(good, index=False)
    run = f"gs://relabeler-runs/anonymous-{uuid.uuid4().hex[:6]}"
    assert main(["data", "--run", run, "--data", str(good), "-q"]) == 2
    err = capsys.readouterr().err
    assert err == (f"relabeler: error: run directory {run}: cannot look for it: HttpError: "
                   f"{ANONYMOUS_REFUSED}, 401 (set the storage credentials: AWS_ACCESS_KEY_ID/"
                   f"AWS_SECRET_ACCESS_KEY, GOOGLE_APPLICATION_CREDENTIALS, or a workload "
                   f"identity)\n")
    assert main(["data", "--run", str(tmp_path / "run"), "--data",
                 "gs://relabeler-data/rows.csv", "-q"]) == 2
    err = capsys.readouterr().err
    assert "gs://relabeler-data/rows.csv" in err and "401 (set the storage credentials" in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_missing_s3_credentials_name_the_uri(s3_endpoint, monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setitem(fsspec.config.conf, "s3", {
        "endpoint_url": s3_endpoint, "client_kwargs": {"region_name": "eu-west-1"},
        "skip_instance_cache": True})
    good = tmp_path / "good.csv"
    synthetic_frame(20).to_csv(good, index=False)
    run = "s3://relabeler-runs/no-credentials"
    assert main(["data", "--run", run, "--data", str(good), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"relabeler: error: run directory {run}: cannot ")
    assert "NoCredentialsError" in err and "AWS_ACCESS_KEY_ID" in err and err.count("\n") == 1
    assert main(["data", "--run", str(tmp_path / "run"), "--data",
                 "s3://relabeler-data/x.csv", "-q"]) == 2
    err = capsys.readouterr().err
    assert "s3://relabeler-data/x.csv" in err and "NoCredentialsError" in err


def test_data_info_lists_the_fingerprint_of_a_local_source(tmp_path):
    import hashlib

    source = tmp_path / "rows.csv"
    synthetic_frame(20).to_csv(source, index=False)
    assert main(["data", "--run", str(tmp_path / "run"), "--data", str(source), "-q"]) == 0
    info = json.loads((tmp_path / "run" / "_stages" / "data.json").read_text())["info"]
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert info["fingerprint"]["contents"] == {"source": f"sha256:{digest}"}
    assert info["fingerprint"]["settings"]["seed"] == 0
    assert load_dataset(str(source)).classes == info["classes"]
