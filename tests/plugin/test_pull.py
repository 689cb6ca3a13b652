"""Pull's pieces and whole pulls against an in-memory Label Studio (fake_studio.FakeStudio).

Deletions follow pull's documented rule: the server is the truth for what it shows; an
annotation it no longer shows is dropped when an event recorded its deletion (counted in
``deleted``), kept as the server last showed it where a pull saw it there (counted in
``from_events_only``), set aside otherwise (counted in ``unconfirmed``); a correction whose
task has no answer left is withdrawn (counted in ``withdrawn``).
"""

from __future__ import annotations

import json
import logging
import time
from types import SimpleNamespace

import pandas as pd
import pyarrow as pa
import pytest

from relabeler.corrections import CORRECTIONS
from relabeler.errors import PluginError
from relabeler.plugin.events import append_event, read_events
from relabeler.plugin.labeling import (
    DROP,
    SUPPORTS_GIVEN,
    SUPPORTS_SUGGESTION,
    LabelingSpec,
    build_labeling_config,
)
from relabeler.plugin.pull import (
    MANIFEST,
    PULL_STATE,
    PULL_STATE_FORMAT,
    UNCONFIRMED,
    UNCONFIRMED_GONE,
    UNCONFIRMED_UPDATE_GONE,
    UNMAPPED,
    VANISHED,
    PullError,
    merge_corrections,
    pull,
)
from relabeler.plugin.reconcile import WebhookAnnotations, reconcile_task
from relabeler.plugin.votes import evidence_edited, fingerprint
from relabeler.queue_plan import MANIFEST_SCHEMA, write_manifest
from relabeler.store import RunStore
from tests.plugin.fake_studio import FakeStudio, real_client

CLASSES = ["ham", "spam"]
GIVEN = {"s0": "ham", "s1": "ham", "s2": "spam", "s3": "spam"}


@pytest.fixture
def store(tmp_path) -> RunStore:
    store = RunStore(str(tmp_path / "run"))
    train = pa.table({"id": list(GIVEN), "text": [f"text {i}" for i in GIVEN],
                      "label": list(GIVEN.values())})
    store.write_table("dataset/train.parquet", train)
    return store


@pytest.fixture
def studio(store) -> FakeStudio:
    return FakeStudio(CLASSES, events_to=store)


@pytest.fixture
def tasks(store, studio) -> dict[str, int]:
    """One project with a task per sample of GIVEN, recorded in the manifest as push does."""
    project_id = studio.add_project()
    task_of = {s: studio.add_task(project_id, s, label) for s, label in GIVEN.items()}
    return _recorded(store, task_of, project_id)


def _recorded(store: RunStore, task_of: dict[str, int], project_id: int) -> dict[str, int]:
    """``task_of`` (sample -> task id) written to the manifest, in order, as push does."""
    manifest = pd.DataFrame({
        "id": list(task_of), "task_id": list(task_of.values()), "project_id": project_id,
        "rank": range(1, len(task_of) + 1), "priority": range(1, len(task_of) + 1),
        "source": "flagged", "pushed_at": pd.Timestamp("2026-01-01", tz="UTC")})
    write_manifest(store, manifest[MANIFEST_SCHEMA.names])
    return task_of


def corrections(store: RunStore) -> dict[str, dict]:
    return {row["id"]: row for row in store.read_table(CORRECTIONS).to_pylist()}


# ---------------------------------------------------------------------------------------------
# whole pulls


def test_first_pull_resolves_the_answered_tasks(store, studio, tasks):
    studio.annotate(tasks["s0"], "spam")
    studio.annotate(tasks["s1"], "ham")
    studio.annotate(tasks["s2"], DROP, user=1)
    studio.annotate(tasks["s2"], DROP, user=2)
    result = pull(store, studio)
    assert (result.tasks_fetched, result.tasks_changed, result.corrections) == (3, 3, 3)
    assert (result.unmapped, result.from_events_only, result.deleted, result.withdrawn) == \
        (0, 0, 0, 0)
    rows = corrections(store)
    assert [(rows[s]["action"], rows[s]["old_label"], rows[s]["new_label"]) for s in
            ("s0", "s1", "s2")] == [("relabel", "ham", "spam"), ("keep", "ham", "ham"),
                                    ("drop", "spam", None)]
    assert rows["s2"]["annotators"] == ["alice@relabeler.local", "bob@relabeler.local"]
    assert {r["via"] for r in rows.values()} == {"export"}
    (project_id,) = studio.projects
    assert studio.list_calls == [{"project_id": project_id, "updated_after": None,
                                  "annotated_only": True}]


def test_a_pull_without_changes_recomputes_nothing(store, studio, tasks):
    studio.annotate(tasks["s0"], "spam")
    pull(store, studio)
    again = pull(store, studio)
    assert (again.tasks_changed, again.corrections) == (0, 1)
    assert studio.list_calls[-1]["updated_after"] is not None


def test_an_updated_annotation_is_recomputed(store, studio, tasks):
    annotation_id = studio.annotate(tasks["s0"], "spam")
    pull(store, studio)
    studio.update(annotation_id, "ham")
    result = pull(store, studio)
    assert (result.tasks_changed, result.corrections) == (1, 1)
    row = corrections(store)["s0"]
    assert (row["action"], row["new_label"], row["via"]) == ("keep", "ham", "export")


def test_an_answer_changed_during_a_long_listing_is_fetched_by_the_next_pull(
        store, studio, tasks, monkeypatch):
    """s0 is listed, then re-answered, then s3 (later in the listing) is answered 10 s later:
    the watermark passes s0's new answer, and no webhook names it (no backend running)."""
    first = studio.annotate(tasks["s0"], "spam", notify=False)
    listing = studio.list_tasks
    clock = iter([0.0, 30.0])  # the listing takes 30 s
    monkeypatch.setattr("relabeler.plugin.fetch.time", SimpleNamespace(
        monotonic=lambda: next(clock), perf_counter=time.perf_counter))

    def slow_listing(project_id, **kwargs):
        for task in listing(project_id, **kwargs):
            yield task
            if task["id"] == tasks["s0"]:
                studio.update(first, "ham", notify=False)
                studio.annotate(tasks["s3"], "spam", notify=False)

    monkeypatch.setattr(studio, "list_tasks", slow_listing)
    pull(store, studio)
    assert corrections(store)["s0"]["new_label"] == "spam"  # the answer as listed
    monkeypatch.setattr(studio, "list_tasks", listing)
    monkeypatch.setattr("relabeler.plugin.fetch.time", time)
    result = pull(store, studio)
    assert (result.tasks_changed, corrections(store)["s0"]["new_label"]) == (1, "ham")


