"""The ML backend's HTTP handlers, in process (the live-server tests are in test_studio.py)."""

from __future__ import annotations

import base64
import inspect
import json
import logging
import socket
import time

import pandas as pd
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from relabeler.cli import main
from relabeler.errors import ConfigError
from relabeler.plugin.backend import SECRET_HEADER, create_app
from relabeler.plugin.backend_auth import BasicAuth
from relabeler.plugin.client import StudioNotFoundError, StudioUnavailableError
from relabeler.plugin.events import read_events
from relabeler.plugin.evidence import RunInputError
from relabeler.plugin.labeling import build_labeling_config
from relabeler.plugin.tasks import SAMPLE_ID_FIELD
from relabeler.queue_plan import write_manifest
from tests.plugin.synthetic import CLASSES, make_run

SECRET = "s3cret-test"
AUTH = BasicAuth("relabeler", "pa55-w0rd")
MAX_BODY = 64 * 1024


#: the project the run's manifest records (webhook events of another are not kept)
PROJECT = 1


def record_project(store, project_id: int = PROJECT) -> None:
    write_manifest(store, pd.DataFrame({
        "id": ["t0000"], "task_id": [2], "project_id": [project_id], "rank": [1],
        "priority": [1], "source": ["flagged"],
        "pushed_at": [pd.Timestamp("2026-01-01", tz="UTC")]}))


@pytest.fixture
def run(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=60, n_acquire=0)
    record_project(store)
    app = create_app(store, secret=SECRET, auth=AUTH, top_spans=1, max_body_bytes=MAX_BODY)
    with TestClient(app, headers={"Authorization": AUTH.header()}) as client:
        yield store, client


def predict(client: TestClient, *sample_ids: str) -> list[dict]:
    tasks = [{"id": i, "data": {SAMPLE_ID_FIELD: sid}} for i, sid in enumerate(sample_ids)]
    response = client.post("/predict", json={"tasks": tasks,
                                             "label_config": build_labeling_config(CLASSES)})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def labels(prediction: dict) -> list[tuple[str, str]]:
    return [(r["type"], (r["value"].get("choices") or r["value"].get("labels"))[0])
            for r in prediction["result"]]


def test_handlers_are_plain_functions_run_in_the_thread_pool(run):
    _, client = run
    endpoints = {route.path: route.endpoint for route in client.app.routes
                 if route.path in ("/health", "/setup", "/predict", "/webhook")}
    assert len(endpoints) == 4
    assert not any(inspect.iscoroutinefunction(f) for f in endpoints.values())


def test_predict_gives_the_suggestion_and_top_spans_and_nothing_for_unknown_ids(run, caplog):
    store, client = run
    with caplog.at_level("INFO", logger="relabeler.plugin.backend"):
        flipped, unknown = predict(client, "t0000", "nobody")
    # the empty answer is said in the log: a task imported by hand gets no highlights
    assert "is no sample of this run (no sample_id relabeler knows): an empty prediction" in \
        caplog.text
    # t0000 is truly neg, labeled pos: the suggestion and one span per side (top_spans=1)
    assert labels(flipped) == [("choices", "neg"), ("labels", "Supports suggestion"),
                               ("labels", "Supports given label")]
    text = store.read_table("dataset/train.parquet").to_pandas().set_index("id").loc[
        "t0000", "text"]
    cue = flipped["result"][1]["value"]
    assert text[cue["start"]:cue["end"]] == cue["text"] and cue["text"] in {
        "awful", "dreadful", "boring"}
    assert unknown["result"] == []
    assert client.get("/health").json()["status"] == "UP"
    assert client.post("/setup", json={"project": "1.0"}).json() == {"model_version":
                                                                       "relabeler"}


def test_predict_serves_acquired_pool_tasks_and_eval_audit_tasks(tmp_path):
    # the "(acquisition)" project's tasks are pool rows of scores/acquire.parquet (p000-p003
    # here); the eval-audit project's are rows of scores/eval_suspects.parquet
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=4, n_eval=10)
    app = create_app(store, secret=SECRET, auth=AUTH, top_spans=1)
    with TestClient(app, headers={"Authorization": AUTH.header()}) as client:
        neg, pos, not_acquired, audit = predict(client, "p000", "p001", "p020", "e000")
    pool = store.read_table("dataset/pool.parquet").to_pandas().set_index("id")["text"]
    # a pool row has no given label: the model's class and the span that supports it
    for prediction, sid, label, cues in ((neg, "p000", "neg", {"awful", "dreadful", "boring"}),
                                         (pos, "p001", "pos", {"great", "wonderful", "superb"})):
        assert labels(prediction) == [("choices", label), ("labels", "Supports suggestion")]
        span = prediction["result"][1]["value"]
        assert pool[sid][span["start"]:span["end"]] == span["text"] and span["text"] in cues
    # a pool row the acquisition did not pick is no task of the run
    assert not_acquired["result"] == []
    # e000's eval label was flipped: the suggestion is its true class, with no evidence spans
    assert labels(audit) == [("choices", "neg")] and audit["score"] == pytest.approx(0.8)


