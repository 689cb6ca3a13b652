"""Second opinions against a real Label Studio server (see conftest.py): after a pull, the
tasks where one more answer most likely changes the label go to '<title> (second opinion)',
once each, and the next pull folds those answers into the same sample's resolution."""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from relabeler.config import RunConfig, apply_overrides
from relabeler.plugin.client import StudioClient
from relabeler.plugin.pull import CORRECTIONS, SECOND_OPINIONS, pull, run_pull
from relabeler.plugin.push import push
from relabeler.plugin.second_opinion import (
    Superseded,
    fold_second_opinions,
    push_second_opinions,
    second_opinion_picks,
    second_opinion_title,
)
from relabeler.queue_plan import CONTROL, FLAGGED, SECOND_OPINION, read_manifest, write_manifest
from tests.plugin.synthetic import make_run

OTHER = {"neg": "pos", "pos": "neg"}


@pytest.fixture
def title(request) -> str:
    return f"{request.node.name.removeprefix('test_')[:25]} {time.time_ns() % 10**9}"


@pytest.fixture
def admin(studio) -> StudioClient:
    return StudioClient(studio.url, studio.token, retries=2, backoff=0.2)


def post(http: httpx.Client, task_id: int, choice: str) -> dict:
    response = http.post(f"/api/tasks/{task_id}/annotations/", json={"result": [
        {"from_name": "answer", "to_name": "text", "type": "choices",
         "value": {"choices": [choice]}}]})
    assert response.status_code == 201, response.text
    return response.json()


def rows(store) -> dict[str, SimpleNamespace]:
    return {r["id"]: SimpleNamespace(**r) for r in store.read_table(CORRECTIONS).to_pylist()}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_second_opinions_are_asked_once_and_fold_into_the_resolution(studio, annotators, admin,
                                                                    tmp_path, title):
    store = make_run(str(tmp_path / "run"), n_train=80)
    train = store.read_table("dataset/train.parquet").to_pandas().set_index("id")
    # the model's out-of-fold probabilities lean towards the true class
    store.write_table("train/oof.parquet", pa.table({
        "id": list(train.index), "fold": [0] * len(train),
        "probs": pa.array([[0.7, 0.3] if t == "neg" else [0.3, 0.7]
                           for t in train["true_label"]], pa.list_(pa.float32()))}))
    pushed = push(store, admin, project_title=title, budget=12, control_share=0.0)
    main = read_manifest(store)
    main = main[main["project_id"] == pushed.project_id].sort_values("priority").head(10)
    alice, bob = studio.http(annotators["alice"]), studio.http(annotators["bob"])
    split = set(main["id"].iloc[[2, 5, 8]])  # bob gets these wrong; alice is right everywhere
    for task_id, sample in zip(main["task_id"], main["id"], strict=True):
        truth = train.at[sample, "true_label"]
        post(alice, int(task_id), truth)
        post(bob, int(task_id), OTHER[truth] if sample in split else truth)

    config = apply_overrides(RunConfig(), {"studio.project_title": title,
                                           "studio.second_opinions": 3})
    run_pull(store, config, client=admin)
    manifest = read_manifest(store)
    asked = manifest[manifest["source"] == SECOND_OPINION].sort_values("priority")
    assert set(asked["id"]) == split  # where the two disagree, one more answer decides
    assert asked["priority"].tolist() == [1, 2, 3] and asked["task_id"].notna().all()
    project_id = int(asked["project_id"].iloc[0])
    shown = admin.get_project(project_id).title
    assert shown == second_opinion_title(title) and shown.endswith(" (second opinion)")
    assert len(shown) <= 50 and title.startswith(shown.removesuffix(" (second opinion)"))
    assert admin.get_project(project_id).task_count == 3
    resolved = rows(store)
    assert all(resolved[s].consensus == "dawid_skene" for s in main["id"])
    assert {s: resolved[s].new_label for s in split} == {
        s: train.at[s, "true_label"] for s in split}  # the model sides with alice

    # idempotent: pulling and asking again sends nothing twice; a larger knob tops up
    again = push_second_opinions(store, admin, project_title=title, count=3)
    assert (again.new, again.total, again.project_id) == (0, 3, project_id)
    more = push_second_opinions(store, admin, project_title=title, count=4)
    assert (more.new, more.total) == (1, 4) and admin.get_project(project_id).task_count == 4

    # the admin's second answer joins the sample's own votes
    first = asked.iloc[0]
    truth = train.at[first.id, "true_label"]
    annotation = post(studio.http(), int(first.task_id), truth)
    pull(store, admin)
    row = rows(store)[first.id]
    assert (row.n_annotations, row.source, row.action == "keep") == (3, FLAGGED,
                                                                     truth == row.old_label)
    assert sorted(row.annotators) == sorted(["alice@relabeler.local", "bob@relabeler.local",
                                             studio.username])
    assert row.new_label == truth and row.agreement == pytest.approx(2 / 3)
    assert store.read_table(SECOND_OPINIONS).num_rows == 1
    pull(store, admin)  # nothing new: the answer is not counted twice
    assert rows(store)[first.id].n_annotations == 3

    # a deleted second answer leaves the resolution
    response = studio.http().delete(f"/api/annotations/{annotation['id']}/")
    assert response.status_code == 204, response.text
    pull(store, admin)
    row = rows(store)[first.id]
    assert row.n_annotations == 2 and studio.username not in row.annotators


