"""Live re-ranking's pieces: the worker (with fake re-ranks), the priorities, the ranking with
answers, and whole re-ranks against an in-memory Label Studio (the real server:
test_studio.py, ``test_serve_reranks_waiting_tasks_as_people_answer``)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from relabeler.config import ConfigError, apply_overrides, load_config
from relabeler.jobs.live_ranking import LiveRanking
from relabeler.plugin.backend import SECRET_HEADER, create_app
from relabeler.plugin.backend_auth import BasicAuth
from relabeler.plugin.client import StudioUnavailableError
from relabeler.plugin.events import read_events
from relabeler.plugin.priorities import SPACING, minimal_priorities, waiting_priorities
from relabeler.plugin.push import push
from relabeler.plugin.rerank import Reranker, RerankWorker, read_reranks
from relabeler.queue_plan import CONTROL, FLAGGED, read_manifest, write_manifest
from relabeler.selectors.rank import ranks_from_scores
from relabeler.store import RunStore
from tests.plugin.fake_studio import FakeStudio
from tests.plugin.live_run import CLASSES, make_live_run
from tests.plugin.synthetic import make_run

ANSWER = {"action": "ANNOTATION_CREATED"}


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# the worker


class BlockingRerank:
    """A re-rank that records its calls and, while ``gate`` is clear, blocks."""

    def __init__(self, fail_first: int = 0):
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.fail_first = fail_first

    def __call__(self, answers: int) -> None:
        self.calls.append(answers)
        self.started.set()
        self.gate.wait(10)
        if len(self.calls) <= self.fail_first:
            raise RuntimeError("Label Studio is down")


def test_the_worker_re_ranks_after_every_n_answers_and_ignores_other_events():
    rerank = BlockingRerank()
    worker = RerankWorker(rerank, every=3).start()
    try:
        for _ in range(2):
            worker.notify(ANSWER)
        worker.notify({"action": "ANNOTATIONS_DELETED"})
        assert worker.wait_idle(5) and rerank.calls == []
        worker.notify({"action": "ANNOTATION_UPDATED"})
        assert worker.wait_idle(5) and rerank.calls == [3]
        for _ in range(7):
            worker.notify(ANSWER)
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    assert rerank.calls == [3, 3, 3] or rerank.calls == [3, 6]  # the last two may coalesce
    assert sum(rerank.calls) == 9


def test_answers_during_a_re_rank_trigger_at_most_one_more_and_never_wait():
    rerank = BlockingRerank()
    rerank.gate.clear()
    worker = RerankWorker(rerank, every=2).start()
    try:
        worker.notify(ANSWER)
        worker.notify(ANSWER)
        assert rerank.started.wait(5)
        for _ in range(10):  # five triggers' worth while the first re-rank runs
            worker.notify(ANSWER)
        # the webhook's path never waits: every notify returned while the first re-rank is
        # still blocked on the gate, which only this test opens
        assert not rerank.gate.is_set()
        assert rerank.calls == [2] and worker.runs == 0
        assert not worker.wait_idle(0)
        rerank.gate.set()
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    assert rerank.calls == [2, 10]
    assert (worker.runs, worker.failures) == (2, 0)


def test_a_pull_waiting_for_the_manifest_gets_it_while_answers_pour_in(tmp_path):
    """Answers back to back kept a re-rank holding the manifest's lock, released and taken
    again at once: a pull waiting for it (it looks every 0.1 s here, every 0.5 s on an object
    store) waited a minute. The worker now leaves the lock free for ``gap`` seconds."""
    from relabeler.queue_plan import manifest_lock

    store = RunStore(str(tmp_path / "run"))
    held = []

    def rerank(answers: int) -> None:
        with manifest_lock(store, wait=0):
            held.append(answers)
            time.sleep(0.2)

    worker = RerankWorker(rerank, every=1, gap=0.3).start()
    stop = threading.Event()

    def answering() -> None:
        while not stop.is_set():
            worker.notify(ANSWER)
            time.sleep(0.01)

    answers = threading.Thread(target=answering)
    answers.start()
    try:
        wait_for(lambda: len(held) >= 2)
        with manifest_lock(store, wait=5):  # ManifestLockedError if it never got a turn
            during = len(held)
            time.sleep(0.1)
            assert len(held) == during  # nothing re-ranked while the pull held it
    finally:
        stop.set()
        answers.join()
        worker.stop()
    assert worker.failures == 0 and len(held) >= 2


def test_the_worker_refuses_a_negative_gap():
    with pytest.raises(ValueError, match="gap must be >= 0 seconds, got -1"):
        RerankWorker(lambda answers: None, every=1, gap=-1)


def test_a_failed_re_rank_is_logged_and_retried_on_the_next_answer(caplog):
    rerank = BlockingRerank(fail_first=1)
    worker = RerankWorker(rerank, every=5).start()
    try:
        with caplog.at_level(logging.ERROR, logger="relabeler.plugin.rerank"):
            for _ in range(5):
                worker.notify(ANSWER)
            assert worker.wait_idle(5)
        assert worker.failures == 1
        assert "re-rank failed" in caplog.text and "Label Studio is down" in caplog.text
        worker.notify(ANSWER)  # one answer, not five, retries
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    assert rerank.calls == [5, 6]  # the retry carries the failed one's answers
    assert (worker.runs, worker.failures) == (1, 1)


def test_an_event_the_filter_cannot_judge_is_counted():
    rerank = BlockingRerank()

    def broken(payload):
        raise KeyError("project")

    worker = RerankWorker(rerank, every=1, counts=broken).start()
    try:
        worker.notify(ANSWER)
        assert worker.wait_idle(5)
    finally:
        worker.stop()
    assert rerank.calls == [1]


def test_the_worker_needs_a_positive_interval():
    with pytest.raises(ValueError, match="every must be >= 1"):
        RerankWorker(BlockingRerank(), every=0)


# ---------------------------------------------------------------------------------------------
# the webhook hands events to the worker after recording them


#: an answer the webhook keeps: of a project the run's manifest records
POSTED_ANSWER = {**ANSWER, "project": {"id": 3}}


@pytest.fixture
def app_run(tmp_path):
    store = make_run(str(tmp_path / "run"), n_train=40, n_acquire=0)
    write_manifest(store, pd.DataFrame({
        "id": ["t0000"], "task_id": [1], "project_id": [3], "rank": [1], "priority": [1],
        "source": [FLAGGED], "pushed_at": [pd.Timestamp("2026-01-01", tz="UTC")]}))
    return store


def webhook_client(store, on_event) -> TestClient:
    auth = BasicAuth("relabeler", "pw")
    app = create_app(store, secret="s", auth=auth, on_event=on_event)
    return TestClient(app, headers={"Authorization": auth.header(), SECRET_HEADER: "s"})


def test_the_webhook_records_the_event_before_the_worker_hears_it(app_run):
    heard = []
    client = webhook_client(app_run, lambda p: heard.append(len(read_events(app_run).events)))
    assert client.post("/webhook", json=POSTED_ANSWER).status_code == 200
    assert heard == [1]


def test_a_failing_trigger_never_costs_a_webhook(app_run, caplog):
    def broken(payload):
        raise RuntimeError("boom")

    client = webhook_client(app_run, broken)
    with caplog.at_level(logging.ERROR, logger="relabeler.plugin.backend"):
        assert client.post("/webhook", json=POSTED_ANSWER).json() == {"status": "ok"}
    assert len(read_events(app_run).events) == 1
    assert "re-rank trigger failed" in caplog.text


# ---------------------------------------------------------------------------------------------
# priorities and the ranking


def test_waiting_flagged_tasks_take_their_slots_in_score_order_and_controls_stay():
    waiting = pd.DataFrame({"id": ["a", "b", "c", "k", "d"],
                            "source": [FLAGGED, FLAGGED, FLAGGED, CONTROL, FLAGGED],
                            "priority": [3, 5, 6, 7, 9]})
    scores = {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.95, "k": 1.0}
    assert waiting_priorities(waiting, scores) == {"d": 3, "b": 5, "c": 6, "a": 9, "k": 7}
    assert waiting_priorities(waiting, {}) == {"a": 3, "b": 5, "c": 6, "d": 9, "k": 7}


def test_a_later_rounds_tasks_stay_behind_the_waiting_tasks_of_the_round_before():
    """Round 3's waiting tasks hold 3-6, round 4's 7-9: a re-rank that likes round 4's best
    moves them within round 4's slots only (it once took slot 3, ahead of round 3)."""
    waiting = pd.DataFrame({"id": ["a", "b", "k", "c", "d", "e"],
                            "source": [FLAGGED, FLAGGED, CONTROL, FLAGGED, FLAGGED, FLAGGED],
                            "priority": [3, 4, 6, 7, 8, 9], "round": [3, 3, 3, 4, 4, 4]})
    scores = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4, "e": 0.99}
    assert waiting_priorities(waiting, scores) == \
        {"b": 3, "a": 4, "k": 6, "e": 7, "d": 8, "c": 9}