def test_a_re_score_reaches_the_next_prediction(run):
    store, client = run
    (before,) = predict(client, "t0000")
    assert labels(before)[0] == ("choices", "neg")
    suspects = store.read_table("scores/suspects.parquet").to_pandas()
    at = suspects.index[suspects["id"] == "t0000"][0]
    suspects.loc[at, "suggested_label"] = "pos"  # the new scores keep its given label
    store.write_table("scores/suspects.parquet",
                      pa.Table.from_pandas(suspects, preserve_index=False))
    (after,) = predict(client, "t0000")
    assert labels(after) == [("choices", "pos"), ("labels", "Supports given label")]


def test_a_removed_attributions_file_drops_the_spans(run):
    store, client = run
    assert len(predict(client, "t0000")[0]["result"]) == 3
    store.remove("attributions.parquet")
    assert labels(predict(client, "t0000")[0]) == [("choices", "neg")]


def test_a_task_showing_another_text_than_its_sample_gets_no_prediction(run, caplog):
    store, client = run
    text = store.read_table("dataset/train.parquet").to_pandas().set_index("id").loc[
        "t0000", "text"]
    config = build_labeling_config(CLASSES)
    tasks = [{"id": 1, "data": {SAMPLE_ID_FIELD: "t0000", "text": text}},
             {"id": 2, "data": {SAMPLE_ID_FIELD: "t0000", "text": "completely other words"}}]
    same, other = client.post("/predict", json={"tasks": tasks, "label_config": config}
                              ).json()["results"]
    assert labels(same)[0] == ("choices", "neg") and len(same["result"]) == 3
    assert other == {"result": [], "model_version": "relabeler"}
    assert "task 2 shows another text than sample t0000" in caplog.text
    assert "is no sample of this run" not in caplog.text  # it is one, with another text


def test_a_span_that_does_not_fit_the_text_costs_only_that_span(run, caplog):
    store, client = run
    attributions = store.read_table("attributions.parquet").to_pandas()
    mine = attributions["id"] == "t0000"
    assert mine.any()
    attributions["spans"] = attributions["spans"].astype(object)
    first = attributions.index[mine][0]
    spans = [dict(span) for span in attributions.at[first, "spans"]]
    spans[0]["start"], spans[0]["end"] = 10_000, 10_005  # past the end of a rewritten text
    attributions.at[first, "spans"] = spans
    store.write_table("attributions.parquet", pa.Table.from_pandas(
        attributions, schema=store.read_table("attributions.parquet").schema,
        preserve_index=False))
    (prediction,) = predict(client, "t0000")
    assert labels(prediction)[0] == ("choices", "neg")  # the suggestion stays
    assert 1 <= len(prediction["result"]) < 3
    assert all(r["value"].get("start", 0) < 10_000 for r in prediction["result"])
    assert "a region left out" in caplog.text


def test_a_round_whose_version_is_gone_gets_503_and_odd_rounds_are_round_1(run):
    store, client = run
    config = build_labeling_config(CLASSES)
    odd = client.post("/predict", content=b'{"tasks": [{"id": 1, "data": {"sample_id": '
                      b'"t0000", "round": 1e400}}], "label_config": ' +
                      json.dumps(config).encode() + b"}")
    assert odd.status_code == 200 and labels(odd.json()["results"][0])[0] == ("choices", "neg")
    store.write_json("studio/rounds.json", {"rounds": [{"round": 2, "version": 9}]})
    gone = client.post("/predict", json={"tasks": [{"id": 1, "data": {
        SAMPLE_ID_FIELD: "t0000", "round": 2}}], "label_config": config})
    assert gone.status_code == 503 and "retrain/v9" in gone.json()["detail"]
    deep = client.post("/setup", content=b"[" * 5000 + b"]" * 5000)
    assert deep.status_code == 400
    assert deep.json() == {"detail": "the body is JSON nested too deeply to read"}


def test_predict_refuses_a_body_that_is_not_a_json_object(run):
    _, client = run
    response = client.post("/predict", content=b"[1, 2]")
    assert response.status_code == 400 and "not a JSON object" in response.text


def test_the_webhook_checks_the_secret_first_then_records_the_event(run):
    store, client = run
    assert client.post("/webhook", content=b"not json").status_code == 401
    wrong = client.post("/webhook", json={"action": "ANNOTATION_CREATED"},
                        headers={SECRET_HEADER: "guess"})
    assert wrong.status_code == 401
    bad = client.post("/webhook", content=b"not json", headers={SECRET_HEADER: SECRET})
    assert bad.status_code == 400
    assert read_events(store).events == []
    event = {"action": "ANNOTATION_CREATED", "project": {"id": PROJECT},
             "annotation": {"id": 7, "task": 3}}
    ok = client.post("/webhook", json=event, headers={SECRET_HEADER: SECRET})
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    assert [(e["action"], e["payload"]) for e in read_events(store).events] == [
        ("ANNOTATION_CREATED", event)]