def row(sample: str, votes: list[tuple[str, str, int]], *, source: str = FLAGGED,
        task: int = 1) -> dict:
    return {"id": sample, "old_label": "neg", "new_label": None, "action": "unsure",
            "annotators": [w for w, _, _ in votes], "votes": [f"{w}: {x}" for w, x, _ in votes],
            "annotation_ids": [a for _, _, a in votes], "n_annotations": len(votes),
            "n_skipped": 0, "source": source, "project_id": 1 if source != SECOND_OPINION
            else 2, "task_id": task, "updated_at": pd.Timestamp("2026-12-05", tz="UTC")}


def test_folding_joins_votes_once_and_takes_back_withdrawn_ones():
    review = pd.DataFrame([row("a", [("ann", "pos", 1), ("bob", "neg", 2)]),
                           row("b", [("ann", "neg", 3)], task=2)])
    second = pd.DataFrame([row("a", [("cy", "pos", 10)], source=SECOND_OPINION, task=7),
                           row("c", [("cy", "neg", 11)], source=SECOND_OPINION, task=8)])
    folded, superseded = fold_second_opinions(review, second, earlier=second.iloc[:0])
    assert superseded == []
    a = folded.set_index("id").loc["a"]
    assert (list(a.annotators), list(a.votes), a.n_annotations) == (
        ["ann", "bob", "cy"], ["ann: pos", "bob: neg", "cy: pos"], 3)
    assert folded["id"].tolist() == ["a", "b", "c"]  # c had no review row: its own row stays
    # folding again (the next pull, nothing new) counts nothing twice
    again, _ = fold_second_opinions(folded, second, earlier=second)
    assert list(again.set_index("id").loc["a", "annotation_ids"]) == [1, 2, 10]
    # the second answers deleted: a goes back to its two votes, c leaves
    gone, _ = fold_second_opinions(again, second.iloc[:0], earlier=second)
    assert gone["id"].tolist() == ["a", "b"]
    assert list(gone.set_index("id").loc["a", "annotators"]) == ["ann", "bob"]
    # an annotator who answers again in the second-opinion project has one vote: the later;
    # the earlier is superseded, and comes back once the later is gone
    same = pd.DataFrame([row("a", [("bob", "pos", 12)], source=SECOND_OPINION, task=7)])
    folded, superseded = fold_second_opinions(review, same, earlier=same.iloc[:0])
    assert list(folded.set_index("id").loc["a", "votes"]) == ["ann: pos", "bob: pos"]
    assert superseded == [Superseded("a", 1, 1, 2, "bob", "bob: neg", 12, 7)]
    assert superseded[0].reason.startswith("superseded by annotation 12, a later answer of bob "
                                           "to the same sample in the second-opinion task 7")
    back, none = fold_second_opinions(folded, same.iloc[:0], earlier=same, restore=superseded)
    assert none == [] and list(back.set_index("id").loc["a", "annotation_ids"]) == [1, 2]


def test_a_folded_row_is_as_recent_as_its_latest_answer():
    def day(d: int) -> pd.Timestamp:
        return pd.Timestamp(f"2026-12-{d:02d}", tz="UTC")

    review = pd.DataFrame([row("a", [("ann", "pos", 1)]), row("b", [("ann", "neg", 2)], task=2),
                           row("c", [("ann", "neg", 3)], task=3)])
    review.loc[2, "updated_at"] = pd.NaT
    second = pd.DataFrame([row("a", [("cy", "pos", 10)], source=SECOND_OPINION, task=7),
                           row("b", [("cy", "neg", 11)], source=SECOND_OPINION, task=8),
                           row("c", [("cy", "neg", 12)], source=SECOND_OPINION, task=9)])
    second["updated_at"] = [day(7), day(1), day(3)]
    folded = fold_second_opinions(review, second, earlier=second.iloc[:0])[0].set_index("id")
    # a: the later second opinion moves it; b: an earlier one does not; c: no time of its own
    assert folded["updated_at"].to_dict() == {"a": day(7), "b": day(5), "c": day(3)}


