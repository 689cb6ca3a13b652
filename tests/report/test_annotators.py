"""The report's Annotators section: agreement and each annotator's quality."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from relabeler import artifacts
from relabeler.report.annotators import (
    alpha_reading,
    annotators_section,
    krippendorff_alpha,
    render_annotators,
)
from relabeler.store import RunStore


def test_alpha_by_hand():
    # Krippendorff (2011), nominal: 2 coders, values a a / a b / b b: n = 6 pairable values,
    # o_aa = 2, o_bb = 2, o_ab = o_ba = 1; n_a = n_b = 3; alpha = 1 - 5 * 2 / (2 * 9) = 4/9
    assert krippendorff_alpha([["a", "a"], ["a", "b"], ["b", "b"]]) == pytest.approx(4 / 9)
    assert krippendorff_alpha([["a", "a"], ["b", "b"]]) == pytest.approx(1.0)
    assert krippendorff_alpha([["a", "b"], ["b", "a"]]) == pytest.approx(-0.5)
    assert krippendorff_alpha([["a"], ["a", "a"]]) is None  # no variation: undefined
    assert krippendorff_alpha([["a"], ["b"]]) is None  # no task with two answers


def test_alpha_by_hand_with_three_answers_per_task():
    # m answers in a unit give each of its m(m-1) ordered pairs the weight 1/(m-1):
    # a a b -> o_aa 1, o_ab = o_ba 1; a a a -> o_aa 3; b b a -> o_bb 1, o_ab = o_ba 1;
    # a b -> o_ab = o_ba 1; b b -> o_bb 2. So o_aa 4, o_bb 3, o_ab = o_ba 3; n_a 7, n_b 6,
    # n 13 pairable values; alpha = 1 - (n - 1) * (o_ab + o_ba) / (2 n_a n_b)
    # = 1 - 12 * 6 / 84 = 1/7
    units = [["a", "a", "b"], ["a", "a", "a"], ["b", "b", "a"], ["a", "b"], ["b", "b"]]
    assert krippendorff_alpha(units) == pytest.approx(1 / 7)


def corrections_frame() -> pd.DataFrame:
    votes = [[("ann", "pos"), ("bob", "pos")], [("ann", "neg"), ("bob", "pos")],
             [("ann", "neg"), ("bob", "neg"), ("cy", "(skipped)")], [("ann", "pos")]]
    return pd.DataFrame({
        "id": ["a", "b", "c", "d"],
        "annotators": [[w for w, _ in v] for v in votes],
        "votes": [[f"{w}: {x}" for w, x in v] for v in votes],
        "consensus": ["dawid_skene", "dawid_skene", "dawid_skene", "majority"]})


def write_people(store: RunStore, names: list[str]) -> None:
    frame = pd.DataFrame({"annotator": names, "answers": [4, 3, 1][:len(names)],
                          "agreement_with_consensus": [1.0, 2 / 3, float("nan")][:len(names)],
                          "quality": [0.95, 0.7, float("nan")][:len(names)],
                          "estimated_accuracy": [0.95, 0.7, float("nan")][:len(names)]})
    store.write_table(artifacts.ANNOTATORS.path, pa.Table.from_pandas(
        frame, schema=artifacts.ANNOTATORS.schema, preserve_index=False))


def test_the_section_gives_agreement_and_each_annotators_quality(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_people(store, ["ann", "bob", "cy"])
    section = annotators_section(store, corrections_frame())
    assert section["n_annotators"] == 3 and section["tasks_with_several_answers"] == 3
    assert section["pairwise_agreement"] == pytest.approx(2 / 3)
    assert section["share_disagreeing"] == pytest.approx(1 / 3)
    # units pos pos / neg pos / neg neg: the 4/9 of the hand example
    assert section["krippendorff_alpha"] == pytest.approx(4 / 9)
    assert section["resolved_by"] == {"dawid_skene": 3, "majority": 1}
    ann = section["annotators"][0]
    assert (ann["annotator"], ann["answers"], ann["estimated_accuracy"]) == ("ann", 4, 0.95)
    assert section["annotators"][2]["estimated_accuracy"] is None
    page = render_annotators(section)
    assert "<h2>Annotators</h2>" in page and "0.44" in page and "95.0%" in page
    # cy's one vote is a skip: no answer on the tasks the agreement is over (the file's 1)
    assert "<td>cy</td><td>0</td><td>n/a</td>" in page
    assert "<th>estimated accuracy</th>" in page


def test_crowdlabs_quality_is_shown_where_no_accuracy_is_estimated(tmp_path):
    # CROWDLAB writes a quality score and no estimated accuracy: the page showed n/a for all
    store = RunStore(str(tmp_path / "run"))
    frame = pd.DataFrame({"annotator": ["ann", "bob"], "answers": [4, 3],
                          "agreement_with_consensus": [1.0, 2 / 3], "quality": [0.673, 0.487],
                          "estimated_accuracy": [float("nan")] * 2})
    store.write_table(artifacts.ANNOTATORS.path, pa.Table.from_pandas(
        frame, schema=artifacts.ANNOTATORS.schema, preserve_index=False))
    page = render_annotators(annotators_section(store, corrections_frame()))
    assert "<th>quality (CROWDLAB's score, 0 to 1)</th>" in page
    assert "<td>ann</td><td>4</td><td>0.67</td><td>100.0%</td>" in page
    assert "<td>bob</td><td>3</td><td>0.49</td><td>66.7%</td>" in page


def test_one_annotator_or_none_has_no_section(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    assert annotators_section(store, corrections_frame()) == {}
    write_people(store, ["ann"])
    assert annotators_section(store, corrections_frame()) == {}
    assert render_annotators({}) == ""


def test_answers_and_agreement_share_one_base_and_the_eval_audit_is_counted_apart(tmp_path):
    # the file counts every task (ann 4 + 2 eval-audit answers = 6); the agreement is over the
    # training tasks, so the answers shown are those, the audit's beside them
    store = RunStore(str(tmp_path / "run"))
    frame = pd.DataFrame({"annotator": ["ann", "bob"], "answers": [6, 4],
                          "agreement_with_consensus": [1.0, 2 / 3], "quality": [0.9, 0.7],
                          "estimated_accuracy": [0.9, 0.7]})
    store.write_table(artifacts.ANNOTATORS.path, pa.Table.from_pandas(
        frame, schema=artifacts.ANNOTATORS.schema, preserve_index=False))
    audit = pd.DataFrame({"id": ["e1", "e2"], "annotators": [["ann", "bob"], ["ann"]],
                          "votes": [["ann: pos", "bob: pos"], ["ann: neg"]]})
    section = annotators_section(store, corrections_frame(), audit)
    people = {a["annotator"]: a for a in section["annotators"]}
    assert (people["ann"]["answers"], people["ann"]["eval_audit_answers"],
            people["ann"]["answers_all_tasks"]) == (4, 2, 6)
    assert (people["bob"]["answers"], people["bob"]["eval_audit_answers"]) == (3, 1)
    page = render_annotators(section)
    assert ("<th>answers (training and pool tasks)</th><th>eval-audit answers</th>" in page)
    assert "<td>ann</td><td>4</td><td>2</td><td>90.0%</td><td>100.0%</td>" in page
    assert "the eval audit's answers are counted apart." in page


def test_a_file_without_votes_names_its_answers_base(tmp_path):
    store = RunStore(str(tmp_path / "run"))
    write_people(store, ["ann", "bob"])
    page = render_annotators(annotators_section(store, pd.DataFrame({"id": ["a"]})))
    assert "<th>answers (all tasks)</th>" in page and "<td>ann</td><td>4</td>" in page
    assert "the eval audit's included" in page


def test_alpha_is_read_by_krippendorffs_guideline(tmp_path):
    assert alpha_reading(None) == ""
    assert alpha_reading(0.85).startswith("At or above 0.800")
    assert alpha_reading(0.7).startswith("Between 0.667 and 0.800")
    assert alpha_reading(0.2).startswith("Below 0.667, Krippendorff's lowest bound")
    store = RunStore(str(tmp_path / "run"))
    write_people(store, ["ann", "bob", "cy"])
    page = render_annotators(annotators_section(store, corrections_frame()))
    # alpha 0.44 (the hand example): the reading stands next to the figure
    assert ("Krippendorff's alpha <b>0.44</b> (1 = perfect agreement, 0 = chance). "
            "<i>Below 0.667, Krippendorff's lowest bound") in page
