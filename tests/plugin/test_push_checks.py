"""What push checks before it sends anything, against the in-memory server
(:mod:`tests.plugin.fake_studio`): a queue made by a model that is no longer the run's, an
attribute run that did not finish, and tasks sent before the run had attributions."""

from __future__ import annotations

import html

import pytest

from relabeler.plugin.push import PushError, push
from relabeler.plugin.tasks import NO_ATTRIBUTIONS_NOTE
from tests.plugin.fake_studio import FakeStudio
from tests.plugin.synthetic import CLASSES, make_run

STAGES = ("data", "train", "extract.train", "extract.pool", "score", "attribute")


def _finished_run(root: str, **kwargs):
    """A synthetic run whose stages are marked done in order, as the stages mark them."""
    store = make_run(root, **kwargs)
    for stage in STAGES:
        store.mark_done(stage)
    return store


@pytest.mark.parametrize(("again", "first"), [("train", "extract"), ("data", "train")])
def test_push_refuses_a_queue_scored_by_another_model_and_makes_no_project(tmp_path, again,
                                                                           first):
    store = _finished_run(str(tmp_path / "run"), n_train=60)
    store.mark_done(again)  # `train --force` (another model) or `data --force` since
    studio = FakeStudio(CLASSES)
    with pytest.raises(PushError) as err:
        push(store, studio, project_title="t", budget=6, control_share=0.0)
    message = str(err.value)
    assert "is stale" in message and "nothing was sent" in message
    assert f"{again} finished again since" in message
    rerun = ["train", "extract", "score", "attribute"]
    rerun = rerun[rerun.index(first):]
    assert ", ".join(f"`relabeler {verb} --run {store.uri}`" for verb in rerun) in message
    assert "planned with" not in message  # not the evidence check's settings message
    assert studio.projects == {} and studio.tasks == {}


def test_push_refuses_stale_scores_of_a_run_never_attributed(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=60, attributions=False)
    for stage in STAGES[:-1]:
        store.mark_done(stage)
    store.mark_done("train")
    with pytest.raises(PushError, match="the score stage made") as err:
        push(store, FakeStudio(CLASSES), project_title="t", budget=6, control_share=0.0)
    message = str(err.value)
    assert "is stale (train finished again since score ran)" in message
    assert "`relabeler score --run" in message and "attribute --run" not in message


def test_push_refuses_an_attribute_run_that_did_not_finish(tmp_path):
    # `attribute --force` killed midway: the parts' record is written, the marker is gone, and
    # attributions.parquet is the previous run's
    store = _finished_run(str(tmp_path / "run"), n_train=60)
    store.write_json("attributions/_plan.json", {})
    store.remove("_stages/attribute.json")
    studio = FakeStudio(CLASSES)
    with pytest.raises(PushError, match="attribute stage started") as err:
        push(store, studio, project_title="t", budget=6, control_share=0.0)
    assert f"`relabeler attribute --run {store.uri}`" in str(err.value)
    assert studio.projects == {}
    store.mark_done("attribute")  # finished: push goes on
    assert push(store, studio, project_title="t", budget=6, control_share=0.0).total_tasks == 6


def test_tasks_sent_before_the_attributions_get_their_evidence_on_the_next_push(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=60, attributions=False)
    studio = FakeStudio(CLASSES)
    first = push(store, studio, project_title="t", budget=6, control_share=0.0)
    assert not first.has_evidence and len(studio.tasks) == 6 + 8  # and 8 acquired

    def bare() -> list[int]:
        return [i for i, t in studio.tasks.items()
                if html.escape(NO_ATTRIBUTIONS_NOTE) in t["data"]["panel"]]

    def regions() -> int:
        return sum(any(r["type"] == "labels" for r in t["predictions"][0]["result"])
                   for t in studio.tasks.values())

    assert len(bare()) == 14 and regions() == 0
    # `relabeler attribute` ran since: the same run's attributions
    attributed = make_run(str(tmp_path / "attributed"), n_train=60)
    store.write_bytes("attributions.parquet", attributed.read_bytes("attributions.parquet"))
    again = push(store, studio, project_title="t", budget=6, control_share=0.0)
    assert (again.new_flagged, again.new_acquired, len(studio.tasks)) == (0, 0, 14)
    assert bare() == [] and regions() == 14
    # the next push finds nothing bare
    updated = {i: t["data"] for i, t in studio.tasks.items()}
    push(store, studio, project_title="t", budget=6, control_share=0.0)
    assert {i: t["data"] for i, t in studio.tasks.items()} == updated
