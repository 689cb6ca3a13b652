"""Push, pull and the ML backend against a real Label Studio server (see conftest.py)."""

from __future__ import annotations

import contextlib
import logging
import socket
import stat
import threading
import time
from types import SimpleNamespace

import httpx
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest
import uvicorn

from relabeler.cli import main
from relabeler.jobs.live_ranking import LiveRanking
from relabeler.plugin.backend import SECRET_HEADER, connect_backend, create_app
from relabeler.plugin.backend_auth import BasicAuth
from relabeler.plugin.client import StudioAuthError, StudioClient, StudioNotFoundError
from relabeler.plugin.events import append_event, read_events
from relabeler.plugin.labeling import DROP, NOT_SURE
from relabeler.plugin.pull import CORRECTIONS, UNMAPPED, pull
from relabeler.plugin.push import ACQUIRED, CONTROL, FLAGGED, PushError, push, read_manifest
from relabeler.plugin.rerank import Reranker, RerankWorker, read_reranks
from relabeler.plugin.server import TOKEN_FILE, StudioServerError, start_server
from relabeler.plugin.tasks import PredictionError
from relabeler.queue_plan import EVAL_AUDIT, plan_round, plan_settings, write_plan
from tests.plugin.live_run import make_live_run
from tests.plugin.synthetic import make_run

# the session's first test pays a cold `label-studio init` (up to 900 s) and a start (180 s)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture
def title(request) -> str:
    return f"{request.node.name.removeprefix('test_')[:30]} {time.time_ns() % 10**9}"


@pytest.fixture
def admin(studio) -> StudioClient:
    return StudioClient(studio.url, studio.token, retries=2, backoff=0.2)


def answer(choice: str | None = None, comment: str | None = None) -> dict:
    result = []
    if choice is not None:
        result.append({"from_name": "answer", "to_name": "text", "type": "choices",
                       "value": {"choices": [choice]}})
    if comment is not None:
        result.append({"from_name": "comment", "to_name": "text", "type": "textarea",
                       "value": {"text": [comment]}})
    return {"result": result}


def corrections(store) -> dict[str, SimpleNamespace]:
    return {r["id"]: SimpleNamespace(**r) for r in store.read_table(CORRECTIONS).to_pylist()}