def test_an_answer_on_a_page_boundary_survives_an_earlier_answer_deleted_mid_listing(
        store, studio, tasks):
    """The real client, two tasks a page, no webhook: s0's answer is deleted after page 1.
    Paged by number, page 2 then began at s3; s2 was never read and the watermark (s3's
    answer) passed it, so no later pull read it either."""
    for sample in ("s0", "s1", "s2", "s3"):
        studio.annotate(tasks[sample], "spam", notify=False)
    first = studio.tasks[tasks["s0"]]["annotations"][0]["id"]
    studio.before_page = lambda served: served == 1 and studio.delete_annotation(first,
                                                                              notify=False)
    client = real_client(studio)
    pull(store, client, page_size=2)
    assert set(corrections(store)) == {"s0", "s1", "s2", "s3"}  # s0 as read on page 1
    studio.before_page = None
    result = pull(store, client, page_size=2)
    assert (result.tasks_changed, result.withdrawn) == (1, 1)
    assert {k: v["new_label"] for k, v in corrections(store).items()} == {
        "s1": "spam", "s2": "spam", "s3": "spam"}


def test_two_pulls_at_once_take_turns_and_lose_no_answer(store, studio, tasks, monkeypatch):
    # pull A lists the answers, then stalls (a slow store, a descheduled process); an answer
    # arrives and pull B takes it and finishes; then A wrote its corrections without it over
    # B's, and B's pull state said it was seen: no later pull took it again
    import threading

    studio.annotate(tasks["s0"], "spam", notify=False)
    listing = studio.list_tasks
    inside, release = threading.Event(), threading.Event()

    def stalling_listing(project_id, **kwargs):
        tasks_now = list(listing(project_id, **kwargs))
        if threading.current_thread().name == "A":
            inside.set()
            release.wait(10)
        yield from tasks_now

    monkeypatch.setattr(studio, "list_tasks", stalling_listing)
    errors = []

    def run(name):
        try:
            pull(store, studio)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append((name, exc))

    a = threading.Thread(target=run, args=("A",), name="A")
    a.start()
    assert inside.wait(10)
    studio.annotate(tasks["s3"], "spam", notify=False)
    b = threading.Thread(target=run, args=("B",), name="B")
    b.start()
    b.join(1.0)
    assert b.is_alive()  # B waits for A
    release.set()
    a.join(10)
    b.join(10)
    assert not errors and not a.is_alive() and not b.is_alive()
    assert {k: v["new_label"] for k, v in corrections(store).items()} == {"s0": "spam",
                                                                          "s3": "spam"}
    monkeypatch.setattr(studio, "list_tasks", listing)
    assert pull(store, studio).tasks_changed == 0
    assert set(corrections(store)) == {"s0", "s3"}


def test_the_server_wins_over_an_older_event_of_the_same_annotation(store, studio, tasks):
    annotation_id = studio.annotate(tasks["s0"], "spam")       # the event says spam
    studio.update(annotation_id, "ham", notify=False)          # the server says ham
    pull(store, studio)
    row = corrections(store)["s0"]
    assert (row["action"], row["via"], row["annotation_ids"]) == ("keep", "export",
                                                                 [annotation_id])


def test_a_deleted_annotation_withdraws_its_correction(store, studio, tasks, caplog):
    annotation_id = studio.annotate(tasks["s0"], "spam")
    studio.annotate(tasks["s1"], "spam")
    assert pull(store, studio).corrections == 2
    studio.delete_annotation(annotation_id)                     # the event log hears of it
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert (result.tasks_changed, result.corrections, result.deleted, result.withdrawn) == \
        (1, 1, 1, 1)
    assert list(corrections(store)) == ["s1"]
    assert "1 corrections withdrawn" in caplog.text and "['s0']" in caplog.text


def test_a_deletion_the_event_log_missed_still_withdraws_the_correction(store, studio, tasks):
    annotation_id = studio.annotate(tasks["s0"], "spam", notify=False)
    pull(store, studio)
    studio.delete_annotation(annotation_id, notify=False)      # the task's updated_at moves
    result = pull(store, studio)
    assert (result.deleted, result.withdrawn, result.corrections) == (1, 1, 0)
    (row,) = store.read_table(UNMAPPED).to_pylist()
    assert (row["annotation_id"], row["id"], row["reason"]) == (annotation_id, "s0", VANISHED)
    assert json.loads(row["annotation"])["result"][0]["value"] == {"choices": ["spam"]}


def test_a_deleted_annotation_of_several_leaves_the_others(store, studio, tasks):
    first = studio.annotate(tasks["s0"], "spam", user=1)
    studio.annotate(tasks["s0"], "ham", user=2)
    pull(store, studio)
    assert corrections(store)["s0"]["needs_review"] is True
    studio.delete_annotation(first)
    result = pull(store, studio)
    assert (result.deleted, result.withdrawn) == (1, 0)
    row = corrections(store)["s0"]
    assert (row["action"], row["annotators"]) == ("keep", ["bob@relabeler.local"])


def test_a_deletion_event_of_an_answer_given_before_serve_started_is_counted(
        store, studio, tasks, caplog):
    """An answer given while no webhook listened (serve not started yet), seen by a pull, then
    deleted while serve records events: dropped, and counted and logged as deleted (it was
    neither, and it stayed in the pull state's record of the server for good)."""
    before = studio.annotate(tasks["s0"], "spam", notify=False)
    other = studio.annotate(tasks["s0"], "ham", user=2, notify=False)
    pull(store, studio)
    studio.delete_annotation(before)                            # the event records it
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert (result.deleted, result.unmapped, result.from_events_only) == (1, 0, 0)
    assert f"task {tasks['s0']}: annotations [{before}] were deleted (a webhook event says " \
        "so); dropped" in caplog.text
    assert corrections(store)["s0"]["annotation_ids"] == [other]
    on_server = store.read_json(PULL_STATE)["projects"][str(
        studio.tasks[tasks["s0"]]["project"])]["on_server"][str(tasks["s0"])]
    assert set(on_server) == {str(other)}
    assert pull(store, studio).deleted == 0                     # counted once