def test_picks_top_up_to_the_count_with_the_best_ranked_answered_training_tasks():
    corrections = pd.DataFrame({
        "id": ["a", "b", "c", "d", "e"], "second_opinion": pd.array([3, 1, 2, None, 4],
                                                                    dtype="Int64"),
        "source": [FLAGGED, FLAGGED, CONTROL, FLAGGED, "acquired"]})
    manifest = pd.DataFrame({"id": ["b"], "source": [SECOND_OPINION], "priority": [1]})
    picks = second_opinion_picks(corrections, manifest, count=3)
    assert picks["id"].tolist() == ["c", "a"] and picks["position"].tolist() == [2, 3]
    assert (picks["source"] == SECOND_OPINION).all()
    assert second_opinion_picks(corrections, manifest, count=1).empty
    assert second_opinion_picks(corrections, manifest.iloc[:0], count=0).empty
    with pytest.raises(ValueError, match="second_opinions must be >= 0"):
        second_opinion_picks(corrections, manifest, count=-1)


def test_second_opinions_sent_by_a_later_round_record_it_and_show_the_runs_evidence(tmp_path):
    from relabeler.plugin.tasks import ROUND_FIELD
    from tests.plugin.fake_studio import FakeStudio
    from tests.plugin.synthetic import CLASSES

    store = make_run(str(tmp_path / "run"), n_train=40)
    studio = FakeStudio(CLASSES)
    push(store, studio, project_title="t", budget=6, control_share=0.0)
    sent = read_manifest(store)
    answered = list(sent["id"][:3])
    store.write_table(CORRECTIONS, pa.Table.from_pandas(pd.DataFrame({
        "id": answered, "old_label": "neg", "new_label": "pos", "action": "relabel",
        "source": FLAGGED, "second_opinion": pd.array([2, 1, 3], dtype="Int64")}),
        preserve_index=False))
    result = push_second_opinions(store, studio, project_title="t", count=2, round_no=3)
    assert result.new == 2
    asked = read_manifest(store).query("source == @SECOND_OPINION")
    assert sorted(asked["id"]) == sorted(answered[:2]) and set(asked["round"]) == {3}
    data = [t["data"] for t in studio.tasks.values() if t["project"] == result.project_id]
    assert [d[ROUND_FIELD] for d in data] == [1, 1]  # the run's evidence, not version 2's


def test_a_deleted_second_opinion_project_is_an_error_that_names_the_setting(tmp_path):
    from relabeler.plugin.push import PushError
    from tests.plugin.fake_studio import FakeStudio
    from tests.plugin.synthetic import CLASSES

    store = make_run(str(tmp_path / "run"), n_train=40)
    studio = FakeStudio(CLASSES)
    push(store, studio, project_title="t", budget=6, control_share=0.0)
    answered = list(read_manifest(store)["id"][:3])
    store.write_table(CORRECTIONS, pa.Table.from_pandas(pd.DataFrame({
        "id": answered, "old_label": "neg", "new_label": "pos", "action": "relabel",
        "source": FLAGGED, "second_opinion": pd.array([2, 1, 3], dtype="Int64")}),
        preserve_index=False))
    first = push_second_opinions(store, studio, project_title="t", count=1)
    del studio.projects[first.project_id]  # deleted in Label Studio
    with pytest.raises(PushError) as info:
        push_second_opinions(store, studio, project_title="t", count=2)
    message = str(info.value)
    assert f"project {first.project_id} 't (second opinion)'" in message
    assert "set studio.second_opinions = 0 (--set studio.second_opinions=0)" in message


def test_a_plain_pull_records_its_second_opinions_under_the_latest_round(tmp_path):
    # pull (not next) sends second opinions too: after round 2 they were recorded as round 1
    from tests.plugin.fake_studio import FakeStudio
    from tests.plugin.synthetic import CLASSES

    store = make_run(str(tmp_path / "run"), n_train=40)
    studio = FakeStudio(CLASSES)
    push(store, studio, project_title="t", budget=6, control_share=0.0)
    manifest = read_manifest(store)
    manifest.loc[manifest.index[3:], "round"] = 2  # a later round sent these
    write_manifest(store, manifest)
    answered = list(manifest["id"][:3])
    store.write_table(CORRECTIONS, pa.Table.from_pandas(pd.DataFrame({
        "id": answered, "old_label": "neg", "new_label": "pos", "action": "relabel",
        "source": FLAGGED, "second_opinion": pd.array([2, 1, 3], dtype="Int64")}),
        preserve_index=False))
    assert push_second_opinions(store, studio, project_title="t", count=2).new == 2
    asked = read_manifest(store).query("source == @SECOND_OPINION")
    assert set(asked["round"]) == {2}


