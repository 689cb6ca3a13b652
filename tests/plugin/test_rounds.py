"""Rounds (``relabeler next``) against a real Label Studio server and a real tiny-BERT run.

One scored, attributed run of a tiny random BERT (head mode, 2 out-of-fold models) is built
per module; each test copies it, pushes round 1 into its own project, answers through the API
and runs rounds, including the faults: answers arriving while a round runs, an answer to an
older round, two rounds at once, a deleted project, a project holding another run's samples
under this run's ids and a server restart mid-round.
"""

from __future__ import annotations

import copy
import re
import shutil
import threading
import time

import pandas as pd
import pytest

from relabeler import artifacts
from relabeler.errors import RoundLockedError
from relabeler.jobs.attribute import run_attribute
from relabeler.jobs.extract import run_extract
from relabeler.jobs.retrain import dataset_versions
from relabeler.jobs.rounds import read_rounds, run_next
from relabeler.jobs.score import run_score
from relabeler.jobs.train import run_train
from relabeler.plugin.client import StudioClient, StudioUnavailableError
from relabeler.plugin.labeling import LabelingSpec
from relabeler.plugin.pull import PullError, pull
from relabeler.plugin.push import PushError, push
from relabeler.plugin.tasks import ROUND_FIELD
from relabeler.queue_plan import read_manifest, write_manifest
from relabeler.report.rounds import burn_down
from relabeler.store import RunStore
from tests.conftest import head_config, synthetic_frame

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

FLIPPED = 40
BUDGET, BATCH = 40, 20


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, tiny_bert_dir, ray_session):
    """A trained (2 folds), extracted, scored and attributed run whose first 40 rows carry the
    wrong label; the truth is kept in ``true_label``."""
    tmp = tmp_path_factory.mktemp("rounds-base")
    frame = synthetic_frame(240)
    frame["true_label"] = frame["label"]
    frame.loc[frame.index[:FLIPPED], "label"] = frame.loc[frame.index[:FLIPPED], "label"].map(
        {"pos": "neg", "neg": "pos"})
    truth = dict(zip(frame["id"], frame["true_label"], strict=True))
    frame.drop(columns="true_label").to_csv(tmp / "data.csv", index=False)
    config = head_config(tmp / "run", tmp / "data.csv", tiny_bert_dir, max_length=48, epochs=4)
    config.train.folds = 2
    config.studio.budget = BUDGET
    config.studio.control_share = 0.1
    config.studio.eval_audit_budget = 0
    config.studio.retries = 1
    config.loop.batch = BATCH
    # a tiny random encoder ranks little better than chance: the tests choose the picks
    config.loop.random_fallback = False
    config.attribute.top = BUDGET
    config.attribute.n_steps = 4
    config.score.acquire_budget = 0
    config.score.min_agreement = 0.0  # a tiny random encoder: the representer refit is loose
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run_extract(store, config, progress=False)
    run_score(store, config)
    run_attribute(store, config, progress=False)
    return tmp / "run", config, truth


@pytest.fixture
def admin(studio) -> StudioClient:
    return StudioClient(studio.url, studio.token, retries=1, backoff=0.2)


@pytest.fixture
def run(base_run, tmp_path, studio, admin, request):
    """A copy of the base run with round 1 pushed into a project of its own."""
    source, config, truth = base_run
    shutil.copytree(source, tmp_path / "run")
    config = copy.deepcopy(config)
    config.run_dir = str(tmp_path / "run")
    config.studio.url = studio.url
    config.studio.project_title = f"{request.node.name[5:35]} {time.time_ns() % 10**9}"
    store = RunStore(config.run_dir)
    push(store, admin, project_title=config.studio.project_title, budget=BUDGET,
         control_share=0.1, seed=config.studio.seed)
    return store, config, truth


def answer(admin: StudioClient, store: RunStore, ids, label_of) -> None:
    manifest = read_manifest(store).set_index("id")
    project = int(manifest["project_id"].iloc[0])
    spec = LabelingSpec.from_config(admin.get_project(project).label_config)
    for sample_id in ids:
        result = [{"from_name": spec.answer_name, "to_name": spec.text_name, "type": "choices",
                   "value": {"choices": [label_of(sample_id)]}}]
        admin.create_annotation(int(manifest.loc[sample_id, "task_id"]), result)


def review(store: RunStore) -> pd.DataFrame:
    manifest = read_manifest(store)
    return manifest[manifest["source"].isin(["flagged", "random_control"])]