def test_an_annotation_gone_from_a_task_the_server_shows_is_dropped_and_kept_in_unmapped(
        store, studio, tasks, caplog):
    """Deleted in Label Studio while no webhook reached relabeler (serve down): the server,
    which still shows the task, is the truth; the answer as last shown stays in unmapped, and
    a later deletion of the task does not bring it back from its creation event."""
    deleted = studio.annotate(tasks["s0"], "spam")              # an event records it
    second = studio.annotate(tasks["s0"], "spam", user=2)
    pull(store, studio)                                         # both seen on the server
    studio.delete_annotation(deleted, notify=False)            # no deletion event
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert (result.from_events_only, result.unconfirmed, result.deleted, result.corrections,
            result.unmapped) == (0, 0, 1, 1, 1)
    row = corrections(store)["s0"]
    assert (row["action"], row["via"], row["annotation_ids"]) == ("relabel", "export", [second])
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["annotation_id"], unmapped["reason"]) == (deleted, VANISHED)
    assert f"task {tasks['s0']}: annotations [{deleted}] that an earlier pull saw on the " \
        "server are gone from it" in caplog.text
    studio.update(second, "ham")                               # recomputed: still left out
    assert (pull(store, studio).unmapped, corrections(store)["s0"]["action"]) == (1, "keep")
    studio.update(second, "ham")                               # an event names the task,
    studio.delete_task(tasks["s0"])                            # then the server loses it
    result = pull(store, studio)
    row = corrections(store)["s0"]
    assert (row["action"], row["via"], row["annotation_ids"]) == ("keep", "events", [second])
    assert (result.from_events_only, result.unmapped) == (1, 1)


def test_an_answer_no_pull_saw_on_the_server_is_not_taken(store, studio, tasks, caplog):
    """Anyone who reads the webhook's secret (Label Studio shows it to every user) can post an
    ANNOTATION_CREATED for any task: one the server never showed goes to unmapped, named."""
    forged = {"id": 4242, "task": tasks["s1"], "completed_by": 1, "was_cancelled": False,
              "updated_at": "2026-01-01T00:00:00+00:00", "result": [
                  {"from_name": "answer", "to_name": "text", "type": "choices",
                   "value": {"choices": ["spam"]}}]}
    (project_id,) = studio.projects
    append_event(store, {"action": "ANNOTATION_CREATED", "project": {"id": project_id},
                         "annotation": forged})
    lost = studio.annotate(tasks["s0"], "spam")                # answered, then lost unseen
    studio.annotate(tasks["s0"], "ham", user=2)
    studio.delete_annotation(lost, notify=False)
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert "s1" not in corrections(store)
    assert (result.corrections, result.unconfirmed, result.from_events_only, result.unmapped) \
        == (1, 2, 0, 2)
    row = corrections(store)["s0"]
    assert (row["action"], row["via"], row["annotation_ids"]) == ("keep", "export", [lost + 1])
    unmapped = {r["annotation_id"]: r for r in store.read_table(UNMAPPED).to_pylist()}
    assert sorted(unmapped) == [lost, 4242]
    assert (unmapped[4242]["id"], unmapped[4242]["task_id"]) == ("s1", tasks["s1"])
    assert unmapped[4242]["reason"].startswith("known only from a webhook event, and no pull "
                                               "saw it on the server: not taken")
    assert f"task {tasks['s1']}: annotations [4242] are known only from webhook events and " \
        "no pull saw them on the server" in caplog.text
    again = pull(store, studio)                                 # nothing new: nothing moves
    assert (again.tasks_changed, again.corrections, again.unmapped) == (0, 1, 2)


def test_a_deleted_task_keeps_its_answers_as_the_server_last_showed_them(store, studio,
                                                                         tasks):
    """An update no pull saw on the server (the task deleted before the next pull) cannot be
    told from a posted one: it goes to unmapped, the answer the server showed stays."""
    annotation_id = studio.annotate(tasks["s1"], "spam")
    pull(store, studio)
    studio.update(annotation_id, "ham")                        # an event, then the task goes
    studio.delete_task(tasks["s1"])
    result = pull(store, studio)
    assert (result.tasks_fetched, result.from_events_only, result.unconfirmed,
            result.corrections, result.withdrawn) == (0, 1, 1, 1, 0)
    row = corrections(store)["s1"]
    assert (row["action"], row["new_label"], row["via"]) == ("relabel", "spam", "events")
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["annotation_id"], unmapped["id"], unmapped["reason"]) == \
        (annotation_id, "s1", UNCONFIRMED_UPDATE_GONE)
    assert json.loads(unmapped["annotation"])["result"][0]["value"] == {"choices": ["ham"]}


def test_a_posted_update_of_an_answer_in_a_deleted_task_changes_no_label(store, studio, tasks,
                                                                         caplog):
    annotation_id = studio.annotate(tasks["s1"], "ham")        # the annotator keeps the label
    pull(store, studio)
    studio.delete_task(tasks["s1"])
    (project_id,) = studio.projects
    append_event(store, {"action": "ANNOTATION_UPDATED", "project": {"id": project_id},
                         "annotation": {"id": annotation_id, "task": tasks["s1"],
                                        "completed_by": 2, "was_cancelled": False,
                                        "updated_at": "2026-02-01T00:00:00+00:00", "result": [
                                            {"from_name": "answer", "to_name": "text",
                                             "type": "choices", "value": {"choices": ["spam"]}}]}})
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    row = corrections(store)["s1"]
    assert (row["action"], row["new_label"], row["annotators"], row["via"]) == \
        ("keep", "ham", ["alice@relabeler.local"], "events")
    assert (result.unconfirmed, result.unmapped) == (1, 1)
    assert store.read_table(UNMAPPED).column("reason").to_pylist() == [
        UNCONFIRMED_UPDATE_GONE]
    assert f"annotations [{annotation_id}] have updates known only from webhook events" \
        in caplog.text
    again = pull(store, studio)
    assert (again.tasks_changed, again.unmapped, corrections(store)["s1"]["new_label"]) == \
        (0, 1, "ham")


