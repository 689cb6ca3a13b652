"""A GCS emulator (gcp-storage-emulator) in the test process, with three of Google's
behaviours it lacks, added as the JSON API documents them for a standard (flat) bucket:

- the atomic move, ``POST .../o/SRC/moveTo/o/DST``: gcsfs tries it before a copy and delete,
  and retried the emulator's 501 for half a minute at each move;
- the create-only precondition, ``ifGenerationMatch=0`` on an upload: 412 when the object
  exists, which gcsfs raises as FileExistsError (relabeler's locks rely on it);
- the bucket-type lookup, a gRPC call of gcsfs's hierarchical-namespace support: a flat bucket
  (the emulator speaks no gRPC; a process a test starts gets gcsfs's plain filesystem, which
  makes no lookup).

A connection a client dropped is not printed to stderr (the output a test reads).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from types import SimpleNamespace
from typing import Any

import pytest


class _ObjectExists(Exception):
    pass


def _quiet_http_server() -> type:
    """The emulator's HTTP server, with a dropped connection (a client that gave up on a
    request, or closed a kept-alive one) not printed to stderr: socketserver prints it there,
    into the output of the command a test reads."""
    from http import server

    class QuietHTTPServer(server.HTTPServer):
        def handle_error(self, request, client_address):
            pass

    return QuietHTTPServer


class _CreateOnly:
    """The emulator's storage, refusing to create an object that exists."""

    def __init__(self, storage: Any):
        self._storage = storage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def create_file(self, bucket: str, name: str, *args: Any, **kwargs: Any) -> Any:
        from gcp_storage_emulator.exceptions import NotFound

        try:
            self._storage.get_file_obj(bucket, name)
        except NotFound:
            return self._storage.create_file(bucket, name, *args, **kwargs)
        raise _ObjectExists(name)


@contextmanager
def running_emulator(port: int, *, bucket: str) -> Iterator[dict[str, str]]:
    """The emulator on 127.0.0.1:``port`` with ``bucket``, in memory; yields gcsfs options."""
    from gcp_storage_emulator import server as emulator
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects
    from gcsfs.extended_gcsfs import BucketType, ExtendedGcsFileSystem

    insert = objects.insert

    def insert_checked(request, response, storage, *args, **kwargs):
        if request.query.get("ifGenerationMatch") != ["0"]:
            return insert(request, response, storage, *args, **kwargs)
        try:
            return insert(request, response, _CreateOnly(storage), *args, **kwargs)
        except _ObjectExists:
            response.status = HTTPStatus.PRECONDITION_FAILED

    def move(request, response, storage, *args, **kwargs):
        bucket, source, target = (request.params[k] for k in
                                  ("bucket_name", "object_id", "dest_object_id"))
        try:
            moved = objects._copy(request.base_url, storage, bucket, source, bucket, target)
        except NotFound:
            response.status = HTTPStatus.NOT_FOUND
            return
        objects._delete(storage, bucket, source)
        response.json(moved)

    move_route = (r"^/storage/v1/b/(?P<bucket_name>[-.\w]+)/o/(?P<object_id>.*[^/]+)"
                  r"/moveTo/o/(?P<dest_object_id>.*[^/]+)$", {"POST": move})
    routes = tuple((pattern, {method: insert_checked if handler is insert else handler
                              for method, handler in handlers.items()})
                   for pattern, handlers in emulator.HANDLERS)

    async def flat(self, name):
        return BucketType.NON_HIERARCHICAL

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(emulator, "server", SimpleNamespace(HTTPServer=_quiet_http_server()))
        patch.setattr(emulator, "HANDLERS", (move_route, *routes))
        patch.setattr(objects, "insert", insert_checked)  # the server's fallback for uploads
        patch.setattr(ExtendedGcsFileSystem, "_get_bucket_type", flat)
        patch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        server = emulator.create_server("127.0.0.1", port, in_memory=True,
                                        default_bucket=bucket)
        server.start()
        try:
            yield {"endpoint_url": f"http://127.0.0.1:{port}", "token": "anon",
                   "project": bucket}
        finally:
            server.stop()


#: what GCS answers an anonymous caller of a bucket it may not read
ANONYMOUS_REFUSED = ("Anonymous caller does not have storage.objects.list access to the Google "
                     "Cloud Storage bucket. Permission 'storage.objects.list' denied on "
                     "resource (or it may not exist).")


def refuse_anonymous(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request to the running emulator gets GCS's 401 to an anonymous caller (what a
    client with no credentials gets: gcsfs then goes on as anonymous)."""
    from gcp_storage_emulator import server as emulator

    def refuse(request, response, storage, *args, **kwargs):
        response.status = HTTPStatus.UNAUTHORIZED
        response.json({"error": {"code": 401, "message": ANONYMOUS_REFUSED,
                                 "errors": [{"reason": "required"}]}})

    monkeypatch.setattr(emulator, "HANDLERS", (
        (r".*", dict.fromkeys(("GET", "POST", "PUT", "PATCH", "DELETE"), refuse)),))
