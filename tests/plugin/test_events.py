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