def post_answer(http: httpx.Client, task_id: int, body: dict) -> dict:
    response = http.post(f"/api/tasks/{task_id}/annotations/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_server_says_its_release_and_the_client_checks_it(studio, admin, caplog,
                                                              monkeypatch):
    from relabeler.config import StudioConfig
    from relabeler.plugin import connect
    from relabeler.plugin.server import LABEL_STUDIO_VERSION, release_of

    assert admin.server_release() == release_of(studio.url) == LABEL_STUDIO_VERSION
    connect._CHECKED.discard(studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", studio.token)
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.connect"):
        client = connect.client_from_config(StudioConfig(url=studio.url))
    assert client.server_release() == LABEL_STUDIO_VERSION and caplog.text == ""
    assert studio.url in connect._CHECKED


def test_push_serves_highest_priority_first(studio, annotators, admin, tmp_path, title):
    store = make_run(str(tmp_path / "run"))
    result = push(store, admin, project_title=title, budget=200, batch_size=64)
    assert (result.new_flagged, result.new_controls, result.total_tasks) == (190, 10, 200)
    assert result.has_evidence and result.new_acquired == 8
    manifest = read_manifest(store)
    main = manifest[manifest["project_id"] == result.project_id]
    assert main["task_id"].notna().all() and main["task_id"].is_unique
    assert sorted(main["priority"]) == list(range(1000, 201_000, 1000))  # PRIORITY_STEP apart
    assert admin.get_project(result.project_id).task_count == 200
    # flagged tasks queue in rank order; import order is queue order
    flagged = main[main["source"] == FLAGGED].sort_values("priority")
    assert list(flagged["rank"]) == sorted(flagged["rank"]) == list(range(1, 191))
    by_priority = main.sort_values("priority")
    assert list(by_priority["task_id"]) == sorted(by_priority["task_id"])

    alice = studio.http(annotators["alice"])
    served = []
    for _ in range(15):
        task = alice.get(f"/api/projects/{result.project_id}/next").json()
        served.append(task["data"]["priority"])
        prediction = task["predictions"][0]
        choice = prediction["result"][0]["value"]["choices"][0]
        assert prediction["result"][0]["type"] == "choices"
        post_answer(alice, task["id"], answer(choice))
    assert served == list(range(1000, 16_000, 1000))  # a step apart (PRIORITY_STEP)

    views = studio.http().get("/api/dm/views/", params={"project": result.project_id}).json()
    (tab,) = [v["data"] for v in views if v["data"].get("title") == "Priority queue"]
    # a Number column: Label Studio on PostgreSQL sorts any other as text (10 before 2)
    assert (tab["ordering"], tab["columnsDisplayType"]) == (
        ["tasks:data.priority"], {"tasks:data.priority": "Number"})


def test_task_shows_suggestion_evidence_and_panel(studio, admin, tmp_path, title):
    store = make_run(str(tmp_path / "run"), n_train=60)
    result = push(store, admin, project_title=title, budget=10)
    manifest = read_manifest(store)
    first = manifest[(manifest["project_id"] == result.project_id)
                     & (manifest["priority"] == 1000)].iloc[0]
    task = studio.http().get(f"/api/tasks/{int(first['task_id'])}/").json()
    train = store.read_table("dataset/train.parquet").to_pandas().set_index("id")
    row = train.loc[first["id"]]
    assert task["data"]["text"] == row["text"] and task["data"]["given_label"] == row["label"]
    regions = [r for r in task["predictions"][0]["result"] if r["type"] == "labels"]
    assert regions and all(r["value"]["text"] == row["text"][r["value"]["start"]:
                                                             r["value"]["end"]]
                           for r in regions)
    assert task["predictions"][0]["result"][0]["value"]["choices"] == [row["true_label"]]
    assert "Given label:" in task["data"]["panel"] and "Similar training examples" in \
        task["data"]["panel"]


def test_push_twice_adds_nothing_and_resumes_without_duplicates(admin, tmp_path, title):
    store = make_run(str(tmp_path / "run"), n_acquire=0)
    first = push(store, admin, project_title=title, budget=100, batch_size=30)
    again = push(store, admin, project_title=title, budget=100)
    assert (again.new_flagged, again.new_controls, again.total_tasks) == (0, 0, 100)
    assert admin.get_project(first.project_id).task_count == 100

    # a push killed after sending a batch, before recording it: rows are pending
    manifest = read_manifest(store)
    manifest.loc[manifest.index[:7], ["task_id", "pushed_at"]] = None
    from relabeler.queue_plan import write_manifest

    write_manifest(store, manifest)
    resumed = push(store, admin, project_title=title, budget=100)
    assert resumed.new_flagged + resumed.new_controls == 0
    assert admin.get_project(first.project_id).task_count == 100
    assert read_manifest(store)["task_id"].notna().all()

    more = push(store, admin, project_title=title, budget=120)
    assert (more.new_flagged, more.new_controls, more.total_tasks) == (19, 1, 120)
    ids = admin.task_sample_ids(first.project_id, "sample_id")
    assert len(ids) == 120 == len(set(ids.values()))

    # another run whose manifest does not know the project (the default title is the run
    # directory's name, so two runs can share it): refused, nothing sent
    other = make_run(str(tmp_path / "other"), n_acquire=0)
    with pytest.raises(PushError, match=rf"project {first.project_id} .* already holds 120 "
                       r"tasks that this run did not send"):
        push(other, admin, project_title=title, budget=10)
    assert admin.get_project(first.project_id).task_count == 120
    assert read_manifest(other).empty


def test_eval_audit_tasks_go_to_their_own_project_and_pull_into_corrections(studio, admin,
                                                                             tmp_path, title):
    store = make_run(str(tmp_path / "run"), n_train=60, n_eval=20)
    result = push(store, admin, project_title=title[:30], budget=10, eval_audit_budget=5)
    assert result.new_eval == 5
    project = admin.get_project(result.eval_project_id)
    assert project.title == f"{title[:30]} (eval audit)" and project.task_count == 5
    manifest = read_manifest(store)
    audit = manifest[manifest["source"] == EVAL_AUDIT].sort_values("priority")
    assert audit["id"].tolist()[:4] == ["e000", "e005", "e010", "e015"]
    evaluation = store.read_table("dataset/eval.parquet").to_pandas().set_index("id")
    first = audit.iloc[0]
    http = studio.http()
    task = http.get(f"/api/tasks/{int(first['task_id'])}/").json()
    assert task["data"]["text"] == evaluation.at[first["id"], "text"]
    assert task["data"]["given_label"] == evaluation.at[first["id"], "label"]
    result_regions = task["predictions"][0]["result"]
    assert [r["type"] for r in result_regions] == ["choices"]  # no evidence regions
    assert result_regions[0]["value"]["choices"] == [evaluation.at[first["id"], "true_label"]]
    post_answer(http, int(first["task_id"]), answer(evaluation.at[first["id"], "true_label"]))
    pull(store, admin)
    row = corrections(store)[first["id"]]
    assert (row.source, row.action, row.old_label, row.new_label) == (
        EVAL_AUDIT, "relabel", evaluation.at[first["id"], "label"],
        evaluation.at[first["id"], "true_label"])


def test_a_prediction_outside_the_config_is_refused_before_sending(admin, tmp_path, title):
    store = make_run(str(tmp_path / "run"), n_train=40, bad_suggestion=True)
    with pytest.raises(PredictionError, match="bogus"):
        push(store, admin, project_title=title, budget=10)
    project = admin.find_project(title)
    assert project is not None and project.task_count == 0


def test_push_without_attributions_says_so(studio, admin, tmp_path, title, caplog):
    store = make_run(str(tmp_path / "run"), n_train=40, attributions=False, n_acquire=0)
    result = push(store, admin, project_title=title, budget=5)
    assert not result.has_evidence
    assert "no attributions.parquet" in caplog.text
    task_id = int(read_manifest(store)["task_id"].iloc[0])
    task = studio.http().get(f"/api/tasks/{task_id}/").json()
    assert "No evidence regions" in task["data"]["panel"]
    assert [r["type"] for r in task["predictions"][0]["result"]] == ["choices"]
    # `relabeler attribute` ran since: the next push gives the sent tasks their evidence
    attributed = make_run(str(tmp_path / "attributed"), n_train=40, n_acquire=0)
    store.write_bytes("attributions.parquet", attributed.read_bytes("attributions.parquet"))
    again = push(store, admin, project_title=title, budget=5)
    assert again.has_evidence and again.new_flagged + again.new_controls == 0
    for task_id in read_manifest(store)["task_id"]:
        task = studio.http().get(f"/api/tasks/{int(task_id)}/").json()
        assert "No evidence regions" not in task["data"]["panel"]
        assert [p["model_version"] for p in task["predictions"]] == ["relabeler"]
        assert "labels" in [r["type"] for r in task["predictions"][0]["result"]]


def test_push_stops_when_the_plan_outgrew_the_attributions(studio, admin, tmp_path, title):
    """attribute planned budget 10; a push asking for 20 would send tasks without evidence
    (a bare control among highlighted tasks is recognisable), so it sends nothing."""
    store = make_run(str(tmp_path / "run"), n_train=60, n_acquire=0)
    ranking = store.read_table("scores/suspects.parquet", columns=["id", "rank"]).to_pandas()
    train_ids = sorted(store.read_table("dataset/train.parquet").column("id").to_pylist())
    settings = plan_settings(10, 0.2, 0)
    plan = plan_round(ranking, train_ids, read_manifest(store),
                      pool_picks=ranking.iloc[:0], **settings)
    write_plan(store, plan, settings)
    attributions = store.read_table("attributions.parquet")
    keep = pa.compute.is_in(attributions.column("id"), value_set=pa.array(list(plan["id"])))
    store.write_table("attributions.parquet", attributions.filter(keep))

    with pytest.raises(PushError, match=r"of the 20 planned tasks have no evidence.*'budget': 10"):
        push(store, admin, project_title=title, budget=20, control_share=0.2)
    project = admin.find_project(title)
    assert project is not None and project.task_count == 0
    assert not read_manifest(store)["task_id"].notna().any()

    result = push(store, admin, project_title=title, budget=10, control_share=0.2)
    assert (result.new_flagged, result.new_controls) == (8, 2)
    sent = read_manifest(store)
    assert sorted(sent["id"]) == sorted(plan["id"])
    assert dict(zip(sent["id"], sent["priority"], strict=True)) == dict(
        zip(plan["id"], plan["position"], strict=True))


def test_answers_survive_a_restart_and_pull_into_corrections(studio, annotators, admin,
                                                            tmp_path, title):
    store = make_run(str(tmp_path / "run"))
    result = push(store, admin, project_title=title, budget=200)
    manifest = read_manifest(store)
    main = manifest[manifest["project_id"] == result.project_id].sort_values("priority")
    train = store.read_table("dataset/train.parquet").to_pandas().set_index("id")
    alice, bob, root = (studio.http(annotators["alice"]), studio.http(annotators["bob"]),
                        studio.http())
    flagged = main[main["source"] == FLAGGED]
    t = [(int(r.task_id), r.id, train.loc[r.id, "label"]) for r in flagged.head(8).itertuples()]
    other = {"neg": "pos", "pos": "neg"}
    post_answer(alice, t[0][0], answer(other[t[0][2]]))                       # relabel
    post_answer(alice, t[1][0], answer(t[1][2]))                              # keep
    post_answer(alice, t[2][0], answer(DROP))                                 # drop
    post_answer(alice, t[3][0], answer(NOT_SURE))                             # not sure
    post_answer(alice, t[4][0], {"result": [], "was_cancelled": True})        # skipped
    post_answer(alice, t[5][0], answer(other[t[5][2]]))                       # a tie ...
    bob_tie = post_answer(bob, t[5][0], answer(t[5][2]))                      # ... of two
    post_answer(alice, t[6][0], answer(other[t[6][2]]))                       # 2 of 3
    post_answer(bob, t[6][0], answer(other[t[6][2]]))
    post_answer(root, t[6][0], answer(t[6][2]))
    post_answer(alice, t[7][0], answer(other[t[7][2]], comment="an obvious typo"))
    control = main[main["source"] == CONTROL].iloc[0]
    post_answer(bob, int(control.task_id), answer(train.loc[control.id, "label"]))
    acquired = manifest[manifest["source"] == ACQUIRED].sort_values("priority").iloc[0]
    post_answer(alice, int(acquired.task_id), answer("pos"))

    studio.restart()  # nothing answered may be lost
    first = pull(store, admin)
    assert first.tasks_changed == 10 and first.unmapped == 0
    rows = corrections(store)
    assert len(rows) == 10

    def row(sample_id):
        return rows[sample_id]

    r = row(t[0][1])
    assert (r.action, r.old_label, r.new_label, r.agreement, r.source) == \
        ("relabel", t[0][2], other[t[0][2]], 1.0, FLAGGED)
    assert list(r.annotators) == ["alice@relabeler.local"] and r.n_annotations == 1
    assert (row(t[1][1]).action, row(t[1][1]).new_label) == ("keep", t[1][2])
    assert (row(t[2][1]).action, row(t[2][1]).new_label) == ("drop", None)
    assert (row(t[3][1]).action, row(t[3][1]).new_label) == ("unsure", None)
    assert (row(t[4][1]).action, row(t[4][1]).n_skipped, row(t[4][1]).n_annotations) == \
        ("unsure", 1, 1)
    tie = row(t[5][1])
    assert (tie.action, tie.needs_review, tie.agreement, tie.n_annotations) == \
        ("unsure", True, 0.5, 2)
    majority = row(t[6][1])
    assert (majority.action, majority.new_label, majority.needs_review) == \
        ("relabel", other[t[6][2]], False)
    assert majority.agreement == pytest.approx(2 / 3) and majority.n_annotations == 3
    assert list(row(t[7][1]).comments) == ["alice@relabeler.local: an obvious typo"]
    assert (row(control.id).action, row(control.id).source) == ("keep", CONTROL)
    acq = row(acquired.id)
    assert (acq.action, acq.old_label, acq.new_label, acq.source) == \
        ("relabel", None, "pos", ACQUIRED)
    assert all(r.updated_at is not None and r.via == "export" for r in rows.values())

    # incremental: nothing new, nothing recomputed; one changed answer, one task recomputed
    assert pull(store, admin).tasks_changed == 0
    time.sleep(1.1)
    patched = bob.patch(f"/api/annotations/{bob_tie['id']}/",
                        json=answer(other[t[5][2]]))
    assert patched.status_code == 200, patched.text
    third = pull(store, admin)
    assert third.tasks_changed == 1
    rows = corrections(store)
    resolved = rows[t[5][1]]
    assert (resolved.action, resolved.new_label, resolved.needs_review, len(rows)) == \
        ("relabel", other[t[5][2]], False, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BACKEND_AUTH = BasicAuth("relabeler", "backend-Pass-456")


@contextlib.contextmanager
def serving(app):
    """``app`` served on a free loopback port in a thread; yields its URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def backend(tmp_path):
    """The ML backend for a small run, served on a free loopback port in a thread."""
    store = make_run(str(tmp_path / "run"), n_train=60, n_acquire=0)
    with serving(create_app(store, secret="s3cret-test", auth=BACKEND_AUTH)) as url:
        yield store, url


def test_a_webhook_reaches_the_backend_and_is_recorded(studio, annotators, admin, backend,
                                                      title):
    store, url = backend
    result = push(store, admin, project_title=title, budget=10)
    connect_backend(admin, [result.project_id], url, secret="s3cret-test", auth=BACKEND_AUTH)
    hooks = studio.http().get("/api/webhooks/", params={"project": result.project_id}).json()
    # the secret alone: Label Studio shows a webhook's headers to every user of the
    # organization, and the backend's password must not be among them
    assert [(h["url"], h["headers"]) for h in hooks] == [
        (f"{url}/webhook", {SECRET_HEADER: "s3cret-test"})]
    assert BACKEND_AUTH.password not in str(hooks)

    task_id = int(read_manifest(store).sort_values("priority")["task_id"].iloc[0])
    created = post_answer(studio.http(annotators["alice"]), task_id, answer(NOT_SURE))
    deadline = time.monotonic() + 15
    events = []
    while time.monotonic() < deadline:
        events = [e for e in read_events(store).events
                  if e["action"] == "ANNOTATION_CREATED"]
        if events:
            break
        time.sleep(0.2)
    assert [e["payload"]["annotation"]["id"] for e in events] == [created["id"]]
    assert events[0]["payload"]["annotation"]["task"] == task_id

    refused = httpx.post(f"{url}/webhook", json={"action": "ANNOTATION_CREATED"})
    assert refused.status_code == 401
    assert len(read_events(store).events) == len(events)


def test_serve_at_a_new_address_takes_the_projects_backend_and_webhook_along(
        studio, admin, backend, title):
    # a second serve on another port left the first backend and webhook registered: Label
    # Studio asked the dead one for predictions, or every answer was recorded twice
    store, url = backend
    result = push(store, admin, project_title=title, budget=10)
    connect_backend(admin, [result.project_id], url, secret="s3cret-test", auth=BACKEND_AUTH)
    (first,) = studio.http().get("/api/ml/", params={"project": result.project_id}).json()
    with serving(create_app(store, secret="s3cret-test", auth=BACKEND_AUTH)) as moved:
        connect_backend(admin, [result.project_id], moved, secret="s3cret-test",
                        auth=BACKEND_AUTH)
        backends = studio.http().get("/api/ml/", params={"project": result.project_id}).json()
        hooks = studio.http().get("/api/webhooks/", params={"project": result.project_id}).json()
    assert [(b["id"], b["url"]) for b in backends] == [(first["id"], moved)]
    assert [h["url"] for h in hooks] == [f"{moved}/webhook"]


def test_pull_takes_no_answer_from_an_event_the_server_never_showed(studio, annotators, admin,
                                                                     backend, title):
    """Any user reads the webhook's secret in Label Studio and can post an event: an answer
    only an event knows of, never seen on the server by a pull, is not a correction."""
    store, _ = backend
    result = push(store, admin, project_title=title, budget=10)
    tasks = read_manifest(store).sort_values("priority")["task_id"]
    real_task, forged_task = int(tasks.iloc[0]), int(tasks.iloc[1])
    project = {"id": result.project_id,
               "label_config": admin.get_project(result.project_id).label_config}
    created = post_answer(studio.http(annotators["alice"]), real_task, answer(DROP))
    append_event(store, {"action": "ANNOTATION_CREATED", "project": project,
                         "annotation": created})
    append_event(store, {"action": "ANNOTATION_CREATED", "project": project,
                         "annotation": {"id": 987654, "task": forged_task, "completed_by": 1,
                                        "was_cancelled": False, **answer(DROP),
                                        "updated_at": "2026-01-01T00:00:00Z"}})
    pulled = pull(store, admin)
    assert (pulled.from_events_only, pulled.unconfirmed, pulled.unmapped) == (0, 1, 1)
    rows = store.read_table(CORRECTIONS).to_pandas()
    assert rows[["task_id", "action", "via"]].values.tolist() == [[real_task, "drop", "export"]]
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["task_id"], unmapped["annotation_id"]) == (forged_task, 987654)
    assert "no pull saw it on the server" in unmapped["reason"]


def test_a_class_added_in_label_studio_and_an_answer_deleted_unseen_on_the_real_server(
        studio, annotators, admin, tmp_path, title, caplog):
    """The config edited on the server after the push: an answer of the added class is set
    aside, the run's classes still count. An answer deleted with no webhook listening is
    dropped and kept as last shown in unmapped."""
    store = make_run(str(tmp_path / "run"))
    result = push(store, admin, project_title=title, budget=10)
    tasks = read_manifest(store).sort_values("priority")["task_id"].astype(int).tolist()
    alice = studio.http(annotators["alice"])
    deleted = post_answer(alice, tasks[0], answer("pos"))
    post_answer(alice, tasks[1], answer("neg"))
    assert pull(store, admin).corrections == 2
    config = admin.get_project(result.project_id).label_config
    admin.update_project(result.project_id, label_config=config.replace(
        '<Choice value="pos"/>', '<Choice value="pos"/>\n      <Choice value="promo"/>'))
    assert "promo" in admin.get_project(result.project_id).label_config
    promo = post_answer(alice, tasks[2], answer("promo"))
    post_answer(alice, tasks[3], answer("pos"))
    removed = alice.delete(f"/api/annotations/{deleted['id']}/")
    assert removed.status_code == 204, removed.text
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        pulled = pull(store, admin)
    assert "offers the classes ['neg', 'pos', 'promo'] where the run's are" in caplog.text
    assert (pulled.corrections, pulled.deleted, pulled.withdrawn, pulled.unmapped) == \
        (2, 1, 1, 2)
    rows = store.read_table(CORRECTIONS).to_pandas()
    assert sorted(rows["task_id"]) == sorted([tasks[1], tasks[3]])
    unmapped = {r["annotation_id"]: r["reason"] for r in store.read_table(UNMAPPED).to_pylist()}
    assert set(unmapped) == {deleted["id"], promo["id"]}
    assert unmapped[promo["id"]].startswith("answer 'promo' is not a class of the run")
    assert unmapped[deleted["id"]].startswith("the server showed it at an earlier pull")


def test_listings_two_tasks_a_page_lose_no_task_when_an_earlier_one_leaves_mid_listing(
        studio, annotators, admin, tmp_path, title, monkeypatch):
    """Pull reads two tasks a page, no webhook listening. After page 1 of the first pull, the
    first task's answer is deleted; after page 1 of the second, an admin deletes the second
    task. Paged by number, each time the third task (on the next page's boundary) was never
    read: its skip, then bob's answer."""
    store = make_run(str(tmp_path / "run"))
    result = push(store, admin, project_title=title, budget=10)
    manifest = read_manifest(store)
    manifest = manifest[manifest["project_id"] == result.project_id].set_index("task_id")
    tasks = sorted(manifest.index.astype(int))[:6]
    alice = studio.http(annotators["alice"])
    answers = [post_answer(alice, task_id, {"result": [], "was_cancelled": True} if i == 2
                           else answer("pos")) for i, task_id in enumerate(tasks[:5])]
    # answered or skipped, above an id: a listing of each, merged by id
    listed = admin.list_tasks(result.project_id, annotated_only=True, id_above=tasks[1],
                              page_size=2)
    assert [t["id"] for t in listed] == tasks[2:5]

    listing, pages = admin.sdk.tasks.list, []

    def then(action):
        def list_tasks(**kwargs):
            if kwargs["project"] == result.project_id:  # not the run's other projects
                if len(pages) == 1:
                    response = action()
                    assert response.status_code == 204, response.text
                pages.append(kwargs["page"])
            return listing(**kwargs)
        return list_tasks

    monkeypatch.setattr(admin.sdk.tasks, "list", then(
        lambda: alice.delete(f"/api/annotations/{answers[0]['id']}/")))
    pull(store, admin, page_size=2)
    # answered 2 + 2 (the skip is not among them), then the empty page; the skip, then the
    # empty page
    assert pages == [1, 1, 1, 1, 1]
    assert sorted(corrections(store)) == sorted(  # the first task's answer as page 1 read it
        manifest.loc[tasks[:5], "id"])

    bob = studio.http(annotators["bob"])
    for task_id in tasks[1:4]:  # each listed by the next pull, whatever its margin takes in
        post_answer(bob, task_id, answer("neg"))
    pages.clear()
    monkeypatch.setattr(admin.sdk.tasks, "list", then(
        lambda: studio.http(studio.token).delete(f"/api/tasks/{tasks[1]}/")))
    pulled = pull(store, admin, page_size=2)
    assert pulled.withdrawn == 1  # the first task's deleted answer
    rows = {r.task_id: r for r in corrections(store).values()}
    assert sorted(rows) == tasks[1:5]  # the deleted task's as page 1 read it
    both = ["alice@relabeler.local", "bob@relabeler.local"]
    assert [rows[t].annotators for t in tasks[1:5]] == [both, both, both,
                                                        ["alice@relabeler.local"]]


def test_label_studio_gets_predictions_with_basic_auth_and_nobody_else_does(studio, admin,
                                                                              backend, title):
    store, url = backend
    result = push(store, admin, project_title=title, budget=5)
    project = admin.get_project(result.project_id)
    connect_backend(admin, [project.id], url, secret="s3cret-test", auth=BACKEND_AUTH)
    connect_backend(admin, [project.id], url, secret="s3cret-test", auth=BACKEND_AUTH)  # again
    http = studio.http()
    (registered,) = http.get("/api/ml", params={"project": project.id}).json()
    assert (registered["url"], registered["auth_method"], registered["basic_auth_user"],
            registered["basic_auth_pass_is_set"]) == (url, "BASIC_AUTH", "relabeler", True)
    assert BACKEND_AUTH.password not in str(registered)  # write-only on the server

    # the pushed prediction of the first task is deleted, then Label Studio asks the backend
    first = read_manifest(store).sort_values("priority").iloc[0]
    task_id = int(first["task_id"])
    pushed = http.get(f"/api/tasks/{task_id}/").json()["predictions"][0]["result"]
    selected = {"selectedItems": {"all": False, "included": [task_id]}}
    for action in ("delete_tasks_predictions", "retrieve_tasks_predictions"):
        response = http.post("/api/dm/actions", params={"id": action, "project": project.id},
                             json=selected)
        assert response.status_code == 200, response.text
    (fetched,) = http.get(f"/api/tasks/{task_id}/").json()["predictions"]
    assert fetched["result"] == pushed and fetched["model_version"] == "relabeler"

    body = {"tasks": [{"id": task_id, "data": {"sample_id": str(first["id"])}}],
            "label_config": project.label_config, "project": f"{project.id}.0"}
    assert httpx.post(f"{url}/predict", json=body).status_code == 401
    assert httpx.post(f"{url}/setup", json={}).status_code == 401
    wrong = httpx.post(f"{url}/predict", json=body, auth=("relabeler", "guess"))
    assert wrong.status_code == 401
    direct = httpx.post(f"{url}/predict", json=body, auth=("relabeler", "backend-Pass-456"))
    assert direct.json()["results"][0]["result"] == pushed
    assert httpx.get(f"{url}/health").json()["status"] == "UP"


def test_studio_up_prints_where_the_token_is_not_the_token(studio, capsys):
    assert main(["studio", "up", "--data-dir", str(studio.data_dir), "-q"]) == 0
    out = capsys.readouterr().out
    token_file = studio.data_dir.resolve() / TOKEN_FILE
    assert f"API token: in {token_file} (mode 0600)" in out
    assert studio.token not in out and studio.password not in out
    assert token_file.read_text(encoding="utf-8") == studio.token + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # the line that says how to stop it names the data dir it was started with: the bare
    # command looks in the default one, finds nothing and leaves the server running
    assert f"stop it:   relabeler studio down --data-dir {studio.data_dir}\n" in out


def test_bad_token_and_missing_project_fail_clearly(studio, admin):
    with pytest.raises(StudioAuthError, match="rejected the API token"):
        StudioClient(studio.url, "not-a-token", retries=0).get_project(1)
    with pytest.raises(StudioNotFoundError, match="project 999999"):
        admin.get_project(999999)


def test_a_busy_port_is_refused_not_moved(studio, tmp_path):
    with pytest.raises(StudioServerError, match=f"port {studio.port} .* busy"):
        start_server(tmp_path / "unused", port=studio.port)


def test_a_reranked_queue_reorders_the_priority_view(studio, annotators, admin, tmp_path,
                                                    title):
    store = make_run(str(tmp_path / "run"), n_train=80, n_acquire=0)
    first = push(store, admin, project_title=title, budget=20, control_share=0.0)
    suspects = store.read_table("scores/suspects.parquet").to_pandas()
    suspects["rank"] = len(suspects) + 1 - suspects["rank"]  # the queue turned upside down
    # and the re-score changed the old top's suggestion: its pre-filled answer must follow
    old_top = suspects.sort_values("rank")["id"].iloc[-1]
    at = suspects.index[suspects["id"] == old_top][0]
    new_suggestion = next(c for c in ("pos", "neg") if c != suspects.at[at, "suggested_label"])
    suspects.at[at, "suggested_label"] = new_suggestion
    store.write_table("scores/suspects.parquet", pa.Table.from_pandas(
        suspects.sort_values("rank"), preserve_index=False))
    second = push(store, admin, project_title=title, budget=20, control_share=0.0)
    assert (second.new_flagged, second.total_tasks) == (20, 40)
    # every earlier task but one moved behind the new top: the new tasks take the plan's
    # values 1000..20000, and an earlier task held 20000 already, which two cannot share
    assert second.reprioritised == 19
    queue = read_manifest(store).sort_values("priority")
    rank = suspects.set_index("id")["rank"]
    assert queue["priority"].is_unique
    assert [rank[x] for x in queue["id"]] == sorted(rank[x] for x in queue["id"])
    old_task = int(read_manifest(store).set_index("id").at[old_top, "task_id"])
    predictions = studio.http().get("/api/predictions/", params={"task": old_task}).json()
    assert [p["model_version"] for p in predictions] == ["relabeler"]
    assert predictions[0]["result"][0]["value"]["choices"] == [new_suggestion]
    # the prediction as push builds it again is the one the server holds: nothing to do (a
    # re-rank that moves tasks does not replace their predictions every time)
    from relabeler.plugin.evidence import RunEvidence
    from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
    from relabeler.plugin.tasks import build_prediction

    (sample,) = RunEvidence.load(store).train_samples([old_top])
    rebuilt = build_prediction(sample, LabelingSpec.from_config(build_labeling_config(
        ["neg", "pos"])), top_spans=3)
    assert not admin.replace_prediction(old_task, rebuilt)

    manifest = read_manifest(store).set_index("task_id")
    top = suspects.sort_values("rank")["id"].iloc[0]
    views = studio.http().get("/api/dm/views/", params={"project": first.project_id}).json()
    (view_id,) = [v["id"] for v in views if v["data"].get("title") == "Priority queue"]
    task = studio.http(annotators["bob"]).get(f"/api/projects/{first.project_id}/next",
                                              params={"view": view_id}).json()
    assert (task["data"]["sample_id"], task["data"]["priority"]) == (top, 1000)
    assert manifest.loc[task["id"], "priority"] == 1000


def test_serve_reranks_waiting_tasks_as_people_answer(studio, annotators, admin, tmp_path,
                                                     title):
    store, config, frame = make_live_run(str(tmp_path / "run"))
    result = push(store, admin, project_title=title, budget=60, control_share=0.05,
                  acquire=False)
    project_id = result.project_id
    before = read_manifest(store).set_index("id")["priority"]
    rerank = Reranker(store, config, client=lambda: admin, ranking=LiveRanking.load)
    worker = RerankWorker(rerank, every=24, counts=rerank.counts).start()
    app = create_app(store, secret="s3cret-test", auth=BACKEND_AUTH, on_event=worker.notify)
    truth = frame.set_index("id")["true_label"]
    group = frame.set_index("id")["group"]
    views = studio.http().get("/api/dm/views/", params={"project": project_id}).json()
    (view_id,) = [v["id"] for v in views if v["data"].get("title") == "Priority queue"]
    alice = studio.http(annotators["alice"])
    answered = []
    # answered before serve listens (no webhook reaches it): the re-rank must not move them
    unheard = list(before.sort_values().index[-2:])
    manifest_tasks = read_manifest(store).set_index("id")["task_id"]
    for sample_id in unheard:
        post_answer(alice, int(manifest_tasks[sample_id]), answer(truth[sample_id]))
    with serving(app) as url:
        connect_backend(admin, [project_id], url, secret="s3cret-test", auth=BACKEND_AUTH)
        for _ in range(24):  # the queue as served, answered truthfully
            task = alice.get(f"/api/projects/{project_id}/next",
                             params={"view": view_id}).json()
            answered.append(task["data"]["sample_id"])
            post_answer(alice, task["id"], answer(truth[task["data"]["sample_id"]]))
        deadline = time.monotonic() + 120
        while read_reranks(store).empty and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.wait_idle(60)
    worker.stop()
    assert answered == list(before.sort_values().index[:24])  # in queue order

    (row,) = read_reranks(store).itertuples(index=False)
    corrected = sum(truth[x] != frame.set_index("id").loc[x, "label"] for x in answered)
    assert (row.answer_events, row.answered, row.corrected, row.waiting) == \
        (24, 26, corrected, 34)
    assert row.reprioritised > 10
    manifest = read_manifest(store).set_index("id")
    assert (manifest.loc[unheard, "priority"] == before[unheard]).all()
    on_server = {t["data"]["sample_id"]: t["data"]["priority"]
                 for t in admin.list_tasks(project_id)}
    assert on_server == manifest["priority"].to_dict()
    # the revealed flip lifts the rest of its cluster: the waiting S tasks move up the queue
    # (their places among the waiting tasks: a re-rank changes only the priorities it must)
    waiting = manifest.index[~manifest.index.isin(answered + unheard)]
    s_rows = [x for x in waiting if group[x] in ("S", "S-top")]

    def places(priority):
        return priority.loc[waiting].rank(method="first")

    assert places(manifest["priority"])[s_rows].mean() < places(before)[s_rows].mean() - 3
    flagged = manifest.loc[waiting]
    flagged = flagged[flagged["source"] == FLAGGED]
    assert group[flagged["priority"].idxmin()] in ("S", "S-top")
    # and the Priority queue serves the new order
    task = studio.http(annotators["bob"]).get(f"/api/projects/{project_id}/next",
                                              params={"view": view_id}).json()
    assert task["data"]["sample_id"] == manifest.loc[waiting, "priority"].idxmin()
