"""Paths and local file moves of the run directory (:class:`relabeler.store.RunStore`): an
artifact's name checked and normalised, the temporary name a write goes to before its rename,
a durable rename, a folder swapped in whole, and a remote folder's version from its listing."""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
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
