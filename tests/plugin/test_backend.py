"""The ML backend's HTTP handlers, in process (the live-server tests are in test_studio.py)."""

from __future__ import annotations

import inspect

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from relabeler.plugin.backend import SECRET_HEADER, create_app
from relabeler.plugin.events import read_events
from relabeler.plugin.labeling import build_labeling_config
from relabeler.plugin.tasks import SAMPLE_ID_FIELD
from tests.plugin.synthetic import CLASSES, make_run

SECRET = "s3cret-test"


@pytest.fixture
def run(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=60, n_acquire=0)
    with TestClient(create_app(store, secret=SECRET, top_spans=1)) as client:
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


def test_predict_gives_the_suggestion_and_top_spans_and_nothing_for_unknown_ids(run):
    store, client = run
    flipped, unknown = predict(client, "t0000", "nobody")
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
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 7, "task": 3}}
    ok = client.post("/webhook", json=event, headers={SECRET_HEADER: SECRET})
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}
    assert [(e["action"], e["payload"]) for e in read_events(store).events] == [
        ("ANNOTATION_CREATED", event)]
