"""Tests for relabeler.store: the run directory on a local disk, memory:// and a real S3 server."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
import threading
import uuid
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from relabeler import __version__
from relabeler.store import RunStore, StoreError


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    """An empty run directory, once on a local disk and once on fsspec's memory://."""
    if request.param == "local":
        yield RunStore(tmp_path / "run")
        return
    root = f"/relabeler-test-{uuid.uuid4().hex}"
    yield RunStore(f"memory://{root}")
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _table(ids: list[str], start: int = 0) -> pa.Table:
    return pa.table({
        "id": ids,
        "label": list(range(start, start + len(ids))),
        "embedding": [[float(i), float(i) / 2] for i in range(start, start + len(ids))],
    })


def _raw_names(store: RunStore, folder: str) -> list[str]:
    """Every name in a folder as the filesystem sees it, temp files included."""
    full = store.path(folder) if folder else store.uri
    store.fs.invalidate_cache(full)
    return sorted(p.rsplit("/", 1)[-1] for p in store.fs.ls(full, detail=False))


def _make_model_dir(path: Path, weights: bytes) -> Path:
    (path / "sub").mkdir(parents=True)
    (path / "model.safetensors").write_bytes(weights)
    (path / "labels.json").write_text('["neg", "pos"]')
    (path / "sub" / "tokenizer.json").write_text("{}")
    return path


def _dir_contents(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*") if p.is_file()}


# paths and URIs


def test_local_store_creates_root_and_gives_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = RunStore("runs/one")
    assert (tmp_path / "runs" / "one").is_dir()
    assert store.uri == str(tmp_path / "runs" / "one")
    assert store.path("dataset/train.parquet") == str(tmp_path / "runs/one/dataset/train.parquet")
    assert store.local_path("model") == tmp_path / "runs" / "one" / "model"


def test_file_uri_is_a_local_store(tmp_path):
    store = RunStore(f"file://{tmp_path}/run/")
    assert store.is_local
    assert store.uri == str(tmp_path / "run")


def test_memory_store_has_uris_and_no_local_path():
    store = RunStore("memory://relabeler-uri-test/")
    assert store.uri == "memory:///relabeler-uri-test"
    assert store.path("scores/suspects.parquet") == (
        "memory:///relabeler-uri-test/scores/suspects.parquet")
    assert store.local_path("scores/suspects.parquet") is None


def test_store_survives_pickling_for_ray_workers(store):
    store.write_table("rows/train.parquet", _table(["a"]))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.uri == store.uri
    assert copy.read_table("rows/train.parquet").equals(_table(["a"]))


def test_artifact_paths_are_normalized(store):
    store.write_bytes("./a//b/c.txt", b"x")
    assert store.read_bytes("a/b/c.txt") == b"x"
    assert store.list("a") == ["a/b/c.txt"]


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../outside.parquet", "dataset/../../x", "s3://other/x", "a\\b", ""])
def test_bad_artifact_paths_raise_naming_the_argument(store, bad):
    with pytest.raises(ValueError, match="artifact"):
        store.path(bad)
    with pytest.raises(ValueError, match="artifact"):
        store.write_bytes(bad, b"x")
    with pytest.raises(ValueError, match="folder"):
        store.finished_shards(bad)
    with pytest.raises(ValueError, match="prefix"):
        store.list(bad or "/")  # "" is the whole run for list()


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "../x"])
def test_bad_stage_names_raise(store, bad):
    with pytest.raises(ValueError, match="stage"):
        store.mark_done(bad)


# tables, json, bytes


def test_table_round_trip(store):
    table = _table(["a", "b", "c"])
    store.write_table("rows/train.parquet", table)
    assert store.exists("rows/train.parquet")
    assert store.read_table("rows/train.parquet").equals(table)
    assert store.read_table("rows/train.parquet", columns=["id"]).to_pydict() == {
        "id": ["a", "b", "c"]}
    assert _raw_names(store, "rows") == ["train.parquet"]


def test_write_table_rejects_non_tables(store):
    with pytest.raises(TypeError, match="table"):
        store.write_table("x.parquet", {"id": ["a"]})


def test_json_and_bytes_round_trip(store):
    store.write_json("model/labels.json", ["neg", "pos", "é"])
    assert store.read_json("model/labels.json") == ["neg", "pos", "é"]
    assert store.read_bytes("model/labels.json").decode().startswith('[\n  "neg"')
    store.write_bytes("report/plot.png", b"\x89PNG\x00")
    assert store.read_bytes("report/plot.png") == b"\x89PNG\x00"


