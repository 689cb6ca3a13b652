"""Who holds a lock of a run directory, whether that process is gone, and a lease for a remote
run directory, where there is no ``flock``.

A lock file names its holder: ``{"host", "pid", "started"}`` (a lease adds ``"renewed"`` and a
``"token"``). A holder of this host is gone when its process no longer runs. A holder of
another host can only be judged by its lease: one not renewed for :data:`LEASE_TTL_S` seconds
is gone (its process died, or its pod was evicted, without removing it).

:class:`Lease` is an exclusive lock on one object of a remote run directory: it is created only
where nothing is there (:meth:`RunStore.create_exclusive`: a conditional write on S3 and
S3-compatible stores, which AWS and MinIO honour), renewed by a thread while it is held, and
removed on release while it still names its holder. A lease whose holder is gone is taken over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

#: a lock file still empty after this long was left by a writer that died creating it
UNWRITTEN_LOCK_SECONDS = 60
#: a lease its holder has not renewed for this long is taken for a dead holder's
LEASE_TTL_S = 120.0
#: how often a held lease is renewed (well inside :data:`LEASE_TTL_S`)
RENEW_EVERY_S = 20.0


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with that id runs (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock_holder(store, path: str) -> dict:
    """The holder a lock file (``studio/round.lock``) names: host, pid, started; {} while it
    is being written, gone, or not an object."""
    try:
        holder = store.read_json(path)
    except Exception:  # noqa: BLE001 - being written (its holder is alive) or gone meanwhile
        return {}
    return holder if isinstance(holder, dict) else {}


def lock_holder_gone(holder: dict, local: Path | None) -> bool:
    """Whether a lock file (``studio/round.lock``) whose content is ``holder`` (host, pid) was
    left by a process that is gone: one of this host that no longer runs, a lease not renewed
    for :data:`LEASE_TTL_S`, or (``local``: the file on this machine) an unreadable one older
    than a minute. Another host's holder that keeps no lease is never judged gone."""
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not pid_alive(holder["pid"])
    renewed = _when(holder.get("renewed"))
    if renewed is not None:
        return (datetime.now(UTC) - renewed).total_seconds() > LEASE_TTL_S
    if holder or local is None:
        return False
    try:
        return time.time() - local.stat().st_mtime > UNWRITTEN_LOCK_SECONDS
    except FileNotFoundError:
        return False


def _when(value: object) -> datetime | None:
    try:
        when = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return when if when is None or when.tzinfo else when.replace(tzinfo=UTC)


def describe_holder(holder: dict) -> str:
    """``process 123 on host-a since 2026-...`` for an error message."""
    return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')} since "
            f"{holder.get('started', '?')}")


class Lease:
    """An exclusive lease on ``path`` of ``store`` (a remote run directory). :meth:`acquire`
    takes it or returns who holds it; a thread renews it every :data:`RENEW_EVERY_S` while it
    is held; :meth:`release` removes it if it still names this holder."""

    def __init__(self, store, path: str, *, what: str) -> None:
        self.store, self.path, self.what = store, path, what
        now = datetime.now(UTC).isoformat()
        self.holder = {"host": socket.gethostname(), "pid": os.getpid(), "started": now,
                       "renewed": now, "token": uuid.uuid4().hex}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> dict | None:
        """None when this lease now holds ``path``; else the holder that does ({} for one
        that cannot be read). A gone holder's lease is taken over (logged)."""
        other = self._create()
        if other is None:
            return None
        if not lock_holder_gone(other, None):
            return other
        # judged gone. Of several processes that judge so at once, only the one that claims
        # the takeover (an exclusive marker named after the gone holder) removes the lease:
        # without it, a slower one could remove the lease the faster one had just created.
        claim = self._claim_takeover(other)
        if claim is None:
            return read_lock_holder(self.store, self.path) or other
        try:
            if read_lock_holder(self.store, self.path) == other:
                log.warning("%s: %s was left by %s, which is gone; taking it over", self.what,
                            self.store.path(self.path), describe_holder(other))
                self.store.remove(self.path)
            return self._create()
        finally:
            # after our lease exists (or another's does): a claim made later reads a live
            # holder in place of the gone one and removes nothing
            self.store.remove(claim)

    def _claim_takeover(self, gone: dict) -> str | None:
        """The marker that lets this process alone take over ``gone``'s lease; None where
        another process holds that claim (one whose claim is older than :data:`LEASE_TTL_S`
        died taking over, and its claim is replaced)."""
        name = gone.get("token") or hashlib.sha256(
            json.dumps(gone, sort_keys=True).encode()).hexdigest()[:32]
        claim = f"{self.path}.takeover-{name}"
        data = (json.dumps({**self.holder, "renewed": datetime.now(UTC).isoformat()})
                + "\n").encode()
        for _ in range(2):
            try:
                self.store.create_exclusive(claim, data)
            except FileExistsError:
                other = read_lock_holder(self.store, claim)
                if not (other and lock_holder_gone(other, None)):
                    return None
                self.store.remove(claim)
                continue
            if read_lock_holder(self.store, claim).get("token") == self.holder["token"]:
                return claim
            return None
        return None

    def _create(self) -> dict | None:
        """None when ``path`` was created holding this lease; else its holder."""
        # since when it is held, not since the first try (a wait of a minute read as held)
        now = datetime.now(UTC).isoformat()
        self.holder = {**self.holder, "started": now, "renewed": now}
        data = (json.dumps(self.holder) + "\n").encode()
        try:
            self.store.create_exclusive(self.path, data)
        except FileExistsError:
            return read_lock_holder(self.store, self.path)
        # a store that ignores the conditional write lets the last writer win: read it back
        there = read_lock_holder(self.store, self.path)
        if there.get("token") != self.holder["token"]:
            return there
        self._renewer = threading.Thread(target=self._renew, name=f"lease {self.path}",
                                         daemon=True)
        self._renewer.start()
        return None

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY_S):
            there = read_lock_holder(self.store, self.path)
            if there.get("token") != self.holder["token"]:
                log.error("%s: %s no longer names this process (%s holds it): it was taken "
                          "over, and writes from here may meet that process's", self.what,
                          self.store.path(self.path), describe_holder(there))
                return
            self.holder = {**self.holder, "renewed": datetime.now(UTC).isoformat()}
            try:
                self.store.write_json(self.path, self.holder)
            except Exception:  # noqa: BLE001 - the next renewal tries again
                log.warning("%s: could not renew %s", self.what, self.store.path(self.path),
                            exc_info=True)

    def release(self) -> None:
        """Stop renewing; remove the lease if it still names this holder."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if read_lock_holder(self.store, self.path).get("token") == self.holder["token"]:
            self.store.remove(self.path)
        else:
            log.warning("%s: %s no longer names this process (it was taken over); left as it "
                        "is", self.what, self.store.path(self.path))
