import json
import logging
import os
import stat

import pandas as pd
import pytest

from relabeler.plugin.events import EventTail, EventWriter, append_event, read_events
from relabeler.store import RunStore
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


def test_a_stored_event_pull_cannot_read_is_skipped_and_named_the_others_kept(tmp_path,
                                                                              caplog):
    """A log written before the webhook checked shapes, or edited by hand: the bad lines are
    reported with their file and line, and every well-formed event around them is kept."""
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    artifact = append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    with open(store.local_path(artifact), "ab") as f:
        for line in ({"action": "ANNOTATION_UPDATED", "payload": {
                         "action": "ANNOTATION_UPDATED", "annotation": ["x"]}},
                     {"action": "ANNOTATIONS_DELETED", "payload": {
                         "action": "ANNOTATIONS_DELETED", "annotations": 7}},
                     ["not", "an", "event"], {"payload": "junk"}):
            f.write(json.dumps(line).encode() + b"\n")
    append_event(store, {"action": "ANNOTATIONS_DELETED", "annotations": ["junk", {"id": 1}]})
    append_event(store, {"action": "TASKS_DELETED", "tasks": 5})  # not read: kept as is
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.events"):
        log = read_events(store)
    assert [(e["_line"], e["action"]) for e in log.events] == [
        (0, "ANNOTATION_CREATED"), (5, "ANNOTATIONS_DELETED"), (6, "TASKS_DELETED")]
    assert log.offsets == {artifact: 7}
    path = store.path(artifact)
    assert f"skipping event on line 2 of {path}: ANNOTATION_UPDATED: `annotation` is an " \
        "array, not an object" in caplog.text
    assert f"line 3 of {path}: ANNOTATIONS_DELETED: `annotations` is a number" in caplog.text
    assert f"line 4 of {path}: the line is an array, not an event object" in caplog.text
    assert f"line 5 of {path}: `payload` is a string, not an object" in caplog.text