def test_a_run_directory_with_a_nul_character_is_a_one_line_error(tmp_path, monkeypatch,
                                                                    capsys):
    """A TOML string can hold one (``\\u0000``); os raised a ValueError and a traceback."""
    from relabeler.cli import main

    path = str(tmp_path / "a\0b")
    with pytest.raises(StoreError) as err:
        RunStore(path)
    assert str(err.value) == f"run directory {path!r}: a path cannot hold a NUL character"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "relabeler.toml").write_text('run_dir = "runs/a\\u0000b"\n')
    assert main(["score", "-q"]) == 2
    assert capsys.readouterr().err == ("relabeler: error: run directory 'runs/a\\x00b': a path "
                                       "cannot hold a NUL character\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "relabeler.toml"]


def test_missing_artifacts_raise_store_error_naming_artifact_and_run(store):
    for read in (store.read_table, store.read_json, store.read_bytes, store.get_dir):
        with pytest.raises(StoreError) as err:
            read("scores/suspects.parquet")
        assert "scores/suspects.parquet" in str(err.value)
        assert store.uri in str(err.value)


def test_unreadable_parquet_raises_store_error(store):
    store.write_bytes("rows/train.parquet", b"not parquet")
    with pytest.raises(StoreError, match="rows/train.parquet"):
        store.read_table("rows/train.parquet")


# atomicity


def _write_half_then_fail(table, where, **kwargs):
    where.write(b"PAR1 half of a parquet file")
    raise OSError("disk full (simulated)")


def test_failed_table_write_leaves_no_file_and_no_temp(store, monkeypatch):
    store.write_bytes("rows/keep.txt", b"k")
    monkeypatch.setattr(pq, "write_table", _write_half_then_fail)
    with pytest.raises(StoreError, match="simulated"):
        store.write_table("rows/train.parquet", _table(["a"]))
    assert not store.exists("rows/train.parquet")
    assert _raw_names(store, "rows") == ["keep.txt"]


def test_failed_table_write_keeps_the_previous_version(store, monkeypatch):
    old = _table(["old"])
    store.write_table("rows/train.parquet", old)
    monkeypatch.setattr(pq, "write_table", _write_half_then_fail)
    with pytest.raises(StoreError, match="simulated"):
        store.write_table("rows/train.parquet", _table(["new"]))
    monkeypatch.undo()
    assert store.read_table("rows/train.parquet").equals(old)
    assert _raw_names(store, "rows") == ["train.parquet"]


# shards and stages


def test_finished_shards_resume_and_ignore_temp_files(store):
    assert store.finished_shards("shards/train") == set()
    store.write_shard("shards/train", 0, _table(["a"]))
    store.write_shard("shards/train", 2, _table(["c"]))
    # a killed writer leaves its temp file behind; it is not a finished shard
    store.write_bytes("shards/train/.tmp-dead-part-00001.parquet", b"PAR1 half")
    assert store.shard_name("shards/train", 1) == "shards/train/part-00001.parquet"
    assert store.finished_shards("shards/train") == {0, 2}
    assert store.list("shards") == [
        "shards/train/part-00000.parquet", "shards/train/part-00002.parquet"]


def test_read_table_of_folder_concatenates_in_part_order(store):
    # written out of order; part 10 sorts after part 2 by index
    store.write_shard("shards/eval", 10, _table(["k"], start=10))
    store.write_shard("shards/eval", 0, _table(["a", "b"], start=0))
    store.write_shard("shards/eval", 2, _table(["c"], start=2))
    store.write_bytes("shards/eval/.tmp-x-part-00001.parquet", b"PAR1 half")
    table = store.read_table("shards/eval")
    assert table.column("id").to_pylist() == ["a", "b", "c", "k"]
    assert table.column("label").to_pylist() == [0, 1, 2, 10]
    assert store.read_table("shards/eval", columns=["label"]).column_names == ["label"]


def test_read_table_of_folder_without_parts_raises(store):
    store.write_bytes("shards/train/notes.txt", b"x")
    with pytest.raises(StoreError, match="shards/train"):
        store.read_table("shards/train")


def test_stage_markers(store):
    assert not store.stage_done("extract")
    assert store.stage_info("extract") is None
    store.mark_done("extract", {"rows": 3})
    assert store.stage_done("extract")
    assert store.exists("_stages/extract.json")
    info = store.stage_info("extract")
    assert info["stage"] == "extract"
    assert info["info"] == {"rows": 3}
    assert info["relabeler_version"] == __version__
    finished_at = datetime.fromisoformat(info["finished_at"])
    assert finished_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - finished_at).total_seconds()) < 60
    store.mark_done("train")
    assert store.stage_info("train")["info"] == {}


