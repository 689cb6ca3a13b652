"""``relabeler demo`` end to end, as ``make demo`` runs it but on 500 rows: the packaged MiniLM,
Ray, a real Label Studio started by the demo itself, three simulated annotators, two rounds,
the report; then a rerun on the same run folder, which resumes and adds nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from relabeler import artifacts
from relabeler.cli import main
from relabeler.plugin import server as studio_server
from relabeler.plugin.client import StudioClient
from relabeler.queue_plan import read_manifest
from relabeler.store import RunStore
from tests.conftest import free_port

pytestmark = pytest.mark.slow


def _demo(run: str, data_dir: str, port: int) -> int:
    return main(["demo", "--run", run, "--folds", "2", "-q",
                 "--set", "data.sample=500", "--set", "studio.budget=40",
                 "--set", "attribute.top=40", "--set", "loop.batch=20",
                 "--set", "score.acquire_budget=5", "--set", f"studio.data_dir={data_dir}",
                 "--set", f"studio.port={port}"])


def test_the_demo_runs_two_rounds_with_simulated_annotators_and_a_rerun_adds_nothing(
        studio_template, ray_session, tmp_path, capsys):
    data_dir = studio_server.copy_data_dir(studio_template, tmp_path / "studio")
    run = str(tmp_path / "run")
    port = free_port()
    try:
        assert _demo(run, str(data_dir), port) == 0
        printed = capsys.readouterr().out
        store = RunStore(run)
        manifest = read_manifest(store)
        review = manifest[manifest["source"].isin(["flagged", "random_control"])]
        # round 1: the top 40 of the queue (38 flagged + 2 controls at a 5% share); round 2:
        # loop.batch = 20 more behind them, in the same project
        assert review.groupby("round").size().to_dict() == {1: 40, 2: 20}
        assert review["project_id"].nunique() == 1
        assert set(manifest["source"]) == {"flagged", "random_control", "acquired",
                                           "eval_audit"}
        assert manifest["task_id"].notna().all()
        client = StudioClient(f"http://127.0.0.1:{port}",
                              studio_server.read_credentials(data_dir).token)
        on_server = {int(t["id"]) for p in manifest["project_id"].unique()
                     for t in client.list_tasks(int(p), fields="task_only")}
        assert on_server == set(manifest["task_id"].astype(int))

        # every task answered by each of the three simulated users
        annotators = store.read_table(artifacts.ANNOTATORS.path).to_pandas()
        assert sorted(annotators["annotator"]) == [f"annotator{a}@relabeler.local"
                                                   for a in (65, 80, 95)]
        assert set(annotators["answers"]) == {len(manifest)}
        quality = dict(zip(annotators["annotator"], annotators["quality"], strict=True))
        assert (quality["annotator95@relabeler.local"] > quality["annotator80@relabeler.local"]
                > quality["annotator65@relabeler.local"])
        assert f"{3 * len(manifest)} answers by SIMULATED annotators;" in printed

        # the queue found wrong labels: most of round 1's flagged tasks were flipped on purpose
        train = store.read_table(artifacts.TRAIN.path).to_pandas()
        flipped = set(train.loc[train["flipped"], "id"])
        round1 = review[(review["round"] == 1) & (review["source"] == "flagged")]
        assert round1["id"].isin(flipped).mean() >= 0.6
        corrections = store.read_table(artifacts.CORRECTIONS.path).to_pandas()
        assert set(corrections["id"]) == set(manifest["id"])

        # the report: both rounds in the burn-down, the eval accuracy before and after
        report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
        assert [row["round"] for row in report["rounds"]["rows"]] == [1, 2]
        assert [row["tasks"] for row in report["rounds"]["rows"]] == [40, 20]
        assert report["eval"]["accuracy"]["after"] >= report["eval"]["accuracy"]["before"]
        assert (tmp_path / "run" / "report" / "report.html").stat().st_size > 10_000
        assert "in 2 rounds" in printed and "round 2 (ranked): 20 tasks" in printed

        # a rerun resumes: no push of round 1 over round 2, no round 3, no new answers
        assert _demo(run, str(data_dir), port) == 0
        again = capsys.readouterr().out
        assert "round 2 was pushed by an earlier run of the demo" in again
        assert f"{3 * len(manifest)} answers by SIMULATED annotators (0 of them this run)" in again
        pd.testing.assert_frame_equal(read_manifest(store), manifest)
        assert store.read_table(artifacts.ANNOTATORS.path).to_pandas()["answers"].tolist() == \
            annotators["answers"].tolist()
        assert json.loads((tmp_path / "run" / "report" / "report.json").read_text())[
            "rounds"]["rows"] == report["rounds"]["rows"]
    finally:
        studio_server.stop_server(data_dir)
