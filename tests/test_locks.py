"""Locks of a run directory on an object store (S3 on moto, GCS on an emulator: the
object_store fixture): exclusive creation, the lease that stands in for flock there, and the
manifest and round locks that use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from relabeler import artifacts
from relabeler.errors import ManifestLockedError, RoundLockedError
from relabeler.locks import Lease, lock_holder_gone
from relabeler.store import RunStore


@pytest.fixture
def remote_options(object_store):
    return object_store[1]


@pytest.fixture
def remote_store(object_store):
    uri, options = object_store
    return RunStore(uri, storage_options=options)


def test_an_exclusive_create_refuses_what_is_there_locally_and_on_an_object_store(
        tmp_path, remote_store):
    for store in (RunStore(tmp_path / "run"), remote_store):
        store.create_exclusive("studio/x.lock", b"first")
        with pytest.raises(FileExistsError):
            store.create_exclusive("studio/x.lock", b"second")
        assert store.read_bytes("studio/x.lock") == b"first"


def test_the_stores_condition_alone_refuses_a_second_create(remote_store, monkeypatch):
    # two creators that both looked before either wrote: the server's condition decides
    # (S3's If-None-Match, GCS's ifGenerationMatch=0)
    remote_store.create_exclusive("studio/x.lock", b"first")
    monkeypatch.setattr(remote_store.fs, "exists", lambda path: False)
    with pytest.raises(FileExistsError):
        remote_store.create_exclusive("studio/x.lock", b"second")
    assert remote_store.read_bytes("studio/x.lock") == b"first"


def test_a_lease_is_held_by_one_holder_at_a_time_and_renewed_while_held(remote_store, monkeypatch):
    monkeypatch.setattr("relabeler.locks.RENEW_EVERY_S", 0.05)
    first, second = Lease(remote_store, "studio/a.lease", what="t"), Lease(
        remote_store, "studio/a.lease", what="t")
    assert first.acquire() is None
    started = remote_store.read_json("studio/a.lease")
    holder = second.acquire()
    assert holder["token"] == first.holder["token"] and holder["pid"] == os.getpid()
    deadline = time.monotonic() + 30  # a loaded machine may be slow to renew
    while (renewed := remote_store.read_json("studio/a.lease"))["renewed"] == started["renewed"] \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert renewed["token"] == started["token"] and renewed["renewed"] > started["renewed"]
    first.release()
    assert not remote_store.exists("studio/a.lease")
    assert second.acquire() is None
    assert remote_store.read_json("studio/a.lease")["token"] == second.holder["token"]
    second.release()


def test_a_lease_another_host_stopped_renewing_is_taken_over_and_a_live_one_is_not(
        remote_store, caplog):
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    fresh = datetime.now(UTC).isoformat()
    other = {"host": "pod-7f9c", "pid": 1, "started": old, "renewed": fresh, "token": "x"}
    remote_store.write_json("studio/a.lease", other)
    lease = Lease(remote_store, "studio/a.lease", what="t")
    assert lease.acquire() == other  # renewed a moment ago: alive, wherever it runs
    remote_store.write_json("studio/a.lease", {**other, "renewed": old})
    assert lease.acquire() is None
    assert remote_store.read_json("studio/a.lease")["token"] == lease.holder["token"]
    assert "was left by process 1 on pod-7f9c" in caplog.text and "taking it over" in caplog.text
    lease.release()
    # a holder of this host is judged by its process, whatever its lease says
    assert not lock_holder_gone({"host": lease.holder["host"], "pid": os.getpid(),
                                 "renewed": old}, None)


def test_a_lease_taken_over_meanwhile_is_left_to_its_new_holder(remote_store, caplog):
    lease = Lease(remote_store, "studio/a.lease", what="t")
    assert lease.acquire() is None
    remote_store.write_json("studio/a.lease", {"host": "pod-2", "pid": 5, "token": "theirs"})
    lease.release()
    assert remote_store.read_json("studio/a.lease")["token"] == "theirs"
    assert "no longer names this process" in caplog.text


def _hold_in_another_process(store: RunStore, options: dict, code: str) -> subprocess.Popen:
    script = ("import json, sys, time\nfrom relabeler.store import RunStore\n"
              "store = RunStore(sys.argv[1], storage_options=json.loads(sys.argv[2]))\n"
              + code + "\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script, store.uri, json.dumps(options)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_the_manifest_lock_on_an_object_store_keeps_a_second_process_out_until_the_first_is_done(
        remote_store, remote_options):
    # on a remote run directory pull, push and the re-rank took no lock at all: two at once
    # wrote back each other's stale manifest and pull state
    from relabeler.queue_plan import manifest_lock

    holder = _hold_in_another_process(remote_store, remote_options, (
        "from relabeler.queue_plan import manifest_lock\nwith manifest_lock(store):"))
    try:
        with pytest.raises(ManifestLockedError,
                           match=rf"manifest\.lease is held by process {holder.pid} on .*"
                                 r"still after 1 s\): a push, a pull, a round or a re-rank"):
            with manifest_lock(remote_store, wait=1.0):
                pass
    finally:
        holder.kill()
        holder.wait()
    # killed, it left its lease behind: this host sees that its process is gone
    assert remote_store.exists(artifacts.MANIFEST_LEASE.path)
    with manifest_lock(remote_store, wait=0), manifest_lock(remote_store, wait=0):  # re-entrant
        assert remote_store.read_json(artifacts.MANIFEST_LEASE.path)["pid"] == os.getpid()
    assert not remote_store.exists(artifacts.MANIFEST_LEASE.path)


def test_a_second_round_on_an_object_store_stops_naming_the_lease(remote_store, remote_options):
    from relabeler.jobs.rounds import round_lock

    holder = _hold_in_another_process(remote_store, remote_options, (
        "from relabeler.jobs.rounds import round_lock\nwith round_lock(store):"))
    try:
        with pytest.raises(RoundLockedError, match=rf"round\.lock is held by process "
                                                   rf"{holder.pid} on .*renewed its lease at"):
            with round_lock(remote_store):
                pass
    finally:
        holder.terminate()
        holder.wait()
    with round_lock(remote_store):
        assert remote_store.read_json(artifacts.ROUND_LOCK.path)["pid"] == os.getpid()
    assert not remote_store.exists(artifacts.ROUND_LOCK.path)


def test_of_processes_taking_over_one_gone_lease_at_once_exactly_one_holds_it(
        remote_store, monkeypatch):
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    # each remover is slow by a different amount: without a claim, a late remover removed
    # the lease an earlier one had just created, and both held it
    remove, delays = remote_store.remove, iter([0.0, 0.3, 0.6, 0.9, 1.2, 1.5] * 3)
    monkeypatch.setattr(remote_store, "remove", lambda path: (
        time.sleep(next(delays)) if path == "studio/a.lease" else None, remove(path)))
    gone = {"host": "pod-7f9c", "pid": 1, "started": old, "renewed": old, "token": "x"}
    for attempt in range(3):
        remote_store.write_json("studio/a.lease", gone)
        leases = [Lease(remote_store, "studio/a.lease", what="t") for _ in range(6)]
        start = threading.Barrier(len(leases))

        def take(lease: Lease, start: threading.Barrier = start) -> dict | None:
            start.wait()
            return lease.acquire()

        with ThreadPoolExecutor(len(leases)) as pool:
            results = list(pool.map(take, leases))
        winners = [lease for lease, other in zip(leases, results, strict=True) if other is None]
        assert len(winners) == 1, (attempt, results)
        held = remote_store.read_json("studio/a.lease")
        assert held["token"] == winners[0].holder["token"]
        assert all(other["token"] in {"x", held["token"]} for other in results if other)
        assert remote_store.list("studio") == ["studio/a.lease"]  # no claim left behind
        winners[0].release()


def test_a_takeover_claimed_by_a_live_process_is_left_to_it_and_a_dead_claim_is_replaced(
        remote_store):
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    gone = {"host": "pod-7f9c", "pid": 1, "started": old, "renewed": old, "token": "x"}
    remote_store.write_json("studio/a.lease", gone)
    claim = {"host": "pod-2", "pid": 9, "started": old, "token": "y",
             "renewed": datetime.now(UTC).isoformat()}
    remote_store.write_json("studio/a.lease.takeover-x", claim)
    lease = Lease(remote_store, "studio/a.lease", what="t")
    assert lease.acquire() == gone  # pod-2 is taking it over: not removed from under it
    assert remote_store.read_json("studio/a.lease") == gone
    remote_store.write_json("studio/a.lease.takeover-x", {**claim, "renewed": old})
    assert lease.acquire() is None  # pod-2 died taking it over
    assert remote_store.read_json("studio/a.lease")["token"] == lease.holder["token"]
    assert not remote_store.exists("studio/a.lease.takeover-x")
    lease.release()


def test_a_writer_waiting_for_the_manifest_flock_says_so_once(tmp_path, caplog):
    from relabeler.queue_plan import _flock

    lock = tmp_path / "studio" / "manifest.lock"
    held = _flock(lock, 0)
    assert held is not None
    with caplog.at_level("INFO", logger="relabeler.queue_plan"):
        assert _flock(lock, 1.0) is None
    waits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting")]
    assert waits == [f"waiting for {lock}: another relabeler process (a push, pull, round or "
                     "re-rank) is writing the manifest; up to 1 s"]
    os.close(held)


def test_a_lease_says_since_when_it_is_held_not_since_its_first_try(tmp_path, monkeypatch):
    # a pull that waited a minute for the manifest was named as holding it since it began to
    # wait
    from relabeler.locks import Lease

    store = RunStore(f"memory:///relabeler-test-{uuid.uuid4().hex}")
    first = Lease(store, "studio/manifest.lease", what="manifest")
    assert first.acquire() is None
    waiting = Lease(store, "studio/manifest.lease", what="manifest")
    tried = datetime.now(UTC)
    assert waiting.acquire() == first.holder
    time.sleep(0.05)
    first.release()
    released = datetime.now(UTC)
    assert waiting.acquire() is None
    try:
        since = datetime.fromisoformat(store.read_json("studio/manifest.lease")["started"])
        assert since >= released > tried
    finally:
        waiting.release()