def test_an_answer_of_a_task_deleted_before_any_pull_says_the_task_is_gone(store, studio,
                                                                         tasks):
    """The task cannot be answered again and push never sends its sample again: the reason
    says so and where to write the label by hand, not "have it answered again"."""
    first = studio.annotate(tasks["s1"], "spam")               # an event, then the task goes
    studio.delete_task(tasks["s1"])
    result = pull(store, studio)
    assert (result.unconfirmed, result.unmapped, len(corrections(store))) == (1, 1, 0)
    (row,) = store.read_table(UNMAPPED).to_pylist()
    assert (row["annotation_id"], row["id"], row["reason"]) == (first, "s1", UNCONFIRMED_GONE)
    assert UNCONFIRMED_GONE.startswith("the task is gone from Label Studio")
    assert "have it answered again" not in UNCONFIRMED_GONE
    assert ("if the answer is real, write the label it gives into labels/corrections.parquet "
            "by hand") in UNCONFIRMED_GONE
    # an update of an answer a pull saw, its task deleted before the next pull: the same
    second = studio.annotate(tasks["s2"], "ham")
    pull(store, studio)
    studio.update(second, "spam")
    studio.delete_task(tasks["s2"])
    pull(store, studio)
    reasons = {r["annotation_id"]: r["reason"] for r in store.read_table(UNMAPPED).to_pylist()}
    assert reasons == {first: UNCONFIRMED_GONE, second: UNCONFIRMED_UPDATE_GONE}
    assert UNCONFIRMED_UPDATE_GONE.startswith("the task is gone from Label Studio")
    assert "have it answered again" not in UNCONFIRMED_UPDATE_GONE
    # a task the server still shows can be answered again: the advice stays
    assert UNCONFIRMED.endswith("if it is real, have it answered again")


def test_an_answer_set_aside_is_taken_once_the_server_shows_it(store, studio, tasks):
    """The event is read before the server shows the answer (a commit race, a server briefly
    restored): set aside; once the server shows it, unchanged, it is an answer."""
    annotation_id = studio.annotate(tasks["s1"], "spam")
    hidden = studio.tasks[tasks["s1"]]["annotations"].pop()
    assert (pull(store, studio).unconfirmed, len(corrections(store))) == (1, 0)
    studio.tasks[tasks["s1"]]["annotations"].append(hidden)
    studio.tasks[tasks["s1"]]["updated_at"] = studio._now()
    result = pull(store, studio)
    assert (result.tasks_changed, result.corrections, result.unconfirmed, result.unmapped) == \
        (1, 1, 0, 0)
    row = corrections(store)["s1"]
    assert (row["new_label"], row["via"], row["annotation_ids"]) == \
        ("spam", "export", [annotation_id])


def test_a_run_pulled_before_on_server_was_kept_keeps_the_answers_pulls_read(store, studio,
                                                                            tasks, caplog):
    """A pull state without ``on_server``: the annotation ids of corrections that earlier
    pulls read from the server (via export) count as seen; an answer taken from events alone
    (via events) is set aside, and its withdrawal says so rather than blaming a deletion."""
    read = studio.annotate(tasks["s1"], "spam")
    lost = studio.annotate(tasks["s0"], "spam")
    pull(store, studio)
    state = store.read_json(PULL_STATE)
    for project_state in state["projects"].values():
        del project_state["on_server"]
    store.write_json(PULL_STATE, state)
    table = store.read_table(CORRECTIONS)            # s0 as a pull from before took a lost one
    via = ["events" if i == "s0" else v for i, v in zip(table.column("id").to_pylist(),
                                                        table.column("via").to_pylist(),
                                                        strict=True)]
    store.write_table(CORRECTIONS, table.set_column(table.schema.get_field_index("via"), "via",
                                                    pa.array(via)))
    studio.update(read, "spam")                      # events name both tasks, then both go
    studio.update(lost, "spam")
    studio.delete_task(tasks["s1"])
    studio.delete_task(tasks["s0"])
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert (result.from_events_only, result.unconfirmed, result.withdrawn) == (1, 1, 1)
    assert {s: (r["new_label"], r["via"]) for s, r in corrections(store).items()} == \
        {"s1": ("spam", "events")}
    assert "pull: 1 corrections withdrawn: their task's answers are known only from webhook " \
        "events that no pull saw on the server, so they were set aside " \
        "(labels/unmapped.parquet), not deleted (samples ['s0'])" in caplog.text
    assert "every answer of their task was deleted" not in caplog.text


def test_a_deleted_task_keeps_its_earlier_correction(store, studio, tasks):
    studio.annotate(tasks["s1"], "spam", notify=False)
    pull(store, studio)
    studio.delete_task(tasks["s1"])
    result = pull(store, studio)
    assert (result.tasks_changed, result.withdrawn, list(corrections(store))) == (0, 0, ["s1"])


def test_an_annotation_created_and_deleted_between_pulls_is_counted(store, studio, tasks):
    annotation_id = studio.annotate(tasks["s2"], "ham")
    studio.delete_annotation(annotation_id)
    result = pull(store, studio)
    assert (result.deleted, result.corrections, result.withdrawn) == (1, 0, 0)


def test_an_unmappable_answer_goes_to_unmapped(store, studio, tasks):
    studio.annotate(tasks["s3"], "eggs")
    result = pull(store, studio)
    assert (result.corrections, result.unmapped) == (0, 1)
    (row,) = store.read_table(UNMAPPED).to_pylist()
    assert (row["id"], row["task_id"]) == ("s3", tasks["s3"])
    assert "answer 'eggs' is not a class of the run" in row["reason"]


def test_another_runs_task_in_the_project_goes_to_unmapped(store, studio, tasks):
    (project_id,) = studio.projects
    foreign = studio.add_task(project_id, "s1", "ham")  # same sample id, not in the manifest
    studio.annotate(foreign, "spam")
    studio.annotate(tasks["s2"], "ham")
    result = pull(store, studio)
    assert (result.corrections, result.unmapped) == (1, 1)
    assert set(corrections(store)) == {"s2"}
    (row,) = store.read_table(UNMAPPED).to_pylist()
    assert row["task_id"] == foreign and "not in this run's manifest" in row["reason"]


