import logging
import socket
from types import SimpleNamespace

import pytest

from relabeler.plugin.client import (
    StudioAuthError,
    StudioClient,
    StudioError,
    StudioUnavailableError,
)
from relabeler.plugin.tasks import batch_tasks
from tests.plugin.fake_studio import FakeStudio, real_client


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
    studio = FakeStudio(["ham", "spam"])
    studio.page_size_max = 100
    project_id = studio.add_project()
    task_ids = [studio.add_task(project_id, f"s{i}", "ham") for i in range(250)]
    client = real_client(studio)
    assert [t["id"] for t in client.list_tasks(project_id, page_size=500)] == task_ids
    assert studio.pages_served == 4  # 100 + 100 + 50, then the empty page after the last
    assert len(client.task_sample_ids(project_id, "sample_id")) == 250

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    projects = [SimpleNamespace(id=i, title="other") for i in range(1, 121)]
    projects.append(SimpleNamespace(id=121, title="mine"))
    listing, calls = _capped_listing(projects, cap=30)
    client.sdk = SimpleNamespace(projects=SimpleNamespace(
        list=listing, get=lambda project_id, request_options: {"id": project_id,
                                                               "title": "mine"}))
    assert client.find_project("mine").id == 121
    assert calls == [1, 2, 3, 4, 5, 6]  # 30 * 4 + 1, then the 404 past the end


@pytest.fixture
def answered() -> tuple[FakeStudio, int, list[int]]:
    """Six tasks, each answered (the third skipped), read two to a page."""
    studio = FakeStudio(["ham", "spam"])
    project_id = studio.add_project()
    task_ids = [studio.add_task(project_id, f"s{i}", "ham") for i in range(6)]
    for i, task_id in enumerate(task_ids):
        studio.annotate(task_id, None if i == 2 else "spam")
    return studio, project_id, task_ids


def test_a_task_that_leaves_the_listing_while_it_is_read_moves_no_other_past_a_page(answered):
    # paged by number, the answers of task 1 deleted after page 1 moved task 3 onto page 1
    # and page 2 began at task 4: task 3 was never read, and pull's watermark passed it
    studio, project_id, task_ids = answered
    client = real_client(studio)
    first = studio.tasks[task_ids[0]]["annotations"][0]["id"]
    studio.before_page = lambda served: served == 1 and studio.delete_annotation(first)
    listed = [t["id"] for t in client.list_tasks(project_id, annotated_only=True, page_size=2)]
    assert listed == task_ids
    # the answered tasks 2 + 2 + 1 (the first deleted after it was read) and an empty page,
    # the skipped one and an empty page
    assert studio.pages_served == 6

    # a later pull's listing (updated_after), and task 2 deleted after page 1
    studio.pages_served = 0
    studio.before_page = lambda served: served == 1 and studio.delete_task(task_ids[1])
    listed = client.list_tasks(project_id, updated_after="2026-01-01T00:00:00+00:00",
                               page_size=2)
    assert [t["id"] for t in listed] == task_ids

    # the listing of every task's data (push, re-rank; the server caps its 1000 a page), and
    # task 1 deleted after page 1
    studio.pages_served, studio.page_size_max = 0, 2
    studio.before_page = lambda served: served == 1 and studio.delete_task(task_ids[0])
    data, answered_ids = client.task_data_and_answered(project_id)
    assert list(data) == [task_ids[0], *task_ids[2:]]
    assert answered_ids == set(task_ids[2:])  # task 1's answer was deleted; 3 was skipped


def test_answered_tasks_above_an_id_are_answers_or_skips_and_above_it(answered):
    studio, project_id, task_ids = answered
    studio.add_task(project_id, "s6", "ham")  # not answered
    client = real_client(studio)
    listed = client.list_tasks(project_id, annotated_only=True, id_above=task_ids[1])
    assert [t["id"] for t in listed] == task_ids[2:]
    with pytest.raises(ValueError, match="updated_after"):
        next(client.list_tasks(project_id, annotated_only=True,
                               updated_after="2026-01-01T00:00:00+00:00"))