# --- credentials, body limits, malformed bodies --------------------------------------------

def bare(client: TestClient, **headers: str) -> TestClient:
    """A client of the same app that sends only ``headers`` (no credentials by default)."""
    return TestClient(client.app, headers=headers)


def basic(username: str, password: str) -> str:
    return BasicAuth(username, password).header()


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": basic("relabeler", "wrong")},
    {"Authorization": basic("someone", "pa55-w0rd")},
    {"Authorization": basic("relabeler", "pa55-w0rd!")},
    {"Authorization": "Basic not-base64!"},
    {"Authorization": "Bearer pa55-w0rd"},
], ids=["none", "wrong-password", "wrong-user", "longer-password", "garbled", "other-scheme"])
def test_every_route_but_health_and_webhook_refuses_missing_or_wrong_credentials(run, headers):
    store, client = run
    anonymous = bare(client, **headers, **{SECRET_HEADER: SECRET})
    tasks = {"tasks": [{"id": 1, "data": {SAMPLE_ID_FIELD: "t0000"}}],
             "label_config": build_labeling_config(CLASSES)}
    for path, body in [("/setup", {"project": "1.0"}), ("/predict", tasks), ("/train", {})]:
        response = anonymous.post(path, json=body)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Basic"
        assert "pa55-w0rd" not in response.text
    assert read_events(store).events == []
    assert anonymous.get("/health").json()["status"] == "UP"
    assert anonymous.get("/openapi.json").status_code == 404


def test_credentials_are_checked_before_the_body_is_read(run):
    _, client = run
    response = bare(client).post("/predict", content=b"x" * (MAX_BODY + 1))
    assert response.status_code == 401


def test_the_webhook_needs_the_secret_and_only_the_secret(run):
    # Label Studio shows a webhook's headers to every user of the organization: the backend's
    # password must not be one of them, so the secret alone admits an event
    store, client = run
    event = {"action": "ANNOTATION_CREATED", "project": PROJECT,
             "annotation": {"id": 1, "task": 2}}
    assert client.post("/webhook", json=event).status_code == 401  # credentials, no secret
    assert bare(client).post("/webhook", json=event).status_code == 401
    assert bare(client, **{SECRET_HEADER: "guess"}).post("/webhook", json=event).status_code \
        == 401
    assert read_events(store).events == []
    assert bare(client, **{SECRET_HEADER: SECRET}).post("/webhook", json=event).status_code \
        == 200
    assert len(read_events(store).events) == 1


def test_the_webhook_keeps_only_annotation_events_of_the_runs_projects(run, caplog):
    """Anyone who reads the secret can post: an event pull never reads is not kept (it grew
    the log without bound), answered 200 so that Label Studio does not send it again."""
    store, client = run
    post = bare(client, **{SECRET_HEADER: SECRET}).post
    annotation = {"id": 1, "task": 2}
    with caplog.at_level(logging.DEBUG, logger="relabeler.plugin.backend"):
        other = post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": PROJECT},
                                       "junk": "x" * 1000})
        foreign = post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": 999},
                                         "annotation": annotation})
        nameless = post("/webhook", json={"action": "ANNOTATION_CREATED",
                                          "annotation": annotation})
    assert (other.status_code, other.json()) == (
        200, {"status": "ok", "detail": "not an annotation event: not recorded"})
    assert (foreign.status_code, foreign.json()) == (
        200, {"status": "ok", "detail": "project 999 is not one this run pushed to: not "
                                         "recorded"})
    assert nameless.status_code == 200 and "not recorded" in nameless.json()["detail"]
    assert read_events(store).events == []
    assert "webhook: 'PROJECT_UPDATED' is not an annotation event: not recorded" in caplog.text
    assert "webhook: ANNOTATION_CREATED of project 999, which studio/manifest.parquet does " \
        "not record: not recorded" in caplog.text
    # a project a later push adds counts as soon as the manifest records it
    assert post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": 5,
                                  "annotations": [{"id": 1}]}).json()["detail"]
    record_project(store, 5)
    assert post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": 5,
                                  "annotations": [{"id": 1}]}).json() == {"status": "ok"}
    assert [e["action"] for e in read_events(store).events] == ["ANNOTATIONS_DELETED"]


def test_label_studio_start_training_gets_told_to_run_next_and_records_nothing(run, caplog):
    store, client = run
    # Label Studio 1.23 posts it to /webhook with the backend's credentials and no secret;
    # a 401 there would put the backend into an error state
    response = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 1}})
    assert response.status_code == 200 and "relabeler next" in response.json()["detail"]
    assert client.post("/train", json={"project": "1.0"}).json()["status"] == "ok"
    assert read_events(store).events == []
    assert bare(client).post("/webhook", json={"action": "START_TRAINING"}).status_code == 401
    assert "relabeler next" in caplog.text