def test_a_stored_event_with_an_id_past_int64_is_skipped_and_named(tmp_path, caplog):
    """Recorded before the webhook checked ids, such an event stopped every later pull when
    it wrote the id to an int64 column."""
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    artifact = append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    with open(store.local_path(artifact), "ab") as f:
        for payload in ({"action": "ANNOTATION_CREATED", "annotation": {"id": 2**64 + 1}},
                        {"action": "ANNOTATION_UPDATED", "project": {"id": 3},
                         "annotation": {"id": 2, "task": {"id": 2**63}}},
                        {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": -5}]}):
            f.write(json.dumps({"action": payload["action"], "payload": payload}).encode()
                    + b"\n")
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.events"):
        log = read_events(store)
    assert [e["_line"] for e in log.events] == [0]
    path = store.path(artifact)
    assert f"skipping event on line 2 of {path}: ANNOTATION_CREATED: `annotation.id` is a " \
        "number outside the ids' range (an integer from 0 to 2**63-1)" in caplog.text
    assert f"line 3 of {path}: ANNOTATION_UPDATED: `annotation.task.id` is a number outside" \
        in caplog.text
    assert f"line 4 of {path}: ANNOTATIONS_DELETED: `annotations[0].id` is a number outside" \
        in caplog.text


def test_an_event_keeps_no_project_secret_and_its_file_is_owner_only(tmp_path):
    """Label Studio's webhook serializer sends the whole project, its token and task-data
    password included; the run folder may be shared or copied to a remote store."""
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    project = {"id": 3, "title": "review", "label_config": "<View/>", "token": "pr0ject-t0ken",
               "task_data_login": "bob", "task_data_password": "hunter2",
               "created_by": {"email": "admin@relabeler.local"}}
    artifact = append_event(store, {"action": "ANNOTATION_CREATED", "project": project,
                                    "annotation": {"id": 1}})
    raw = store.read_bytes(artifact).decode()
    for secret in ("pr0ject-t0ken", "hunter2", "task_data_login", "admin@relabeler.local"):
        assert secret not in raw
    (event,) = read_events(store).events
    assert event["payload"]["project"] == {"id": 3, "title": "review",
                                           "label_config": "<View/>"}
    assert stat.S_IMODE(os.stat(store.local_path(artifact)).st_mode) == 0o600
    os.chmod(store.local_path(artifact), 0o644)  # a file written before: made private again
    append_event(store, {"action": "ANNOTATIONS_DELETED", "project": 3, "annotations": []})
    assert stat.S_IMODE(os.stat(store.local_path(artifact)).st_mode) == 0o600
    assert read_events(store).events[1]["payload"]["project"] == 3


def test_an_event_keeps_the_tasks_id_not_its_text(tmp_path):
    """The task's data (the text, the panel) was a fifth of each stored event, and a copy of
    the text in a log that outlives the dataset; pull reads the task's id alone."""
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    task = {"id": 41, "project": 3, "updated_at": "2026-12-07T15:00:00Z", "inner_id": 9,
            "data": {"text": "call 0800 FREE now", "sample_id": "t0001", "panel": "<p>x</p>"},
            "total_annotations": 1, "comment_authors": ["admin@relabeler.local"]}
    append_event(store, {"action": "ANNOTATION_CREATED", "project": 3, "task": task,
                         "annotation": {"id": 7, "task": 41, "result": []}})
    (event,) = read_events(store).events
    assert event["payload"]["task"] == {"id": 41, "project": 3,
                                        "updated_at": "2026-12-07T15:00:00Z"}
    (artifact,) = store.list("studio/events")
    assert "0800 FREE" not in store.read_bytes(artifact).decode()
    from relabeler.plugin.reconcile import WebhookAnnotations

    assert WebhookAnnotations.from_events([event]).task_of == {7: 41}


def test_an_event_tail_reads_only_what_was_appended_and_names_a_broken_line_once(tmp_path,
                                                                                 caplog):
    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    tail = EventTail(store)
    assert tail.read_new() == []
    artifact = append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    assert [e["payload"]["annotation"]["id"] for e in tail.read_new()] == [1]
    with open(store.local_path(artifact), "ab") as f:
        f.write(b'not json\n{"received_at":"2026-01-01","payload":{"action":"ANNO')
    with caplog.at_level(logging.WARNING, logger="relabeler"):
        assert tail.read_new() == []  # the broken line is named, the cut-short one waits
        assert tail.read_new() == []
    assert [r.getMessage() for r in caplog.records].count(
        f"skipping a broken line 2 in {artifact}") == 1
    with open(store.local_path(artifact), "ab") as f:
        f.write(b'TATION_UPDATED","annotation":{"id":2,"task":5}}}\n')
    append_event(store, {"action": "ANNOTATION_UPDATED", "annotation": {"id": 3, "task": 5}})
    new = tail.read_new()
    assert [(e["payload"]["annotation"]["id"], e["_line"]) for e in new] == [(2, 2), (3, 3)]
    assert tail.lines == {artifact: 4} == read_events(store).offsets
    assert [e["_line"] for e in read_events(store).events] == [0, 2, 3]


def test_an_object_store_gets_a_file_an_hour_read_in_time_order():
    """Each event rewrites its file whole there: a day's file of 10,000 events took 0.9 s an
    append (Label Studio gives a webhook 1 s). A local run keeps a file a day."""
    import uuid
    from datetime import UTC, datetime

    remote = RunStore(f"memory:///relabeler-events-{uuid.uuid4().hex}")
    times = [datetime(2026, 12, 7, h, m, tzinfo=UTC) for h, m in ((9, 0), (9, 59), (10, 0),
                                                                   (23, 5))]
    made = [append_event(remote, {"action": "ANNOTATION_CREATED", "annotation": {"id": i}},
                         received_at=when) for i, when in enumerate(times)]
    assert made == ["studio/events/2026-12-07T09.jsonl", "studio/events/2026-12-07T09.jsonl",
                    "studio/events/2026-12-07T10.jsonl", "studio/events/2026-12-07T23.jsonl"]
    assert [e["payload"]["annotation"]["id"] for e in read_events(remote).events] == [0, 1, 2, 3]
    assert read_events(remote).offsets == {"studio/events/2026-12-07T09.jsonl": 2,
                                           "studio/events/2026-12-07T10.jsonl": 1,
                                           "studio/events/2026-12-07T23.jsonl": 1}


def test_an_object_store_hour_goes_on_in_a_new_file_past_the_segment_size(monkeypatch):
    """An append there rewrites its file whole: an hour's file of a busy team grew to
    megabytes, each webhook moving it twice. Past ``segment_bytes`` the hour goes on in
    ``_0001`` and on; the names sort in time order, and a writer that starts mid-hour (serve
    restarted) goes on in the hour's last file, from one listing."""
    import uuid
    from datetime import UTC, datetime

    store = RunStore(f"memory:///relabeler-events-{uuid.uuid4().hex}")
    writer = EventWriter(store, segment_bytes=300)
    created = [writer.append({"action": "ANNOTATION_CREATED", "annotation": {"id": i},
                              "note": "x" * 100},
                             received_at=datetime(2026, 12, 7, 9, i, tzinfo=UTC))
               for i in range(5)]
    first, second = "studio/events/2026-12-07T09.jsonl", "studio/events/2026-12-07T09_0001.jsonl"
    line = len(store.read_bytes(first).splitlines()[0]) + 1
    assert 150 < line < 300  # two lines pass 300 bytes, one does not
    assert created == [first, first, second, second, "studio/events/2026-12-07T09_0002.jsonl"]
    assert store.sizes("studio/events")[first] == 2 * line
    listings = []
    original = store.sizes
    monkeypatch.setattr(store, "sizes", lambda prefix: listings.append(prefix) or original(prefix))
    later = EventWriter(store, segment_bytes=300)
    updated = [later.append({"action": "ANNOTATION_UPDATED", "annotation": {"id": i},
                             "note": "x" * 100},
                            received_at=datetime(2026, 12, 7, h, 30, tzinfo=UTC))
               for i, h in ((5, 9), (6, 9), (7, 10))]
    assert updated == [
        "studio/events/2026-12-07T09_0002.jsonl", "studio/events/2026-12-07T09_0003.jsonl",
        "studio/events/2026-12-07T10.jsonl"]
    assert listings == ["studio/events", "studio/events"]  # once an hour, not once an event
    log = read_events(store)
    assert [e["payload"]["annotation"]["id"] for e in log.events] == list(range(8))
    assert sorted(log.offsets) == list(log.offsets) and sum(log.offsets.values()) == 8


def test_a_listing_that_failed_at_a_new_hour_is_made_again_by_the_next_append(monkeypatch):
    """serve restarted mid-hour, its first listing failed (a 503, a dropped connection): that
    webhook failed, and the writer went on in the hour's first file, already full, so the
    newer events came before the older ones of _0001 in every replay."""
    import uuid
    from datetime import UTC, datetime

    store = RunStore(f"memory:///relabeler-events-{uuid.uuid4().hex}")
    first = EventWriter(store, segment_bytes=300)
    for i in range(3):  # two lines pass 300 bytes: the third goes to _0001
        first.append({"action": "ANNOTATION_CREATED", "annotation": {"id": i}, "note": "x" * 100},
                     received_at=datetime(2026, 12, 7, 10, i, tzinfo=UTC))
    listing, failures = store.sizes, [OSError("503 Slow Down")]

    def flaky(prefix):
        if failures:
            raise failures.pop()
        return listing(prefix)

    monkeypatch.setattr(store, "sizes", flaky)
    restarted = EventWriter(store, segment_bytes=300)
    update = {"action": "ANNOTATION_UPDATED", "annotation": {"id": 2}, "note": "x" * 100}
    with pytest.raises(OSError, match="503"):
        restarted.append(update, received_at=datetime(2026, 12, 7, 10, 30, tzinfo=UTC))
    assert restarted.append(update, received_at=datetime(2026, 12, 7, 10, 31, tzinfo=UTC)) == (
        "studio/events/2026-12-07T10_0001.jsonl")
    assert [e["action"] for e in read_events(store).events] == ["ANNOTATION_CREATED"] * 3 + [
        "ANNOTATION_UPDATED"]


def test_an_old_hour_file_comes_before_the_new_segments_of_its_hour():
    """A run upgraded mid-hour has the hour's events of the old writer in ``T09.jsonl``; the
    new writer goes on there, and its later files sort after it."""
    import uuid
    from datetime import UTC, datetime

    store = RunStore(f"memory:///relabeler-events-{uuid.uuid4().hex}")
    old = "studio/events/2026-12-07T09.jsonl"
    store.write_bytes(old, b"".join(
        json.dumps({"received_at": "2026-12-07T09:00:00+00:00", "action": "ANNOTATION_CREATED",
                    "payload": {"action": "ANNOTATION_CREATED", "annotation": {"id": i}}
                    }).encode() + b"\n" for i in range(3)))
    writer = EventWriter(store, segment_bytes=store.sizes("studio/events")[old])
    assert writer.append({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 0}]},
                         received_at=datetime(2026, 12, 7, 9, 5, tzinfo=UTC)) == (
        "studio/events/2026-12-07T09_0001.jsonl")
    assert [e["action"] for e in read_events(store).events] == ["ANNOTATION_CREATED"] * 3 + [
        "ANNOTATIONS_DELETED"]