def _written(store: RunStore) -> dict[str, bytes]:
    """The bytes of what a pull writes (and of the manifest it reads)."""
    return {a: open(store.path(a), "rb").read()
            for a in (CORRECTIONS, MANIFEST, PULL_STATE, "labels/annotators.parquet")}


def test_a_project_of_another_run_on_another_server_is_refused_with_nothing_written(
        store, studio, tasks):
    """The server is another one (a fresh database, a restored backup, another instance's URL)
    where another run pushed: its project and task ids are this run's, its samples are not."""
    studio.annotate(tasks["s0"], "spam")
    studio.annotate(tasks["s1"], "ham")
    pull(store, studio)
    before = _written(store)
    other = FakeStudio(CLASSES, events_to=store)
    other._clock = studio._clock  # its tasks are answered after this run's last pull
    (project_id,) = studio.projects
    assert other.add_project() == project_id
    theirs = [other.add_task(project_id, f"x{i}", "ham") for i in range(len(tasks))]
    assert theirs == list(tasks.values())  # the same ids, other samples
    for task_id in theirs:
        other.annotate(task_id, "spam", notify=False)
    with pytest.raises(PullError) as raised:
        pull(store, other)
    message = str(raised.value)
    assert f"project {project_id} at {other.shown_url} is not the one this run pushed" in message
    assert f"task {tasks['s0']} holds sample 'x0', where {MANIFEST} records sample 's0'" in \
        message
    assert "studio.url" in message and "nothing was pulled" in message
    assert _written(store) == before
    assert corrections(store)["s1"]["new_label"] == "ham"


def test_a_recorded_task_without_a_sample_id_is_refused(store, studio, tasks):
    studio.tasks[tasks["s2"]]["data"].pop("sample_id")
    studio.annotate(tasks["s2"], "ham")
    with pytest.raises(PullError, match=f"task {tasks['s2']} holds no sample_id .*records "
                                        f"sample 's2'"):
        pull(store, studio)
    assert not store.exists(CORRECTIONS) and not store.exists(PULL_STATE)


def test_a_task_whose_push_died_before_its_id_was_recorded_still_counts(store, studio, tasks):
    manifest = store.read_table("studio/manifest.parquet").to_pandas()
    manifest.loc[manifest["id"] == "s1", ["task_id", "pushed_at"]] = None
    write_manifest(store, manifest)
    studio.annotate(tasks["s1"], "spam")
    result = pull(store, studio)
    assert (result.corrections, result.unmapped) == (1, 0)
    assert corrections(store)["s1"]["new_label"] == "spam"


def test_a_gone_project_is_read_from_its_events(store, studio, tasks):
    annotation_id = studio.annotate(tasks["s0"], "ham")
    pull(store, studio)
    studio.update(annotation_id, "spam")
    project_id = studio.tasks[tasks["s0"]]["project"]
    del studio.projects[project_id]
    studio.tasks.clear()
    result = pull(store, studio)
    row = corrections(store)["s0"]
    assert (result.corrections, result.unconfirmed, row["via"], row["new_label"]) == \
        (1, 1, "events", "ham")                             # the update no pull saw: unmapped


def test_a_gone_project_without_its_config_cannot_be_pulled(store, studio, tasks):
    (project_id,) = studio.projects
    append_event(store, {"action": "ANNOTATION_CREATED", "project": {"id": project_id},
                         "annotation": {"id": 1, "task": tasks["s0"]}})
    studio.projects.clear()
    with pytest.raises(PluginError, match="is gone and no event carries its config"):
        pull(store, studio)


def test_a_malformed_event_in_the_log_is_skipped_and_pull_and_re_rank_go_on(store, studio,
                                                                              tasks):
    """Events recorded before the webhook checked shapes: each is skipped (named in the log),
    the well-formed ones still count."""
    from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
    from relabeler.plugin.rerank import collect_answers
    from relabeler.queue_plan import read_manifest

    studio.annotate(tasks["s0"], "spam")
    artifact = next(iter(store.list("studio/events")))
    with open(store.local_path(artifact), "ab") as f:
        for payload in ({"action": "ANNOTATION_UPDATED", "annotation": ["x"]},
                        {"action": "ANNOTATIONS_DELETED", "annotations": 7},
                        {"action": "ANNOTATION_CREATED", "annotation": {
                            "id": 9, "task": tasks["s1"], "result": 7}}):
            f.write(json.dumps({"action": payload["action"], "payload": payload}).encode()
                    + b"\n")
    studio.annotate(tasks["s2"], "ham")
    result = pull(store, studio)
    assert (result.corrections, result.unmapped) == (2, 0)
    assert {s: r["new_label"] for s, r in corrections(store).items()} == {"s0": "spam",
                                                                         "s2": "ham"}
    spec = LabelingSpec.from_config(build_labeling_config(CLASSES))
    answers = collect_answers(store, read_manifest(store), spec, GIVEN)
    assert answers.label_of == {"s0": "spam", "s2": "ham"}


def test_a_recorded_event_with_an_id_past_int64_stops_no_pull(store, studio, tasks, caplog):
    """One such forged event, recorded before the webhook checked ids, made every later pull
    fail writing labels/unmapped.parquet (after it had written the corrections)."""
    (project_id,) = studio.projects
    studio.annotate(tasks["s0"], "spam")
    artifact = next(iter(store.list("studio/events")))
    with open(store.local_path(artifact), "ab") as f:
        for annotation in ({"id": 2**64 + 1, "task": tasks["s1"]},
                           {"id": 5000, "task": 2**64}):
            payload = {"action": "ANNOTATION_CREATED", "project": {"id": project_id},
                       "annotation": {**annotation, "completed_by": 1, "result": [
                           {"from_name": "answer", "value": {"choices": ["spam"]}}]}}
            f.write(json.dumps({"action": payload["action"], "payload": payload}).encode()
                    + b"\n")
    with caplog.at_level(logging.WARNING):
        result = pull(store, studio)
    assert (result.corrections, result.unconfirmed, result.unmapped) == (1, 0, 0)
    assert corrections(store)["s0"]["new_label"] == "spam"
    assert store.exists(PULL_STATE) and not store.exists(UNMAPPED)
    assert caplog.text.count("is a number outside the ids' range") == 2
    _event_ids = [e["payload"]["annotation"]["id"] for e in read_events(store).events]
    assert 2**64 + 1 not in _event_ids and 5000 not in _event_ids