def sample_ids_on_server(admin: StudioClient, store: RunStore) -> list[str]:
    project = int(review(store)["project_id"].iloc[0])
    return sorted(admin.task_sample_ids(project, "sample_id").values())


def test_a_round_pushes_the_next_batch_behind_waiting_tasks_once(run, admin, studio):
    store, config, truth = run
    first = review(store)
    assert set(first["round"]) == {1} and len(first) == BUDGET
    waiting = list(first.sort_values("priority")["id"].tail(5))
    answer(admin, store, [x for x in first["id"] if x not in waiting], truth.get)

    result = run_next(store, config, client=admin, progress=False)
    assert (result.round, result.mode, result.version) == (2, "ranked", 1)
    assert (result.new_flagged, result.new_controls, result.waiting_before) == (18, 2, 5)
    manifest = review(store)
    second = manifest[manifest["round"] == 2]
    assert len(second) == BATCH and second["task_id"].notna().all()
    # behind every task of round 1, reviewed rows never back, nothing sent twice
    assert second["priority"].min() > first["priority"].max()
    assert not set(second["id"]) & set(first["id"])
    assert sample_ids_on_server(admin, store) == sorted(manifest["id"])
    task = studio.http().get(f"/api/tasks/{int(second['task_id'].iloc[0])}/").json()
    assert task["data"][ROUND_FIELD] == 2
    # the new flagged tasks are the top of version 1's ranking among the rows never sent
    ranking = RunStore(store.path("retrain/v1")).read_table(
        artifacts.SUSPECTS.path).to_pandas().sort_values("rank")
    unsent = [x for x in ranking["id"] if x not in set(first["id"])]
    assert set(second.loc[second["source"] == "flagged", "id"]) == set(unsent[:18])

    again = run_next(store, config, client=admin, progress=False)
    assert again.round is None and again.message == "no new answers since round 2; nothing to do"
    assert len(review(store)) == BUDGET + BATCH
    assert [r["round"] for r in read_rounds(store)] == [2]
    _serve_reads_each_round_from_its_version(store, config, admin, second)


def _serve_reads_each_round_from_its_version(store, config, admin, second) -> None:
    """After round 2, serve re-ranks by version 1's ranking and rebuilds (and predicts) a
    round-2 task from version 1's evidence: round 1's has another score and no spans for it."""
    from fastapi.testclient import TestClient

    from relabeler.jobs.live_ranking import LiveRanking
    from relabeler.plugin.backend import create_app
    from relabeler.plugin.backend_auth import BasicAuth
    from relabeler.plugin.evidence import RunEvidence
    from relabeler.plugin.labeling import build_labeling_config
    from relabeler.plugin.rerank import Reranker
    from relabeler.plugin.tasks import SAMPLE_ID_FIELD, build_prediction, build_task

    version = RunStore(store.path("retrain/v1"))
    evidence = RunEvidence.load(version, examples=config.studio.examples, needed_by="test")
    spec = LabelingSpec.from_config(build_labeling_config(evidence.classes))
    flagged = second[second["source"] == "flagged"].sort_values("priority")
    manifest = read_manifest(store)
    # the stored order of round 2's waiting flagged tasks reversed: a re-rank must move them
    rows = manifest.index[manifest["id"].isin(flagged["id"])]
    manifest.loc[rows, "priority"] = manifest.loc[rows, "priority"].to_numpy()[::-1]
    write_manifest(store, manifest)
    rerank = Reranker(store, config, client=lambda: admin, ranking=LiveRanking.load)
    assert rerank(answer_events=1).reprioritised >= 2
    assert rerank._ranking_version[0] == version.uri
    moved = read_manifest(store).set_index("id").loc[list(flagged["id"])]
    for sample_id, row in moved.iterrows():
        (sample,) = evidence.train_samples([sample_id])
        expected = build_task(sample, spec, priority=int(row["priority"]), round_no=2,
                              top_spans=config.studio.top_spans)["data"]
        assert admin.get_task(int(row["task_id"]))["data"] == expected
    auth = BasicAuth("relabeler", "pa55-w0rd")
    app = create_app(store, secret="s", auth=auth)
    sample_id = str(flagged["id"].iloc[0])
    with TestClient(app, headers={"Authorization": auth.header()}) as client:
        answer = client.post("/predict", json={
            "tasks": [{"id": 1, "data": {SAMPLE_ID_FIELD: sample_id, ROUND_FIELD: 2}}],
            "label_config": spec.xml}).json()["results"][0]
    (sample,) = evidence.train_samples([sample_id])
    assert answer == build_prediction(sample, spec, top_spans=3)