def test_answered_tasks_are_listed_where_the_server_drops_a_filters_child_filter(answered):
    """Label Studio 1.20 has no ``child_filter`` (1.22 has): "answered or skipped" as two
    filters joined by "or", each carrying the id filter, listed every answered task again
    from the first, and every pull stopped. Two listings merged by id need no child filter;
    a task both answered and skipped is listed once."""
    studio, project_id, task_ids = answered
    studio.child_filters = False
    studio.annotate(task_ids[2], "spam")  # skipped, then answered by another
    studio.add_task(project_id, "s6", "ham")  # not answered
    client = real_client(studio)
    listed = [t["id"] for t in client.list_tasks(project_id, annotated_only=True, page_size=2)]
    assert listed == task_ids
    listed = client.list_tasks(project_id, annotated_only=True, id_above=task_ids[1],
                               page_size=2)
    assert [t["id"] for t in listed] == task_ids[2:]


@pytest.mark.parametrize(("release", "warned"), [
    ("1.20.0", False), ("1.22.0", False), ("1.23.2", False), ("1.21.0", True),
    ("1.24.0", True), ("2.0.0.dev3", True), (None, True), ("next", True)])
def test_a_release_not_checked_is_named_in_a_warning(release, warned, caplog):
    from relabeler.plugin.connect import check_release

    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.connect"):
        check_release(release, "http://ls.example")
    assert ("relabeler was checked against 1.20.0, 1.22.0, 1.23.2" in caplog.text) == warned


@pytest.mark.parametrize("release", ["1.19.0", "1.14.0.post0", "0.9.1"])
def test_a_server_older_than_the_oldest_checked_release_is_refused(release):
    from relabeler.plugin.connect import check_release

    with pytest.raises(StudioError) as err:
        check_release(release, "http://ls.example")
    assert str(err.value) == (f"Label Studio {release} at http://ls.example is older than "
                              f"1.20.0, the oldest release relabeler was checked against "
                              f"(1.20.0, 1.22.0, 1.23.2): upgrade the server")


@pytest.mark.parametrize(("status", "body"), [
    (404, {"detail": "Not found."}), (502, "<html><body>Bad gateway</body></html>"),
    (403, {"detail": "You do not have permission to perform this action."}),
    (200, "<html>a login page</html>"), (400, {"detail": "bad"})])
def test_a_server_that_hides_its_release_is_warned_about_not_refused(status, body, caplog):
    """A proxy that hides /api/version (404), fails it (5xx) or answers it with a page: the
    release is unknown, which is a warning (every command refused before)."""
    from label_studio_sdk.core.api_error import ApiError

    from relabeler.plugin.connect import check_release

    def hidden(**kwargs):
        raise ApiError(status_code=status, body=body)

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    client.sdk = SimpleNamespace(versions=SimpleNamespace(get=hidden))
    assert client.server_release() is None
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.connect"):
        check_release(client.server_release(), client.shown_url)
    assert "does not say which release it runs (/api/version)" in caplog.text


def test_a_refused_token_or_an_unreachable_server_still_stops_at_the_release():
    from label_studio_sdk.core.api_error import ApiError

    def refused(**kwargs):
        raise ApiError(status_code=401, body={"detail": "Invalid token."})

    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    client.sdk = SimpleNamespace(versions=SimpleNamespace(get=refused))
    with pytest.raises(StudioAuthError, match="rejected the API token"):
        client.server_release()
    with pytest.raises(StudioUnavailableError, match="is unreachable"):
        StudioClient(f"http://127.0.0.1:{_closed_port()}", "t0ken", retries=0).server_release()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_release_that_is_no_number_is_named():
    import logging as logging_

    from relabeler.plugin.connect import check_release

    records = []
    handler = logging_.Handler()
    handler.emit = records.append
    logger = logging_.getLogger("relabeler.plugin.connect")
    logger.addHandler(handler)
    try:
        check_release("2.0", "http://ls.example")
    finally:
        logger.removeHandler(handler)
    (record,) = records
    assert record.getMessage() == (
        "Label Studio at http://ls.example says it runs '2.0', not a release number relabeler "
        "can compare: relabeler was checked against 1.20.0, 1.22.0, 1.23.2")