def test_a_position_two_waiting_tasks_hold_is_given_once_and_the_other_takes_a_free_one():
    """A re-rank cut short: b moved into 6 (c still holds it) and left 5 free."""
    waiting = pd.DataFrame({"id": ["a", "b", "c", "k", "d"],
                            "source": [FLAGGED, FLAGGED, FLAGGED, CONTROL, FLAGGED],
                            "priority": [3, 6, 6, 7, 9]})
    scores = {"a": 0.1, "b": 0.9, "c": 0.5, "d": 0.95}
    assert waiting_priorities(waiting, scores, taken=[1, 2, 4, 8]) == \
        {"d": 3, "b": 5, "c": 6, "a": 9, "k": 7}
    # no position free below the others: one past them all
    assert waiting_priorities(waiting, scores, taken=[1, 2, 4, 5, 8]) == \
        {"d": 3, "b": 6, "c": 9, "a": 10, "k": 7}


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    return make_live_run(str(tmp_path_factory.mktemp("live") / "run"))


def _changed(before, after) -> int:
    return sum(a != b for a, b in zip(before, after, strict=True))


def test_moving_one_task_to_the_front_changes_one_priority_not_all():
    values = list(range(1, 1001))  # as push gives them: no room between two
    wanted = [values[-1], *values[:-1]]
    out = minimal_priorities(wanted)
    assert _changed(wanted, out) == 1 and out[0] == 1 - SPACING and out[1:] == values[:-1]
    # and to the back
    wanted = [*values[1:], values[0]]
    out = minimal_priorities(wanted)
    assert _changed(wanted, out) == 1 and out[-1] == 999 + SPACING + 1


def test_only_the_tasks_out_of_order_get_new_values_where_there_is_room():
    rng = np.random.default_rng(5)
    values = [int(v) * 100 for v in range(1, 301)]
    order = np.argsort(np.arange(300) + rng.normal(0, 10, 300))  # a re-rank's local shuffle
    wanted = [values[i] for i in order]
    out = minimal_priorities(wanted)
    # the wanted order, values distinct
    assert all(a < b for a, b in zip(out, out[1:], strict=False))
    # the tasks kept are a longest increasing subsequence of the values in the new order
    tails: list[int] = []
    for v in wanted:
        k = int(np.searchsorted(tails, v))
        tails[k:k + 1] = [v]
    slot_changed = int((order != np.arange(300)).sum())  # what the old re-rank sent
    assert _changed(wanted, out) == 300 - len(tails) < slot_changed
    # a task moved between two neighbours takes the middle of the gap between them
    assert minimal_priorities([100, 300, 200, 400]) == [100, 150, 200, 400]