def test_credentials_are_compared_as_utf8_or_latin1_and_odd_headers_are_refused(tmp_path,
                                                                               monkeypatch):
    auth = BasicAuth("relabeler", "pässwort")
    latin1 = "Basic " + base64.b64encode("relabeler:pässwort".encode("latin-1")).decode()
    assert auth.accepts(auth.header()) and auth.accepts(latin1)  # requests sends latin-1
    assert not auth.accepts("Basic cmVsYWJlbGVyOnDkc3N3b3J0é")  # non-ASCII: no 500
    assert not auth.accepts(latin1.replace("Basic ", "Basic x"))
    monkeypatch.setenv("CREDS", "relabeler:pass€")
    with pytest.raises(ConfigError, match=r"\$CREDS: .*latin-1.*'€'"):
        BasicAuth.from_env("CREDS")
    monkeypatch.setenv("CREDS", "relabeler:pässwort")
    assert BasicAuth.from_env("CREDS") == auth


def test_a_body_over_the_limit_gets_413_with_or_without_a_declared_length(run):
    store, client = run
    big = b'{"tasks": [], "pad": "' + b"x" * MAX_BODY + b'"}'
    declared = client.post("/predict", content=big)
    assert declared.status_code == 413
    assert declared.json()["detail"] == f"the body is over the limit of {MAX_BODY} bytes"

    def chunks():  # sent chunked: no Content-Length to refuse it by
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    streamed = client.post("/webhook", content=chunks(), headers={SECRET_HEADER: SECRET})
    assert streamed.status_code == 413
    assert read_events(store).events == []
    just_fits = b'{"pad": "' + b"x" * (MAX_BODY - 11) + b'"}'
    assert len(just_fits) == MAX_BODY
    assert client.post("/setup", content=just_fits).status_code == 200


def test_a_webhook_body_over_one_mib_gets_413_where_other_routes_take_more(tmp_path):
    """Label Studio's annotation events are a few KiB, and each is kept in the run folder."""
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    record_project(store)
    with TestClient(create_app(store, secret=SECRET, auth=AUTH),
                    headers={"Authorization": AUTH.header(), SECRET_HEADER: SECRET}) as client:
        event = {"action": "ANNOTATION_CREATED", "project": {"id": PROJECT},
                 "annotation": {"id": 1, "task": 2}, "pad": ""}
        room = 1024 * 1024 - len(json.dumps(event).encode())
        fits = client.post("/webhook", content=json.dumps({**event, "pad": "x" * room}))
        over = client.post("/webhook", content=json.dumps({**event, "pad": "x" * (room + 1)}))
        setup = client.post("/setup", content=json.dumps({"pad": "x" * 2 * 1024 * 1024}))
    assert fits.status_code == 200
    assert (over.status_code, over.json()) == (
        413, {"detail": "the body is over the limit of 1048576 bytes"})
    assert setup.status_code == 200
    assert len(read_events(store).events) == 1


@pytest.mark.parametrize(("path", "body", "reason"), [
    ("/predict", b"{not json", "the body is not valid JSON: Expecting property name enclosed "
                               "in double quotes: line 1 column 2 (char 1)"),
    ("/predict", b'{"a": "\xc3("}', "the body is not UTF-8 text"),
    ("/predict", b"[1, 2]", "the body is an array, not a JSON object"),
    ("/predict", b'{"tasks": {"id": 1}}', "tasks must be a list of objects"),
    ("/predict", b'{"tasks": [1]}', "tasks must be a list of objects"),
    ("/predict", b'{"tasks": [], "label_config": 7}', "label_config must be a string"),
    ("/setup", b'{"project": ', "the body is not valid JSON: Expecting value: line 1 column 13 "
                                "(char 12)"),
    ("/webhook", b"null", "the body is null, not a JSON object"),
    # over Python's 4300-digit limit for reading an integer: a ValueError, not a JSON error
    ("/webhook", b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 1' + b"0" * 5000
     + b"}}", "the body holds a number too long to read"),
    ("/predict", b'{"tasks": [], "n": ' + b"9" * 4400 + b"}",
     "the body holds a number too long to read"),
])
def test_a_malformed_body_gets_400_with_a_one_line_reason(run, path, body, reason):
    _, client = run
    response = client.post(path, content=body, headers={SECRET_HEADER: SECRET})
    assert response.status_code == 400
    assert response.json() == {"detail": reason}


