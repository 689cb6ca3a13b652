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
