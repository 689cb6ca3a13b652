"""What a run directory on an object store needs beside :class:`relabeler.store.RunStore`'s
own code: where the run is, before it is read or written (a URI with a slash missing, a
remote run that is not there or cannot be reached, a bucket that does not exist: each one line
before a stage does any work), and reads of a file that is being rewritten."""

from __future__ import annotations

import re

import fsspec

from relabeler.errors import NoRunError, StoreError
from relabeler.storage_errors import REMOTE_ERRORS, filesystem_error

#: ``gs:/bucket/run``: a protocol and one slash (a Windows drive is a single letter)
_ONE_SLASH = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/(?!/)(.*)")
#: (filesystem, bucket) pairs this process found, or could not tell, to exist
_CHECKED_BUCKETS: set[tuple[str, str]] = set()


def refuse_one_slash(uri: str) -> None:
    """A StoreError for ``gs:/bucket/run``: fsspec takes it for a local path, and the stage
    wrote a folder named "gs:" on the pod's own disk and reported success. ``file:/x`` is a
    file URI (RFC 8089), not a slash missing."""
    one_slash = _ONE_SLASH.match(uri)
    if one_slash and one_slash.group(1).lower() in (
            set(fsspec.available_protocols()) - {"file", "local"}):
        protocol, rest = one_slash.groups()
        raise StoreError(f"run directory {uri!r} looks like a {protocol}:// URI with a '/' "
                         f"missing; write {protocol}://{rest}")


def bucket_of(fs: fsspec.AbstractFileSystem, root: str) -> str:
    """The bucket ``root`` lies in on an object store (s3fs, gcsfs: their ``split_path``);
    "" on any other filesystem."""
    split_path = getattr(fs, "split_path", None)
    return split_path(root)[0] if split_path else ""


def look_for_remote_root(fs: fsspec.AbstractFileSystem, root: str, uri: str) -> None:
    """NoRunError where the remote run directory holds nothing, from one listing; a store
    that cannot be reached is a StoreError saying so (gcsfs's ``isdir`` answered False for
    it, and every reading verb said the run did not exist). A listing, not ``info``: that
    asks for an object named like the run first, which a policy that grants the run's prefix
    only refuses (S3 answers 403)."""
    try:
        fs.invalidate_cache(root)
        found = any(entry["type"] == "directory" or entry["name"].rstrip("/") != root
                    for entry in fs.ls(root, detail=True))
    except FileNotFoundError:
        found = False
    except (OSError, *REMOTE_ERRORS) as exc:
        raise StoreError(filesystem_error(exc, f"run directory {uri}", "look for it")) from exc
    if not found:
        check_bucket(fs, bucket_of(fs, root), uri)
        raise NoRunError(f"no run directory at {uri}")


def check_bucket(fs: fsspec.AbstractFileSystem, bucket: str, uri: str) -> None:
    """A StoreError where ``bucket`` does not exist (a stage did its work, then failed to
    write it with "no such file or folder"); once a process per bucket; nothing for ""."""
    key = (type(fs).__name__, bucket)
    if not bucket or key in _CHECKED_BUCKETS:
        return
    try:
        try:
            fs.info(bucket)
        except FileNotFoundError:
            # gcsfs says so of an empty bucket whose own record the caller may not read
            # (storage.buckets.get): it lists the bucket instead, and finds nothing. A listing
            # raises only for a bucket that is not there
            fs.ls(bucket, refresh=True)
    except FileNotFoundError:
        raise StoreError(f"run directory {uri}: bucket {bucket!r} does not exist, or these "
                         f"credentials cannot see it") from None
    except (OSError, *REMOTE_ERRORS):
        pass  # not allowed to read the bucket's own record, nor to list it
    _CHECKED_BUCKETS.add(key)


def ranged_read(fs: fsspec.AbstractFileSystem, full: str, start: int) -> bytes:
    """A remote file's bytes from offset ``start`` on, in one ranged request: an open file
    there is tied to the object's version (s3fs reads its ETag, then reads by range against
    it), and the event log, rewritten whole by each webhook, failed a re-rank's read with
    FileExpired while answers came. FileNotFoundError where it is not there."""
    for _ in range(2):
        try:
            return fs.cat_file(full, start=start or None)
        except (FileNotFoundError, IsADirectoryError):
            raise
        except OSError:
            # a range from the end on is "not satisfiable" (416) there, not empty; a file
            # that grew meanwhile is read again
            fs.invalidate_cache(full)
            if not start:
                raise
            if start >= fs.size(full):
                return b""
    return fs.cat_file(full, start=start or None)  # a third failure is the caller's
