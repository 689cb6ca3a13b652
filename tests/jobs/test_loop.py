"""The demo's simulated annotators: answers through each user's client (against the in-memory
Label Studio), and the users' passwords kept for a rerun."""

from __future__ import annotations

import json
import stat
from typing import Any

import numpy as np
import pandas as pd

from relabeler.jobs.loop import simulate_annotators
from relabeler.plugin import users
from relabeler.queue_plan import MANIFEST_SCHEMA, write_manifest
from relabeler.store import RunStore
from tests.plugin.fake_studio import FakeStudio


class UserClient:
    """One Label Studio user's client over the shared FakeStudio: the calls the simulation
    makes, answers recorded as that user."""

    def __init__(self, studio: FakeStudio, user: int) -> None:
        self.studio, self.user = studio, user
        self.created: list[tuple[int, list[dict[str, Any]], float | None]] = []

    def get_project(self, project_id: int):
        return self.studio.get_project(project_id)

    def list_tasks(self, project_id: int, *, annotated_only: bool = False,
                   fields: str = "all"):
        return self.studio.list_tasks(project_id, annotated_only=annotated_only)

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *,
                          lead_time: float | None = None) -> dict[str, Any]:
        self.created.append((task_id, result, lead_time))
        self.studio.annotate(task_id, result[0]["value"]["choices"][0], user=self.user)
        return {"id": task_id}


def test_each_simulated_annotator_answers_every_open_task_of_the_round_in_queue_order(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    studio = FakeStudio(["ham", "spam"])
    project = studio.add_project()
    samples = ["s0", "s1", "s2", "s3", "s4", "s5"]
    tasks = {s: studio.add_task(project, s, "ham") for s in samples}
    write_manifest(store, pd.DataFrame({
        "id": samples, "task_id": list(tasks.values()), "project_id": project,
        "rank": range(1, 7), "priority": [4, 3, 2, 1, 5, 6], "source": "flagged",
        "pushed_at": pd.Timestamp("2026-01-01", tz="UTC"),
        "round": [1, 1, 1, 1, 1, 2]})[[*MANIFEST_SCHEMA.names, "round"]])
    studio.annotate(tasks["s3"], "ham", user=9)  # answered already: left alone
    truth = {"s0": "spam", "s1": "ham", "s2": "spam", "s3": "ham", "s5": "ham"}  # s4: none
    probs = {s: np.array([0.3, 0.7]) for s in samples}
    clients = {"right": UserClient(studio, 1), "wrong": UserClient(studio, 2)}

    created = simulate_annotators(store, clients, {"right": 1.0, "wrong": 0.0}, truth=truth,
                                  probs=probs, round_no=1, seed=0)

    assert created == 6  # s2, s1, s0 (priority order) by each of the two
    order = [tasks[s] for s in ("s2", "s1", "s0")]
    assert [task for task, _, _ in clients["right"].created] == order
    assert [task for task, _, _ in clients["wrong"].created] == order
    assert {lead for c in clients.values() for _, _, lead in c.created} == {1.0}
    assert clients["right"].created[0][1] == [
        {"from_name": "answer", "to_name": "text", "type": "choices",
         "value": {"choices": ["spam"]}}]
    answers = {s: sorted((a["completed_by"], a["result"][0]["value"]["choices"][0])
                         for a in studio.tasks[tasks[s]]["annotations"]) for s in samples}
    # accuracy 1 gives the truth; accuracy 0 the other class (the wrong one most plausible)
    assert answers == {"s0": [(1, "spam"), (2, "ham")], "s1": [(1, "ham"), (2, "spam")],
                       "s2": [(1, "spam"), (2, "ham")], "s3": [(9, "ham")], "s4": [],
                       "s5": []}

    again = simulate_annotators(store, clients, {"right": 1.0, "wrong": 0.0}, truth=truth,
                                probs=probs, round_no=1, seed=0)
    assert again == 0 and len(clients["right"].created) == 3

    assert simulate_annotators(store, clients, {"right": 1.0, "wrong": 0.0}, truth=truth,
                               probs=probs, round_no=2, seed=0) == 2
    assert sorted(a["completed_by"] for a in studio.tasks[tasks["s5"]]["annotations"]) == [1, 2]


def test_simulated_annotators_keep_their_passwords_for_a_rerun(tmp_path, monkeypatch):
    asked: list[tuple[str, str, str]] = []

    def token(url: str, email: str, password: str) -> str:
        asked.append((url, email, password))
        return f"token-of-{email}"

    monkeypatch.setattr(users, "annotator_token", token)
    data = tmp_path / "studio-data"

    tokens = users.simulated_annotators("http://ls.invalid", data, ["ann", "bob"])

    assert tokens == {"ann": "token-of-ann@relabeler.local",
                      "bob": "token-of-bob@relabeler.local"}
    path = data / users.ANNOTATORS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kept = json.loads(path.read_text())
    assert sorted(kept) == ["ann", "bob"] and kept["ann"] != kept["bob"]
    assert asked == [("http://ls.invalid", "ann@relabeler.local", kept["ann"]),
                     ("http://ls.invalid", "bob@relabeler.local", kept["bob"])]

    asked.clear()
    users.simulated_annotators("http://ls.invalid", data, ["bob", "cy"])
    now = json.loads(path.read_text())
    assert now["ann"] == kept["ann"] and now["bob"] == kept["bob"] and "cy" in now
    assert asked == [("http://ls.invalid", "bob@relabeler.local", kept["bob"]),
                     ("http://ls.invalid", "cy@relabeler.local", now["cy"])]
