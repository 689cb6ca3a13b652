"""PartAssembler: parts written once complete, rows that arrive twice kept once."""

import numpy as np
import pytest

from relabeler.jobs._parts import PartAssembler
from relabeler.jobs._ray import PoolPlan


def _take(batch, rows):
    return {k: v[rows] for k, v in batch.items()}


def test_parts_are_written_whole_and_retried_rows_count_once(caplog):
    written = {}

    def write(key, pieces):
        rows = np.concatenate([p["_pos"] for p in pieces])
        written[key] = sorted(rows.tolist())
        return len(rows)

    # two parts of 3 rows (positions 0-2 and 3-5), the second only 2 rows long here
    assembler = PartAssembler("extract", {(0, 0): 3, (0, 1): 2}, 3, write)
    batch = {"_pos": np.array([0, 3, 1])}
    assert assembler.add(np.array([[0, 0], [0, 1], [0, 0]]), batch["_pos"], batch, _take) == 3
    assert written == {}
    # a retried batch brings rows 0 and 3 again, with the missing rows 2 and 4
    batch = {"_pos": np.array([0, 2, 3, 4, 4])}
    assert assembler.add(np.array([[0, 0], [0, 0], [0, 1], [0, 1], [0, 1]]), batch["_pos"],
                         batch, _take) == 2
    assert written == {(0, 0): [0, 1, 2], (0, 1): [3, 4]}
    assert "3 rows arrived twice" in caplog.text
    # a finished part takes nothing more
    batch = {"_pos": np.array([1])}
    assert assembler.add(np.array([[0, 0]]), batch["_pos"], batch, _take) == 0
    assert assembler.done == {(0, 0), (0, 1)}


def test_one_column_keys_and_the_failure_message():
    assembler = PartAssembler("attribute", {(0,): 2, (1,): 2}, 2, lambda key, pieces: 2)
    batch = {"_pos": np.array([0, 1])}
    assert assembler.add(np.array([0, 0]), batch["_pos"], batch, _take) == 2
    plan = PoolPlan(num_actors=1, num_cpus=1.0, num_gpus=0.0, torch_threads=1, max_restarts=0)
    message = assembler.failure_message(RuntimeError("boom\nmore\nfailed because of X"), plan)
    assert message.startswith("attribute could not finish: the Ray Data pass stopped "
                              "(RuntimeError: boom failed because of X). 1 of 2 parts")
    assert message.endswith("run the same command again to resume from them")
    with pytest.raises(KeyError):
        assembler.add(np.array([5]), np.array([10]), {"_pos": np.array([10])}, _take)