def test_a_stage_made_from_an_upstream_stage_that_finished_again_is_stale(store, caplog):
    for stage in ("data", "train", "extract.train", "extract.eval", "score", "attribute"):
        store.mark_done(stage)
    assert store.stage_info("score")["upstream"].keys() == {"train", "extract.train",
                                                           "extract.eval"}
    assert all(store.stage_done(s) for s in ("train", "extract.train", "score", "attribute"))
    store.mark_done("train")  # `relabeler train --force`
    assert store.stale("extract.train") == "train finished again since extract.train ran"
    assert store.stale("attribute").startswith("score is stale: train finished again")
    assert not store.stage_done("score") and not store.stage_done("extract.eval")
    assert store.redo("extract.train", force=False) and "redone from the start" in caplog.text
    store.mark_done("extract.train")
    store.mark_done("extract.eval")
    assert store.stale("extract.train") is None and store.stale("score") is not None
    store.mark_done("score")
    assert store.stale("score") is None
    store.remove("_stages/extract.eval.json")
    assert store.stale("score") == "extract.eval is no longer finished"
    # a marker written before the record is taken as it is
    store.write_json("_stages/score.json", {"stage": "score", "finished_at": "x", "info": {}})
    assert store.stage_done("score") and not store.redo("score", force=False)


def test_a_marker_records_the_versions_and_device_it_was_made_with(store, monkeypatch):
    # a marker held relabeler's version only: a run could not be redone with what made it
    import importlib.metadata
    import platform
    import sys

    import faiss
    import torch

    monkeypatch.delitem(sys.modules, "ray", raising=False)  # a process that never used ray
    store.mark_done("score", {"rows": 3})
    marker = store.stage_info("score")
    expected = {"python": platform.python_version(), "numpy": np.__version__,
                "torch": torch.__version__,
                "transformers": importlib.metadata.version("transformers"),
                "faiss": faiss.__version__,
                "device": "cpu" if not torch.cuda.is_initialized()
                else f"cuda ({torch.cuda.get_device_name()})"}
    assert marker["environment"] == expected
    assert marker["info"] == {"rows": 3}  # beside the stage's own record, not in it


def test_the_versions_recorded_never_make_a_stage_stale(store, monkeypatch):
    # the record is for whoever reproduces a run: a stage made with other versions (another
    # torch, another GPU) is as finished as one made here
    from relabeler import store as store_module

    for stage in ("data", "train", "extract.train"):
        store.mark_done(stage, {"rows": 1})
    monkeypatch.setattr(store_module, "environment",
                        lambda: {"python": "3.0.0", "torch": "0.1", "device": "cuda (other)"})
    store.mark_done("extract.eval", {"rows": 1})
    assert store.stage_info("extract.eval")["environment"]["torch"] == "0.1"
    for stage in ("data", "train", "extract.train", "extract.eval"):
        assert store.stage_done(stage) and store.stale(stage) is None
        assert not store.redo(stage, force=False)
    store.mark_done("score")
    assert store.stale("score") is None


