"""Paths and local file moves of the run directory (:class:`relabeler.store.RunStore`): an
artifact's name checked and normalised, the temporary name a write goes to before its rename,
a durable rename, a folder swapped in whole, a line appended to a local file, and a remote
folder's version from its listing."""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import shutil
import stat
import uuid

#: the start of a temporary name (a write in progress, or a folder swapped aside)
TMP_PREFIX = ".tmp-"


def check_artifact(artifact: str, *, name: str = "artifact", allow_root: bool = False) -> str:
    """Normalize a relative POSIX path; raise ValueError naming the argument ``name``."""
    if not isinstance(artifact, str):
        raise TypeError(f"{name} must be a str, got {type(artifact).__name__}")
    parts = [p for p in artifact.split("/") if p not in ("", ".")]
    if artifact.startswith("/") or "://" in artifact or "\\" in artifact or ".." in parts:
        raise ValueError(f"{name} must be a relative POSIX path inside the run directory "
                         f"(no leading '/', no '..', no URI), got {artifact!r}")
    if not parts and not allow_root:
        raise ValueError(f"{name} must name a file or folder in the run, got {artifact!r}")
    return "/".join(parts)


def tmp_beside(path: str) -> str:
    parent, name = posixpath.split(path)
    return posixpath.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{name}")


def fsync_dir(path: str) -> None:
    """Make a rename durable (POSIX only: other systems cannot open a folder)."""
    if os.name == "posix":
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_local_dir(src: str, dst: str) -> None:
    """Move the finished folder ``src`` onto ``dst``; an old ``dst`` is deleted only after."""
    if not os.path.exists(dst):
        os.replace(src, dst)
        return
    old = tmp_beside(dst)  # os.replace cannot replace a non-empty folder: swap the old one aside
    os.replace(dst, old)
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old, dst)
        raise
    shutil.rmtree(old, ignore_errors=True)


class NotAFileError(OSError):
    """What :func:`append_local` found in a file's place instead of a regular file."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


def append_local(full: str, line: str, *, private: bool) -> None:
    """Append ``line`` (its newline included) to the local file ``full``: one O_APPEND write,
    then fsync (and the folder's, for a new file). ``private``: readable and writable by its
    owner only (0600), also a file that existed with a wider mode. A symbolic link or anything
    else but a regular file in its place is a :class:`NotAFileError`, never followed or
    written."""
    created = not os.path.lexists(full)
    # no following a symbolic link: whoever planted one would have the line written, and
    # the 0600 set, wherever it points
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(full, flags, 0o600 if private else 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP or os.path.islink(full):
            raise NotAFileError("a symbolic link") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device file
            raise NotAFileError("not a regular file")
        if private and stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
        data = line.encode()
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # an earlier write was cut short: keep this line whole
        while data:  # all of it, or an error: a short write is not a line recorded
            written = os.write(fd, data)
            if not written:
                raise OSError(f"no byte of {len(data)} could be written")
            data = data[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(posixpath.dirname(full))


def listing_version(root: str, listing: dict[str, dict]) -> str:
    """A short hash of a remote folder's files: relative names, sizes and whatever content
    tag the filesystem gives (S3's ETag, GCS's md5, else a modification time)."""
    digest = hashlib.sha256()
    for path in sorted(listing):
        info = listing[path]
        tag = next((str(info[k]) for k in ("ETag", "etag", "md5Hash", "crc32c", "mtime",
                                           "LastModified", "last_modified", "created")
                    if info.get(k) is not None), "")
        digest.update(f"{posixpath.relpath(path, root)}\x00{info.get('size')}\x00{tag}\n"
                      .encode())
    return digest.hexdigest()[:16]