def test_an_event_naming_a_task_of_another_project_fetches_nothing_of_it(store, studio,
                                                                        tasks, caplog):
    """Anyone who reads the webhook's secret can post an event that names this run's project
    and any task on the server: a task of another project is not filed under this run's."""
    (project_id,) = studio.projects
    other = studio.add_project()
    theirs = studio.add_task(other, "s1", "ham")  # a sample id of this run, another project
    secret = studio.annotate(theirs, "spam", notify=False)
    append_event(store, {"action": "ANNOTATION_UPDATED", "project": {"id": project_id},
                         "annotation": {"id": secret, "task": theirs}})
    studio.annotate(tasks["s0"], "spam")
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert (result.tasks_changed, result.corrections, result.unmapped) == (1, 1, 0)
    assert set(corrections(store)) == {"s0"}
    assert not store.exists(UNMAPPED)
    state = store.read_json(PULL_STATE)["projects"][str(project_id)]
    assert str(theirs) not in state["fingerprints"]
    assert f"pull: project {project_id}: a webhook event named task {theirs}, which is in " \
        f"project {other} of {studio.shown_url}: not read" in caplog.text


def test_a_table_that_cannot_be_built_stops_the_pull_with_nothing_written(store, studio,
                                                                         tasks):
    """Every table is built before any is written: a value one cannot hold (here an id past
    int64 that the server shows) leaves corrections, unmapped and the pull state as they
    were, where corrections used to be written and the pull state not."""
    studio.annotate(tasks["s0"], "spam")
    pull(store, studio)
    before = _written(store)
    studio.annotate(tasks["s1"], "ham")
    studio.annotate(tasks["s2"], "eggs")            # unmapped: not a class of the run
    studio.tasks[tasks["s2"]]["annotations"][-1]["id"] = 2**64
    with pytest.raises(OverflowError):
        pull(store, studio)
    assert _written(store) == before
    assert not store.exists(UNMAPPED)
    assert set(corrections(store)) == {"s0"}


def test_the_readers_of_an_event_take_no_id_past_int64():
    """A second guard behind read_events: an id that is not one is no id at all."""
    events = [_event("ANNOTATION_CREATED", annotation={"id": 2**64, "task": 5}),
              _event("ANNOTATION_CREATED", annotation={"id": 1, "task": 2**63}),
              _event("ANNOTATION_CREATED", annotation={"id": 2, "task": 6}),
              _event("ANNOTATIONS_DELETED", annotations=[{"id": 2**64}, {"id": 2}]),
              {"payload": {"action": "ANNOTATION_CREATED", "project": {"id": 2**64},
                           "annotation": {"id": 3, "task": 7}}}]
    webhooks = WebhookAnnotations.from_events(events)
    assert webhooks.task_of == {2: 6, 3: 7}
    assert webhooks.deleted == {2}
    assert webhooks.tasks_named(events) == {7: {5, 6}}  # task 5 is an id: fetched


# ---------------------------------------------------------------------------------------------
# the pure pieces


def _event(action: str, **body) -> dict:
    return {"payload": {"action": action, "project": {"id": 7}, **body}}


def test_reconcile_applies_the_rule_for_annotations_the_server_lacks():
    events = [_event("ANNOTATION_CREATED", annotation={"id": 1, "task": 5, "updated_at": "a"}),
              _event("ANNOTATION_CREATED", annotation={"id": 2, "task": 5, "updated_at": "a"}),
              _event("ANNOTATION_CREATED", annotation={"id": 3, "task": 5, "updated_at": "a"}),
              _event("ANNOTATIONS_DELETED", annotations=[{"id": 2}])]
    webhooks = WebhookAnnotations.from_events(events)
    server_task = {"id": 5, "annotations": [{"id": 3, "updated_at": "b"}]}
    seen = reconcile_task(server_task, webhooks, seen_on_server=dict.fromkeys([1, 2, 3]))
    assert [(a["id"], a["updated_at"]) for a in seen.annotations] == [(3, "b"), (1, "a")]
    assert (seen.from_events, seen.deleted, seen.via, seen.unconfirmed) == \
        ([1], [2], "export+events", [])
    assert reconcile_task({"id": 5, "annotations": []}, webhooks,
                          seen_on_server={1: None}).via == "events"
    assert reconcile_task({"id": 6, "annotations": []}, webhooks,
                          seen_on_server={1: None}).annotations == []
    assert fingerprint(seen.annotations, seen.deleted) != fingerprint(seen.annotations)
    # never seen on the server: not an answer, set aside (a deleted one is dropped all the same)
    unseen = reconcile_task(server_task, webhooks, seen_on_server={3: None})
    assert [a["id"] for a in unseen.annotations] == [3]
    assert (unseen.from_events, unseen.deleted, unseen.via) == ([], [2], "export")
    assert [(a["id"], a["updated_at"]) for a in unseen.unconfirmed] == [(1, "a")]
    # the split between answers and set-aside ones is in the task's fingerprint
    assert fingerprint(unseen.annotations, unseen.deleted, unseen.unconfirmed) != \
        fingerprint(seen.annotations[:1], seen.deleted, [])


def _choice(choice: str) -> list[dict]:
    return [{"from_name": "answer", "to_name": "text", "type": "choices",
             "value": {"choices": [choice]}}]