def test_a_local_log_keeps_a_file_a_day_whatever_its_size(tmp_path):
    from datetime import UTC, datetime

    writer = EventWriter(RunStore(tmp_path / "run"), segment_bytes=10)
    assert {writer.append({"action": "ANNOTATION_CREATED", "annotation": {"id": i}},
                          received_at=datetime(2026, 12, 7, h, tzinfo=UTC))
            for i, h in enumerate((1, 9, 23))} == {"studio/events/2026-12-07.jsonl"}


def test_an_event_tail_reads_only_the_files_that_grew(monkeypatch):
    """A re-rank reads the log again and again; on an object store (a file an hour) each file
    cost a request, and an unchanged one two (a range from its end is "not satisfiable"):
    720 hourly files took 7.7 s to find nothing new. One listing's sizes say which grew."""
    import uuid
    from datetime import UTC, datetime, timedelta

    store = RunStore(f"memory:///relabeler-events-{uuid.uuid4().hex}")
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for h in range(48):
        append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": h + 1}},
                     received_at=start + timedelta(hours=h))
    tail = EventTail(store)
    assert len(tail.read_new()) == 48
    reads = []
    original = store.read_bytes
    monkeypatch.setattr(store, "read_bytes",
                        lambda artifact, **kw: reads.append(artifact) or original(artifact, **kw))
    assert tail.read_new() == [] and reads == []
    append_event(store, {"action": "ANNOTATION_UPDATED", "annotation": {"id": 48}},
                 received_at=start + timedelta(hours=47, minutes=30))
    (event,) = tail.read_new()
    assert event["payload"]["annotation"]["id"] == 48
    assert reads == ["studio/events/2026-11-02T23.jsonl"]
    assert store.sizes("studio/events")["studio/events/2026-11-02T23.jsonl"] == len(
        original("studio/events/2026-11-02T23.jsonl"))
    assert store.sizes("studio/nothing") == {}
