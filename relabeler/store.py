"""The run directory: where each artifact lives, atomic writes, local or fsspec URI.

Artifacts are relative POSIX paths (artifacts.TRAIN.path). A write goes to a temporary name in
the same folder (``.tmp-<uuid>-<name>``), then is renamed: locally fsync + :func:`os.replace`, so
readers see the old file or the new one. Object stores (S3, GCS) have no atomic rename (``fs.mv``
copies, then deletes); resuming stays safe because a stage's marker is written last, so a
half-written stage is never marked done.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from relabeler import store_remote
from relabeler._version import __version__
from relabeler.artifacts import MARKER, STAGE_UPSTREAM, table_artifact
from relabeler.environment import environment
from relabeler.errors import NoRunError, StoreError
from relabeler.storage_errors import REMOTE_ERRORS, filesystem_error, storage_io
from relabeler.store_paths import (
    TMP_PREFIX,
    NotAFileError,
    append_local,
    check_artifact,
    fsync_dir,
    listing_version,
    replace_local_dir,
    tmp_beside,
)

logger = logging.getLogger(__name__)

_PART = re.compile(r"part-(\d{5,})\.parquet")
_STAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RunStore:
    """One run directory on a local disk or any fsspec filesystem.

    uri: local path, ``file://``, ``memory://``, ``s3://bucket/run``, ``gs://…``.
    storage_options: passed to fsspec, e.g. ``{"endpoint_url": ...}`` for an S3-compatible server.
    create: make a local run directory that does not exist yet; False (for a verb that only
    reads a finished run): a :class:`NoRunError` says there is none, and nothing is created.
    """

    def __init__(self, uri: str | os.PathLike, *, storage_options: dict | None = None,
                 create: bool = True):
        if "\0" in os.fsdecode(os.fspath(uri)):  # no filesystem takes it: an error, not a bug
            raise StoreError(f"run directory {os.fsdecode(os.fspath(uri))!r}: a path cannot "
                             f"hold a NUL character")
        store_remote.refuse_one_slash(os.fsdecode(os.fspath(uri)))
        try:
            self.fs, root = fsspec.core.url_to_fs(os.fspath(uri), **(storage_options or {}))
        except (ValueError, ImportError) as exc:  # an unknown protocol, a missing s3fs
            raise StoreError(f"run directory {os.fspath(uri)!r}: {exc}") from exc
        self._root: str = root.rstrip("/") or "/"
        self.is_local: bool = isinstance(self.fs, LocalFileSystem)
        self.uri: str = self._root if self.is_local else self.fs.unstrip_protocol(self._root)
        #: the bucket of an object store ("" elsewhere)
        self._bucket: str = "" if self.is_local else store_remote.bucket_of(self.fs, self._root)
        if self.is_local:
            if os.path.exists(self._root) and not os.path.isdir(self._root):
                raise StoreError(f"run directory {self._root} is a file, not a folder")
            if not create and not os.path.isdir(self._root):
                raise NoRunError(f"no run directory at {self._root}")
            try:
                os.makedirs(self._root, exist_ok=True)
            except OSError as exc:
                raise StoreError(filesystem_error(exc, f"run directory {self._root}",
                                                  "create it")) from exc
        elif not create:
            store_remote.look_for_remote_root(self.fs, self._root, self.uri)
        else:
            store_remote.check_bucket(self.fs, self._bucket, self.uri)

    def _makedirs(self, full: str) -> None:
        """The folders down to ``full``. An object store's exist once an object is under them
        (a hierarchical-namespace bucket makes them then), and its bucket was looked for when
        the run directory was opened: gcsfs's makedirs asks again whether the bucket exists,
        and a new, empty bucket under an object role (no storage.buckets.get) answers no, so
        the first write of a run failed with "no such file or folder"."""
        if not self._bucket:
            self.fs.makedirs(full, exist_ok=True)

    def _full(self, artifact: str, *, name: str = "artifact", allow_root: bool = False) -> str:
        rel = check_artifact(artifact, name=name, allow_root=allow_root)
        return posixpath.join(self._root, rel) if rel else self._root

    def _missing(self, what: str, artifact: str) -> StoreError:
        return StoreError(f"{what} {artifact!r} not found in run directory {self.uri}")

    def _discard(self, full: str) -> None:
        try:
            if self.fs.exists(full):
                self.fs.rm(full, recursive=True)
        except Exception:  # the caller's own error matters more than a failed cleanup
            logger.warning("could not remove temporary %s", full, exc_info=True)

    def path(self, artifact: str) -> str:
        """Full local path (local store) or URI (remote store) of ``artifact``."""
        full = self._full(artifact)
        return full if self.is_local else self.fs.unstrip_protocol(full)

    def local_path(self, artifact: str) -> Path | None:
        """A local filesystem path when the store is local, else None."""
        return Path(self._full(artifact)) if self.is_local else None

    @storage_io("look for")
    def exists(self, artifact: str) -> bool:
        return self.fs.exists(self._full(artifact))

    # atomic writes
    def _write_atomic(self, artifact: str, write: Callable[[IO[bytes]], Any]) -> None:
        full = self._full(artifact)
        tmp = tmp_beside(full)
        self._makedirs(posixpath.dirname(full))
        try:
            if self.is_local:
                with open(tmp, "wb") as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, full)
                fsync_dir(posixpath.dirname(full))
            else:
                with self.fs.open(tmp, "wb") as f:
                    write(f)
                self.fs.mv(tmp, full)
        except BaseException:
            self._discard(tmp)
            raise

    @storage_io("write")
    def write_table(self, artifact: str, table: pa.Table) -> None:
        """Write ``table`` as one Parquet file, atomically; a registered artifact
        (:mod:`relabeler.artifacts`) must match its schema."""
        if not isinstance(table, pa.Table):
            raise TypeError(f"table must be a pyarrow.Table, got {type(table).__name__}")
        spec = table_artifact(check_artifact(artifact))
        if spec is not None:
            table = spec.conform(table, where=f"{artifact} in run directory {self.uri}")
        self._write_atomic(artifact, lambda f: pq.write_table(table, f))

    @storage_io("write")
    def write_bytes(self, artifact: str, data: bytes) -> None:
        self._write_atomic(artifact, lambda f: f.write(data))

    def write_json(self, artifact: str, obj: Any) -> None:
        self.write_bytes(artifact, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode())

    def create_exclusive(self, artifact: str, data: bytes) -> None:
        """Write ``data`` to ``artifact`` only where nothing is there, else FileExistsError:
        one call of several at once succeeds. Atomic on a local disk (``O_EXCL``), on S3 and
        the S3-compatible stores that honour a conditional write (``If-None-Match``: AWS,
        MinIO) and on GCS (``ifGenerationMatch=0``, which gcsfs answers with FileExistsError);
        other fsspec filesystems look, then write."""
        try:
            self._create(self._full(artifact), data)
        except FileExistsError:
            raise
        except (OSError, *REMOTE_ERRORS) as exc:
            raise StoreError(filesystem_error(exc, f"run directory {self.uri}",
                                              f"create {artifact!r}")) from exc

    def _create(self, full: str, data: bytes) -> None:
        if self.is_local:
            os.makedirs(os.path.dirname(full), exist_ok=True)
            fd = os.open(full, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
            except BaseException:
                os.unlink(full)  # an empty lock would block everyone
                raise
            return
        self._makedirs(posixpath.dirname(full))
        if self.fs.exists(full):  # also where a store ignores the condition
            raise FileExistsError(errno.EEXIST, "exists", self.fs.unstrip_protocol(full))
        self.fs.pipe_file(full, data, mode="create")

    # reads
    @storage_io("read")
    def read_bytes(self, artifact: str, *, start: int = 0) -> bytes:
        """The file's bytes from offset ``start`` on (an append-only log read as it grows); on
        an object store one ranged read (:func:`relabeler.store_remote.ranged_read`)."""
        try:
            if not self.is_local:
                return store_remote.ranged_read(self.fs, self._full(artifact), start)
            with self.fs.open(self._full(artifact), "rb") as f:
                if start:
                    f.seek(start)
                return f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise self._missing("file", artifact) from None

    @storage_io("read")
    def read_many(self, artifacts: Sequence[str]) -> dict[str, bytes]:
        """Whole files, ``{artifact: bytes}``; on an object store their requests run at once
        (a pull reads every file of the event log, a file an hour or more there)."""
        if self.is_local or len(artifacts) < 2:
            return {artifact: self.read_bytes(artifact) for artifact in artifacts}
        full = {self._full(artifact): artifact for artifact in artifacts}
        try:
            found = self.fs.cat(list(full), on_error="raise")
        except (FileNotFoundError, IsADirectoryError):  # one at a time names the file
            return {artifact: self.read_bytes(artifact) for artifact in artifacts}
        return {full[self.fs._strip_protocol(path)]: data for path, data in found.items()}

    def read_json(self, artifact: str) -> Any:
        try:
            return json.loads(self.read_bytes(artifact))
        except json.JSONDecodeError as err:
            raise StoreError(f"{artifact!r} in run directory {self.uri} is not JSON") from err

    @storage_io("read")
    def read_table(self, artifact: str, *, columns: list[str] | None = None) -> pa.Table:
        """Read a Parquet file, or a folder of ``part-*.parquet`` concatenated in part order."""
        full = self._full(artifact)
        if self.fs.isdir(full):
            parts = [p for _, p in sorted(self._parts(full).items())]
            if not parts:
                raise StoreError(f"folder {artifact!r} in run directory {self.uri} has no parts")
            tables = [self._read_parquet(p, artifact, columns) for p in parts]
            return pa.concat_tables(tables, promote_options="default")
        if not self.fs.exists(full):
            raise self._missing("table", artifact)
        return self._read_parquet(full, artifact, columns)

    def _read_parquet(self, full: str, artifact: str, columns: list[str] | None) -> pa.Table:
        arrow_fs = (pafs.LocalFileSystem() if self.is_local
                    else pafs.PyFileSystem(pafs.FSSpecHandler(self.fs)))
        try:
            with arrow_fs.open_input_file(full) as f:
                return pq.read_table(f, columns=columns)
        except (pa.ArrowInvalid, KeyError) as err:
            raise StoreError(f"cannot read {artifact!r} in run directory {self.uri} as Parquet: "
                             f"{err}") from err

    @storage_io("look at")
    def version(self, artifact: str) -> str | None:
        """A short tag that changes when ``artifact`` (a file) is rewritten: its size and the
        filesystem's content tag or modification time. None when it is missing. One stat, so
        cheap enough to ask before every use of something read from it."""
        full = self._full(artifact)
        self.fs.invalidate_cache(full)
        try:
            info = self.fs.info(full)
        except FileNotFoundError:
            return None
        return listing_version(posixpath.dirname(full), {full: info})

    def folder_version(self, folder: str) -> str | None:
        """A short tag that changes when any file under ``folder`` is rewritten, added or
        removed (a digest of :meth:`version` of each); None when the folder is empty or
        missing."""
        files = self.list(folder)
        if not files:
            return None
        listing = json.dumps([(path, self.version(path)) for path in files])
        return hashlib.sha256(listing.encode()).hexdigest()[:16]

    # listing, appending, removing
    @storage_io("list")
    def list(self, prefix: str) -> list[str]:
        """Artifacts under folder ``prefix`` ("" = the whole run), as paths relative to the run
        root, sorted; temporary files of unfinished writes are left out. [] if missing."""
        full = self._full(prefix, name="prefix", allow_root=True)
        self.fs.invalidate_cache(full)  # another worker may have written since the last listing
        if not self.fs.isdir(full):
            return []
        return sorted(rel for rel, _ in self._visible(self.fs.find(full)))

    @storage_io("list")
    def sizes(self, prefix: str) -> dict[str, int]:
        """``{artifact: size in bytes}`` of the files under folder ``prefix``, as
        :meth:`list` names them, from one listing ({} if missing): a reader of logs that
        grow (the event log) skips the ones that did not without a request each."""
        full = self._full(prefix, name="prefix", allow_root=True)
        self.fs.invalidate_cache(full)
        if not self.fs.isdir(full):
            return {}
        found = self.fs.find(full, detail=True)
        return dict(sorted((rel, int(found[path].get("size") or 0))
                           for rel, path in self._visible(found)))

    def _visible(self, found: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(artifact, full path) of the full paths ``found``, leaving out the temporary files
        of unfinished writes."""
        for path in found:
            rel = posixpath.relpath(path, self._root)
            if not any(part.startswith(TMP_PREFIX) for part in rel.split("/")):
                yield rel, path

    @storage_io("append to")
    def append_line(self, artifact: str, line: str, *, private: bool = False) -> None:
        """Append one line (newline added). Locally one O_APPEND write, then fsync. Object stores
        have no append: the file is read and written again whole, atomically (fsspec's "ab"
        is not to be trusted: gcsfs opens it as "wb", dropping every earlier line with only a
        warning), so keep one writer per file there.
        ``private``: locally the file is readable and writable by its owner only (0600), also
        one that existed with a wider mode. Locally a symbolic link or anything else but a
        regular file in its place is a StoreError, never followed or written."""
        text = line.removesuffix("\n")
        if "\n" in text:
            raise ValueError(f"line must be a single line, got {text.count(chr(10)) + 1} lines")
        full = self._full(artifact)
        self._makedirs(posixpath.dirname(full))
        if not self.is_local:
            try:  # one request: an event's webhook waits for it
                old = self.fs.cat_file(full)
            except FileNotFoundError:
                old = b""
            if old and not old.endswith(b"\n"):
                old += b"\n"  # an earlier write was cut short: keep this line whole
            self._write_atomic(artifact, lambda f: f.write(old + (text + "\n").encode()))
            return
        try:
            append_local(full, text + "\n", private=private)
        except NotAFileError as exc:
            raise StoreError(self._not_a_file(artifact, exc.what)) from exc

    def _not_a_file(self, artifact: str, what: str) -> str:
        return (f"run directory {self.uri}: cannot append to {artifact!r}: it is {what}; "
                f"remove it (relabeler makes the file again)")

    @storage_io("remove")
    def remove(self, artifact: str) -> None:
        """Remove a file or folder, recursively; nothing happens when it is missing."""
        try:
            self.fs.rm(self._full(artifact), recursive=True)
        except FileNotFoundError:
            pass

    # shards: a stage killed midway resumes from the shards it finished
    def shard_name(self, folder: str, index: int) -> str:
        if not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be a non-negative int, got {index!r}")
        return f"{check_artifact(folder, name='folder')}/part-{index:05d}.parquet"

    def _parts(self, full_dir: str) -> dict[int, str]:
        self.fs.invalidate_cache(full_dir)
        if not self.fs.isdir(full_dir):
            return {}
        names = (posixpath.basename(p) for p in self.fs.ls(full_dir, detail=False))
        matches = (_PART.fullmatch(name) for name in names)
        return {int(m.group(1)): posixpath.join(full_dir, m.group(0)) for m in matches if m}

    @storage_io("list")
    def finished_shards(self, folder: str) -> set[int]:
        """Indices of the complete part files in ``folder``; temp files are not counted."""
        return set(self._parts(self._full(folder, name="folder")))

    def write_shard(self, folder: str, index: int, table: pa.Table) -> None:
        self.write_table(self.shard_name(folder, index), table)

    def keep_shards_of(self, folder: str, key_file: str, key: dict) -> bool:
        """Resume ``folder`` only from shards computed from ``key`` (what they are made from,
        recorded in ``key_file``): shards of another key, or with none recorded, are removed.
        Returns whether shards were removed."""
        recorded = self.read_json(key_file) if self.exists(key_file) else None
        dropped = recorded != key and bool(self.finished_shards(folder))
        if dropped:
            self.remove(folder)
        if recorded != key:
            self.write_json(key_file, key)
        return dropped

    # stages: a finished stage is skipped unless --force
    def _marker(self, stage: str) -> str:
        if not isinstance(stage, str) or not _STAGE.fullmatch(stage):
            raise ValueError(f"stage must be a plain name like 'extract', got {stage!r}")
        return MARKER(stage=stage)

    def stage_done(self, stage: str) -> bool:
        """Finished, and made from what its upstream stages hold now (not :meth:`stale`)."""
        return self.exists(self._marker(stage)) and self.stale(stage) is None

    def stale(self, stage: str) -> str | None:
        """Why the finished ``stage`` no longer matches what it was made from (an upstream
        stage of :data:`~relabeler.artifacts.STAGE_UPSTREAM` finished again since, is gone, or
        is stale itself); None when it matches, is unfinished, or its marker predates the
        record."""
        marker = self.stage_info(stage)
        recorded = (marker or {}).get("upstream")
        if not recorded:
            return None
        for upstream, finished_at in recorded.items():
            current = self.stage_info(upstream)
            if current is None:
                return f"{upstream} is no longer finished"
            if current.get("finished_at") != finished_at:
                return f"{upstream} finished again since {stage} ran"
            deeper = self.stale(upstream)
            if deeper is not None:
                return f"{upstream} is stale: {deeper}"
        return None

    def redo(self, stage: str, force: bool) -> bool:
        """Whether ``stage`` starts over: ``force``, or a finished stage gone :meth:`stale`
        (logged: its outputs and parts were made from what is no longer there)."""
        reason = self.stale(stage)
        if reason is not None and not force:
            logger.warning("%s: redone from the start, %s", stage, reason)
        return force or reason is not None

    @storage_io("mark done")
    def mark_done(self, stage: str, info: dict | None = None) -> None:
        """Write the stage's marker; call it last, after all of the stage's artifacts. It
        records when each upstream stage finished (:meth:`stale` compares), and the versions
        and device it was made with (:func:`environment`: a record for whoever reproduces the
        run, which nothing compares)."""
        finished_at = datetime.now(UTC).isoformat()
        upstream = {name: marker["finished_at"] for name in STAGE_UPSTREAM.get(stage, ())
                    if (marker := self.stage_info(name)) is not None}
        self.write_json(self._marker(stage), {"stage": stage, "finished_at": finished_at,
                                              "relabeler_version": __version__,
                                              "environment": environment(),
                                              "upstream": upstream, "info": info or {}})

    @storage_io("read the marker of")
    def stage_info(self, stage: str) -> dict | None:
        marker = self._marker(stage)
        return self.read_json(marker) if self.exists(marker) else None

    @storage_io("reset")
    def reset_stage(self, stage: str, artifacts: Sequence[str]) -> None:
        """For ``--force``: remove the marker first, then the stage's artifacts."""
        if isinstance(artifacts, str):
            raise TypeError("artifacts must be a sequence of artifact paths, not one str")
        rels = [check_artifact(a, name="artifacts") for a in artifacts]  # all valid, then remove
        self.remove(self._marker(stage))
        for rel in rels:
            self.remove(rel)

    @storage_io("replace")
    def replace_folder(self, folder: str, tables: Mapping[str, pa.Table | bytes], *,
                       unmark: str | None = None) -> None:
        """Make ``tables`` (artifact path inside ``folder`` -> table, or bytes for a file
        written as it is) the new content of ``folder``; nothing of the old folder is touched
        until every new file is written.

        The tables are checked (registered artifacts against their schemas) and written to a
        temporary folder beside ``folder``; a failure there leaves the old folder, and the
        marker of stage ``unmark``, as they were. Then the marker is removed and the new folder
        swapped in: locally two renames (a failed swap puts the old folder and its marker back);
        an object store has no folder rename, so files are moved over one by one and stale ones
        removed, and the missing marker says the stage is unfinished if that is cut short.
        """
        base = check_artifact(folder, name="folder")
        staged: dict[str, pa.Table | bytes] = {}
        for artifact, table in tables.items():
            rel = check_artifact(artifact)
            if not rel.startswith(base + "/"):
                raise ValueError(f"tables: {artifact!r} is not inside folder {base!r}")
            spec = table_artifact(rel)
            if spec is not None and not isinstance(table, bytes):
                table = spec.conform(table, where=f"{rel} in run directory {self.uri}")
            staged[rel[len(base) + 1:]] = table
        full = self._full(base)
        tmp = tmp_beside(full)
        try:
            for name, table in staged.items():
                target = posixpath.join(tmp, name)
                self._makedirs(posixpath.dirname(target))
                with (open(target, "wb") if self.is_local else self.fs.open(target, "wb")) as f:
                    if isinstance(table, bytes):
                        f.write(table)
                    else:
                        pq.write_table(table, f)
                    if self.is_local:
                        f.flush()
                        os.fsync(f.fileno())
            marker = self._marker(unmark) if unmark is not None else None
            old_marker = (self.read_bytes(marker)
                          if marker is not None and self.exists(marker) else None)
            if marker is not None:
                self.remove(marker)
            try:
                self._swap_in(tmp, full, staged)
            except BaseException:
                if old_marker is not None and self.is_local:  # the old folder is back
                    self.write_bytes(marker, old_marker)
                raise
        finally:
            self._discard(tmp)

    def _swap_in(self, tmp: str, full: str, names: Mapping[str, Any]) -> None:
        if self.is_local:
            replace_local_dir(tmp, full)
            fsync_dir(posixpath.dirname(full))
            return
        self.fs.invalidate_cache(full)
        old = set(self.fs.find(full)) if self.fs.isdir(full) else set()
        for name in names:
            self.fs.mv(posixpath.join(tmp, name), posixpath.join(full, name))
        for stale in old - {posixpath.join(full, name) for name in names}:
            self.fs.rm(stale)

    # directories: save_pretrained writes a local folder; these move it to and from the store
    @storage_io("upload")
    def put_dir(self, local_dir: str | Path, artifact: str) -> None:
        """Upload a local folder as ``artifact``; an existing one is replaced after the upload."""
        src = Path(local_dir)
        if not src.is_dir():
            raise ValueError(f"local_dir must be an existing folder, got {str(src)!r}")
        full = self._full(artifact)
        if self.is_local and src.resolve() == Path(full).resolve():
            return  # already in place, e.g. save_pretrained into get_dir's path
        tmp = tmp_beside(full)
        files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
        self._makedirs(posixpath.dirname(full))
        try:
            if self.is_local:
                shutil.copytree(src, tmp)
                for rel in files:  # durable before the rename makes them visible
                    with open(posixpath.join(tmp, rel), "rb") as f:
                        os.fsync(f.fileno())
                replace_local_dir(tmp, full)
                fsync_dir(posixpath.dirname(full))
                return
            for rel in files:  # put_file creates the parent folders
                self.fs.put_file(str(src / rel), f"{tmp}/{rel}")
            self.remove(artifact)  # object stores cannot rename a folder: swap file by file
            for rel in files:
                self._makedirs(posixpath.dirname(f"{full}/{rel}"))
                self.fs.mv(f"{tmp}/{rel}", f"{full}/{rel}")
        finally:
            self._discard(tmp)

    @storage_io("download")
    def get_dir(self, artifact: str, local_dir: str | Path | None = None) -> Path:
        """Local path of folder ``artifact``.

        A local store returns its own path (no copy; ``local_dir`` is ignored). A remote store
        downloads into ``local_dir``, which must be missing or empty, or else into a cache
        folder ``tempfile.gettempdir()/relabeler-cache/<hash of uri>/<artifact>@<version>``,
        where the version hashes the remote listing (names, sizes, ETags or modification
        times). A cached version is never rewritten: processes on one machine (several actors
        of a node) share it, and a new version of the folder lands beside it, so no reader
        ever sees a folder swapped under it.
        """
        rel = check_artifact(artifact)
        full = posixpath.join(self._root, rel)
        if not self.fs.isdir(full):
            raise self._missing("folder", artifact)
        if self.is_local:
            return Path(full)
        listing = self.fs.find(full, detail=True)
        if local_dir is None:
            key = hashlib.sha256(self.uri.encode()).hexdigest()[:16]
            *parents, name = rel.split("/")
            dest = Path(tempfile.gettempdir(), "relabeler-cache", key, *parents,
                        f"{name}@{listing_version(full, listing)}")
            if dest.is_dir():
                return dest
        else:
            dest = Path(local_dir)
            if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
                raise ValueError(f"local_dir must be missing or an empty folder, got {str(dest)!r}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tmp_beside(dest.as_posix()))
        try:
            tmp.mkdir()
            for remote in listing:
                target = tmp / posixpath.relpath(remote, full)
                target.parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(remote, str(target))
            try:
                os.replace(tmp, dest)  # onto a missing or empty folder only
            except OSError:
                if local_dir is not None or not dest.is_dir():
                    raise
                # another process cached the same version first: use theirs
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
