import socket
from types import SimpleNamespace

import pytest

from relabeler.plugin.client import (
    StudioAuthError,
    StudioClient,
    StudioUnavailableError,
    batch_tasks,
)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_errors_are_retried_then_reported(caplog):
    client = StudioClient(f"http://127.0.0.1:{closed_port()}", "t0ken", retries=2,
                          backoff=0.01, timeout=2)
    with pytest.raises(StudioUnavailableError, match="unreachable.*3 attempts") as info:
        client.get_project(1)
    assert info.value.maybe_applied is False
    assert sum("retrying" in r.message for r in caplog.records) == 2
    assert "t0ken" not in caplog.text and "t0ken" not in repr(client)


def test_a_missing_token_names_the_variable():
    with pytest.raises(StudioAuthError, match="MY_TOKEN_VAR"):
        StudioClient("http://127.0.0.1:1", "", token_source="MY_TOKEN_VAR")


def test_batches_respect_count_and_bytes():
    tasks = [{"data": {"text": "x" * 100}} for _ in range(25)]
    assert [len(b) for b in batch_tasks(tasks, batch_size=10)] == [10, 10, 5]
    assert [len(b) for b in batch_tasks(tasks, batch_size=10, max_bytes=500)] == [4] * 6 + [1]
    assert [t for b in batch_tasks(tasks, batch_size=7) for t in b] == tasks
    with pytest.raises(ValueError, match="over the import limit"):
        list(batch_tasks(tasks, max_bytes=50))


def test_a_view_create_that_timed_out_is_looked_up_not_repeated():
    import httpx

    views, creates = [], []

    def create(*, project, data, request_options):
        creates.append(data)
        views.append(SimpleNamespace(id=7, model_dump=lambda mode: {"id": 7, "data": data}))
        raise httpx.ReadTimeout("the answer was lost")

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=3, backoff=0.01)
    client.sdk = SimpleNamespace(views=SimpleNamespace(
        list=lambda *, project, request_options: list(views), create=create))
    assert client.ensure_view(1, "Priority queue", ["tasks:data.priority"]) == 7
    assert len(creates) == 1
