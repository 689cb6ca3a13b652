"""The report's count of the answers pull set aside in ``labels/unmapped.parquet``."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
from relabeler.plugin.pull_tables import (
    UNCONFIRMED,
    UNCONFIRMED_GONE,
    UNCONFIRMED_UPDATE,
    UNCONFIRMED_UPDATE_GONE,
)
from relabeler.plugin.reconcile import VANISHED
from relabeler.plugin.votes import task_votes
from relabeler.report.build import build_report, write_report
from relabeler.report.set_aside import OTHER, REASON_KINDS, reason_kind, set_aside_section
from tests.report.test_build import finished_run, relabels


def _answer(annotation_id: int, user: int, *choices: str, result: bool = True) -> dict:
    region = {"from_name": "answer", "to_name": "text", "type": "choices",
              "value": {"choices": list(choices)}}
    return {"id": annotation_id, "completed_by": user, "was_cancelled": False,
            "updated_at": f"2026-01-01T00:00:0{annotation_id % 10}+00:00",
            "result": [region] if result else []}


def _votes_reasons() -> dict[str, str]:
    """The reasons ``plugin.votes`` writes, as a pull writes them."""
    spec = LabelingSpec.from_config(build_labeling_config(["ham", "spam"]))
    _, rows = task_votes([_answer(1, 1, "promo"), _answer(2, 2, result=False),
                          _answer(3, 3, "ham", "spam"), _answer(4, 4, "ham"),
                          _answer(5, 4, "spam")], spec, {}, sample_id="s0", project_id=1,
                         task_id=7)
    _, foreign = task_votes([_answer(6, 1, "ham")], spec, {}, sample_id=None, project_id=1,
                            task_id=8)
    return {r["annotation_id"]: r["reason"] for r in [*rows, *foreign]}


def test_every_reason_pull_writes_has_its_own_kind():
    reasons = _votes_reasons()
    kinds = {annotation_id: reason_kind(r) for annotation_id, r in reasons.items()}
    assert kinds == {1: "the answer is not a class of the run", 2: "no answer",
                     3: "not exactly one answer",
                     4: "an earlier answer of an annotator who answered again",
                     6: "the task is not in this run's manifest"}
    assert [reason_kind(r) for r in (UNCONFIRMED, UNCONFIRMED_UPDATE, UNCONFIRMED_GONE,
                                     UNCONFIRMED_UPDATE_GONE, VANISHED)] == [
        "known only from a webhook event, never seen on the server",
        "an update known only from a webhook event, never seen on the server",
        "known only from a webhook event, its task deleted in Label Studio",
        "known only from a webhook event, its task deleted in Label Studio",
        "deleted in Label Studio while no webhook reached relabeler"]
    assert len({kind for _, kind in REASON_KINDS}) == len(REASON_KINDS)
    assert reason_kind("something new") == OTHER


def _write_unmapped(store, reasons: list[str]) -> None:
    n = len(reasons)
    store.write_table(artifacts.UNMAPPED.path, pa.Table.from_pandas(pd.DataFrame({
        "project_id": [1] * n, "task_id": list(range(10, 10 + n)),
        "annotation_id": list(range(100, 100 + n)), "id": [f"t{i:02d}" for i in range(n)],
        "reason": reasons, "annotation": [json.dumps({"id": 100 + i}) for i in range(n)]}),
        schema=artifacts.UNMAPPED.schema, preserve_index=False))


def test_the_report_counts_the_answers_set_aside_by_kind_of_reason(tmp_path):
    store = finished_run(tmp_path, relabels(["t00"], "neg", "pos"))
    reasons = _votes_reasons()
    _write_unmapped(store, [
        reasons[1], reasons[1].replace("'promo'", "'Spam'"), UNCONFIRMED_GONE, reasons[4],
        VANISHED, UNCONFIRMED, UNCONFIRMED_GONE, "a reason no pull writes"])
    report = write_report(store)
    path = store.path(artifacts.UNMAPPED.path)
    assert report["set_aside"] == {"file": path, "answers": 8, "by_reason": [
        {"reason": "the answer is not a class of the run", "answers": 2},
        {"reason": "an earlier answer of an annotator who answered again", "answers": 1},
        {"reason": "known only from a webhook event, never seen on the server", "answers": 1},
        {"reason": "known only from a webhook event, its task deleted in Label Studio",
         "answers": 2},
        {"reason": "deleted in Label Studio while no webhook reached relabeler", "answers": 1},
        {"reason": "another reason", "answers": 1}]}
    saved = json.loads((tmp_path / "run/report/report.json").read_text())
    assert saved["set_aside"] == report["set_aside"]
    page = (tmp_path / "run/report/report.html").read_text()
    assert (f"<p>8 answers were set aside by pull and count nowhere in this report: <code>{path}"
            f"</code> holds each one with its reason") in page
    assert "<tr><td>the answer is not a class of the run</td><td>2</td></tr>" in page
    assert "<tr><td>another reason</td><td>1</td></tr>" in page


def test_no_line_without_answers_set_aside(tmp_path):
    store = finished_run(tmp_path, relabels(["t00"], "neg", "pos"))
    assert build_report(store)["set_aside"] == {}
    _write_unmapped(store, [])
    assert set_aside_section(store) == {}
    write_report(store)
    assert "set aside" not in (tmp_path / "run/report/report.html").read_text()
    _write_unmapped(store, [VANISHED])
    write_report(store)
    assert "<p>1 answer was set aside by pull" in (tmp_path / "run/report/report.html").read_text()
