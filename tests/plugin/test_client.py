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


def test_a_server_error_that_outlasts_the_retries_carries_what_the_server_said():
    # the reason was only in Label Studio's own log (a NUL that PostgreSQL cannot store)
    from label_studio_sdk.core.api_error import ApiError

    def fails(*args, request_options):
        raise ApiError(status_code=500, body={"detail": "\\u0000 cannot be converted to text"})

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=1, backoff=0.01)
    with pytest.raises(StudioUnavailableError) as info:
        client._call("import 40 tasks into project 6", fails)
    assert str(info.value) == (
        "cannot import 40 tasks into project 6: Label Studio at http://127.0.0.1:1 answered 500 "
        '(2 attempts): {"detail": "\\\\u0000 cannot be converted to text"}')


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


def test_a_priority_tab_made_before_it_sorted_numbers_is_updated_once():
    # a tab made by an earlier relabeler sorts the priority as text on PostgreSQL
    old = {"title": "Priority queue", "ordering": ["tasks:data.priority"],
           "columnsDisplayType": {"tasks:data.score": "String"}}
    stored, updates = [old], []

    def update(view_id, *, project, data, request_options):
        updates.append(data)
        stored[0] = data

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=1, backoff=0.01)
    client.sdk = SimpleNamespace(views=SimpleNamespace(
        list=lambda *, project, request_options: [SimpleNamespace(
            id=7, model_dump=lambda mode: {"id": 7, "data": stored[0]})],
        update=update))
    column = "tasks:data.priority"
    assert client.ensure_view(1, "Priority queue", [column], numbers=[column]) == 7
    assert updates == [{"title": "Priority queue", "ordering": [column],
                        "columnsDisplayType": {"tasks:data.score": "String",
                                               column: "Number"}}]
    assert client.ensure_view(1, "Priority queue", [column], numbers=[column]) == 7
    assert len(updates) == 1


def _capped_listing(items, *, cap):
    """A paginated listing whose server caps the page size at ``cap`` (Label Studio's
    TASK_API_PAGE_SIZE_MAX) and answers 404 past the last page, as Django REST does."""
    from label_studio_sdk.core.api_error import ApiError

    calls = []

    def listing(*, page, page_size, request_options, **filters):
        calls.append(page)
        size = min(page_size, cap)
        if (page - 1) * size >= len(items) and page > 1:
            raise ApiError(status_code=404, body={"detail": "Invalid page."})
        return SimpleNamespace(items=items[(page - 1) * size: page * size], has_next=True)

    return listing, calls


def test_a_server_that_caps_the_page_size_is_read_to_the_last_page():
    tasks = [{"id": i, "data": {"sample_id": f"s{i}"}, "annotations": []}
             for i in range(1, 251)]
    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    listing, calls = _capped_listing(tasks, cap=100)
    client.sdk = SimpleNamespace(tasks=SimpleNamespace(list=listing))
    assert [t["id"] for t in client.list_tasks(1, page_size=500)] == list(range(1, 251))
    assert calls == [1, 2, 3, 4]  # 100 + 100 + 50, then the 404 past the end
    assert len(client.task_sample_ids(1, "sample_id")) == 250

    projects = [SimpleNamespace(id=i, title="other") for i in range(1, 121)]
    projects.append(SimpleNamespace(id=121, title="mine"))
    listing, calls = _capped_listing(projects, cap=30)
    client.sdk = SimpleNamespace(projects=SimpleNamespace(
        list=listing, get=lambda project_id, request_options: {"id": project_id,
                                                               "title": "mine"}))
    assert client.find_project("mine").id == 121


def test_serve_at_a_new_address_moves_its_earlier_backend_and_drops_its_webhook(caplog):
    # serve on :19391 then :19392: both stayed connected; Label Studio asked the first (dead)
    # one for predictions, and with both running every answer was recorded twice
    backends = [SimpleNamespace(id=1, url="http://h:19391", title="relabeler"),
                SimpleNamespace(id=2, url="http://other:9090", title="someone else's"),
                SimpleNamespace(id=4, url="http://h:19390", title="relabeler")]
    hooks = [SimpleNamespace(id=11, url="http://h:19391/webhook", project=5),
             SimpleNamespace(id=12, url="http://audit:80/hook", project=5),
             SimpleNamespace(id=13, url="http://h:19390/webhook", project=5)]
    created, updated = [], []

    def delete_backend(backend_id, *, request_options):
        backends[:] = [b for b in backends if b.id != backend_id]

    def delete_hook(hook_id, *, request_options):
        hooks[:] = [h for h in hooks if h.id != hook_id]

    def update(backend_id, *, url, project, title, request_options, **auth):
        updated.append((backend_id, url, auth))
        next(b for b in backends if b.id == backend_id).url = url

    def create(*, project, url, title, is_interactive, request_options, **auth):
        created.append(url)
        backends.append(SimpleNamespace(id=3, url=url, title=title))
        return backends[-1]

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    client.sdk = SimpleNamespace(
        ml=SimpleNamespace(list=lambda *, project, request_options: list(backends),
                           delete=delete_backend, create=create, update=update),
        webhooks=SimpleNamespace(list=lambda *, project, request_options: list(hooks),
                                 delete=delete_hook))
    # the first of relabeler's backends moves (its predictions stay), the other goes
    assert client.ensure_ml_backend(5, "http://h:19392", title="relabeler",
                                    basic_auth=("u", "p")) == 1
    assert sorted((b.id, b.url) for b in backends) == [(1, "http://h:19392"),
                                                       (2, "http://other:9090")]
    assert updated == [(1, "http://h:19392", {"auth_method": "BASIC_AUTH",
                                              "basic_auth_user": "u", "basic_auth_pass": "p"})]
    assert [h.id for h in hooks] == [12] and created == []  # another tool's webhook stays
    assert "backend at http://h:19391 (an earlier serve on another address) now points at "\
        "http://h:19392" in caplog.text
    assert "disconnected the 'relabeler' backend at http://h:19390" in caplog.text
    # connected again at the same address: nothing moved, dropped or made
    assert client.ensure_ml_backend(5, "http://h:19392", title="relabeler") == 1
    assert len(updated) == 1 and created == [] and len(backends) == 2


def test_the_projects_predictions_come_in_one_request_by_task_and_model_version():
    calls = []

    def listing(*, project, request_options):
        calls.append(project)
        return [SimpleNamespace(model_dump=lambda mode, d=d: d) for d in (
            {"id": 1, "task": 10, "model_version": "relabeler", "result": []},
            {"id": 2, "task": 10, "model_version": "other", "result": []},
            {"id": 3, "task": 11, "model_version": "relabeler", "result": [{"x": 1}]},
            {"id": 4, "task": 11, "model_version": "relabeler", "result": []})]

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    client.sdk = SimpleNamespace(predictions=SimpleNamespace(list=listing))
    held = client.project_predictions(7, "relabeler")
    assert calls == [7]
    assert {task: [p["id"] for p in ps] for task, ps in held.items()} == {10: [1], 11: [3, 4]}