@pytest.mark.parametrize("event, reason", [
    ({"action": "ANNOTATION_UPDATED", "annotation": ["x"]},
     "ANNOTATION_UPDATED: `annotation` is an array, not an object"),
    ({"action": "ANNOTATIONS_DELETED", "annotations": 7},
     "ANNOTATIONS_DELETED: `annotations` is a number, not an array"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": "1", "task": 2}},
     "ANNOTATION_CREATED: `annotation.id` is a string, not an integer"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "result": [{"value": 3}]}},
     "ANNOTATION_CREATED: `annotation.result[0].value` is a number, not an object"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "completed_by": "eve"}},
     "ANNOTATION_CREATED: `annotation.completed_by` is a string that is not a user id"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "updated_at": "soon"}},
     "ANNOTATION_CREATED: `annotation.updated_at` is a string that is not a timestamp"),
    ({"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": 5},
      "annotation": {"id": 1}},
     "ANNOTATION_CREATED: `project.label_config` is a number, not a string"),
    # an id past int64: recorded, every later pull stopped when it wrote it
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 2**64 + 1, "task": 2}},
     "ANNOTATION_CREATED: `annotation.id` is a number outside the ids' range (an integer from "
     "0 to 2**63-1)"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": -1}},
     "ANNOTATION_CREATED: `annotation.id` is a number outside the ids' range (an integer from "
     "0 to 2**63-1)"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 2**63}},
     "ANNOTATION_CREATED: `annotation.task` is a number outside the ids' range (an integer "
     "from 0 to 2**63-1)"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}, "task": {"id": 2**63}},
     "ANNOTATION_CREATED: `task.id` is a number outside the ids' range (an integer from 0 to "
     "2**63-1)"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": "2"}},
     "ANNOTATION_CREATED: `annotation.task` is a string, not an object or an id"),
    ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "completed_by": 2**63}},
     "ANNOTATION_CREATED: `annotation.completed_by` is a number that is not a user id"),
    ({"action": "ANNOTATION_CREATED", "project": {"id": 2**64}, "annotation": {"id": 1}},
     "ANNOTATION_CREATED: `project.id` is a number outside the ids' range (an integer from 0 "
     "to 2**63-1)"),
    ({"action": "ANNOTATIONS_DELETED", "project": 2**64, "annotations": []},
     "ANNOTATIONS_DELETED: `project` is a number outside the ids' range (an integer from 0 to "
     "2**63-1)"),
    ({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": 2**64}]},
     "ANNOTATIONS_DELETED: `annotations[1].id` is a number outside the ids' range (an integer "
     "from 0 to 2**63-1)"),
])
def test_an_annotation_event_of_another_shape_gets_400_naming_what_is_wrong(run, event,
                                                                             reason):
    """Recorded, it would stop every later pull and re-rank (or be skipped by each): refused."""
    store, client = run
    response = client.post("/webhook", json=event, headers={SECRET_HEADER: SECRET})
    assert (response.status_code, response.json()) == (400, {"detail": reason})
    assert read_events(store).events == []
    label_studio_shaped = {"action": "ANNOTATION_CREATED", "project": {"id": 1, "title": "p"},
                           "task": {"id": 2}, "annotation": {
                               "id": 3, "task": 2, "completed_by": 1, "was_cancelled": False,
                               "created_at": "2026-01-01T10:00:00.123456Z",
                               "updated_at": "2026-01-01T10:00:00.123456Z", "result": [
                                   {"from_name": "answer", "type": "choices",
                                    "value": {"choices": ["neg"]}},
                                   {"from_name": "evidence", "type": "labels", "value": {
                                       "start": 0, "end": 4, "text": "good",
                                       "labels": ["Supports suggestion"]}},
                                   {"from_name": "comment", "type": "textarea",
                                    "value": {"text": ["why"]}}]}}
    assert client.post("/webhook", json=label_studio_shaped,
                       headers={SECRET_HEADER: SECRET}).status_code == 200
    assert len(read_events(store).events) == 1


def test_a_task_whose_data_is_not_an_object_gets_an_empty_prediction(run):
    _, client = run
    response = client.post("/predict", json={"tasks": [{"id": 1, "data": ["t0000"]}],
                                             "label_config": build_labeling_config(CLASSES)})
    assert response.status_code == 200
    assert response.json()["results"] == [{"result": [], "model_version": "relabeler"}]


def test_basic_auth_from_the_environment(monkeypatch):
    monkeypatch.setenv("BACKEND_CREDS", "studio:pa:ss")
    assert BasicAuth.from_env("BACKEND_CREDS") == BasicAuth("studio", "pa:ss")
    assert "pa:ss" not in repr(BasicAuth.from_env("BACKEND_CREDS"))
    monkeypatch.setenv("BACKEND_CREDS", "only-a-password")
    with pytest.raises(ConfigError) as failure:
        BasicAuth.from_env("BACKEND_CREDS")
    assert str(failure.value) == "$BACKEND_CREDS must hold `user:password`, both non-empty"
    monkeypatch.delenv("BACKEND_CREDS")
    assert BasicAuth.from_env("BACKEND_CREDS") is None
    fresh = BasicAuth.generate()
    assert fresh.username == "relabeler" and len(fresh.password) >= 32
    assert fresh.accepts(fresh.header()) and not fresh.accepts(BasicAuth.generate().header())


# --- `relabeler serve`: what stops it ------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_cli(run_dir: str, *args: str) -> list[str]:
    return ["serve", "--run", run_dir, "--port", str(free_port()), "-q", *args]