def test_packed_priorities_move_the_tasks_up_to_the_next_gap_and_skip_taken_values():
    # 1..10 packed, 1 moved behind 6: tasks 2..6 (or 7..10) must move too; 5 changes, not 10
    wanted = [2, 3, 4, 5, 6, 1, 7, 8, 9, 10]
    out = minimal_priorities(wanted)
    assert all(a < b for a, b in zip(out, out[1:], strict=False)) and _changed(wanted, out) == 5
    # a gap left by answered tasks (their values are taken) is used past them
    assert minimal_priorities([2, 3, 4, 1, 8], taken=[5, 6]) == [2, 3, 4, 7, 8]
    # a waiting task holding a value another task holds (a re-rank cut short) moves off it
    out = minimal_priorities([1, 4, 9], taken=[4])
    assert out == [1, 5, 9]


def test_without_answers_the_live_ranking_is_the_stored_one(live_run):
    store, config, _ = live_run
    ranking = LiveRanking.load(store, config.score)
    scores, noise_model = ranking.scores({})
    stored = store.read_table("scores/suspects.parquet").to_pandas().set_index("id")["rank"]
    live = pd.Series(ranks_from_scores(scores), index=ranking.view.ids)
    assert (live == stored.reindex(live.index)).all()
    assert noise_model.kind == "uniform"


def group_ranks(ranking: LiveRanking, scores, frame: pd.DataFrame, rows: pd.Index) -> list:
    ranks = pd.Series(ranks_from_scores(scores), index=ranking.view.ids)
    return sorted(ranks.reindex(frame.loc[rows, "id"]).tolist())


