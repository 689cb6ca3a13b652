"""Locks of a run directory on S3 (a real S3-compatible server, moto): exclusive creation, the
lease that stands in for flock there, and the manifest and round locks that use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from relabeler import artifacts
from relabeler.errors import ManifestLockedError, RoundLockedError
from relabeler.locks import Lease, lock_holder_gone
from relabeler.store import RunStore


@pytest.fixture
def s3_store(s3_options):
    return RunStore(f"s3://relabeler-test/locks-{uuid.uuid4().hex[:8]}",
                    storage_options=s3_options)


def test_an_exclusive_create_refuses_what_is_there_locally_and_on_s3(tmp_path, s3_store):
    for store in (RunStore(tmp_path / "run"), s3_store):
        store.create_exclusive("studio/x.lock", b"first")
        with pytest.raises(FileExistsError):
            store.create_exclusive("studio/x.lock", b"second")
        assert store.read_bytes("studio/x.lock") == b"first"


def test_the_s3_condition_alone_refuses_a_second_create(s3_store, monkeypatch):
    # two creators that both looked before either wrote: the server's If-None-Match decides
    s3_store.create_exclusive("studio/x.lock", b"first")
    monkeypatch.setattr(s3_store.fs, "exists", lambda path: False)
    with pytest.raises(FileExistsError):
        s3_store.create_exclusive("studio/x.lock", b"second")
    assert s3_store.read_bytes("studio/x.lock") == b"first"


def test_a_lease_is_held_by_one_holder_at_a_time_and_renewed_while_held(s3_store, monkeypatch):
    monkeypatch.setattr("relabeler.locks.RENEW_EVERY_S", 0.05)
    first, second = Lease(s3_store, "studio/a.lease", what="t"), Lease(
        s3_store, "studio/a.lease", what="t")
    assert first.acquire() is None
    started = s3_store.read_json("studio/a.lease")
    holder = second.acquire()
    assert holder["token"] == first.holder["token"] and holder["pid"] == os.getpid()
    time.sleep(0.5)
    renewed = s3_store.read_json("studio/a.lease")
    assert renewed["token"] == started["token"] and renewed["renewed"] > started["renewed"]
    first.release()
    assert not s3_store.exists("studio/a.lease")
    assert second.acquire() is None
    assert s3_store.read_json("studio/a.lease")["token"] == second.holder["token"]
    second.release()


def test_a_lease_another_host_stopped_renewing_is_taken_over_and_a_live_one_is_not(
        s3_store, caplog):
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    fresh = datetime.now(UTC).isoformat()
    other = {"host": "pod-7f9c", "pid": 1, "started": old, "renewed": fresh, "token": "x"}
    s3_store.write_json("studio/a.lease", other)
    lease = Lease(s3_store, "studio/a.lease", what="t")
    assert lease.acquire() == other  # renewed a moment ago: alive, wherever it runs
    s3_store.write_json("studio/a.lease", {**other, "renewed": old})
    assert lease.acquire() is None
    assert s3_store.read_json("studio/a.lease")["token"] == lease.holder["token"]
    assert "was left by process 1 on pod-7f9c" in caplog.text and "taking it over" in caplog.text
    lease.release()
    # a holder of this host is judged by its process, whatever its lease says
    assert not lock_holder_gone({"host": lease.holder["host"], "pid": os.getpid(),
                                 "renewed": old}, None)


def test_a_lease_taken_over_meanwhile_is_left_to_its_new_holder(s3_store, caplog):
    lease = Lease(s3_store, "studio/a.lease", what="t")
    assert lease.acquire() is None
    s3_store.write_json("studio/a.lease", {"host": "pod-2", "pid": 5, "token": "theirs"})
    lease.release()
    assert s3_store.read_json("studio/a.lease")["token"] == "theirs"
    assert "no longer names this process" in caplog.text


def _hold_in_another_process(store: RunStore, options: dict, code: str) -> subprocess.Popen:
    script = ("import json, sys, time\nfrom relabeler.store import RunStore\n"
              "store = RunStore(sys.argv[1], storage_options=json.loads(sys.argv[2]))\n"
              + code + "\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, store.uri, json.dumps(options)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_the_manifest_lock_on_s3_keeps_a_second_process_out_until_the_first_is_done(
        s3_store, s3_options):
    # on a remote run directory pull, push and the re-rank took no lock at all: two at once
    # wrote back each other's stale manifest and pull state
    from relabeler.queue_plan import manifest_lock

    holder = _hold_in_another_process(s3_store, s3_options, (
        "from relabeler.queue_plan import manifest_lock\nwith manifest_lock(store):"))
    try:
        with pytest.raises(ManifestLockedError,
                           match=rf"manifest\.lease is held by process {holder.pid} on .*"
                                 r"still after 1 s\): a push, a pull, a round or a re-rank"):
            with manifest_lock(s3_store, wait=1.0):
                pass
    finally:
        holder.kill()
        holder.wait()
    # killed, it left its lease behind: this host sees that its process is gone
    assert s3_store.exists(artifacts.MANIFEST_LEASE.path)
    with manifest_lock(s3_store, wait=0), manifest_lock(s3_store, wait=0):  # re-entrant
        assert s3_store.read_json(artifacts.MANIFEST_LEASE.path)["pid"] == os.getpid()
    assert not s3_store.exists(artifacts.MANIFEST_LEASE.path)


def test_a_second_round_on_s3_stops_naming_the_lease(s3_store, s3_options):
    from relabeler.jobs.rounds import round_lock

    holder = _hold_in_another_process(s3_store, s3_options, (
        "from relabeler.jobs.rounds import round_lock\nwith round_lock(store):"))
    try:
        with pytest.raises(RoundLockedError, match=rf"round\.lock is held by process "
                                                   rf"{holder.pid} on .*renewed its lease at"):
            with round_lock(s3_store):
                pass
    finally:
        holder.terminate()
        holder.wait()
    with round_lock(s3_store):
        assert s3_store.read_json(artifacts.ROUND_LOCK.path)["pid"] == os.getpid()
    assert not s3_store.exists(artifacts.ROUND_LOCK.path)
