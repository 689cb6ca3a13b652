"""A later round's push against the in-memory server (:mod:`tests.plugin.fake_studio`); the
rounds themselves run against a real server in tests/plugin/test_rounds.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from relabeler.plugin.evidence import RunEvidence
from relabeler.plugin.push import _pending_rows, push
from relabeler.plugin.push_checks import PushError
from relabeler.plugin.rounds import check_project, push_round
from relabeler.queue_plan import CONTROL, FLAGGED, read_manifest, write_manifest
from tests.plugin.fake_studio import FakeStudio
from tests.plugin.synthetic import CLASSES, make_run


def test_tasks_an_earlier_push_left_pending_are_not_counted_as_this_rounds_controls(
        tmp_path, caplog):
    caplog.set_level("INFO", logger="relabeler.plugin.rounds")
    store = make_run(str(tmp_path / "run"), n_train=60)
    studio = FakeStudio(CLASSES)
    first = push(store, studio, project_title="t", budget=6, control_share=0.0)
    manifest = read_manifest(store)
    unsent = sorted(set(store.read_table("dataset/train.parquet").column("id").to_pylist())
                    - set(manifest["id"]))
    # round 1 died after writing a control's pending row
    left = pd.DataFrame({"id": [unsent[0]], "source": [CONTROL], "position": [7],
                         "rank": pd.array([None], dtype="Int64")})
    write_manifest(store, pd.concat([manifest, _pending_rows(left, first.project_id)],
                                    ignore_index=True))
    plan = pd.DataFrame({"id": unsent[1:3], "source": FLAGGED,
                         "position": np.array([8, 9]), "rank": pd.array([1, 2], dtype="Int64")})
    result = push_round(store, studio, RunEvidence.load(store), plan, round_no=2, waiting=0)
    assert (result.new_flagged, result.new_controls) == (2, 0)
    after = read_manifest(store).set_index("id")
    assert after.loc[unsent[:3], "task_id"].notna().all()  # the left-over one was sent too
    assert list(after.loc[unsent[:3], "round"]) == [1, 2, 2]
    assert "1 tasks an earlier push left unsent were sent too" in caplog.text


def test_tasks_are_built_for_the_labeling_config_their_project_was_made_with(tmp_path):
    # a project made before the evidence window's page: its tasks carry the window in their
    # panel, not in a data field its config never shows (push, re-rank and rounds alike)
    from relabeler.plugin.projects import project_spec

    store = make_run(str(tmp_path / "run"), n_train=60)
    studio = FakeStudio(CLASSES)
    first = push(store, studio, project_title="t", budget=6, control_share=0.0)
    project = studio.projects[first.project_id]
    assert '"$window"' in project.label_config
    assert all("window" in t["data"] for t in studio.tasks.values())
    older = project.label_config.replace('  <HyperText name="window" value="$window" '
                                         'inline="true"/>\n', "")
    studio.update_project(first.project_id, label_config=older)
    assert project_spec(studio, first.project_id).window_field is None
    sent_before = set(studio.tasks)
    push(store, studio, project_title="t", budget=12, control_share=0.0)
    new = [t for i, t in studio.tasks.items()
           if i not in sent_before and t["project"] == first.project_id]
    assert len(new) == 6 and not any("window" in t["data"] for t in new)
    assert all("Given label" in t["data"]["panel"] for t in new)


def _other_server(studio: FakeStudio, project_id: int) -> FakeStudio:
    """A fresh server where another run pushed: the same project and task ids as ``studio``'s,
    other samples in them (a database reset, a restored backup, another instance's URL)."""
    other = FakeStudio(CLASSES)
    assert other.add_project() == project_id
    mine = sorted(i for i, t in studio.tasks.items() if t["project"] == project_id)
    assert [other.add_task(project_id, f"x{n}", "a") for n in range(len(mine))] == mine
    return other


def test_push_and_next_refuse_a_project_of_another_run_and_change_nothing_there(tmp_path):
    from relabeler.plugin.push_checks import PushError
    from relabeler.plugin.rounds import check_project

    store = make_run(str(tmp_path / "run"), n_train=60)
    studio = FakeStudio(CLASSES)
    first = push(store, studio, project_title="t", budget=6, control_share=0.0)
    manifest = read_manifest(store)
    first_task = int(manifest["task_id"].min())
    sample = manifest.loc[manifest["task_id"] == first_task, "id"].item()
    other = _other_server(studio, first.project_id)
    before = (dict(other.projects), {i: dict(t) for i, t in other.tasks.items()})
    wrong = (f"Label Studio project {first.project_id} at {other.shown_url} is not the one this "
             f"run pushed to: its task {first_task} holds sample 'x0', where "
             f"studio/manifest.parquet records sample '{sample}'")
    unsent = sorted(set(store.read_table("dataset/train.parquet").column("id").to_pylist())
                    - set(manifest["id"]))
    plan = pd.DataFrame({"id": unsent[:2], "source": FLAGGED, "position": np.array([7, 8]),
                         "rank": pd.array([1, 2], dtype="Int64")})
    for attempt in (lambda: check_project(other, first.project_id, 1, manifest),
                    lambda: push_round(store, other, RunEvidence.load(store), plan, round_no=2,
                                       waiting=0),
                    lambda: push(store, other, project_title="t", budget=12,
                                 control_share=0.0)):
        with pytest.raises(PushError) as raised:
            attempt()
        assert wrong in str(raised.value) and "studio.url" in str(raised.value)
    assert (dict(other.projects), {i: dict(t) for i, t in other.tasks.items()}) == before
    assert read_manifest(store).equals(manifest)


def test_tasks_deleted_in_label_studio_are_named_with_what_becomes_of_them(tmp_path, caplog):
    caplog.set_level("WARNING", logger="relabeler.plugin.push")
    store = make_run(str(tmp_path / "run"), n_train=60)
    studio = FakeStudio(CLASSES)
    first = push(store, studio, project_title="t", budget=14, control_share=0.0)
    manifest = read_manifest(store).sort_values("task_id")
    deleted = manifest.iloc[:12]
    for task_id in deleted["task_id"]:
        studio.delete_task(int(task_id))
    push(store, studio, project_title="t", budget=14, control_share=0.0)
    names = ", ".join(repr(s) for s in sorted(deleted["id"])[:10])
    assert (f"push: 12 tasks in the manifest are gone from project {first.project_id} (deleted "
            f"in Label Studio?): samples {names} and 2 more. They stay in "
            f"studio/manifest.parquet, so push and `next` do not send these samples again; "
            f"answers pulled from them before stay in labels/corrections.parquet. To label "
            f"one, write its label into labels/corrections.parquet by hand") in caplog.text
    # as said: none is sent again
    after = read_manifest(store).set_index("id")
    assert after.loc[list(deleted["id"]), "task_id"].tolist() == deleted["task_id"].tolist()
    assert sorted(t["data"]["sample_id"] for t in studio.tasks.values()) == \
        sorted(manifest["id"].iloc[12:])


def test_a_review_project_deleted_between_rounds_names_the_way_out(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=60)
    studio = FakeStudio(CLASSES)
    first = push(store, studio, project_title="t", budget=12, control_share=0.0)
    manifest = read_manifest(store)
    del studio.projects[first.project_id]
    with pytest.raises(PushError) as raised:
        check_project(studio, first.project_id, 3, manifest)
    assert str(raised.value) == (
        f"the review project {first.project_id} is gone from {studio.shown_url}: it was "
        "deleted after round 3. Nothing was pushed; the answers pulled before stay in "
        "labels/corrections.parquet. To start again, make a new run on the same data "
        "(`relabeler run --run NEW_DIR ...`): its push creates a new project; this run's "
        "answers stay in its labels/corrections.parquet")