def test_answers_revealing_a_systematic_flip_raise_its_unanswered_neighbours(live_run):
    store, config, frame = live_run
    ranking = LiveRanking.load(store, config.score)
    stored = store.read_table("scores/suspects.parquet").to_pandas()
    top = stored.sort_values("rank")["id"].head(24)  # the first 24 answered, truthfully
    truth = frame.set_index("id")["true_label"]
    answered = {x: truth[x] for x in top}
    assert sum(truth[x] != frame.set_index("id").loc[x, "label"] for x in top) >= 10
    before, _ = ranking.scores({})
    after, _ = ranking.scores(answered)
    waiting_s = frame.index[frame["group"].isin(["S", "S-top"]) & ~frame["id"].isin(top)]
    old, new = group_ranks(ranking, before, frame, waiting_s), \
        group_ranks(ranking, after, frame, waiting_s)
    assert sum(new) < sum(old) - 5 * len(waiting_s)  # on average 5 places earlier at least
    waiting_b = frame.index[(frame["group"] == "B") & ~frame["id"].isin(top)]
    # before: the unsure B rows queue ahead of most of S; after: behind most of it
    assert sorted(old)[len(old) // 2] > sorted(group_ranks(ranking, before, frame,
                                                           waiting_b))[0]
    assert sorted(new)[len(new) // 2] < max(group_ranks(ranking, after, frame, waiting_b))


def test_in_head_mode_the_refit_head_follows_the_answers(live_run):
    store, config, frame = live_run
    plain = LiveRanking.load(store, config.score)  # the run has no train/metrics.json
    assert not plain.head_refit
    view = plain.view
    head = LiveRanking(view, plain.neighbours, config.score, head_refit=True)
    assert head.model_probs(view.labels) is view.probs  # no answer: the trained model
    revealed = frame["group"] == "S-top"
    labels = view.labels.copy()
    labels[revealed.to_numpy()] = CLASSES.index("pos")
    moved = head.model_probs(labels)
    pos = CLASSES.index("pos")
    rest_of_s = (frame["group"] == "S").to_numpy()
    far = frame["group"].isin(["P", "N"]).to_numpy()
    lift = moved[:, pos] - view.probs[:, pos]
    assert lift[rest_of_s].min() > 0.05  # the cluster of the revealed flip leans pos
    assert np.median(abs(lift[far])) < 0.05 < 0.2 < np.median(lift[rest_of_s])  # far: barely
    np.testing.assert_allclose(moved.sum(axis=1), 1.0, atol=1e-5)
    answered = dict(zip(frame.loc[revealed, "id"], ["pos"] * int(revealed.sum()), strict=True))
    with_refit, _ = head.scores(answered)
    without, _ = plain.scores(answered)
    s_ids = frame.index[rest_of_s]
    assert sum(group_ranks(head, with_refit, frame, s_ids)) < \
        sum(group_ranks(plain, without, frame, s_ids))


# ---------------------------------------------------------------------------------------------
# whole re-ranks against the in-memory server


@pytest.fixture
def pushed(tmp_path):
    store, config, frame = make_live_run(str(tmp_path / "run"))
    fake = FakeStudio(CLASSES, events_to=store)
    result = push(store, fake, project_title="live", budget=60, control_share=0.05,
                  acquire=False)
    return store, config, frame, fake, result.project_id


def answer_top(store, fake, frame, n: int) -> list[str]:
    """Answer the first ``n`` review tasks in priority order with their true label."""
    manifest = read_manifest(store).sort_values("priority").head(n)
    truth = frame.set_index("id")["true_label"]
    for sample_id, task_id in zip(manifest["id"], manifest["task_id"], strict=True):
        fake.annotate(int(task_id), truth[sample_id])
    return list(manifest["id"])


def test_a_re_rank_moves_waiting_tasks_in_studio_and_the_manifest(pushed):
    store, config, frame, fake, project_id = pushed
    before = read_manifest(store).set_index("id")["priority"]
    answered = answer_top(store, fake, frame, 24)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    result = rerank(answer_events=24)
    truth, given = frame.set_index("id")["true_label"], frame.set_index("id")["label"]
    assert (result.answered, result.waiting) == (24, 36)
    assert result.corrected == sum(truth[x] != given[x] for x in answered)
    assert result.reprioritised > 10
    manifest = read_manifest(store).set_index("id")
    # the studio's priorities are the manifest's, task by task
    on_server = {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}
    assert on_server == manifest["priority"].to_dict()
    # answered tasks kept their values, controls their places among the waiting tasks; only
    # the tasks that changed place got a new value, and no two tasks share one
    assert (manifest.loc[answered, "priority"] == before[answered]).all()
    waiting = manifest.index[~manifest.index.isin(answered)]
    place_before = before[waiting].rank().astype(int)
    place = manifest.loc[waiting, "priority"].rank().astype(int)
    controls = manifest.index[manifest["source"] == CONTROL].intersection(waiting)
    assert len(controls) and (place[controls] == place_before[controls]).all()
    changed = (manifest.loc[waiting, "priority"] != before[waiting]).sum()
    assert changed == result.reprioritised <= (place != place_before).sum()
    assert manifest["priority"].is_unique
    group = frame.set_index("id")["group"]
    s_rows = [x for x in waiting if group[x] in ("S", "S-top")]
    assert place[s_rows].mean() < place_before[s_rows].mean() - 3
    (row,) = read_reranks(store).itertuples(index=False)
    assert (row.answer_events, row.answered, row.waiting, row.reprioritised, row.head_refit) \
        == (24, 24, 36, result.reprioritised, False)

    again = rerank(answer_events=0)
    assert again.reprioritised == 0 and len(read_reranks(store)) == 2


def test_a_re_rank_asks_for_predictions_only_where_the_suggestion_changed(pushed):
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    fake.requests.clear()
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    moved = rerank(answer_events=24).reprioritised
    # the suggestions are those push sent: one listing, then only the moved tasks' data (the
    # old re-rank read each moved task's predictions too)
    assert moved > 10
    assert fake.requests == {"GET project predictions": 1, "PATCH task": moved}

    # another serve, after the waiting tasks' suggestions went stale (sent before a re-score)
    answer_top(store, fake, frame, 30)
    for task_id in read_manifest(store)["task_id"]:
        fake.tasks[int(task_id)]["predictions"][0]["result"] = []
    fake.requests.clear()
    again = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(6)
    moved = again.reprioritised
    assert moved > 0
    assert fake.requests == {"GET project predictions": 1, "PATCH task": moved,
                             "GET task predictions": moved, "POST prediction": moved,
                             "DELETE prediction": moved}


def test_a_large_project_has_each_moved_tasks_predictions_read_not_the_whole_listing(
        pushed, monkeypatch):
    # Label Studio lists a project's predictions unpaginated: above the limit, one response
    # would hold every task's evidence
    store, config, frame, fake, _ = pushed
    monkeypatch.setattr("relabeler.plugin.rerank.PREDICTIONS_LISTING_MAX", 10)
    answer_top(store, fake, frame, 24)
    fake.requests.clear()
    moved = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(24)
    assert moved.reprioritised > 10
    assert fake.requests == {"PATCH task": moved.reprioritised,
                             "GET task predictions": moved.reprioritised}


def test_tasks_answered_while_a_re_rank_runs_are_not_sent(pushed):
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    before = read_manifest(store).set_index("id")["priority"]
    waiting = read_manifest(store).sort_values("priority").iloc[24:]
    meanwhile = {int(t) for t in waiting["task_id"][::2]}  # every other waiting task
    listing, patched = fake.project_predictions, []

    def answers_arrive(project_id, model_version):  # asked just before the first task is sent
        for task_id in meanwhile:
            fake.annotate(task_id, "pos")
        return listing(project_id, model_version)

    update = fake.update_task_data

    def recorded(task_id, data):
        patched.append(task_id)
        update(task_id, data)

    fake.project_predictions, fake.update_task_data = answers_arrive, recorded
    result = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(24)
    assert patched and not set(patched) & meanwhile
    assert result.reprioritised == len(patched)
    after = read_manifest(store).set_index("id")
    answered_ids = after.index[after["task_id"].isin(meanwhile)]
    assert (after.loc[answered_ids, "priority"] == before[answered_ids]).all()
    on_server = {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}
    assert on_server == after["priority"].to_dict()


def test_a_re_rank_moves_no_task_of_another_runs_project(pushed):
    # the server is not the one this run pushed to: its project holds another run's samples
    # under this run's task ids, so their order is left alone
    from relabeler.errors import PluginError

    store, config, frame, fake, project_id = pushed
    answer_top(store, fake, frame, 24)
    first = min(fake.tasks)
    fake.tasks[first]["data"]["sample_id"] = "another-runs-sample"
    before = {t: dict(task["data"]) for t, task in fake.tasks.items()}
    manifest = read_manifest(store)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    with pytest.raises(PluginError, match=rf"its task {first} holds sample "
                                          r"'another-runs-sample'.*no task was moved"):
        rerank(answer_events=24)
    assert {t: task["data"] for t, task in fake.tasks.items()} == before
    pd.testing.assert_frame_equal(read_manifest(store), manifest)


def _fail_the_nth_update(fake: FakeStudio, n: int, monkeypatch) -> None:
    """The fake server goes away on the ``n``-th task update (the earlier ones land)."""
    update, calls = fake.update_task_data, []

    def flaky(task_id, data):
        calls.append(task_id)
        if len(calls) == n:
            raise StudioUnavailableError("Label Studio went away", maybe_applied=False)
        update(task_id, data)

    monkeypatch.setattr(fake, "update_task_data", flaky)


def test_a_re_rank_cut_short_records_what_the_server_took(pushed, monkeypatch):
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    _fail_the_nth_update(fake, 4, monkeypatch)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    with pytest.raises(StudioUnavailableError):
        rerank(answer_events=24)

    def on_server():
        return {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}

    assert on_server() == read_manifest(store).set_index("id")["priority"].to_dict()
    assert rerank(answer_events=0).reprioritised > 5
    assert on_server() == read_manifest(store).set_index("id")["priority"].to_dict()


def test_a_re_rank_killed_between_the_server_and_the_manifest_is_mended_by_the_next_serve(
        pushed):
    # kill -9 after Label Studio took a task's new priority and before the manifest recorded
    # it: the next serve compared with the manifest, so a task whose new slot equalled its
    # stale manifest value kept the server's stray one, and two waiting tasks shared it
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(answer_events=24)
    manifest = read_manifest(store).set_index("id")
    answered = {t for t, task in fake.tasks.items() if task["annotations"]}
    waiting = manifest[~manifest["task_id"].isin(answered)].sort_values("priority")
    a, b = waiting.index[:2]
    # what the killed process sent: a took b's priority on the server, the manifest lags
    fake.tasks[int(manifest.at[a, "task_id"])]["data"]["priority"] = int(manifest.at[b,
                                                                                     "priority"])
    # a new serve process, the same answers: every waiting task's slot is the manifest's
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    assert rerank(answer_events=0).reprioritised == 1  # a, sent back to its own slot
    on_server = {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}
    assert on_server == read_manifest(store).set_index("id")["priority"].to_dict()
    assert len(set(on_server.values())) == len(on_server)  # no two tasks share a priority
    # killed after the server took two tasks' new slots, before the manifest recorded either:
    # the server is right, the manifest lags; the next serve records what the server holds
    manifest = read_manifest(store)
    rows = manifest.index[manifest["id"].isin([a, b])]
    manifest.loc[rows, "priority"] = manifest.loc[rows[::-1], "priority"].to_numpy()
    write_manifest(store, manifest)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    assert rerank(answer_events=0).reprioritised == 0
    assert on_server == read_manifest(store).set_index("id")["priority"].to_dict()


def test_a_push_again_keeps_the_live_order_and_puts_new_tasks_behind_it(pushed):
    # a push with the same scores put the scored order back over serve's re-ranks (119 tasks
    # "moved in the queue"), where the docs say a push rewrites priorities for newer scores
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(answer_events=24)
    live = read_manifest(store).set_index("id")["priority"].to_dict()
    again = push(store, fake, project_title="live", budget=60, control_share=0.05,
                 acquire=False)
    assert (again.reprioritised, again.new_flagged + again.new_controls) == (0, 0)
    assert read_manifest(store).set_index("id")["priority"].to_dict() == live
    more = push(store, fake, project_title="live", budget=70, control_share=0.05,
                acquire=False)
    after = read_manifest(store).set_index("id")["priority"]
    assert more.reprioritised == 0 and more.new_flagged + more.new_controls == 10
    assert {x: after[x] for x in live} == live  # the live order stands
    new = after[~after.index.isin(list(live))]
    top = max(live.values())  # behind every sent task, a step apart
    assert sorted(new) == list(range(top + 1000, top + 11_000, 1000))
    on_server = {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}
    assert on_server == after.to_dict()


def test_a_waiting_task_deleted_in_studio_is_skipped_and_the_others_move(pushed, caplog):
    """An admin deletes a waiting task: the re-rank skips it and moves the rest; no two tasks
    share a priority on the server or in the manifest, and later re-ranks leave it alone."""
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    manifest = read_manifest(store).sort_values("priority")
    group = frame.set_index("id")["group"]
    # the lowest S row: the answers reveal its flip, so the re-rank moves it
    victim_id = next(x for x in manifest["id"][::-1] if group[x] == "S")
    victim = int(manifest.set_index("id").at[victim_id, "task_id"])
    fake.delete_task(victim)
    update, asked = fake.update_task_data, []

    def recorded(task_id, data):
        asked.append(task_id)
        update(task_id, data)

    fake.update_task_data = recorded
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    with caplog.at_level(logging.WARNING, logger="relabeler.plugin.push"):
        result = rerank(answer_events=24)
    assert victim in asked and f"task {victim} (sample {victim_id}) is not in Label " \
        "Studio any more" in caplog.text
    assert result.reprioritised > 10 and len(read_reranks(store)) == 1
    after = read_manifest(store).set_index("id")["priority"]
    on_server = {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}
    assert on_server == after.drop(victim_id).to_dict()
    assert len(set(on_server.values())) == len(on_server)
    assert after.is_unique  # the manifest still gives each row its own value

    asked.clear()
    again = rerank(answer_events=0)
    assert victim not in asked and again.waiting == result.waiting - 1
    assert again.reprioritised == 0


def test_a_re_rank_told_to_stop_ends_between_two_tasks_and_records_what_was_sent(pushed):
    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    stopping = threading.Event()
    update, sent = fake.update_task_data, []

    def then_stop(task_id, data):
        update(task_id, data)
        sent.append(task_id)
        if len(sent) == 3:
            stopping.set()  # serve is stopping

    fake.update_task_data = then_stop
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load,
                      stopping=stopping)
    assert rerank(answer_events=24) is None and len(sent) == 3
    assert read_reranks(store).empty

    def on_server():
        return {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}

    assert on_server() == read_manifest(store).set_index("id")["priority"].to_dict()
    fake.update_task_data = update  # the next serve sends the rest
    result = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(0)
    assert result.reprioritised > 5
    assert on_server() == read_manifest(store).set_index("id")["priority"].to_dict()
    assert len(set(on_server().values())) == len(on_server())