def test_each_server_is_asked_its_release_once_a_process(monkeypatch):
    from relabeler.config import StudioConfig
    from relabeler.plugin import connect

    asked = []
    monkeypatch.setattr(StudioClient, "server_release",
                        lambda self: asked.append(self.shown_url) or "1.19.0")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "t0ken")
    config = StudioConfig(url="http://ls-once.example")
    for _ in range(2):
        with pytest.raises(StudioError, match="older than 1.20.0"):
            connect.client_from_config(config)
    monkeypatch.setattr(StudioClient, "server_release",
                        lambda self: asked.append(self.shown_url) or "1.23.2")
    connect.client_from_config(config)
    connect.client_from_config(config)
    assert asked == ["http://ls-once.example"] * 3


def test_a_server_that_ignores_the_id_filter_stops_the_listing():
    # it would answer the same first page for ever
    tasks = [{"id": i, "data": {}} for i in range(1, 4)]
    client = StudioClient("http://127.0.0.1:1", "t0ken", retries=0)
    client.sdk = SimpleNamespace(tasks=SimpleNamespace(
        list=lambda *, page, page_size, request_options, **query: SimpleNamespace(
            items=tasks[:page_size])))
    with pytest.raises(StudioError, match="ignores the Data Manager's id filter"):
        list(client.list_tasks(1, page_size=2))


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


# ---------------------------------------------------------------------------------------------
# personal access tokens, proxies, HTTPS (the SDK over an httpx.MockTransport)

def _jwt(token_type: str, seconds: int) -> str:
    import time

    import jwt
    return jwt.encode({"token_type": token_type, "exp": int(time.time()) + seconds},
                      "a key of 32 bytes or more, not the server's", algorithm="HS256")


def _studio_at(answers, seen):
    """A mock transport: ``answers(request)`` answers each request; ``seen`` gets
    (method, path) of every one."""
    import httpx

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return answers(request)
    return httpx.MockTransport(handle)


NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
             "</body>\r\n</html>\r\n")


def test_a_personal_access_token_is_refreshed_under_the_sub_path_of_the_url():
    import httpx
    seen: list[tuple[str, str]] = []
    access = _jwt("access", 300)

    def answers(request):
        if request.url.path.endswith("/api/token/refresh/"):
            return httpx.Response(200, json={"access": access})
        assert request.headers["Authorization"] == f"Bearer {access}"
        return httpx.Response(200, json={"id": 1, "email": "a@b.c", "username": "a"})

    client = StudioClient("https://host/labelstudio", _jwt("refresh", 3600), retries=0,
                          transport=_studio_at(answers, seen))
    assert client.whoami()["email"] == "a@b.c"
    assert seen == [("POST", "/labelstudio/api/token/refresh/"),
                    ("GET", "/labelstudio/api/current-user/whoami")]


def test_an_expired_personal_access_token_names_its_variable():
    with pytest.raises(StudioAuthError) as info:
        StudioClient("http://127.0.0.1:1", _jwt("refresh", -60), token_source="MY_PAT")
    assert str(info.value) == (
        "the Label Studio token in MY_PAT cannot be used: API key has expired. Please obtain a "
        "new refresh token. Create a new Personal Access Token in Label Studio (Account & "
        "Settings)")


def test_a_proxy_error_page_on_the_token_refresh_is_retried_then_succeeds(caplog):
    import httpx
    seen: list[tuple[str, str]] = []
    refreshes = iter([httpx.Response(502, text=NGINX_502),
                      httpx.Response(200, json={"access": _jwt("access", 300)})])

    def answers(request):
        if request.url.path.endswith("/api/token/refresh/"):
            return next(refreshes)
        return httpx.Response(200, json={"id": 4, "title": "p", "label_config": "<View/>"})

    client = StudioClient("https://host/ls/", _jwt("refresh", 3600), retries=2, backoff=0.01,
                          transport=_studio_at(answers, seen))
    # not safe to repeat, yet retried: the refused refresh sent nothing
    project = client._call("create a project", client.sdk.projects.create,
                           safe_to_repeat=False, title="p")
    assert project.id == 4
    assert [path for _, path in seen] == ["/ls/api/token/refresh/"] * 2 + ["/ls/api/projects/"]
    assert "answered 502 to create a project; retrying" in caplog.text


