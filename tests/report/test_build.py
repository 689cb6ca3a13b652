"""The report built from a finished run: a small run written table by table (no model
trained), so each case sets exactly the answers, manifest and labels it is about."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.corrections import corrections_fingerprint
from relabeler.errors import DataError, StoreError
from relabeler.queue_plan import write_manifest
from relabeler.report.build import _queue_precision, build_report, write_report
from relabeler.report.render import _eval_audit_html, _lift_text, plots, render_html
from relabeler.store import RunStore


def finished_run(tmp_path, corrections: pd.DataFrame, *, classes=("neg", "pos"),
                 manifest: pd.DataFrame | None = None, eval_suspects: bool = False,
                 n_train: int = 40, n_eval: int = 20) -> RunStore:
    """A run retrained on ``corrections`` (written as they are, as a file made by hand is):
    ``n_train`` training rows t00.. and ``n_eval`` eval rows e00.. labeled by turns, pool
    rows p00..p03; the baseline misses every fourth eval row, version 1 none."""
    classes = list(classes)
    store = RunStore(tmp_path / "run")

    def split(prefix: str, n: int, labeled: bool = True) -> pd.DataFrame:
        return pd.DataFrame({"id": [f"{prefix}{i:02d}" for i in range(n)],
                             "text": [f"text {prefix}{i}" for i in range(n)],
                             "label": [classes[i % len(classes)] if labeled else None
                                       for i in range(n)]})

    train, evaluation, pool = split("t", n_train), split("e", n_eval), split("p", 4, False)
    for artifact, frame in ((artifacts.TRAIN, train), (artifacts.EVAL, evaluation),
                            (artifacts.POOL, pool)):
        store.write_table(artifact.path, pa.Table.from_pandas(frame, preserve_index=False))
    store.write_json(artifacts.LABELS.path, classes)

    def predictions(wrong_every: int | None) -> pa.Table:
        pred = [classes[(i + (wrong_every is not None and i % wrong_every == 0)) % len(classes)]
                for i in range(n_eval)]
        probs = pa.FixedSizeListArray.from_arrays(
            pa.array(np.full(n_eval * len(classes), 1 / len(classes), np.float32)),
            len(classes))
        return pa.table({"id": evaluation["id"], "label": evaluation["label"], "pred": pred,
                         "probs": probs})

    store.write_table(artifacts.EVAL_PREDICTIONS.path, predictions(4))
    sub = RunStore(store.path(artifacts.RETRAIN(n=1)))
    sub.write_table(artifacts.EVAL_PREDICTIONS.path, predictions(None))
    path = store.local_path(artifacts.CORRECTIONS.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    corrections.to_parquet(path, index=False)
    if manifest is not None:
        write_manifest(store, manifest.assign(
            task_id=range(1, len(manifest) + 1), project_id=1,
            priority=range(len(manifest), 0, -1),
            pushed_at=pd.Timestamp("2026-12-05", tz="UTC")))
    if eval_suspects:
        store.write_table(artifacts.EVAL_SUSPECTS.path, pa.Table.from_pandas(pd.DataFrame({
            "id": evaluation["id"], "rank": range(1, n_eval + 1),
            "suspect_score": np.linspace(0.99, 0.1, n_eval, dtype=np.float32),
            "given_label": evaluation["label"],
            "suggested_label": [classes[(i + 1) % len(classes)] for i in range(n_eval)],
            "suggested_confidence": np.float32(0.9), "margin": np.float32(-0.5),
            "knn_margin": np.float32(-0.5),
            # the chance scale, not the score's: 3 rows of 0.9 or more, the first not
            "wrong_probability": np.r_[0.5, 0.95, 0.9, 0.92, np.zeros(n_eval - 4)].astype(
                np.float32)}), preserve_index=False))
    store.mark_done("data")
    store.mark_done("train")
    fingerprint = corrections_fingerprint(store.read_table(artifacts.CORRECTIONS.path))
    store.mark_done("retrain", {"version": 1, "corrections": fingerprint, "reviewed": 0,
                                "changed": 0, "dropped": 0, "unsure": 0, "acquired": 0,
                                "n_train_before": n_train, "n_train_after": n_train})
    return store


def relabels(ids, old, new, **columns) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "old_label": old, "new_label": new, "action": "relabel",
                         **columns})


def test_class_names_with_dollars_are_drawn_as_they_are(tmp_path, monkeypatch):
    # price tiers: matplotlib read "$...$" as mathtext and failed on "$$" (or dropped the "$"s)
    store = finished_run(tmp_path, relabels(["t00", "t01", "t02"], ["$", "$$", "$"],
                                            ["$$", "$", "$$"]), classes=("$", "$$"))
    report = write_report(store)
    assert report["correction_matrix"] == {"$": {"$$": 2}, "$$": {"$": 1}}
    assert (tmp_path / "run/report/corrections.png").stat().st_size > 0
    section = {"top": [{"token": "US$5", "class": "$$", "association": 0.5, "z": 3.0,
                        "count": 4}],
               "balance": [{"class": "$", "share": 0.5, "eval_recall": 0.5},
                           {"class": "$5-$10", "share": 0.5, "eval_recall": None}]}
    import matplotlib.pyplot as plt

    drawn = []
    real = plt.Axes.set_xticks

    def spy(ax, ticks, labels=None, **kwargs):
        out = real(ax, ticks, labels, **kwargs)
        drawn.extend((t.get_text(), t.get_parse_math()) for t in ax.get_xticklabels())
        return out

    monkeypatch.setattr(plt.Axes, "set_xticks", spy)
    images = plots({**report, "shortcuts": section})
    assert {"shortcuts.png", "balance.png", "corrections.png"} <= set(images)
    assert ("$5-$10", False) in drawn and ("$$", False) in drawn


def test_a_hand_made_file_without_old_label_takes_it_from_the_training_split(tmp_path):
    # t00 is neg, t01 pos: the file names no old label (a), or a blank one (b)
    frame = pd.DataFrame({"id": ["t00", "t01", "p00"], "new_label": ["pos", "neg", "pos"],
                          "action": "relabel"})
    for case, corrections in (("a", frame), ("b", frame.assign(old_label=None))):
        report = build_report(finished_run(tmp_path / case, corrections))
        assert report["correction_matrix"] == {"neg": {"pos": 1}, "pos": {"neg": 1},
                                               "(pool)": {"pos": 1}}, case
    # a wrong old label in the file does not count a kept label as corrected
    kept = pd.DataFrame({"id": ["t00", "t01"], "old_label": ["pos", "neg"],
                         "new_label": ["neg", "pos"], "action": "relabel"})
    manifest = pd.DataFrame({"id": ["t00", "t01"], "source": ["flagged", "random_control"],
                             "rank": [1, 2]})
    report = build_report(finished_run(tmp_path / "c", kept, manifest=manifest))
    assert report["queue"]["flagged"]["corrected"] == 0
    assert report["correction_matrix"] == {"neg": {"neg": 1}, "pos": {"pos": 1}}


def test_an_answer_to_a_row_of_no_split_names_the_file_and_the_id(tmp_path):
    store = finished_run(tmp_path, relabels(["t00", "zz9"], "neg", "pos"))
    with pytest.raises(DataError, match=r"labels/corrections.parquet, row 1: id 'zz9' is in "
                                        r"neither"):
        build_report(store)


def test_eval_rows_in_a_file_without_source_are_the_eval_audits(tmp_path):
    # 4 training relabels and 3 eval ones, no source column: retrain audits the eval rows
    ids = ["t00", "t01", "t02", "t03", "e00", "e01", "e02"]
    corrections = relabels(ids, None, ["pos", "neg"] * 3 + ["pos"], n_annotations=3)
    report = build_report(finished_run(tmp_path, corrections))
    assert sum(sum(row.values()) for row in report["correction_matrix"].values()) == 4
    assert report["labels_spent"] == 12
    assert report["labels_spent_parts"] == {"review": 12, "acquisition": 0, "other": 0,
                                            "eval_audit": 9}
    # `next` reads the same training answers (its queue test and its "new answers?" check)
    from relabeler.jobs.rounds import _training_answers

    assert _training_answers(RunStore(tmp_path / "run"))["id"].tolist() == ids[:4]


def test_the_eval_audit_list_leaves_out_the_rows_the_audit_answered(tmp_path):
    # the audit answered the top three eval suspects (and was not sure of the fourth)
    corrections = pd.concat([
        relabels(["t00"], "neg", "pos"),
        pd.DataFrame({"id": ["e00", "e01", "e02", "e03"], "old_label": "neg",
                      "new_label": ["pos", "pos", None, None],
                      "action": ["relabel", "keep", "drop", "unsure"],
                      "source": "eval_audit"})])
    store = finished_run(tmp_path, corrections, eval_suspects=True)
    report = write_report(store)
    audit = report["eval_audit"]
    assert [r["id"] for r in audit["top"]] == [f"e{i:02d}" for i in range(3, 13)]
    assert (audit["ranked"], audit["audited"]) == (20, 3)
    # e01-e03 have a wrong_probability of 0.9 or more (e00, ranked first, does not); the audit
    # answered e01 and e02, and e03 only "unsure"
    assert audit["high_suspicion"] == 3 and audit["high_suspicion_unaudited"] == 1
    page = (tmp_path / "run/report/report.html").read_text()
    section = page[page.index("<h2>Eval audit"):]
    assert ("3 whose label the model and its neighbours give at most a 10% chance of being "
            "right (wrong_probability 0.9 or more; 1 of those not audited yet). The audit has "
            "answered 3 of the ranked rows, left out of the list below.") in section
    assert "<td>e00</td>" not in section and "<td>e03</td>" in section
    # e03 (0.92) is likelier wrong than right and not audited: the list is worth a review
    assert (audit["likely_wrong_unaudited"], audit["max_wrong_probability_unaudited"]) == (
        1, pytest.approx(0.92))
    assert ("Wrong eval labels move the measured gain: 1 eval row not audited yet has a 50% "
            "chance or more of a wrong label. Review the top of this list before trusting the "
            "gain.") in section
    assert "<th>chance the label is wrong</th>" in section and "<td>0.92</td>" in section


def _audit(likely, changed=0, answered=0, highest=0.3) -> dict:
    gain = ({"reviewed": answered, "changed": changed, "dropped": 0, "n_eval": 1000,
             "n_audited_eval": 1000, "from_eval_errors": 0.0,
             **{k: {"before": 0.9, "after": 0.9, "delta": 0.0, "ci95": [0.0, 0.0]}
                for k in ("original", "audited")}} if answered else None)
    return {"ranked": 1000, "high_suspicion": 0, "audited": answered,
            "high_suspicion_unaudited": 0, "likely_wrong_unaudited": likely,
            "max_wrong_probability_unaudited": highest, "gain": gain,
            "top": [{"id": "e1", "given_label": "ham", "suggested_label": "spam",
                     "suspect_score": highest, "wrong_probability": highest}]}


@pytest.mark.parametrize("audit, expected", [
    # the demo's: 3 of 50 changed, every row left under a 0.30 chance
    (_audit(0, changed=3, answered=50),
     "The audit found the eval labels mostly right: it changed or dropped 3 of the 50 eval "
     "labels it answered (6.0%), and no eval row left unaudited has even a 50% chance of a "
     "wrong label (the highest: 0.30). The list is for reference."),
    (_audit(0, changed=10, answered=50),
     "Wrong eval labels move the measured gain: the audit changed or dropped 10 of the 50 "
     "eval labels it answered (20.0%). Review the top of this list before trusting the gain."),
    (_audit(4, highest=0.8),
     "Wrong eval labels move the measured gain: 4 eval rows not audited yet have a 50% chance "
     "or more of a wrong label. Review the top of this list before trusting the gain."),
    (_audit(0), "No eval row has even a 50% chance of a wrong label (the highest: 0.30): the "
                "eval labels look mostly right. The list is for reference."),
    # a ranking without chances cannot tell
    ({**_audit(None), "high_suspicion": None},
     "Wrong eval labels move the measured gain, and this ranking gives no chance of a wrong "
     "label per row"),
])
def test_the_eval_audit_advice_follows_what_the_list_holds(audit, expected):
    page = _eval_audit_html(audit)
    assert expected in page
    assert ("Review the top" in page or "review the top" in page) == (
        "mostly right" not in expected)


@pytest.mark.parametrize("answers, expected", [
    # only the random controls answered so far
    ({"c0": "b", "c1": "a"}, "n/a (no flagged task was reviewed yet)"),
    ({"f0": "b"}, "n/a (no random control was reviewed yet)"),
    # no control corrected; the flagged rate's lower limit below the controls' upper one
    ({**{f"f{i}": "b" if i < 3 else "a" for i in range(10)},
      **{f"c{i}": "a" for i in range(5)}},
     "not measurable: no random control needed a change; not shown to beat random picks "
     "(the flagged rate's lower 95% limit over the control rate's upper one is 0.2x, below 1: "
     "the controls are too few to tell)"),
    # ... and above it
    ({**{f"f{i}": "b" for i in range(10)}, **{f"c{i}": "a" for i in range(30)}},
     "not measurable: no random control needed a change; at least 6.4x (the flagged rate's "
     "lower 95% limit over the control rate's upper one)"),
    ({**{f"f{i}": "b" if i < 6 else "a" for i in range(10)},
      **{f"c{i}": "b" if i < 2 else "a" for i in range(10)}},
     "3.0x (at least 0.6x: the flagged rate's lower 95% limit over the control rate's upper "
     "one)"),
])
def test_the_lift_line_says_what_was_reviewed_and_what_the_bound_allows(answers, expected):
    manifest = pd.DataFrame({"id": [f"f{i}" for i in range(10)] + [f"c{i}" for i in range(30)],
                             "source": ["flagged"] * 10 + ["random_control"] * 30})
    corrections = pd.DataFrame({"id": list(answers), "old_label": "a",
                                "new_label": list(answers.values())})
    corrections["action"] = np.where(corrections["new_label"] == "a", "keep", "relabel")
    queue = _queue_precision(corrections, manifest)
    assert _lift_text(queue) == expected
    for side in ("flagged", "random_control"):  # no interval where nothing was reviewed
        assert (queue[side]["ci95"] is None) == (queue[side]["reviewed"] == 0)


def test_a_new_report_replaces_the_folder_whole(tmp_path, monkeypatch):
    import relabeler.report.build as build

    store = finished_run(tmp_path, relabels(["t00", "t01"], "neg", "pos"))
    folder = tmp_path / "run/report"
    write_report(store)
    assert (folder / "corrections.png").exists()
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    # newer answers (eval audit only: no correction matrix); the page fails while rendered
    store.write_table(artifacts.CORRECTIONS.path, pa.Table.from_pandas(pd.DataFrame({
        "id": ["e00"], "old_label": ["neg"], "new_label": ["pos"], "action": ["relabel"],
        "source": ["eval_audit"]}), preserve_index=False))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "render_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(store)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old  # nothing half-new
    monkeypatch.undo()
    report = write_report(store)
    assert report["correction_matrix"] == {} and report["stale"]
    # the old report's corrections plot is gone with it, not left beside the new page
    assert sorted(p.name for p in folder.iterdir()) == ["accuracy.png", "report.html",
                                                        "report.json"]
    assert json.loads((folder / "report.json").read_text())["stale"] == report["stale"]


def test_labels_spent_is_one_count_named_by_its_parts(tmp_path):
    # 2 flagged and 1 control answered by 3 people (one count unknown: 1), 1 acquisition by 2,
    # 1 counterexample by 1, 1 eval-audit answer by 3
    corrections = pd.DataFrame({
        "id": ["t00", "t01", "t02", "p00", "t03", "e00"], "old_label": None,
        "new_label": ["pos", "neg", "neg", "pos", "neg", "pos"],
        "action": ["relabel", "relabel", "keep", "relabel", "keep", "relabel"],
        "n_annotations": pd.array([3, None, 3, 2, 1, 3], dtype="Int64"),
        "source": ["flagged", "flagged", "random_control", "acquired", "counterexample",
                   "eval_audit"]})
    manifest = corrections[["id", "source"]].assign(rank=pd.array([1, 2, None, None, None,
                                                                   None], dtype="Int64"))
    store = finished_run(tmp_path, corrections, manifest=manifest)
    report = write_report(store)
    assert report["labels_spent"] == 10
    assert report["labels_spent_parts"] == {"review": 7, "acquisition": 2, "other": 1,
                                            "eval_audit": 3}
    assert sum(r["labels_spent"] for r in report["rounds"]["rows"]) == 7
    page = (tmp_path / "run/report/report.html").read_text()
    # the headline says what its interval allows
    assert "(+25.0 points, 95% CI [+3.8, +46.9]: a real gain)" in " ".join(page.split())
    assert ("on the training and pool samples: 7 on review tasks (flagged and random controls), "
            "2 on pool samples acquired, 1 on other training tasks (counterexamples); the 3 "
            "labels of the eval audit are not counted.") in page


def test_the_correction_matrix_is_a_table_too(tmp_path):
    store = finished_run(tmp_path, relabels(["t00", "t01", "t02"], None,
                                            ["正常", "垃圾<b>", "正常"]),
                         classes=("垃圾<b>", "正常"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plot's font has no such glyphs
        write_report(store)
    page = (tmp_path / "run/report/report.html").read_text()
    table = page[page.index("<th>before \\ after</th>"):]
    table = table[:table.index("</table>")]
    assert table == ("<th>before \\ after</th><th>垃圾&lt;b&gt;</th><th>正常</th></tr>"
                     "<tr><td>垃圾&lt;b&gt;</td><td>0</td><td>2</td></tr>"
                     "<tr><td>正常</td><td>1</td><td>0</td></tr>")


def test_report_on_a_mistyped_run_says_so_and_creates_nothing(tmp_path, capsys):
    from relabeler.cli import main

    typo = tmp_path / "runz"
    assert main(["report", "--run", str(typo)]) == 2
    assert f"no run directory at {typo}" in capsys.readouterr().err
    assert not typo.exists()
    with pytest.raises(StoreError, match="no run directory at memory:///nowhere"):
        RunStore("memory://nowhere", create=False)


def test_a_version_that_lost_accuracy_to_the_one_before_is_shown(tmp_path):
    # the headline compares only the latest version with the baseline: a round whose answers
    # made the model worse than the round before went unseen
    store = finished_run(tmp_path, relabels(["t00"], "neg", "pos"), n_eval=200)
    classes = ["neg", "pos"]
    evaluation = store.read_table(artifacts.EVAL.path).to_pandas()
    v1 = RunStore(store.path(artifacts.RETRAIN(n=1)))
    v1.write_json("comparison.json", {"corrections": {"reviewed": 10, "changed": 6}})
    v2 = RunStore(store.path(artifacts.RETRAIN(n=2)))
    worse = [classes[(i + (i % 3 == 0)) % 2] for i in range(200)]  # a third wrong
    v2.write_table(artifacts.EVAL_PREDICTIONS.path, pa.table({
        "id": evaluation["id"], "label": evaluation["label"], "pred": worse,
        "probs": pa.FixedSizeListArray.from_arrays(pa.array(np.full(400, 0.5, np.float32)),
                                                   2)}))
    v2.write_json("comparison.json", {"corrections": {"reviewed": 20, "changed": 9}})
    info = store.stage_info("retrain")["info"]
    store.mark_done("retrain", {**info, "version": 2})
    report = write_report(store)
    first, second = report["versions"]
    assert (first["version"], first["reviewed"], first["changed"]) == (1, 10, 6)
    assert first["accuracy"] == 1.0 and first["from_baseline"]["delta"] == pytest.approx(0.25)
    assert second["accuracy"] == pytest.approx(133 / 200)
    assert second["from_previous"]["delta"] == pytest.approx(133 / 200 - 1)
    assert second["from_previous"]["ci95"][1] < 0
    page = " ".join((tmp_path / "run/report/report.html").read_text().split())
    assert "<b>Version 2 is less accurate than version 1</b> (-33.5 points" in page
    assert "<td>v1</td><td>10</td><td>6</td><td>not recorded</td><td>100.0%</td>" in page


def test_the_page_gives_precision_recall_and_f1_of_each_class(tmp_path):
    # the baseline calls every fourth eval row (neg ones) pos: neg precision 1.0, recall 0.5;
    # pos precision 10/15, recall 1.0; version 1 gets every row right
    store = finished_run(tmp_path, relabels(["t00"], ["neg"], ["pos"]))
    report = build_report(store)
    neg = report["eval"]["per_class"]["neg"]
    assert (neg["precision"]["before"], neg["recall"]["before"]) == (1.0, 0.5)
    page = render_html(report, {})
    for cls, metric, before in (("neg", "precision", "100.0%"), ("neg", "recall", "50.0%"),
                                ("neg", "F1", "66.7%"), ("pos", "precision", "66.7%"),
                                ("pos", "recall", "100.0%"), ("pos", "F1", "80.0%")):
        assert f"<tr><td>{cls}: {metric}</td><td>{before}</td><td>100.0%</td>" in page
    low, high = neg["recall"]["ci95"]
    assert (f"<td>neg: recall</td><td>50.0%</td><td>100.0%</td><td><b>+50.0</b></td>"
            f"<td>[{100 * low:+.1f}, {100 * high:+.1f}]</td>") in page
    # a value never measured (a class the baseline never predicted) is n/a, not 0.0%
    report["eval"]["per_class"]["neg"]["precision"] = {"before": None, "after": 1.0,
                                                       "delta": None, "ci95": None}
    assert ("<tr><td>neg: precision</td><td>n/a</td><td>100.0%</td><td><b>n/a</b></td>"
            "<td>n/a</td></tr>") in render_html(report, {})


def test_a_keep_counts_in_the_matrix_as_its_old_label(tmp_path):
    # the README leaves new_label empty for keep: the crosstab dropped those rows. t01, t03 and
    # t05 are pos; a keep leaves the training label as it was, whatever new_label says
    corrections = pd.DataFrame({"id": ["t00", "t01", "t03", "t05"],
                                "new_label": ["pos", None, None, "neg"],
                                "action": ["relabel", "keep", "keep", "keep"]})
    report = build_report(finished_run(tmp_path, corrections))
    assert report["correction_matrix"] == {"neg": {"pos": 1}, "pos": {"pos": 3}}


def test_each_version_is_named_with_its_training_settings(tmp_path):
    # versions 1 and 2 hold the same answers; only the settings differ, and version 2 is
    # worse: its drop is not the answers'. Version 3, the latest, masks, weighs and dedupes
    store = finished_run(tmp_path, relabels(["t00"], "neg", "pos"), n_eval=200)
    classes = ["neg", "pos"]
    store.write_json(artifacts.METRICS.path, {"mitigation": {
        "debias": "none", "tokens": [], "class_weights": "none"}})
    v1 = RunStore(store.path(artifacts.RETRAIN(n=1)))
    right = v1.read_table(artifacts.EVAL_PREDICTIONS.path)
    worse = [classes[(i + (i % 3 == 0)) % 2] for i in range(200)]  # a third wrong
    counts = {"reviewed": 10, "changed": 6}
    for n, answers, preds, comparison in (
            (1, "f1", right, {"mitigation": {"debias": "none", "tokens": [],
                                             "class_weights": "none"}}),
            (2, "f1", right.set_column(2, "pred", pa.array(worse)), {"mitigation": {
                "debias": "reweight", "tokens": ["computer"], "class_weights": "balanced",
                "weight_range": [0.3, 4.4]}}),
            (3, "f2", right, {"mitigation": {
                "debias": "mask", "tokens": ["computer"], "class_weights": "balanced",
                "mask_rate": 1.0, "weight_range": [0.9, 1.1]},
                "dedupe": {"groups": 2, "dropped": 2, "unresolved": 0}})):
        sub = RunStore(store.path(artifacts.RETRAIN(n=n)))
        sub.write_table(artifacts.EVAL_PREDICTIONS.path, preds)
        sub.write_json("comparison.json", {"corrections": counts, **comparison})
        sub.mark_done("data", {"corrections": answers})
    info = store.stage_info("retrain")["info"]
    store.mark_done("retrain", {**info, "version": 3})
    report = write_report(store)
    assert report["settings"] == {"debias": "mask", "class_weights": "balanced", "dedupe": True,
                                  "tokens": ["computer"], "mask_rate": 1.0}
    first, second, third = report["versions"]
    assert first["settings"] == {"debias": "none", "class_weights": "none", "dedupe": False}
    assert second["settings"] == {"debias": "reweight", "class_weights": "balanced",
                                  "dedupe": False, "tokens": ["computer"]}
    assert [(r["from_previous"]["settings_changed"], r["from_previous"]["same_answers"])
            for r in (first, second, third)] == [(False, None), (True, True), (True, False)]
    page = " ".join((tmp_path / "run/report/report.html").read_text().split())
    assert ("<b>Version 3 was trained with settings other than the defaults: debias mask "
            "(tokens: computer; mask rate 1), balanced class weights, dedupe.</b> The gain "
            "above is of the answers and these settings together.") in page
    assert ("<td>v1</td><td>10</td><td>6</td><td>defaults</td>" in page)
    assert ("<td>v2</td><td>10</td><td>6</td><td>debias reweight (tokens: computer), "
            "balanced class weights</td>") in page
    assert ("<td>-33.5 points, 95% CI [-40.3, -27.0]: a real loss; training settings changed"
            "</td></tr>") in page
    assert "<td>+25.0 points, 95% CI [+19.2, +31.4]: a real gain</td></tr>" in page  # v1
    assert ("<b>Version 2 is less accurate than version 1</b> (-33.5 points, 95% CI [-40.3, "
            "-27.0]: a real loss): it was built from the same "
            "answers, and its training settings (debias reweight (tokens: computer), balanced "
            "class weights) differ from version 1&#x27;s (defaults): the change is the "
            "settings&#x27;.</p>") in page