SERVE_CHILD = """
import json, logging, sys, time
from relabeler.jobs.live_ranking import LiveRanking
from relabeler.plugin.backend_auth import BasicAuth
from relabeler.plugin.backend import serve
from relabeler.plugin.push import push
from relabeler.plugin.rerank import Reranker, RerankWorker
from relabeler.queue_plan import read_manifest
from tests.plugin.fake_studio import FakeStudio
from tests.plugin.live_run import CLASSES, make_live_run

logging.basicConfig(level=logging.INFO)
root, port = sys.argv[1], int(sys.argv[2])
store, config, frame = make_live_run(root + "/run")
fake = FakeStudio(CLASSES, events_to=store)
push(store, fake, project_title="live", budget=60, control_share=0.05, acquire=False)
truth = frame.set_index("id")["true_label"]
for sample_id, task_id in read_manifest(store).sort_values("priority").head(24)[
        ["id", "task_id"]].itertuples(index=False):
    fake.annotate(int(task_id), truth[sample_id])
update = fake.update_task_data

def slow(task_id, data):  # the server's state on disk after every task
    time.sleep(0.2)
    update(task_id, data)
    with open(root + "/server.json", "w") as f:
        json.dump({t["data"]["sample_id"]: t["data"]["priority"]
                   for t in fake.tasks.values()}, f)

fake.update_task_data = slow
rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
worker = RerankWorker(rerank, every=1, counts=lambda payload: True, stopping=rerank.stopping)
serve(store, host="127.0.0.1", port=port, secret="s3cret", auth=BasicAuth("u", "p"),
      reranker=worker)
"""