@pytest.mark.parametrize(("remove", "named"), [
    ("scores/suspects.parquet", "scores/suspects.parquet is missing in {run}; run `relabeler "
                                "score` first"),
    ("model/labels.json", "model/labels.json is missing in {run}; run `relabeler train` first"),
    ("dataset/train.parquet", "dataset/train.parquet is missing in {run}; run `relabeler data` "
                              "first"),
])
def test_serve_refuses_an_unscored_run_naming_the_artifact_and_the_stage(tmp_path, capsys,
                                                                        remove, named):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    store.remove(remove)
    assert main(serve_cli(store.uri)) == 2
    err = capsys.readouterr().err
    assert err == (f"relabeler: error: serve needs a scored run: "
                   f"{named.format(run=store.uri)}\n")
    with pytest.raises(RunInputError):
        create_app(store, secret=SECRET, auth=AUTH)


def test_serve_exits_non_zero_when_label_studio_cannot_be_reached(tmp_path, capsys, caplog,
                                                                  monkeypatch):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    write_manifest(store, pd.DataFrame({
        "id": ["t0000"], "task_id": [1], "project_id": [3], "rank": [1], "priority": [1],
        "source": ["flagged"], "pushed_at": [pd.Timestamp("2026-01-01", tz="UTC")]}))
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "t0ken-never-shown")
    studio_url = f"http://admin:hunter2@127.0.0.1:{free_port()}"
    with caplog.at_level(logging.DEBUG):
        code = main(serve_cli(store.uri, "--url", studio_url, "--set", "studio.retries=0"))
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("relabeler: error: serve: connecting the backend to Label Studio "
                          "failed: cannot read the server's version: Label Studio at "
                          "http://admin:***@127.0.0.1:")
    assert "unreachable" in err and err.count("\n") == 1
    for secret in ("hunter2", "t0ken-never-shown"):
        assert secret not in err and secret not in caplog.text


def test_serve_exits_non_zero_when_its_port_is_taken(tmp_path, capsys):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--run", store.uri, "--port", str(port), "--no-register", "-q"])
    assert code == 2
    # uvicorn has logged its reason (address already in use) above
    assert capsys.readouterr().err.endswith(f"\nrelabeler: error: serve: cannot listen on "
                                       f"127.0.0.1:{port} (in use, or not an address of this "
                                       f"machine); pick another with --host/--port\n")


def test_serve_refuses_a_backend_url_that_carries_credentials(tmp_path, capsys):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    code = main(serve_cli(store.uri, "--backend-url", "http://u:s3cret@10.0.0.5:9090"))
    assert code == 2
    err = capsys.readouterr().err
    assert "'http://u:***@10.0.0.5:9090' carries credentials" in err and "s3cret" not in err


class _Studio:
    """The two calls connect_backend makes; ``gone`` projects answer as deleted ones do."""

    shown_url = "http://studio.invalid"

    def __init__(self, gone: set[int], data: dict[int, dict] | None = None):
        self.gone, self.connected, self.data = gone, [], data or {}

    def task_data(self, project_id):
        if project_id in self.gone:
            raise StudioNotFoundError(f"cannot list tasks of project {project_id}: not found")
        return {task: sample for task, sample in self.data.items()}

    def ensure_ml_backend(self, project_id, url, **kwargs):
        if project_id in self.gone:
            raise StudioNotFoundError(f"cannot list ML backends of project {project_id}: not "
                                      f"found on http://studio.invalid (was it deleted?)")

    def ensure_webhook(self, project_id, url, **kwargs):
        self.connected.append(project_id)


def _serve_started(store, monkeypatch, studio: _Studio) -> None:
    """Run serve's start-up hook (registration) without serving."""
    from relabeler.config import load_config
    from relabeler.plugin import backend, connect

    started = []
    monkeypatch.setattr(backend, "serve", lambda store, **kw: started.append(kw["on_started"]))
    monkeypatch.setattr(connect, "client_from_config", lambda studio_config: studio)
    monkeypatch.setenv("RELABELER_WEBHOOK_SECRET", "s3cret")
    config = load_config(None)
    config.loop.rerank_every = 0
    backend.run_serve(store, config)
    started[0]()


def _pushed(store, projects: dict[int, str]) -> None:
    write_manifest(store, pd.DataFrame({
        "id": [f"t{i:04d}" for i in range(len(projects))], "task_id": range(1, len(projects) + 1),
        "project_id": list(projects), "rank": range(1, len(projects) + 1),
        "priority": range(1, len(projects) + 1), "source": list(projects.values()),
        "pushed_at": pd.Timestamp("2026-01-01", tz="UTC")}))


def test_serve_goes_on_without_a_side_project_deleted_in_label_studio(tmp_path, monkeypatch,
                                                                      caplog):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    _pushed(store, {2: "flagged", 3: "acquired", 4: "eval_audit"})
    studio = _Studio(gone={3, 4})
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.backend"):
        _serve_started(store, monkeypatch, studio)
    assert studio.connected == [2]
    assert "serve: project 3 (acquired tasks) is gone from Label Studio; serving without it" \
        in caplog.text
    assert "serve: project 4 (eval_audit tasks) is gone" in caplog.text


