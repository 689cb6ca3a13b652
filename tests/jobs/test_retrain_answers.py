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
