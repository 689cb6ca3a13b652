import time

import pytest

from relabeler.config import RunConfig
from relabeler.errors import StageError
from relabeler.jobs.attribute import run_attribute
from relabeler.jobs.extract import run_extract
from relabeler.jobs.retrain import run_retrain
from relabeler.jobs.score import run_score
from relabeler.report.build import build_report
from relabeler.stage_chain import run_first, stages_to_redo
from relabeler.store import RunStore

ALL = ("data", "train", "extract.train", "extract.eval", "extract.pool", "score", "attribute")


def _finished(tmp_path) -> tuple[RunStore, RunConfig]:
    store = RunStore(tmp_path / "run")
    for stage in ALL:
        store.mark_done(stage)
    store.mark_done("retrain", {"version": 1})
    return store, RunConfig(run_dir=store.uri)


def _refused(call) -> str:
    with pytest.raises(StageError) as refused:
        call()
    return str(refused.value)


def test_after_data_again_every_verb_names_train_first(tmp_path):
    # `relabeler data --force` on a finished run: score said "run extract", extract said "run
    # train", attribute "run score", report and retrain "run retrain", then "run train"
    store, config = _finished(tmp_path)
    time.sleep(0.01)  # a later finished_at
    store.mark_done("data")
    uri = store.uri
    stale = "(train is stale: data finished again since train ran)"
    run_hint = (f" (or `relabeler run --run {uri} --no-push`, which redoes every stage from "
                f"train to attribute that is unfinished or stale)")
    assert _refused(lambda: run_score(store, config)) == (
        f"score needs training features {stale}: run `relabeler train --run {uri}` first, "
        f"then extract{run_hint}")
    assert _refused(lambda: run_extract(store, config)) == (
        f"extract needs a trained model {stale}: run `relabeler train --run {uri}` "
        f"first{run_hint}")
    assert _refused(lambda: run_attribute(store, config)) == (
        f"attribute needs the scored queue {stale}: run `relabeler train --run {uri}` first, "
        f"then extract and score{run_hint}")
    assert _refused(lambda: build_report(store)) == (
        f"report: retrain version 1 was made before the baseline it is compared with {stale}: "
        f"run `relabeler train --run {uri}` first, then retrain{run_hint}")
    store.write_bytes("labels/corrections.parquet", b"")  # retrain looks for it first
    assert _refused(lambda: run_retrain(store, config, progress=False)) == (
        f"retrain needs the baseline model {stale}: run `relabeler train --run {uri}` "
        f"first{run_hint}")


def test_stages_to_redo_follow_the_chain_to_the_earliest(tmp_path):
    store = RunStore(tmp_path / "run")
    assert stages_to_redo(store, "score") == ["data", "train", "extract.train", "score"]
    assert run_first(store, "score", "attribute needs the scored queue") == (
        f"attribute needs the scored queue (data is unfinished): run `relabeler data --run "
        f"{store.uri}` first, then train, extract and score (or `relabeler run --run "
        f"{store.uri} --no-push`, which redoes every stage from train to attribute that is "
        f"unfinished or stale)")
    for stage in ("data", "train", "extract.train"):
        store.mark_done(stage)
    # eval and pool never extracted: score runs without them
    assert stages_to_redo(store, "score") == ["score"]
    assert run_first(store, "score", "attribute needs the scored queue").startswith(
        f"attribute needs the scored queue: run `relabeler score --run {store.uri}` first (or ")
    for stage in ("extract.eval", "score"):
        store.mark_done(stage)
    assert stages_to_redo(store, "score") == []
    time.sleep(0.01)
    store.mark_done("train")  # `relabeler train --force`, then the training split extracted
    store.mark_done("extract.train")
    assert stages_to_redo(store, "score") == ["extract.eval", "score"]
    assert run_first(store, "score", "attribute needs the scored queue").startswith(
        "attribute needs the scored queue (extract.eval is stale: train finished again since "
        f"extract.eval ran): run `relabeler extract --run {store.uri}` first, then score (or ")


def test_a_retrain_made_before_train_again_names_retrain_alone(tmp_path):
    store, _ = _finished(tmp_path)
    time.sleep(0.01)
    store.mark_done("train")  # `relabeler train --force`
    assert _refused(lambda: build_report(store)) == (
        f"report: retrain version 1 was made before the baseline it is compared with (retrain "
        f"is stale: train finished again since retrain ran): run `relabeler retrain --run "
        f"{store.uri}` first")