def test_serve_registers_nothing_on_a_project_of_another_run(tmp_path, monkeypatch):
    # a server this run did not push to, whose project 2 holds another run's task 1: no
    # backend or webhook of this run's goes there
    from relabeler.errors import PluginError

    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    _pushed(store, {2: "flagged"})
    studio = _Studio(gone=set(), data={1: {"sample_id": "s0158"}})
    with pytest.raises(PluginError, match=r"Label Studio project 2 at http://studio.invalid is "
                                          r"not the one this run pushed to: its task 1 holds "
                                          r"sample 's0158', where studio/manifest.parquet "
                                          r"records sample 't0000'.*serve registered nothing"):
        _serve_started(store, monkeypatch, studio)
    assert studio.connected == []
    studio.data = {1: {"sample_id": "t0000"}}  # this run's own project
    _serve_started(store, monkeypatch, studio)
    assert studio.connected == [2]


def test_serve_stops_when_the_review_project_was_deleted(tmp_path, monkeypatch):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    _pushed(store, {2: "flagged", 3: "acquired"})
    with pytest.raises(StudioNotFoundError, match="ML backends of project 2"):
        _serve_started(store, monkeypatch, _Studio(gone={2}))


def _connector(store, studio, every: float = 30.0):
    from relabeler.errors import PluginError
    from relabeler.plugin.backend_auth import BasicAuth
    from relabeler.plugin.serve_projects import ProjectConnector

    return ProjectConnector(store, lambda: studio, "http://serve.invalid:9090", secret="s",
                            auth=BasicAuth("relabeler", "pw"), every=every, error=PluginError)