def test_sigterm_during_a_re_rank_stops_it_between_two_tasks(tmp_path):
    """systemctl stop, docker stop, kill: uvicorn re-raises SIGTERM once it has shut down, so
    the worker is stopped in the app's shutdown, before that; the manifest says what the
    server has."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child_script = tmp_path / "child.py"
    child_script.write_text(SERVE_CHILD)
    child = subprocess.Popen([sys.executable, str(child_script), str(tmp_path), str(port)],
                             stderr=subprocess.PIPE, text=True, cwd=os.getcwd(),
                             env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(url + "/health").status_code == 200
            except httpx.HTTPError:
                return child.poll() is not None

        wait_for(up, timeout=120)
        assert child.poll() is None
        (project_id,) = set(read_manifest(RunStore(str(tmp_path / "run")))["project_id"])
        event = httpx.post(url + "/webhook", json={"action": "ANNOTATION_CREATED",
                                                   "project": {"id": int(project_id)}},
                           headers={SECRET_HEADER: "s3cret"})
        assert event.status_code == 200
        wait_for(lambda: (tmp_path / "server.json").exists(), timeout=60)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM, err
    assert "serve: stopping: the re-rank sent" in err, err
    server = json.loads((tmp_path / "server.json").read_text())
    manifest = read_manifest(RunStore(str(tmp_path / "run"))).set_index("id")["priority"]
    assert server == manifest.to_dict()  # the next re-rank moves the rest from there


def test_a_push_cut_short_while_moving_sent_tasks_keeps_the_manifest_true(tmp_path,
                                                                          monkeypatch):
    """push moves the tasks already sent when the queue changed; a failure among those
    updates leaves the manifest at the places the server really has."""
    import pyarrow as pa

    from tests.plugin.synthetic import CLASSES as SYNTHETIC

    store = make_run(str(tmp_path / "run"), n_train=80, n_acquire=0)
    fake = FakeStudio(SYNTHETIC, events_to=store)
    push(store, fake, project_title="t", budget=20, control_share=0.0, acquire=False)
    suspects = store.read_table("scores/suspects.parquet").to_pandas()
    suspects["rank"] = len(suspects) + 1 - suspects["rank"]  # the queue turned upside down
    store.write_table("scores/suspects.parquet", pa.Table.from_pandas(
        suspects.sort_values("rank"), preserve_index=False))
    _fail_the_nth_update(fake, 6, monkeypatch)

    def on_server():
        return {t["data"]["sample_id"]: t["data"]["priority"] for t in fake.tasks.values()}

    with pytest.raises(StudioUnavailableError):
        push(store, fake, project_title="t", budget=20, control_share=0.0, acquire=False)
    sent = read_manifest(store).dropna(subset=["task_id"]).set_index("id")["priority"]
    assert on_server() == sent.to_dict()
    again = push(store, fake, project_title="t", budget=20, control_share=0.0, acquire=False)
    # only the tasks still out of the new order move (15 of 20 before placing kept the ones
    # in order; 5 moved before the failure)
    assert again.reprioritised == 14 and again.total_tasks == 40
    assert on_server() == read_manifest(store).set_index("id")["priority"].to_dict()
    served = sorted(on_server(), key=on_server().get)
    rank = suspects.set_index("id")["rank"]
    assert [rank[x] for x in served] == sorted(rank[x] for x in served)  # the new order


def _first_two(store, frame):
    """The review rows in queue order, the given labels by sample, and the first two tasks'
    (sample id, task id)."""
    review = read_manifest(store).sort_values("priority")
    first, second = zip(review["id"].head(2), review["task_id"].head(2), strict=True)
    return review, frame.set_index("id")["label"].to_dict(), first, second


def test_events_apply_on_top_of_the_pulled_answers(pushed):
    """A pulled answer deleted while serve runs no longer counts; a second annotator's answer
    arriving as an event joins the pulled one instead of replacing it."""
    from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
    from relabeler.plugin.pull import pull
    from relabeler.plugin.rerank import collect_answers

    store, _, frame, fake, _ = pushed
    review, given, (a, task_a), (b, task_b) = _first_two(store, frame)
    other = {"neg": "pos", "pos": "neg"}
    first = fake.annotate(int(task_a), other[given[a]], notify=False)
    fake.annotate(int(task_b), other[given[b]], notify=False)
    pull(store, fake, consensus="majority")
    spec = LabelingSpec.from_config(build_labeling_config(CLASSES))
    before = collect_answers(store, review, spec, given)
    assert before.label_of == {a: other[given[a]], b: other[given[b]]}
    fake.delete_annotation(first)                           # an event: deleted
    fake.annotate(int(task_b), given[b], user=2)            # an event: a second opinion
    after = collect_answers(store, review, spec, given)
    assert after.answered_tasks == {int(task_b)}
    assert after.label_of == {}                             # b: one vote each way, a tie


def test_a_head_mode_run_refits_the_head_in_a_re_rank(pushed):
    store, config, frame, fake, _ = pushed
    store.write_json("train/metrics.json", {"mode": "head"})
    answer_top(store, fake, frame, 24)
    result = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(24)
    assert result.head_refit and result.reprioritised > 10
    assert read_reranks(store)["head_refit"].tolist() == [True]


def test_only_answers_in_the_review_project_count(pushed):
    store, config, _, _, project_id = pushed
    rerank = Reranker(store, config, client=lambda: None, ranking=LiveRanking.load)
    assert rerank.counts({"action": "ANNOTATION_CREATED", "project": {"id": project_id}})
    assert not rerank.counts({"action": "ANNOTATION_CREATED", "project": {"id": 99999}})
    assert not rerank.counts({"action": "ANNOTATIONS_DELETED", "project": {"id": project_id}})


def test_a_re_rank_before_any_push_does_nothing(tmp_path):
    store, config, _ = make_live_run(str(tmp_path / "run"))
    assert Reranker(store, config, client=lambda: None, ranking=LiveRanking.load)() is None
    assert read_reranks(store).empty


def test_serve_starts_the_worker_with_the_interval_unless_it_is_off(app_run, monkeypatch):
    from relabeler.plugin import backend

    started = []
    monkeypatch.setattr(backend, "serve", lambda store, **kw: started.append(kw["reranker"]))
    config = load_config(None)
    backend.run_serve(app_run, config, register=False, ranking=LiveRanking.load)
    config.loop.rerank_every = 0
    backend.run_serve(app_run, config, register=False, ranking=LiveRanking.load)
    (worker, off) = started
    assert isinstance(worker, RerankWorker) and worker.every == 20 and off is None


# ---------------------------------------------------------------------------------------------
# the setting


def test_rerank_every_defaults_to_20_and_refuses_negatives(tmp_path):
    config = load_config(None)
    assert config.loop.rerank_every == 20
    assert apply_overrides(config, assignments=["loop.rerank_every=0"]).loop.rerank_every == 0
    with pytest.raises(ConfigError, match="loop.rerank_every"):
        apply_overrides(config, assignments=["loop.rerank_every=-1"])


def test_a_re_rank_waits_while_a_round_holds_the_lock(pushed):
    """`relabeler next` rewrites the manifest: a re-rank meanwhile fails (the worker retries it
    on the next answer) and changes nothing in Label Studio or the manifest."""
    from relabeler.errors import RoundLockedError
    from relabeler.jobs.rounds import round_lock

    store, config, frame, fake, _ = pushed
    before = read_manifest(store).set_index("id")["priority"]
    answer_top(store, fake, frame, 24)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    with round_lock(store), pytest.raises(RoundLockedError, match="round.lock"):
        rerank(answer_events=24)
    assert read_manifest(store).set_index("id")["priority"].equals(before)
    assert read_reranks(store).empty
    assert rerank(answer_events=24).reprioritised > 10  # the lock released: it goes on


def test_a_re_rank_fails_at_once_while_another_process_writes_the_manifest(pushed):
    """A push or `pull`'s second opinions in another process hold studio/manifest.lock while
    they send tasks: a re-rank meanwhile would write back a stale manifest."""
    import subprocess
    import sys

    from relabeler.errors import ManifestLockedError
    from relabeler.queue_plan import manifest_lock

    store, config, frame, fake, _ = pushed
    before = read_manifest(store).set_index("id")["priority"]
    answer_top(store, fake, frame, 24)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom relabeler.queue_plan import "
         "manifest_lock\nfrom relabeler.store import RunStore\nwith manifest_lock("
         "RunStore(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(60)\n",
         store.uri], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ManifestLockedError,
                           match=r"manifest\.parquet .*manifest\.lock is held\)"):
            rerank(answer_events=24)
        with pytest.raises(ManifestLockedError, match="a push, a pull, a round or a re-rank"):
            with manifest_lock(store, wait=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert read_manifest(store).set_index("id")["priority"].equals(before)
    with manifest_lock(store), manifest_lock(store):  # re-entrant within a process
        assert rerank(answer_events=24).reprioritised > 10


def test_a_round_lock_left_by_a_dead_next_is_named_with_the_way_out(pushed):
    """A `relabeler next` that crashed leaves studio/round.lock: the re-rank says the holder is
    gone and how to finish the round, instead of waiting on a round that runs no more."""
    import json
    import socket

    from relabeler.errors import RoundLockedError
    from relabeler.jobs.rounds import round_lock

    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    lock = store.local_path("studio/round.lock")
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 12345,
                                "started": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(RoundLockedError) as info:
        rerank(answer_events=24)
    message = str(info.value)
    assert "process 4206649, which is gone" in message
    assert f"relabeler next --run {store.uri}` again" in message
    assert read_reranks(store).empty
    with round_lock(store):  # the next `next` takes it over; then the re-rank goes on
        pass
    assert rerank(answer_events=24).reprioritised > 10


def test_answered_meanwhile_sees_answers_and_deletions_appended_after_its_first_read(tmp_path):
    from relabeler.plugin.events import append_event
    from relabeler.plugin.live_answers import AnsweredMeanwhile, EventsSincePull

    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)
    append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "task": 7}})
    events = EventsSincePull(store)
    answered = AnsweredMeanwhile(events, every=0)
    assert answered.has(7) and not answered.has(8)
    append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 2, "task": 8}})
    append_event(store, {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}]})
    assert answered.has(8) and not answered.has(7)
    # what it read is the next re-rank's too: the shared reader keeps every event
    assert [e["action"] for e in events.since_pull()] == [
        "ANNOTATION_CREATED", "ANNOTATION_CREATED", "ANNOTATIONS_DELETED"]
    held = AnsweredMeanwhile(EventsSincePull(store), every=3600)  # read once, then not again
    assert held.has(8)
    append_event(store, {"action": "ANNOTATION_CREATED", "annotation": {"id": 3, "task": 9}})
    assert not held.has(9)


def test_the_events_since_the_pull_drop_what_a_pull_read_and_come_back_if_it_is_undone(
        tmp_path):
    from relabeler.plugin.events import append_event
    from relabeler.plugin.live_answers import EventsSincePull

    store = make_run(str(tmp_path / "run"), n_train=10, n_pool=0, n_acquire=0,
                     attributions=False)

    def created(annotation_id):
        return {"action": "ANNOTATION_CREATED", "annotation": {"id": annotation_id, "task": 7}}

    artifact = append_event(store, created(1))
    append_event(store, created(2))
    events = EventsSincePull(store)
    assert [e["_line"] for e in events.since_pull()] == [0, 1]
    store.write_json("studio/pull_state.json", {"events": {artifact: 1}})  # a pull read one
    append_event(store, created(3))
    assert [e["_line"] for e in events.since_pull()] == [1, 2]
    assert events.lines == {artifact: 3}
    store.remove("studio/pull_state.json")  # the offsets went back: line 0 is read again
    assert [e["_line"] for e in events.since_pull()] == [0, 1, 2]
    store.write_json("studio/pull_state.json", {"events": {artifact: 2}})
    assert [e["_line"] for e in EventsSincePull(store).since_pull()] == [2]


def test_a_re_rank_reads_each_line_of_the_event_log_once(pushed, monkeypatch):
    """Every re-rank read the whole log again (and its check for tasks answered meanwhile
    read it once more): quadratic over a project's life."""
    from relabeler.plugin import events as events_module

    store, config, frame, fake, _ = pushed
    parsed = []
    parse = events_module._parsed_event

    def counted(store_, artifact, i, line):
        parsed.append((artifact, i))
        return parse(store_, artifact, i, line)

    monkeypatch.setattr(events_module, "_parsed_event", counted)
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    manifest = read_manifest(store).sort_values("priority")
    truth = frame.set_index("id")["true_label"]
    results = []
    for part in range(3):
        rows = manifest.iloc[8 * part:8 * part + 8]
        for sample_id, task_id in zip(rows["id"], rows["task_id"], strict=True):
            fake.annotate(int(task_id), truth[sample_id])
        results.append(rerank(answer_events=8))
    assert [r.answered for r in results] == [8, 16, 24]
    assert sorted(parsed) == sorted(set(parsed)) and len(parsed) == 24