def _asked_again(tmp_path):
    """A run whose review project holds s0 and s1 and whose second-opinion project holds s0
    again (nobody answered yet): the store, the in-memory server, the review task ids by
    sample and the second-opinion task's id."""
    from relabeler.queue_plan import MANIFEST_SCHEMA
    from relabeler.store import RunStore
    from tests.plugin.fake_studio import FakeStudio

    store = RunStore(str(tmp_path / "run"))
    store.write_table("dataset/train.parquet", pa.table({
        "id": ["s0", "s1"], "text": ["text 0", "text 1"], "label": ["ham", "ham"]}))
    studio = FakeStudio(["ham", "spam"], events_to=store)
    review, side = studio.add_project(), studio.add_project()
    task = {s: studio.add_task(review, s, "ham") for s in ("s0", "s1")}
    asked = studio.add_task(side, "s0", "ham")
    write_manifest(store, pd.DataFrame({
        "id": ["s0", "s1", "s0"], "task_id": [task["s0"], task["s1"], asked],
        "project_id": [review, review, side], "rank": [1, 2, 1], "priority": [1, 2, 1],
        "source": [FLAGGED, FLAGGED, SECOND_OPINION],
        "pushed_at": pd.Timestamp("2026-01-01", tz="UTC")})[MANIFEST_SCHEMA.names])
    return store, studio, task, asked


def test_a_second_opinion_of_an_annotator_who_answered_supersedes_their_answer_visibly(tmp_path):
    # Label Studio Community serves the second-opinion task to anyone, bob included
    import json

    from relabeler.plugin.pull import UNMAPPED
    store, studio, task, asked = _asked_again(tmp_path)
    alice = studio.annotate(task["s0"], "ham", user=1)
    first = studio.annotate(task["s0"], "spam", user=2)
    studio.annotate(task["s1"], "ham", user=1)
    pull(store, studio, consensus="majority")
    later = studio.annotate(asked, "ham", user=2)  # bob again, now agreeing with alice
    result = pull(store, studio, consensus="majority")

    s0 = rows(store)["s0"]
    assert (list(s0.annotation_ids), s0.n_annotations, s0.needs_review) == ([alice, later], 2,
                                                                            True)
    assert not rows(store)["s1"].needs_review
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["annotation_id"], unmapped["id"], unmapped["task_id"], result.unmapped) == (
        first, "s0", task["s0"], 1)
    assert unmapped["reason"].startswith(
        f"superseded by annotation {later}, a later answer of bob@relabeler.local to the same "
        f"sample in the second-opinion task {asked}")
    assert json.loads(unmapped["annotation"])["result"][0]["value"] == {"choices": ["spam"]}

    pull(store, studio, consensus="majority")  # nothing new: nothing counted or set aside twice
    assert store.read_table(UNMAPPED).num_rows == 1 and rows(store)["s0"].needs_review

    # bob's second answer deleted: his first is his vote again, and leaves unmapped
    studio.delete_annotation(later)
    pull(store, studio, consensus="majority")
    s0 = rows(store)["s0"]
    assert (sorted(s0.annotation_ids), list(s0.votes)) == (
        sorted([alice, first]), ["alice@relabeler.local: ham", "bob@relabeler.local: spam"])
    assert store.read_table(UNMAPPED).num_rows == 0


def test_an_annotator_who_answers_the_review_task_after_its_second_opinion_keeps_the_later(
        tmp_path):
    # bob answered the second-opinion task first, then the review task: his later answer is
    # his vote, and the second-opinion one is set aside, not the other way round
    from relabeler.plugin.pull import UNMAPPED
    store, studio, task, asked = _asked_again(tmp_path)
    alice = studio.annotate(task["s0"], "spam", user=1)
    pull(store, studio, consensus="majority")
    second = studio.annotate(asked, "spam", user=2)
    later = studio.annotate(task["s0"], "ham", user=2)
    pull(store, studio, consensus="majority")

    s0 = rows(store)["s0"]
    assert (sorted(s0.annotation_ids), sorted(s0.votes), s0.needs_review) == (
        sorted([alice, later]), ["alice@relabeler.local: spam", "bob@relabeler.local: ham"],
        True)
    (unmapped,) = store.read_table(UNMAPPED).to_pylist()
    assert (unmapped["annotation_id"], unmapped["task_id"]) == (second, asked)
    assert unmapped["reason"].startswith(
        f"superseded by annotation {later}, a later answer of bob@relabeler.local to the same "
        f"sample in the review task {task['s0']}")

    # his review answer deleted: the second-opinion one is his vote again
    studio.delete_annotation(later)
    pull(store, studio, consensus="majority")
    s0 = rows(store)["s0"]
    assert (sorted(s0.annotation_ids), sorted(s0.votes)) == (
        sorted([alice, second]), ["alice@relabeler.local: spam", "bob@relabeler.local: spam"])
    assert not store.exists(UNMAPPED) or store.read_table(UNMAPPED).num_rows == 0