def test_a_proxy_error_page_that_lasts_is_one_line_of_text():
    import httpx
    client = StudioClient("https://host/ls", "t0ken", retries=1, backoff=0.01,
                          transport=_studio_at(lambda r: httpx.Response(502, text=NGINX_502), []))
    with pytest.raises(StudioUnavailableError) as info:
        client.whoami()
    assert str(info.value) == (
        "cannot read the current user: Label Studio at https://host/ls answered 502 "
        "(2 attempts): 502 Bad Gateway 502 Bad Gateway nginx/1.22.1")
    assert info.value.maybe_applied is True


@pytest.mark.parametrize(("status", "detail", "says"), [
    (401, "Invalid token.", "rejected the API token (LABEL_STUDIO_API_KEY) while trying "
     "to read the current user: Invalid token. Label Studio 1.23 takes a Personal "
     "Access Token (Account & Settings)"),
    (403, "You do not have permission to perform this action.",
     "refused to read the current user: You do not have permission to perform this action."),
])
def test_a_refused_token_says_the_servers_reason(status, detail, says):
    import httpx
    client = StudioClient("http://host:8080", "legacy-t0ken", retries=3, backoff=0.01,
                          transport=_studio_at(
                              lambda r: httpx.Response(status, json={"detail": detail}), []))
    with pytest.raises(StudioAuthError) as info:
        client.whoami()
    assert says in str(info.value)
    assert "t0ken" not in str(info.value)


def test_a_backend_address_label_studio_may_not_call_says_what_to_do():
    import httpx
    seen: list[tuple[str, str]] = []

    def answers(request):
        if request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(403, json={
            "detail": "URL resolves to a reserved network address (block: 127.0.0.0/8)"})

    client = StudioClient("http://host:8080", "t0ken", retries=3, backoff=0.01,
                          transport=_studio_at(answers, seen))
    with pytest.raises(StudioAuthError) as info:
        client.ensure_ml_backend(3, "http://127.0.0.1:9090", title="relabeler")
    message = str(info.value)
    assert message.startswith(
        "Label Studio at http://host:8080 refused to connect ML backend http://127.0.0.1:9090 "
        "to project 3: URL resolves to a reserved network address (block: 127.0.0.0/8). ")
    assert "ML_BLOCK_LOCAL_IP=false" in message and "[studio] backend_url" in message
    assert "lacks permission" not in message
    assert seen.count(("POST", "/api/ml/")) == 1


def test_an_untrusted_certificate_is_not_retried_and_says_how_to_trust_it(caplog):
    import ssl

    import httpx

    def untrusted(request):
        error = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                             "verify failed: unable to get local issuer "
                                             "certificate")
        error.verify_message = "unable to get local issuer certificate"
        try:
            raise error
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc

    seen: list[tuple[str, str]] = []
    client = StudioClient("https://host/ls", "t0ken", retries=5, backoff=0.01,
                          transport=_studio_at(untrusted, seen))
    with pytest.raises(StudioError) as info:
        client.get_project(1)
    assert not isinstance(info.value, StudioUnavailableError)
    assert str(info.value) == (
        "cannot read project 1: the HTTPS certificate of https://host/ls is not trusted "
        "(unable to get local issuer certificate): give the certificate of the CA that signed "
        "it with [studio] ca_bundle or $REQUESTS_CA_BUNDLE (a PEM file)")
    assert len(seen) == 1 and "retrying" not in caplog.text


def test_the_ca_bundle_is_the_setting_else_requests_ca_bundle(monkeypatch, tmp_path):
    import certifi

    from relabeler.plugin.studio_errors import tls_verify as _verify
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    assert _verify("") is True
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    assert _verify("").cert_store_stats()["x509_ca"] > 10
    missing = tmp_path / "ca.pem"
    with pytest.raises(StudioError, match=r"^\[studio\] ca_bundle: cannot read CA certificates "
                       r"from '.*ca.pem'"):
        StudioClient("https://host", "t0ken", ca_bundle=str(missing))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(missing))
    with pytest.raises(StudioError, match=r"^\$REQUESTS_CA_BUNDLE: cannot read"):
        StudioClient("https://host", "t0ken")
    # a plain-HTTP server has no certificate: a stale variable in the shell does not stop it
    assert StudioClient("http://127.0.0.1:1", "t0ken").url == "http://127.0.0.1:1"
    with pytest.raises(StudioError, match=r"^\[studio\] ca_bundle: cannot read"):
        StudioClient("http://127.0.0.1:1", "t0ken", ca_bundle=str(missing))