def test_recording_the_versions_imports_nothing(tmp_path):
    # torch, transformers, faiss and ray cost seconds to import: their versions are read from
    # the installed packages' metadata, and faiss and ray are left out unless imported
    import subprocess
    import sys

    script = ("import sys\n"
              "from relabeler.store import RunStore\n"
              f"RunStore({str(tmp_path / 'run')!r}).mark_done('data')\n"
              "print(sorted(m for m in ('torch', 'transformers', 'faiss', 'ray') "
              "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split("\n")[0] == "[]"
    recorded = json.loads((tmp_path / "run" / "_stages" / "data.json").read_text())
    assert sorted(recorded["environment"]) == ["device", "numpy", "python", "torch",
                                               "transformers"]
    assert recorded["environment"]["device"] == "cpu"


def test_reset_stage_removes_marker_and_artifacts_only(store):
    store.write_shard("shards/train", 0, _table(["a"]))
    store.write_table("scores/rows.parquet", _table(["a"]))
    store.write_table("rows/train.parquet", _table(["a"]))
    store.mark_done("extract")
    store.mark_done("train")
    store.reset_stage("extract", ["shards", "scores/rows.parquet", "never/written"])
    assert not store.stage_done("extract")
    assert store.stage_done("train")
    assert store.list("") == ["_stages/train.json", "rows/train.parquet"]
    with pytest.raises(TypeError, match="artifacts"):
        store.reset_stage("extract", "features")


# listing, appending, removing


def test_list_is_sorted_relative_and_empty_when_missing(store):
    assert store.list("studio") == []
    store.write_bytes("studio/events/b.jsonl", b"")
    store.write_bytes("studio/events/a.jsonl", b"")
    store.write_bytes("studio/manifest.parquet", b"")
    assert store.list("studio/events") == ["studio/events/a.jsonl", "studio/events/b.jsonl"]
    assert store.list("studio") == [
        "studio/events/a.jsonl", "studio/events/b.jsonl", "studio/manifest.parquet"]


def test_append_line_appends(store):
    store.append_line("studio/events/2024-01-01.jsonl", json.dumps({"action": "created"}))
    store.append_line("studio/events/2024-01-01.jsonl", '{"action": "updated"}\n')
    lines = store.read_bytes("studio/events/2024-01-01.jsonl").decode().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["created", "updated"]
    assert store.read_bytes("studio/events/2024-01-01.jsonl").endswith(b'"updated"}\n')
    with pytest.raises(ValueError, match="line"):
        store.append_line("studio/events/2024-01-01.jsonl", "{}\n{}")


def test_append_line_on_an_object_store_keeps_every_line_where_ab_overwrites(monkeypatch):
    """gcsfs opens "ab" as "wb" (with only a warning): each webhook event replaced the day's
    file, so a run directory on gs:// kept the last event alone. The lines are read and the
    file written again whole; one cut short by an earlier write is not glued to the next."""
    store = RunStore(f"memory:///relabeler-test-{uuid.uuid4().hex}")
    assert not store.is_local
    opened = store.fs.open

    def like_gcsfs(path, mode="rb", **kwargs):
        return opened(path, mode.replace("a", "w"), **kwargs)

    monkeypatch.setattr(store.fs, "open", like_gcsfs)
    for n in range(3):
        store.append_line("studio/events/2026-12-07.jsonl", json.dumps({"n": n}))
    assert store.read_bytes("studio/events/2026-12-07.jsonl") == b'{"n": 0}\n{"n": 1}\n{"n": 2}\n'
    store.write_bytes("studio/events/cut.jsonl", b'{"n": 0}\n{"n": ')
    store.append_line("studio/events/cut.jsonl", '{"n": 2}')
    assert store.read_bytes("studio/events/cut.jsonl") == b'{"n": 0}\n{"n": \n{"n": 2}\n'
    assert store.list("studio/events") == ["studio/events/2026-12-07.jsonl",
                                           "studio/events/cut.jsonl"]


@pytest.mark.slow
def test_a_bucket_that_does_not_exist_is_named_before_any_work(object_store, monkeypatch):
    """A stage on a bucket that does not exist did its work, then failed to write it with
    "cannot replace 'dataset': no such file or folder"; the reading verbs said there was no run
    directory. The bucket is looked for once a process."""
    from relabeler import store_remote
    from relabeler.errors import NoRunError

    uri, options = object_store
    scheme = uri.split("://")[0]
    missing = f"{scheme}://relabeler-none-{uuid.uuid4().hex[:8]}"
    for create in (True, False):
        with pytest.raises(StoreError, match=re.escape(
                f"run directory {missing}/run: bucket '{missing.split('://')[1]}' does not "
                f"exist, or these credentials cannot see it")):
            RunStore(f"{missing}/run", storage_options=options, create=create)
    with pytest.raises(NoRunError, match=re.escape(f"no run directory at {uri}")):
        RunStore(uri, storage_options=options, create=False)
    looked, original = [], store_remote.check_bucket
    monkeypatch.setattr(store_remote, "check_bucket",
                        lambda fs, bucket, uri: looked.append(uri) or original(fs, bucket, uri))
    RunStore(uri, storage_options=options).write_bytes("x.txt", b"x")
    assert RunStore(uri, storage_options=options, create=False).read_bytes("x.txt") == b"x"
    assert looked == [uri]  # and it returned at once: the bucket was found before


@pytest.mark.slow
def test_an_empty_gcs_bucket_whose_record_the_caller_may_not_read_takes_a_first_run(
        gcs_options, monkeypatch):
    """An object role (roles/storage.objectAdmin) reads and writes objects but not the
    bucket's own record: GCS answers 403 to GET b/BUCKET, gcsfs then lists the bucket, finds a
    new bucket empty and said it did not exist; every stage of the first run was refused."""
    from gcp_storage_emulator import server as emulator

    def forbidden(request, response, storage, *args, **kwargs):
        response.status = HTTPStatus.FORBIDDEN
        response.json({"error": {"code": 403, "message": "runner does not have "
                                 "storage.buckets.get access to the bucket."}})

    bucket = f"relabeler-fresh-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("gs", **gcs_options).mkdir(bucket)
    monkeypatch.setattr(emulator, "HANDLERS", (
        (r"^/storage/v1/b/(?P<bucket_name>[-.\w]+)$", {"GET": forbidden}), *emulator.HANDLERS))
    store = RunStore(f"gs://{bucket}/run", storage_options=gcs_options)
    store.write_bytes("x.txt", b"x")
    assert RunStore(f"gs://{bucket}/run", storage_options=gcs_options,
                    create=False).read_bytes("x.txt") == b"x"
    with pytest.raises(StoreError, match="bucket 'relabeler-none' does not exist"):
        RunStore("gs://relabeler-none/run", storage_options=gcs_options)


@pytest.mark.slow
def test_an_s3_run_whose_policy_grants_its_prefix_only_is_found(monkeypatch):
    """A policy on bkt/runs/r1/* and a listing of the bucket: the runner reads and writes its
    run, but S3 refuses (403) a HEAD of the key runs/r1 itself, which a look-up by ``info``
    sends first: every reading verb said "cannot look for it: permission denied"."""
    import boto3
    from moto import settings
    from moto.core.responses import ActionAuthenticatorMixin
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        admin = {"endpoint_url": endpoint, "region_name": "us-east-1",
                 "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        boto3.client("s3", **admin).create_bucket(Bucket="bkt")
        boto3.client("s3", **admin).put_object(Bucket="bkt", Key="runs/r1/x.txt", Body=b"x")
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="runner")
        iam.put_user_policy(UserName="runner", PolicyName="run", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Resource": "arn:aws:s3:::bkt/runs/r1/*",
                 "Action": ["s3:GetObject", "s3:HeadObject", "s3:PutObject",
                            "s3:DeleteObject"]},
                {"Effect": "Allow", "Resource": "arn:aws:s3:::bkt",
                 "Action": ["s3:ListBucket", "s3:ListObjectsV2", "s3:HeadBucket"]}]}))
        key = iam.create_access_key(UserName="runner")["AccessKey"]
        # moto enforces IAM from here on
        monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT",
                            ActionAuthenticatorMixin.request_count)
        options = {"endpoint_url": endpoint, "key": key["AccessKeyId"],
                   "secret": key["SecretAccessKey"], "skip_instance_cache": True,
                   "client_kwargs": {"region_name": "us-east-1"}}
        with pytest.raises(PermissionError):  # the HEAD that info sends
            fsspec.filesystem("s3", **options).info("bkt/runs/r1")
        store = RunStore("s3://bkt/runs/r1", storage_options=options, create=False)
        assert store.read_bytes("x.txt") == b"x"
    finally:
        server.stop()


@pytest.mark.slow
def test_append_line_on_gcs_keeps_every_line_where_gcsfs_append_mode_keeps_the_last(
        gcs_options):
    store = RunStore(f"gs://relabeler-test/ab-{uuid.uuid4().hex[:8]}", storage_options=gcs_options)
    with pytest.warns(UserWarning, match="Append mode 'a' is not supported in GCS"):
        for n in range(3):
            with store.fs.open(store.path("ab.jsonl"), "ab") as f:
                f.write(b'{"n": %d}\n' % n)
    assert store.read_bytes("ab.jsonl") == b'{"n": 2}\n'
    for n in range(3):
        store.append_line("studio/events/2026-12-07T09.jsonl", json.dumps({"n": n}))
    assert store.read_bytes("studio/events/2026-12-07T09.jsonl") == (
        b'{"n": 0}\n{"n": 1}\n{"n": 2}\n')


def test_append_line_follows_no_symlink_and_writes_only_a_regular_file(tmp_path):
    """Whoever can write in the run folder could plant a link at tomorrow's events file: the
    line went to its target, and a private append made the target 0600."""
    import os
    import stat

    store = RunStore(tmp_path / "run")
    target = tmp_path / "elsewhere.txt"
    target.write_bytes(b"keep\n")
    target.chmod(0o644)
    store.fs.makedirs(store.path("studio/events"), exist_ok=True)
    os.symlink(target, store.path("studio/events/2026-01-01.jsonl"))
    with pytest.raises(StoreError) as err:
        store.append_line("studio/events/2026-01-01.jsonl", "{}", private=True)
    assert str(err.value) == (f"run directory {store.uri}: cannot append to "
                              "'studio/events/2026-01-01.jsonl': it is a symbolic link; remove "
                              "it (relabeler makes the file again)")
    assert target.read_bytes() == b"keep\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    os.symlink(tmp_path / "nowhere", store.path("studio/events/dangling.jsonl"))
    with pytest.raises(StoreError, match="it is a symbolic link"):
        store.append_line("studio/events/dangling.jsonl", "{}")
    assert not (tmp_path / "nowhere").exists()
    os.mkfifo(store.path("studio/events/fifo.jsonl"))
    with pytest.raises(StoreError) as err:
        store.append_line("studio/events/fifo.jsonl", "{}")
    assert str(err.value).endswith("'studio/events/fifo.jsonl': it is not a regular file; "
                                   "remove it (relabeler makes the file again)")


def test_remove_file_folder_and_missing(store):
    store.write_bytes("a/b/c.txt", b"x")
    store.write_bytes("a/d.txt", b"y")
    store.remove("a/d.txt")
    assert store.list("a") == ["a/b/c.txt"]
    store.remove("a")
    assert not store.exists("a/b/c.txt")
    assert store.list("a") == []
    store.remove("a")  # missing: no error


# directories


def test_put_dir_then_get_dir_round_trips(store, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    source = _make_model_dir(tmp_path / "saved", b"v1")
    store.put_dir(source, "model")
    assert store.list("model") == [
        "model/labels.json", "model/model.safetensors", "model/sub/tokenizer.json"]
    got = store.get_dir("model")
    assert _dir_contents(got) == _dir_contents(source)
    if store.is_local:
        assert got == store.local_path("model")  # no copy
    else:
        assert got.is_relative_to(tmp_path / "tmp" / "relabeler-cache")
    downloaded = store.get_dir("model", tmp_path / "download")
    assert _dir_contents(downloaded) == _dir_contents(source)


def test_put_dir_replaces_the_previous_folder(store, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    store.put_dir(_make_model_dir(tmp_path / "v1", b"v1"), "model")
    store.get_dir("model")  # fill the cache of a remote store
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "model.safetensors").write_bytes(b"v2")
    store.put_dir(v2, "model")
    assert store.list("model") == ["model/model.safetensors"]
    assert _dir_contents(store.get_dir("model")) == {"model.safetensors": b"v2"}
    assert [n for n in _raw_names(store, "") if n.startswith(".tmp-")] == []


def test_put_dir_failure_keeps_the_previous_folder(store, tmp_path, monkeypatch):
    store.put_dir(_make_model_dir(tmp_path / "v1", b"v1"), "model")
    before = store.list("model")

    def copy_then_fail(*args, **kwargs):
        raise OSError("upload interrupted (simulated)")

    if store.is_local:
        monkeypatch.setattr(shutil, "copytree", copy_then_fail)
    else:
        monkeypatch.setattr(store.fs, "put_file", copy_then_fail)
    with pytest.raises(StoreError, match="simulated"):
        store.put_dir(_make_model_dir(tmp_path / "v2", b"v2"), "model")
    monkeypatch.undo()
    assert store.list("model") == before
    assert store.read_bytes("model/model.safetensors") == b"v1"
    assert [n for n in _raw_names(store, "") if n.startswith(".tmp-")] == []


def test_put_dir_of_the_store_own_path_is_a_no_op(tmp_path):
    store = RunStore(tmp_path / "run")
    model_dir = store.local_path("model")
    _make_model_dir(model_dir, b"w")  # e.g. save_pretrained straight into the run directory
    store.put_dir(model_dir, "model")
    assert _dir_contents(store.get_dir("model"))["model.safetensors"] == b"w"


def test_get_dir_refuses_a_non_empty_local_dir():
    store = RunStore(f"memory:///relabeler-test-{uuid.uuid4().hex}")
    store.write_bytes("model/a.bin", b"a")
    with tempfile.TemporaryDirectory() as busy:
        (Path(busy) / "mine.txt").write_text("keep me")
        with pytest.raises(ValueError, match="local_dir"):
            store.get_dir("model", busy)
        assert (Path(busy) / "mine.txt").read_text() == "keep me"
    store.fs.rm(store.uri, recursive=True)


def test_put_dir_rejects_a_missing_source(store, tmp_path):
    with pytest.raises(ValueError, match="local_dir"):
        store.put_dir(tmp_path / "nope", "model")


def test_a_uri_with_a_slash_missing_is_refused_naming_the_uri_meant(tmp_path, monkeypatch):
    """fsspec takes ``gs:/bucket/run`` for a local path: the stage wrote a folder named "gs:"
    on the pod's own disk, said it had written gs:/bucket/run, and the pod took it away."""
    monkeypatch.chdir(tmp_path)
    for uri, meant in (("gs:/relabeler-runs/t1", "gs://relabeler-runs/t1"),
                       ("gcs:/b/run", "gcs://b/run"), ("s3:/b/run/", "s3://b/run/")):
        with pytest.raises(StoreError, match=re.escape(
                f"run directory {uri!r} looks like a {uri.split(':')[0]}:// URI with a '/' "
                f"missing; write {meant}")):
            RunStore(uri)
    assert os.listdir(tmp_path) == []
    assert RunStore("gs-run/x").is_local and RunStore("C:/x").is_local  # no protocol's
    assert RunStore(f"file:{tmp_path}/run").uri == f"{tmp_path}/run"  # a file URI (RFC 8089)


def test_a_remote_store_that_cannot_be_reached_is_not_called_a_missing_run(monkeypatch):
    """gcsfs's ``isdir`` answers False to a request that failed (the endpoint refused, a
    NetworkPolicy dropped it): every reading verb said "no run directory at gs://...", and
    a user may run ``data`` again over their run."""
    from fsspec.implementations.memory import MemoryFileSystem

    uri = f"memory:///relabeler-test-{uuid.uuid4().hex}"
    RunStore(uri).write_bytes("x.txt", b"x")

    def refused(self, path, **kwargs):
        raise ConnectionRefusedError(111, "Connect call failed ('10.0.0.7', 443)")

    monkeypatch.setattr(MemoryFileSystem, "isdir", lambda self, path: False)  # as gcsfs's
    monkeypatch.setattr(MemoryFileSystem, "ls", refused)
    with pytest.raises(StoreError, match=re.escape(
            f"run directory {uri}: cannot look for it: ConnectionRefusedError: Connect call "
            f"failed ('10.0.0.7', 443)")):
        RunStore(uri, create=False)


# real object-store servers: S3 (moto) and GCS (an emulator), the object_store fixture


@pytest.mark.slow
def test_object_store_round_trip_of_tables_stages_and_directories(object_store, tmp_path):
    uri, options = object_store
    store = RunStore(uri + "/", storage_options=options)
    assert store.uri == uri
    assert store.local_path("x") is None
    table = _table(["a", "b", "c"])
    store.write_table("rows/train.parquet", table)
    assert store.read_table("rows/train.parquet").equals(table)
    store.write_shard("shards/train", 1, _table(["b"], start=1))
    store.write_shard("shards/train", 0, _table(["a"], start=0))
    assert store.finished_shards("shards/train") == {0, 1}
    assert store.read_table("shards/train").column("id").to_pylist() == ["a", "b"]
    store.append_line("studio/events/e.jsonl", '{"n": 1}')
    store.append_line("studio/events/e.jsonl", '{"n": 2}')
    assert store.read_bytes("studio/events/e.jsonl") == b'{"n": 1}\n{"n": 2}\n'

    source = _make_model_dir(tmp_path / "saved", b"weights")
    store.put_dir(source, "model")
    downloaded = store.get_dir("model", tmp_path / "download")
    assert _dir_contents(downloaded) == _dir_contents(source)
    store.mark_done("train", {"epochs": 1})
    assert store.stage_info("train")["info"] == {"epochs": 1}
    assert not any(".tmp-" in name for name in store.list(""))
    assert not any(".tmp-" in p for p in store.fs.find(store.uri))

    store.reset_stage("train", ["model"])
    assert not store.stage_done("train")
    assert store.list("model") == []


@pytest.mark.slow
def test_an_object_store_log_read_from_an_offset_while_rewritten_never_fails(object_store):
    """serve rewrites the hour's event file at each webhook; a read by an open file (tied to
    the object's ETag on S3) failed with FileExpired in about one read of ten while it did,
    and the re-rank was skipped. A ranged read takes the object as it is."""
    uri, options = object_store
    store = RunStore(uri, storage_options=options)
    store.append_line("studio/events/d.jsonl", '{"n": 0}')
    stop, errors, reads = threading.Event(), [], []

    def writing() -> None:
        n = 1
        while not stop.is_set():
            store.append_line("studio/events/d.jsonl", json.dumps({"n": n}))
            n += 1

    writer = threading.Thread(target=writing)
    writer.start()
    try:
        start = 0
        while len(reads) < 150:
            try:
                data = store.read_bytes("studio/events/d.jsonl", start=start)
            except Exception as exc:  # FileExpired, before
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            reads.append(data)
            start = 0 if len(reads) % 10 == 0 else start + data.rfind(b"\n") + 1
    finally:
        stop.set()
        writer.join()
    assert errors == []
    whole = store.read_bytes("studio/events/d.jsonl").decode().splitlines()
    assert [json.loads(line)["n"] for line in whole] == list(range(len(whole)))


def test_read_many_gives_whole_files_by_artifact_and_names_a_missing_one(store):
    for i in range(3):
        store.write_bytes(f"studio/events/{i}.jsonl", b"x" * i)
    assert store.read_many(["studio/events/2.jsonl", "studio/events/0.jsonl"]) == {
        "studio/events/2.jsonl": b"xx", "studio/events/0.jsonl": b""}
    assert store.read_many([]) == {}
    with pytest.raises(StoreError, match="'studio/events/9.jsonl' not found"):
        store.read_many(["studio/events/1.jsonl", "studio/events/9.jsonl"])


@pytest.mark.slow
def test_an_object_store_event_log_in_segments_reads_back_in_order_in_one_batch(object_store):
    """A pull reads every file of the log; on an object store they are read in one batch of
    concurrent requests, whole, and the events come back in the order they were appended."""
    from datetime import UTC, datetime, timedelta

    from relabeler.plugin.events import EventWriter, read_events

    uri, options = object_store
    store = RunStore(uri, storage_options=options)
    writer = EventWriter(store, segment_bytes=400)
    start = datetime(2026, 12, 7, 9, 50, tzinfo=UTC)
    made = [writer.append({"action": "ANNOTATION_CREATED", "annotation": {"id": i},
                           "note": "y" * 150}, received_at=start + timedelta(minutes=i))
            for i in range(16)]
    assert sorted(set(made)) == [f"studio/events/2026-12-07T09{s}.jsonl"
                                 for s in ("", "_0001", "_0002", "_0003", "_0004")] + [
        f"studio/events/2026-12-07T10{s}.jsonl" for s in ("", "_0001", "_0002")]
    assert made == sorted(made)  # two events a file: the second (298 bytes a line) passes 400
    batches = []
    cat = store.fs.cat
    store.fs.cat = lambda paths, **kw: batches.append(len(paths)) or cat(paths, **kw)
    log = read_events(store)
    assert [e["payload"]["annotation"]["id"] for e in log.events] == list(range(16))
    assert batches == [8]


def test_remote_get_dir_versions_are_shared_and_never_rewritten(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    store = RunStore(f"memory:///relabeler-test-{uuid.uuid4().hex}")
    store.put_dir(_make_model_dir(tmp_path / "v1", b"v1"), "model")
    downloads = []
    get_file = store.fs.get_file
    # memory:// hands every reader the same file object, so threads would share one read
    # position; actors are processes with clients of their own: one download at a time here
    one_reader = threading.Lock()

    def fetch(*args, **kwargs):
        with one_reader:
            downloads.append(args[0])
            return get_file(*args, **kwargs)

    monkeypatch.setattr(store.fs, "get_file", fetch)
    # eight actors of one node at once: one folder, complete, every file fetched once or more
    with ThreadPoolExecutor(8) as pool:
        paths = set(pool.map(lambda _: store.get_dir("model"), range(8)))
    assert len(paths) == 1
    first = paths.pop()
    assert first.name.startswith("model@")
    assert _dir_contents(first) == _dir_contents(tmp_path / "v1")
    fetched = len(downloads)
    assert store.get_dir("model") == first and len(downloads) == fetched  # cached: no download
    # a new version lands beside the old one, which stays intact for whoever still reads it
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "model.safetensors").write_bytes(b"v2 weights")
    store.put_dir(v2, "model")
    second = store.get_dir("model")
    assert second != first and second.parent == first.parent
    assert _dir_contents(second) == {"model.safetensors": b"v2 weights"}
    assert _dir_contents(first) == _dir_contents(tmp_path / "v1")
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp-")]
    store.fs.rm(store.uri, recursive=True)