def test_reconcile_keeps_what_the_server_last_showed_over_a_later_event():
    shown = {"id": 1, "task": 5, "updated_at": "a", "result": _choice("ham")}
    webhooks = WebhookAnnotations.from_events([
        _event("ANNOTATION_CREATED", annotation=shown),
        _event("ANNOTATION_UPDATED", annotation={**shown, "updated_at": "b",
                                                 "result": _choice("spam")})])
    seen = reconcile_task({"id": 5}, webhooks, seen_on_server={1: shown})
    assert (seen.annotations, seen.from_events, seen.via) == ([shown], [1], "events")
    assert [(a["id"], a["updated_at"]) for a in seen.unconfirmed_updates] == [(1, "b")]
    # only the id recorded (a run pulled before pulls kept what the server showed): the event's
    legacy = reconcile_task({"id": 5}, webhooks, seen_on_server={1: None})
    assert ([a["updated_at"] for a in legacy.annotations], legacy.unconfirmed_updates) == \
        (["b"], [])
    # an event that only touches the answer is no update
    touched = WebhookAnnotations.from_events([
        _event("ANNOTATION_UPDATED", annotation={**shown, "updated_at": "c"})])
    kept = reconcile_task({"id": 5}, touched, seen_on_server={1: shown})
    assert (kept.annotations, kept.unconfirmed_updates) == ([shown], [])


def test_an_annotation_recreated_after_its_deletion_counts_again():
    webhooks = WebhookAnnotations.from_events([
        _event("ANNOTATION_CREATED", annotation={"id": 1, "task": 5}),
        _event("ANNOTATIONS_DELETED", annotations=[{"id": 1}]),
        _event("ANNOTATION_UPDATED", annotation={"id": 1, "task": 5})])
    assert webhooks.deleted == set()
    assert reconcile_task({"id": 5}, webhooks, seen_on_server={1: None}).from_events == [1]


def test_events_name_the_tasks_to_fetch():
    events = [_event("ANNOTATION_CREATED", annotation={"id": 1, "task": 5}),
              _event("ANNOTATIONS_DELETED", annotations=[{"id": 1}, {"id": 99}]),
              _event("TASKS_DELETED", tasks=[{"id": 8}]),
              {"payload": {"action": "ANNOTATION_CREATED", "annotation": {"id": 4, "task": 9}}}]
    webhooks = WebhookAnnotations.from_events(events)
    assert webhooks.tasks_named(events) == {7: {5}}
    assert webhooks.tasks_named(events[1:2]) == {7: {5}}


def test_events_name_their_task_in_any_shape_and_a_bad_one_breaks_nothing():
    events = [_event("ANNOTATION_CREATED", annotation={"id": 1, "task": {"id": 43}}),
              _event("ANNOTATION_UPDATED", annotation={"id": 2}, task={"id": 44}),
              _event("ANNOTATION_CREATED", annotation={"id": 3, "task": "not a task"}),
              _event("ANNOTATIONS_DELETED", annotations=["junk", {"id": 2}])]
    webhooks = WebhookAnnotations.from_events(events)
    assert webhooks.task_of == {1: 43, 2: 44}
    assert webhooks.tasks_named(events) == {7: {43, 44}}


def _row(sample_id: str, task_id: int, updated_at: str) -> dict:
    return {"id": sample_id, "action": "keep", "project_id": 7, "task_id": task_id,
            "needs_review": False, "updated_at": pd.Timestamp(updated_at, tz="UTC")}


def test_merge_replaces_refreshed_tasks_and_keeps_the_latest_per_sample():
    previous = pd.DataFrame([_row("a", 1, "2026-01-01"), _row("b", 2, "2026-01-01"),
                             _row("c", 3, "2026-01-01")])
    new = [_row("a", 1, "2026-01-03"), _row("c", 4, "2026-01-02")]
    merged, withdrawn = merge_corrections(previous, new, refreshed={(7, 1), (7, 2), (7, 4)})
    assert withdrawn == 1                                       # task 2 lost its answers
    assert merged[["id", "task_id"]].values.tolist() == [["c", 4], ["a", 1]]


def test_the_fake_records_events_as_the_backend_does(store, studio, tasks):
    annotation_id = studio.annotate(tasks["s0"], "spam")
    studio.delete_annotation(annotation_id)
    actions = [e["action"] for e in read_events(store).events]
    assert actions == ["ANNOTATION_CREATED", "ANNOTATIONS_DELETED"]


def test_a_corrections_file_another_tool_wrote_is_merged_not_a_traceback(store, studio, tasks):
    # the README's columns only (id, new_label, action): pull read its project_id and via
    # and stopped with KeyError: 'project_id'
    path = store.local_path(CORRECTIONS)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"id": ["s3"], "new_label": ["ham"], "action": ["relabel"]}).to_parquet(path)
    studio.annotate(tasks["s0"], "spam")
    result = pull(store, studio)
    assert result.corrections == 2
    rows = corrections(store)
    assert (rows["s0"]["action"], rows["s0"]["new_label"], rows["s0"]["via"]) == \
        ("relabel", "spam", "export")
    assert (rows["s3"]["action"], rows["s3"]["new_label"], rows["s3"]["task_id"]) == \
        ("relabel", "ham", None)


def test_answers_are_read_against_the_runs_classes_when_the_config_was_edited(
        store, studio, tasks, caplog):
    """A class renamed and one added in Label Studio: an answer of a run's class still counts;
    one of a class the run lacks goes to unmapped, and counts once the config is put back and
    the annotator answers with a run's class."""
    store.write_json("model/labels.json", CLASSES)
    studio.annotate(tasks["s0"], "spam")
    pull(store, studio)
    (project_id,) = studio.projects
    studio.update_project(project_id, label_config=build_labeling_config(["ham", "Spam",
                                                                          "promo"]))
    studio.annotate(tasks["s1"], "spam")
    promo = studio.annotate(tasks["s2"], "promo")
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    assert f"project {project_id}'s labeling config offers the classes ['ham', 'Spam', " \
        "'promo'] where the run's are ['ham', 'spam']" in caplog.text
    rows = corrections(store)
    assert {s: rows[s]["new_label"] for s in rows} == {"s0": "spam", "s1": "spam"}
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["annotation_id"], unmapped["reason"]) == (
        promo, "answer 'promo' is not a class of the run (['ham', 'spam']), 'Not sure' or "
        "'Drop: not a valid sample'")
    assert (result.unmapped, result.corrections) == (1, 2)
    studio.update_project(project_id, label_config=build_labeling_config(CLASSES))
    studio.update(promo, "ham")
    assert pull(store, studio).unmapped == 0
    assert corrections(store)["s2"]["new_label"] == "ham"


