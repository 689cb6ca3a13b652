"""retrain's reading of labels/corrections.parquet: repeated ids, empty labels, old labels."""

import pandas as pd
import pytest

from relabeler.errors import DataError
from relabeler.jobs.retrain import apply_corrections, audit_eval

TRAIN = pd.DataFrame({"id": ["a", "b", "c", "d"], "text": ["t1", "t2", "t3", "t4"],
                      "label": ["pos", "neg", "pos", "neg"]})
POOL = pd.DataFrame({"id": ["p1", "p2"], "text": ["u1", "u2"], "label": [None, None]})
EVAL = pd.DataFrame({"id": ["e1", "e2", "e3", "e4"], "text": ["x1", "x2", "x3", "x4"],
                     "label": ["pos", "pos", "neg", "neg"]})
CLASSES = ["neg", "pos"]


def _corrections(rows, index=None):
    return pd.DataFrame(rows, columns=["id", "old_label", "new_label", "action"], index=index)


def test_a_repeated_training_id_is_refused_naming_its_rows():
    rows = [("a", "pos", "neg", "relabel"), ("b", "neg", "neg", "keep"),
            ("a", "pos", "pos", "keep"), ("c", "pos", None, "drop"), ("a", "pos", None, "drop")]
    with pytest.raises(DataError) as error:
        apply_corrections(TRAIN, POOL, _corrections(rows), CLASSES)
    assert str(error.value) == ("labels/corrections.parquet, rows 0, 2 and 4: id 'a' appears "
                                "more than once")
    # the rows are those of the file, also after the eval answers were split off
    rows = [("a", "pos", "neg", "relabel"), ("b", "neg", "neg", "keep"),
            ("b", "neg", None, "drop"), ("a", "pos", "pos", "keep")]
    with pytest.raises(DataError) as error:
        apply_corrections(TRAIN, POOL, _corrections(rows, index=[5, 7, 9, 54]), CLASSES)
    assert str(error.value) == ("labels/corrections.parquet, rows 5 and 54: id 'a' appears more "
                                "than once (and 1 more id: 'b')")


def test_two_answers_to_one_eval_row_are_refused_naming_their_rows():
    # the rows of the file: the training answers were split off before
    answers = _corrections([("e1", "pos", "neg", "relabel"), ("e2", "pos", "pos", "keep"),
                            ("e1", "pos", None, "drop")], index=[3, 8, 9])
    with pytest.raises(DataError) as error:
        audit_eval(EVAL, answers, CLASSES)
    assert str(error.value) == ("labels/corrections.parquet, rows 3 and 9: eval answer id 'e1' "
                                "appears more than once")


@pytest.mark.parametrize("empty", [None, float("nan"), "", "  "])
def test_an_empty_new_label_is_named_empty_not_nan(empty):
    rows = [("a", "pos", "neg", "relabel"), ("b", "neg", empty, "relabel")]
    with pytest.raises(DataError) as error:
        apply_corrections(TRAIN, POOL, _corrections(rows), CLASSES)
    assert str(error.value) == ("labels/corrections.parquet, row 1: new_label is empty "
                                "(missing): a relabel needs a class (neg, pos)")
    with pytest.raises(DataError) as error:
        apply_corrections(TRAIN, POOL, _corrections([("p1", None, empty, "keep")]), CLASSES)
    assert str(error.value) == ("labels/corrections.parquet, row 0: new_label is empty "
                                "(missing): a keep of a pool row needs a class (neg, pos)")
    with pytest.raises(DataError) as error:
        audit_eval(EVAL, _corrections([("e2", "pos", empty, "relabel")], index=[6]), CLASSES)
    assert str(error.value) == ("labels/corrections.parquet, row 6: eval answer new_label is "
                                "empty (missing): a relabel needs a class (neg, pos)")
    # a drop, a keep of a training row and "not sure" need none
    out, counts = apply_corrections(TRAIN, POOL, _corrections(
        [("a", "pos", empty, "drop"), ("b", "neg", empty, "keep"), ("c", "pos", empty, "unsure")]),
        CLASSES)
    assert out["id"].tolist() == ["b", "c", "d"]
    assert out["label"].tolist() == ["neg", "pos", "neg"]
    assert (counts["dropped"], counts["reviewed"], counts["unsure"]) == (1, 3, 1)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def test_an_old_label_other_than_the_rows_label_is_warned_of_naming_the_rows(caplog):
    # pull writes old_label from the training set: a mismatch is a file written by hand or for
    # other data; the pool rows' old_label is null, a blank old_label is not compared
    rows = [("a", "neg", "pos", "relabel"), ("b", "neg", "pos", "relabel"),
            ("c", "neg", None, "drop"), ("d", None, None, "keep"), ("p1", None, "pos", "relabel"),
            ("p2", "pos", "pos", "keep")]
    with caplog.at_level("WARNING"):
        out, counts = apply_corrections(TRAIN, POOL, _corrections(rows), CLASSES)
    assert _warnings(caplog) == [
        "labels/corrections.parquet: 2 answers give an old_label other than the training label "
        "of their id (row 0, id 'a': old_label 'neg', training label 'pos'; row 2, id 'c': "
        "old_label 'neg', training label 'pos'): the file may have been written by hand or "
        "for other data; retrain goes by the training labels"]
    assert dict(zip(out["id"], out["previous_label"], strict=True)) == {
        "a": "pos", "b": "neg", "d": "neg", "p1": None, "p2": None}
    assert counts["changed"] == 1  # a: pos -> pos is reviewed; b: neg -> pos


def test_the_old_label_warning_names_the_first_rows_and_counts_the_rest(caplog):
    train = pd.DataFrame({"id": [f"t{i}" for i in range(8)], "text": ["x"] * 8,
                          "label": ["pos"] * 8})
    rows = [(f"t{i}", "neg", None, "unsure") for i in range(8)]
    with caplog.at_level("WARNING"):
        apply_corrections(train, POOL, _corrections(rows), CLASSES)
    assert _warnings(caplog) == [
        "labels/corrections.parquet: 8 answers give an old_label other than the training label "
        "of their id (row 0, id 't0': old_label 'neg', training label 'pos'; row 1, id 't1': "
        "old_label 'neg', training label 'pos'; row 2, id 't2': old_label 'neg', training "
        "label 'pos'; and 5 more): the file may have been written by hand or for other data; "
        "retrain goes by the training labels"]
    caplog.clear()
    with caplog.at_level("WARNING"):  # a file without the column is not compared
        apply_corrections(train, POOL, _corrections(rows).drop(columns="old_label"), CLASSES)
    assert _warnings(caplog) == []


def test_an_eval_answers_old_label_is_compared_with_the_eval_label(caplog):
    answers = _corrections([("e1", "pos", "neg", "relabel"), ("e3", "pos", None, "drop"),
                            ("e4", "neg", None, "unsure")], index=[4, 5, 6])
    with caplog.at_level("WARNING"):
        audited, counts = audit_eval(EVAL, answers, CLASSES)
    assert _warnings(caplog) == [
        "labels/corrections.parquet: 1 eval answer gives an old_label other than the eval "
        "label of its id (row 5, id 'e3': old_label 'pos', eval label 'neg'): the file may have "
        "been written by hand or for other data; retrain goes by the eval labels"]
    assert audited["id"].tolist() == ["e1", "e2", "e4"]
    assert counts["dropped"] == 1
