"""The eval audit in Label Studio: push sends the top of the eval ranking to a third project,
bare of evidence alike, and pull writes the answers as corrections of source eval_audit
(in-memory server, :mod:`tests.plugin.fake_studio`)."""

from __future__ import annotations

import logging

from relabeler.corrections import CORRECTIONS
from relabeler.plugin.evidence import EVAL_NOTE, RunEvidence
from relabeler.plugin.projects import eval_audit_title
from relabeler.plugin.pull import pull
from relabeler.plugin.push import eval_audit_picks, push
from relabeler.queue_plan import EVAL_AUDIT, read_manifest, read_plan
from tests.plugin.fake_studio import FakeStudio
from tests.plugin.synthetic import CLASSES, make_run

TITLE = "relabeler: eval audit test"
FLIPPED = ["e000", "e005", "e010", "e015"]  # every 5th eval label is wrong; ranked first


def test_push_sends_the_eval_ranking_to_an_eval_audit_project_and_pull_reads_it(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=60, n_eval=20)
    studio = FakeStudio(CLASSES, events_to=store)
    result = push(store, studio, project_title=TITLE, budget=10, control_share=0.1,
                  eval_audit_budget=6)
    assert result.new_eval == 6 and result.eval_project_id is not None
    assert studio.projects[result.eval_project_id].title == eval_audit_title(TITLE) == \
        TITLE + " (eval audit)"
    manifest = read_manifest(store)
    audit = manifest[manifest["source"] == EVAL_AUDIT].sort_values("priority")
    assert audit["id"].tolist()[:4] == FLIPPED and len(audit) == 6
    assert set(audit["project_id"]) == {result.eval_project_id}
    assert audit["priority"].tolist() == [1, 2, 3, 4, 5, 6]
    plan, _ = read_plan(store)
    assert plan.loc[plan["source"] == EVAL_AUDIT, "id"].tolist() == audit["id"].tolist()

    tasks = {t["data"]["sample_id"]: t for t in studio.tasks.values()
             if t["project"] == result.eval_project_id}
    assert set(tasks) == set(audit["id"])
    assert tasks["e000"]["data"]["given_label"] == "pos"  # the given eval label, not the truth
    # the training tasks carry evidence regions; every eval task alike carries none
    regions = [r for r in tasks["e000"]["predictions"][0]["result"] if r["type"] == "labels"]
    assert regions == []
    train_task = next(t for t in studio.tasks.values() if t["project"] == result.project_id)
    assert any(r["type"] == "labels" for r in train_task["predictions"][0]["result"])

    again = push(store, studio, project_title=TITLE, budget=10, control_share=0.1,
                 eval_audit_budget=6)
    assert again.new_eval == 0 and again.eval_project_id == result.eval_project_id

    task_of = {s: t["id"] for s, t in tasks.items()}
    studio.annotate(task_of["e000"], "neg")
    studio.annotate(task_of["e005"], "pos")
    pull(store, studio, consensus="majority")
    rows = {r["id"]: r for r in store.read_table(CORRECTIONS).to_pylist()}
    assert rows["e000"]["source"] == EVAL_AUDIT and rows["e000"]["action"] == "relabel"
    assert (rows["e000"]["old_label"], rows["e000"]["new_label"]) == ("pos", "neg")
    assert (rows["e005"]["old_label"], rows["e005"]["new_label"]) == ("neg", "pos")


def test_eval_tasks_are_built_from_the_eval_texts_with_the_suggested_label(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=40, n_eval=10)
    evidence = RunEvidence.load(store)
    picks = eval_audit_picks(evidence, 3)
    assert picks["id"].tolist() == ["e000", "e005", "e001"] and picks["rank"].tolist() == \
        [1, 2, 3]
    samples = evidence.eval_samples(list(picks["id"]))
    evaluation = store.read_table("dataset/eval.parquet").to_pandas().set_index("id")
    for sample in samples:
        assert sample.text == evaluation.at[sample.id, "text"]
        assert sample.given_label == evaluation.at[sample.id, "label"]
        assert sample.suggested_label == evaluation.at[sample.id, "true_label"]
        assert sample.notes == (EVAL_NOTE,) and not sample.suggestion_spans
    assert eval_audit_picks(evidence, 0).empty  # 0 turns the audit off
    assert evidence.sample("e005") == evidence.eval_samples(["e005"])[0]  # the ML backend's


def test_no_eval_ranking_means_no_eval_project(tmp_path, caplog):
    store = make_run(str(tmp_path / "run"), n_train=40)
    studio = FakeStudio(CLASSES)
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.push"):
        result = push(store, studio, project_title=TITLE, budget=5, control_share=0.0,
                      eval_audit_budget=5)
    assert result.eval_project_id is None and result.new_eval == 0
    assert "no eval audit" in caplog.text
    assert len(studio.projects) == 2  # review and acquisition


def test_a_deleted_eval_audit_project_is_an_error_that_names_the_setting(tmp_path):
    import pytest

    from relabeler.plugin.push import PushError

    store = make_run(str(tmp_path / "run"), n_train=60, n_eval=20)
    studio = FakeStudio(CLASSES)
    result = push(store, studio, project_title=TITLE, budget=10, control_share=0.1,
                  eval_audit_budget=6)
    del studio.projects[result.eval_project_id]  # deleted in Label Studio
    before = len(studio.tasks)
    with pytest.raises(PushError) as info:
        push(store, studio, project_title=TITLE, budget=10, control_share=0.1,
             eval_audit_budget=8)
    message = str(info.value)
    assert f"project {result.eval_project_id} '{TITLE} (eval audit)'" in message
    assert "it was deleted. Nothing was sent" in message
    assert message.endswith("push with --set studio.eval_audit_budget=0")
    assert len(studio.tasks) == before
    # the way out works: the review project is topped up, no eval audit
    again = push(store, studio, project_title=TITLE, budget=12, control_share=0.1,
                 eval_audit_budget=0)
    assert again.new_flagged + again.new_controls == 2 and again.new_eval == 0
