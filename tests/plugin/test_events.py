import json

import pandas as pd

from relabeler.plugin.events import append_event, read_events
from tests.plugin.synthetic import make_run


def test_events_file_is_append_only_jsonl(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    append_event(store, {"action": "ANNOTATION_UPDATED", "annotation": {"id": 1}})
    (artifact,) = store.list("studio/events")
    lines = store.read_bytes(artifact).decode().splitlines()
    assert [json.loads(x)["action"] for x in lines] == ["ANNOTATION_CREATED",
                                                        "ANNOTATION_UPDATED"]
    log = read_events(store, seen={artifact: 1})
    assert [e["action"] for e in log.new_events()] == ["ANNOTATION_UPDATED"]
    assert pd.Timestamp(json.loads(lines[0])["received_at"]).tzinfo is not None


def test_an_event_after_a_cut_short_line_is_kept_and_a_lone_surrogate_is_recorded(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    artifact = append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    with open(store.local_path(artifact), "ab") as f:
        f.write(b'{"received_at":"2026-01-01","action":"ANNO')  # a write a full disk cut
    append_event(store, {"action": "ANNOTATION_UPDATED", "annotation": {"id": 2}})
    append_event(store, {"action": "ANNOTATION_UPDATED", "annotation": {"id": 3},
                         "comment": "\ud83d"})
    events = read_events(store).events
    assert [e["payload"]["annotation"]["id"] for e in events] == [1, 2, 3]
    assert events[2]["payload"]["comment"] == "\ud83d"