class _CountingStudio(_Studio):
    def __init__(self, *args, fail_first: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.listed, self.fail_first = [], fail_first

    def task_data(self, project_id):
        self.listed.append(project_id)
        if len(self.listed) <= self.fail_first:
            raise StudioUnavailableError("cannot list tasks: Label Studio restarts")
        return super().task_data(project_id)


def test_serve_connects_itself_to_the_projects_pushed_after_it_started(tmp_path):
    """A serve started before the first push (a Deployment in a cluster), and a project a
    round or a pull makes while it runs (eval audit, second opinions): each is connected once,
    after its tasks are checked to be this run's; an unchanged manifest costs no call."""
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    studio = _CountingStudio(gone=set(), data={1: {"sample_id": "t0000"}})
    connector = _connector(store, studio)
    assert connector.connect_new() == [] and studio.connected == []   # nothing pushed yet
    _pushed(store, {2: "flagged"})
    assert connector.connect_new() == [2] and studio.connected == [2]
    assert connector.connect_new() == [] and studio.listed == [2]     # no call at all
    _pushed(store, {2: "flagged", 5: "second_opinion", 6: "eval_audit"})
    assert connector.connect_new() == [5, 6]
    assert studio.connected == [2, 5, 6] and studio.listed == [2, 5, 6]
    _pushed(store, {2: "flagged", 5: "second_opinion", 6: "eval_audit"})  # rewritten, the same
    assert connector.connect_new() == [] and studio.connected == [2, 5, 6]


def test_serve_started_before_the_first_push_connects_once_it_is_made(tmp_path, monkeypatch,
                                                                     caplog):
    import threading

    from relabeler.config import load_config
    from relabeler.plugin import backend, connect, serve_projects

    monkeypatch.setattr(serve_projects, "WATCH_EVERY_S", 0.02)
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    studio = _Studio(gone=set())
    stopped = threading.Event()

    def serving(store, **kw) -> None:  # serves until told to stop; the hook runs meanwhile
        kw["on_started"]()
        stopped.wait(10)

    monkeypatch.setattr(backend, "serve", serving)
    monkeypatch.setattr(connect, "client_from_config", lambda studio_config: studio)
    monkeypatch.setenv("RELABELER_WEBHOOK_SECRET", "s3cret")
    config = load_config(None)
    config.loop.rerank_every = 0
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.backend"):
        serve = threading.Thread(target=backend.run_serve, args=(store, config))
        serve.start()
        try:
            deadline = time.monotonic() + 10
            while "nothing pushed yet" not in caplog.text:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert studio.connected == []
            _pushed(store, {2: "flagged"})
            while studio.connected != [2]:
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            stopped.set()
            serve.join(10)
    assert "serve: nothing pushed yet; the backend connects itself to the projects " \
           "`relabeler push` makes (it looks every 0 s)" in caplog.text
    assert not [t for t in threading.enumerate() if t.name == "relabeler-projects"]


def test_the_watch_retries_a_failed_connection_and_stops_with_serve(tmp_path, caplog):
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    studio = _CountingStudio(gone=set(), fail_first=1)
    connector = _connector(store, studio, every=0.02)
    with caplog.at_level(logging.ERROR, logger="relabeler.plugin.serve_projects"):
        connector.start()
        _pushed(store, {2: "flagged", 3: "acquired"})
        deadline = time.monotonic() + 10
        while studio.connected != [3, 2]:
            assert time.monotonic() < deadline, studio.listed
            time.sleep(0.01)
        connector.stop()
    assert not connector._thread.is_alive()
    assert "serve: connecting the backend to project 2 failed; trying again" in caplog.text
    # 2 failed, 3 was connected all the same; the next look tried 2 alone
    assert studio.listed == [2, 3, 2]


def test_a_project_that_cannot_be_connected_keeps_no_other_from_it(tmp_path, caplog):
    """A new review project deleted in Label Studio failed every look, and the eval-audit
    project made with it never got its webhook."""
    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    studio = _CountingStudio(gone={2})
    connector = _connector(store, studio)
    _pushed(store, {2: "flagged", 3: "eval_audit"})
    with caplog.at_level(logging.ERROR, logger="relabeler.plugin.serve_projects"):
        assert connector.connect_new(each=True) == [3]
    assert studio.connected == [3] and connector.connected == {3}
    (record,) = [r for r in caplog.records if "project 2 failed" in r.getMessage()]
    assert record.exc_info is None and "cannot list ML backends of project 2" in \
        record.getMessage()  # one line a look, not a traceback every 30 s
    assert connector.connect_new(each=True) == []  # 2 tried again, 3 not again
    assert studio.listed.count(3) == 1 and studio.connected == [3]
    studio.gone = set()                            # back (a server that was restoring)
    assert connector.connect_new(each=True) == [2] and studio.connected == [3, 2]
    with pytest.raises(StudioNotFoundError):       # at start, the first failure stops serve
        _connector(store, _Studio(gone={2})).connect_new()


def test_the_watch_needs_a_positive_interval(tmp_path):
    with pytest.raises(ValueError, match="every must be > 0 seconds, got 0"):
        _connector(make_run(str(tmp_path / "run"), n_train=20, n_acquire=0), _Studio(set()),
                   every=0)


@pytest.mark.parametrize(("secret", "shown"), [
    ("s\u20accret", "'\u20ac'"), (" secret", "' '"), ("secret\n", "'\\n'"), ("secret ", "' '"),
    ("se\tcret", "'\\t'")])
def test_serve_refuses_a_webhook_secret_no_header_can_carry(tmp_path, capsys, monkeypatch,
                                                            secret, shown):
    from relabeler.plugin import backend

    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    monkeypatch.setattr(backend, "serve", lambda store, **kw: None)  # it never gets there
    monkeypatch.setenv("RELABELER_WEBHOOK_SECRET", secret)
    assert main(serve_cli(store.uri, "--no-register")) == 2
    assert capsys.readouterr().err == (
        f"relabeler: error: $RELABELER_WEBHOOK_SECRET: the webhook secret must be visible "
        f"ASCII characters only (letters, digits, punctuation), not {shown}: Label Studio "
        f"sends it as an HTTP header, which cannot carry that, so no webhook would ever "
        f"match\n")


def test_serve_without_registration_or_a_secret_warns_that_every_event_would_be_lost(
        tmp_path, monkeypatch, caplog):
    from relabeler.config import load_config
    from relabeler.plugin import backend

    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    secrets_used = []
    monkeypatch.setattr(backend, "serve", lambda store, **kw: secrets_used.append(kw["secret"]))
    monkeypatch.delenv("RELABELER_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("RELABELER_BACKEND_CREDENTIALS", "relabeler:pa55")
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.backend"):
        backend.run_serve(store, load_config(None), register=False)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "serve: $RELABELER_WEBHOOK_SECRET is not set, so this process made a secret of its own "
        "that no webhook set up by hand can carry: every webhook event will be refused (401) "
        "and lost. Set it, and put the same value in the webhook's X-Relabeler-Secret header")
    monkeypatch.setenv("RELABELER_WEBHOOK_SECRET", "!Visible~ASCII-0k")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.backend"):
        backend.run_serve(store, load_config(None), register=False)
    assert caplog.records == [] and secrets_used[-1] == "!Visible~ASCII-0k"


def test_ctrl_c_stops_serve_quietly_with_exit_code_0(tmp_path, capsys, monkeypatch):
    """Ctrl-C is the documented way to stop serve (uvicorn raises it once it has shut down)."""
    from relabeler.plugin import backend

    def interrupted(store, **kwargs):
        raise KeyboardInterrupt

    store = make_run(str(tmp_path / "run"), n_train=20, n_acquire=0)
    monkeypatch.setattr(backend, "serve", interrupted)
    monkeypatch.setenv("RELABELER_WEBHOOK_SECRET", "s3cret")
    assert main(serve_cli(store.uri, "--no-register")) == 0
    assert capsys.readouterr().err == ""