def test_answers_made_while_a_round_runs_are_taken_by_the_next_pull(run, admin):
    store, config, truth = run
    first = review(store).sort_values("priority")
    answer(admin, store, first["id"].head(30), truth.get)
    late = first["id"].iloc[35]

    def say(line: str) -> None:
        if line == "[retrain] ...":  # the round's pull is over
            answer(admin, store, [late], truth.get)

    assert run_next(store, config, client=admin, progress=False, say=say).round == 2
    corrections = store.read_table(artifacts.CORRECTIONS.path).to_pandas()
    assert late not in set(corrections["id"])
    third = run_next(store, config, client=admin, progress=False)  # new answers: a round
    corrections = store.read_table(artifacts.CORRECTIONS.path).to_pandas()
    assert late in set(corrections["id"]) and third.round == 3


def test_an_answer_to_an_older_round_counts_for_that_round(run, admin):
    store, config, truth = run
    first = review(store).sort_values("priority")
    answer(admin, store, first["id"].head(30), truth.get)
    run_next(store, config, client=admin, progress=False)
    answer(admin, store, first["id"].iloc[30:32], truth.get)  # round 1 tasks, answered late
    pull(store, admin)
    corrections = store.read_table(artifacts.CORRECTIONS.path).to_pandas()
    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    rows = burn_down(read_manifest(store), corrections, train, next_batch=BATCH, stop_rate=0.05)
    assert [(r["round"], r["tasks"], r["answered"]) for r in rows] == [(1, 40, 32), (2, 20, 0)]


def test_two_rounds_at_once_the_second_stops_naming_the_lock(run, admin):
    store, config, truth = run
    answer(admin, store, review(store)["id"].head(30), truth.get)
    errors: list[BaseException] = []

    def second() -> None:
        try:
            run_next(store, config, client=admin, progress=False)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    def say(line: str) -> None:
        if line == "[pull] ...":
            thread = threading.Thread(target=second)
            thread.start()
            thread.join()

    assert run_next(store, config, client=admin, progress=False, say=say).round == 2
    assert len(errors) == 1 and isinstance(errors[0], RoundLockedError)
    assert "studio/round.lock" in str(errors[0]) and "another round is running" in str(errors[0])
    assert sample_ids_on_server(admin, store) == sorted(review(store)["id"])
    assert len(review(store)) == BUDGET + BATCH
    assert not store.exists(artifacts.ROUND_LOCK.path)


def test_a_project_deleted_between_rounds_is_a_clear_error(run, admin, studio):
    store, config, truth = run
    answer(admin, store, review(store)["id"].head(30), truth.get)
    project = int(review(store)["project_id"].iloc[0])
    assert studio.http().delete(f"/api/projects/{project}/").status_code == 204
    before = read_manifest(store)
    with pytest.raises(PushError, match=rf"review project {project} is gone .* deleted after "
                                        r"round 1\. Nothing was pushed"):
        run_next(store, config, client=admin, progress=False)
    assert read_manifest(store).equals(before)
    assert not store.exists(artifacts.ROUND_LOCK.path)


def test_a_project_holding_another_runs_samples_stops_pull_and_next(run, admin):
    """The server came back with a fresh database and another run's round 1 got this run's
    project and task ids (made here by giving the tasks other sample ids): pull and next stop,
    naming the project and a task with both sample ids, and write nothing."""
    store, config, truth = run
    answer(admin, store, review(store)["id"].head(5), truth.get)
    manifest = read_manifest(store)
    project = int(review(store)["project_id"].iloc[0])
    for task_id, data in admin.task_data(project).items():
        admin.update_task_data(task_id, {**data, "sample_id": f"other-{data['sample_id']}"})
    wrong = rf"project {project} at {admin.shown_url} is not the one this run pushed to: its task "
    with pytest.raises(PullError, match=wrong + r"\d+ holds sample 'other-.*nothing was pulled"):
        pull(store, admin)
    assert not store.exists(artifacts.CORRECTIONS.path)
    first = review(store).sort_values("task_id").iloc[0]
    with pytest.raises(PushError, match=wrong + rf"{first['task_id']} holds sample "
                                        rf"'other-{first['id']}', where .* records sample "
                                        rf"'{first['id']}'"):
        run_next(store, config, client=admin, progress=False)
    assert read_manifest(store).equals(manifest)
    assert not store.exists(artifacts.CORRECTIONS.path)
    assert not store.exists(artifacts.ROUND_LOCK.path)