def test_an_earlier_answer_of_an_annotator_who_answered_again_is_kept_as_superseded(
        store, studio, tasks):
    first = studio.annotate(tasks["s0"], "ham")
    second = studio.annotate(tasks["s0"], "spam")              # the same annotator again
    result = pull(store, studio)
    row = corrections(store)["s0"]
    assert (row["action"], row["annotation_ids"], result.unmapped) == ("relabel", [second], 1)
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["annotation_id"], unmapped["id"], unmapped["reason"]) == (
        first, "s0", f"superseded by annotation {second}, a later answer of "
        "alice@relabeler.local to the task (an annotator's latest answer is their vote)")
    assert json.loads(unmapped["annotation"])["result"][0]["value"] == {"choices": ["ham"]}


def test_a_pull_state_of_an_earlier_relabeler_has_every_answered_task_read_again_once(
        store, studio, tasks, caplog):
    studio.annotate(tasks["s0"], "spam")
    pull(store, studio)
    state = store.read_json(PULL_STATE)
    assert state["format"] == PULL_STATE_FORMAT
    store.write_json(PULL_STATE, {k: v for k, v in state.items() if k != "format"})
    with caplog.at_level(logging.INFO, logger="relabeler.plugin.pull"):
        pull(store, studio)
    assert studio.list_calls[-1]["updated_after"] is None
    assert studio.list_calls[-1]["annotated_only"] is True
    assert "was written by an earlier relabeler: every answered task is read again" in \
        caplog.text
    pull(store, studio)
    assert studio.list_calls[-1]["updated_after"] is not None


# ---------------------------------------------------------------------------------------------
# evidence regions an answer changed: not read, said once per pull

def _region(region_id: str, start: int, end: int, label: str, **extra) -> dict:
    return {"id": region_id, "from_name": "evidence", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": "x" * (end - start),
                      "labels": [label]}, **extra}


SHOWN = [_region("ev-s0", 0, 4, SUPPORTS_SUGGESTION, readonly=True),
         _region("ev-g0", 5, 6, SUPPORTS_GIVEN, readonly=True)]


@pytest.fixture
def predicted(store, studio) -> dict[str, int]:
    """A task per sample of GIVEN, each with the model's prediction: spam and two regions."""
    project_id = studio.add_project()
    prediction = {"model_version": "relabeler", "result": [
        {"from_name": "answer", "to_name": "text", "type": "choices",
         "value": {"choices": ["spam"]}}, *SHOWN]}
    task_of = {s: studio.add_task(project_id, s, label, prediction=prediction)
               for s, label in GIVEN.items()}
    return _recorded(store, task_of, project_id)


def _as_shown(region: dict) -> dict:
    return {**region, "origin": "prediction"}


def test_answers_that_changed_the_evidence_regions_are_counted_in_one_warning(
        store, studio, predicted, caplog):
    kept = [_as_shown(r) for r in SHOWN]
    studio.annotate(predicted["s0"], "spam", regions=kept)  # highlights as shown
    drawn = [*kept, _region("mine", 7, 9, SUPPORTS_GIVEN, origin="manual")]
    studio.annotate(predicted["s1"], "ham", regions=drawn)
    studio.annotate(predicted["s2"], "spam", regions=kept[:1])  # one deleted
    studio.annotate(predicted["s3"], "ham")  # through the API: no regions, no prediction
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        result = pull(store, studio)
    warned = [r.getMessage() for r in caplog.records if "evidence highlights" in r.getMessage()]
    project_id = studio.tasks[predicted["s1"]]["project"]
    assert warned == [
        f"pull: 2 tasks have answers whose evidence highlights differ from the model's "
        f"(regions drawn, moved or deleted in Label Studio; project/task "
        f"{project_id}/{predicted['s1']}, {project_id}/{predicted['s2']}): relabeler reads only "
        f"the class and the comment of an answer, the highlights are the model's evidence, so "
        f"those region changes are not kept"]
    # the answers themselves are read as ever
    assert (result.corrections, result.unmapped) == (4, 0)
    rows = corrections(store)
    assert [(rows[s]["action"], rows[s]["new_label"]) for s in GIVEN] == \
        [("relabel", "spam"), ("keep", "ham"), ("keep", "spam"), ("relabel", "ham")]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.pull"):
        pull(store, studio)  # nothing changed since: nothing to say again
    assert "evidence highlights" not in caplog.text


def test_evidence_edited_tells_changed_regions_from_the_predictions():
    spec = LabelingSpec.for_classes(CLASSES)
    prediction = {"id": 7, "result": SHOWN}

    def answer(regions, **extra):
        return {"id": 1, "result": [{"from_name": "answer", "to_name": "text",
                                     "type": "choices", "value": {"choices": ["ham"]}},
                                    *regions], "parent_prediction": 7, **extra}

    kept = [_as_shown(r) for r in SHOWN]
    moved = [{**kept[0], "value": {**kept[0]["value"], "end": 3}}, kept[1]]
    assert not evidence_edited(answer(kept), spec, [prediction])
    assert not evidence_edited(answer(kept[::-1]), spec, [prediction])  # order aside
    assert evidence_edited(answer(kept[:1]), spec, [prediction])  # deleted
    assert evidence_edited(answer(moved), spec, [prediction])  # moved
    relabeled = [{**kept[0], "value": {**kept[0]["value"], "labels": [SUPPORTS_GIVEN]}}]
    assert evidence_edited(answer([relabeled[0], kept[1]]), spec, [prediction])
    # without its prediction, the origins Label Studio gives a changed region still tell
    assert not evidence_edited(answer(kept[:1]), spec, [])
    assert evidence_edited(answer([{**kept[0], "origin": "prediction-changed"}]), spec, [])
    assert evidence_edited(answer([_region("m", 1, 2, SUPPORTS_GIVEN, origin="manual")]),
                           spec, [])
    # a skip is no answer; an annotation made through the API has no parent prediction
    assert not evidence_edited(answer([], was_cancelled=True), spec, [prediction])
    assert not evidence_edited(answer([], parent_prediction=None), spec, [prediction])
    assert evidence_edited(answer([], parent_prediction={"id": 7}), spec, [prediction])