def test_an_answer_deleted_unseen_and_withdrawn_by_a_pull_no_longer_counts(pushed):
    """An answer deleted while serve was down (no event): the pull withdraws it, and the
    re-rank, which replayed every event ever recorded on top of the pull, counted it for
    good."""
    from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
    from relabeler.plugin.pull import pull
    from relabeler.plugin.rerank import collect_answers

    store, config, frame, fake, _ = pushed
    review, given, (a, task_a), (b, task_b) = _first_two(store, frame)
    other = {"neg": "pos", "pos": "neg"}
    ghost = fake.annotate(int(task_a), other[given[a]])     # an event: created
    fake.annotate(int(task_b), other[given[b]])
    pull(store, fake, consensus="majority")
    fake.delete_annotation(ghost, notify=False)             # serve is down: no event
    result = pull(store, fake, consensus="majority")
    assert result.withdrawn == 1
    spec = LabelingSpec.from_config(build_labeling_config(CLASSES))
    answers = collect_answers(store, review, spec, given)
    assert answers.answered_tasks == {int(task_b)}
    assert answers.label_of == {b: other[given[b]]}
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    result = rerank(answer_events=0)
    assert (result.answered, result.waiting) == (1, 59)


def test_answers_given_while_serve_was_down_are_not_moved_until_a_pull_takes_them(
        pushed, caplog):
    """Label Studio does not send again a webhook that found serve down: the first listing
    of the project tells which tasks the server holds answers for."""
    from relabeler.plugin.pull import pull

    store, config, frame, fake, _ = pushed
    answer_top(store, fake, frame, 24)
    waiting = read_manifest(store).sort_values("priority").iloc[24:]
    unheard = {int(t) for t in waiting["task_id"][1::3]}   # 12 tasks; serve was down
    for task_id in unheard:
        fake.annotate(task_id, "pos", notify=False)
    patched = []
    update = fake.update_task_data

    def recorded(task_id, data):
        patched.append(task_id)
        update(task_id, data)

    fake.update_task_data = recorded
    before = read_manifest(store).set_index("task_id")["priority"]
    rerank = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)
    with caplog.at_level(logging.INFO, logger="relabeler.plugin.rerank"):
        first = rerank(answer_events=24)
    assert (first.answered, first.waiting) == (36, 24)
    assert patched and not set(patched) & unheard
    assert ("12 review tasks have answers on the server that no webhook told of yet (given "
            "while serve was down, or their webhooks are on the way)" in caplog.text)
    assert "`relabeler pull` takes their answers" in caplog.text
    fake.annotate(int(waiting["task_id"].iloc[0]), "neg")   # one more, with its event
    second = rerank(answer_events=1)
    assert (second.answered, second.waiting) == (37, 23)
    assert not set(patched) & unheard
    after = read_manifest(store).set_index("task_id")["priority"]
    assert all(after[t] == before[t] for t in unheard)
    pull(store, fake, consensus="majority")                # the corrections hold them now
    third = rerank(answer_events=0)
    assert (third.answered, third.waiting) == (37, 23)


def test_a_push_again_to_a_project_pushed_with_packed_priorities_sends_nothing(pushed):
    # a project pushed before push left PRIORITY_STEP between tasks holds 1, 2, 3: a push
    # again with the same plan rewrote every task (data and prediction) to 1000, 2000, ...
    store, config, frame, fake, project_id = pushed
    manifest = read_manifest(store)
    packed = manifest["priority"].rank(method="first").astype(int)
    write_manifest(store, manifest.assign(priority=packed))
    for task_id, priority in zip(manifest["task_id"], packed, strict=True):
        fake.tasks[int(task_id)]["data"]["priority"] = int(priority)
    fake.requests.clear()
    again = push(store, fake, project_title="live", budget=60, control_share=0.05,
                 acquire=False)
    assert (again.reprioritised, again.new_flagged, again.new_controls) == (0, 0, 0)
    assert "PATCH task" not in fake.requests
    assert read_manifest(store)["priority"].tolist() == packed.tolist()