def test_a_server_restart_mid_round_resumes_without_duplicates(run, admin, studio):
    store, config, truth = run
    answer(admin, store, review(store)["id"].head(30), truth.get)

    def say(line: str) -> None:
        if line == "[push] ...":
            from relabeler.plugin import server

            server.stop_server(studio.data_dir)

    try:
        with pytest.raises(StudioUnavailableError):
            run_next(store, config, client=admin, progress=False, say=say)
    finally:
        studio.restart()
    assert set(read_manifest(store)["round"]) == {1}
    resumed = run_next(store, config, client=admin, progress=False)
    assert resumed.round == 2 and resumed.new_flagged + resumed.new_controls == BATCH

    # killed after importing round 2, before recording it: its rows lost their task ids
    manifest = read_manifest(store)
    lost = manifest.index[manifest["round"] == 2][:7]
    manifest.loc[lost, ["task_id", "pushed_at"]] = None
    write_manifest(store, manifest)
    store.write_json(artifacts.ROUNDS.path, {"rounds": []})
    studio.restart()
    # answers given meanwhile: the round still resumes from the version that planned it
    first = review(store)
    answer(admin, store, first.loc[first["round"] == 1, "id"].iloc[30:35], truth.get)
    versions = dataset_versions(store)
    again = run_next(store, config, client=admin, progress=False)
    assert again.round == 2 and again.new_flagged + again.new_controls == 0
    # the summary counts the round's tasks, those the stopped run sent included
    assert re.search(rf"^round 2: \d+ flagged \+ \d+ random-control tasks pushed \(\w+\), "
                     rf"{BATCH} of them by a run of this round that was stopped; behind ",
                     again.message), again.message
    assert dataset_versions(store) == versions and again.version == versions[-1]
    assert read_manifest(store)["task_id"].notna().all()
    assert sample_ids_on_server(admin, store) == sorted(review(store)["id"])
    assert len(review(store)) == BUDGET + BATCH


def _with_fallback(run) -> tuple:
    """The run with loop.random_fallback on, its round-1 review tasks, and each training row's
    given label."""
    store, config, _ = run
    config.loop.random_fallback = True
    train = store.read_table(artifacts.TRAIN.path, columns=["id", "label"]).to_pandas()
    return store, config, review(store), dict(zip(train["id"], train["label"], strict=True))


OTHER = {"pos": "neg", "neg": "pos"}


def test_a_queue_no_better_than_random_makes_the_next_round_random_picks(run, admin):
    store, config, first, given = _with_fallback(run)
    controls = set(first.loc[first["source"] == "random_control", "id"])
    # every flagged label kept as given, every control corrected
    answer(admin, store, first["id"],
           lambda x: OTHER[given[x]] if x in controls else given[x])
    lines: list[str] = []
    result = run_next(store, config, client=admin, progress=False, say=lines.append)
    assert result.mode == "random" and not result.queue_test["beats_random"]
    assert (result.new_flagged, result.new_controls) == (2, 18)
    assert any("not shown to beat random picks" in line and "full fine-tuning on a GPU" in line
               for line in lines)
    assert read_rounds(store)[-1]["mode"] == "random"


def test_too_few_controls_to_test_the_ranking_keep_the_next_round_ranked(run, admin):
    store, config, first, given = _with_fallback(run)
    flagged = list(first.loc[first["source"] == "flagged", "id"])
    # half the flagged labels corrected, every control kept: 18 of 36 against 0 of 4, which
    # even 0 of 4 cannot show to be better (p = 0.08)
    corrected = set(flagged[::2])
    answer(admin, store, first["id"], lambda x: OTHER[given[x]] if x in corrected else given[x])
    lines: list[str] = []
    result = run_next(store, config, client=admin, progress=False, say=lines.append)
    test = result.queue_test
    assert (test["flagged"]["corrected"], test["controls"]["answered"]) == (18, 4)
    assert not test["beats_random"] and not test["decisive"]
    assert test["p_value"] == test["p_best"] == pytest.approx(0.080, abs=1e-3)
    assert result.mode == "ranked" and read_rounds(store)[-1]["mode"] == "ranked"
    assert any("too few to tell whether the ranking beats random picks" in line
               for line in lines)
