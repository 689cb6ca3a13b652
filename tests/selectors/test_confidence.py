import numpy as np
import pytest

from relabeler.selectors.confidence import (
    area_under_margin,
    normalized_margin,
    self_confidence,
)

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4]], dtype=np.float32)
LABELS = np.array([0, 2, 2])


def test_self_confidence_by_hand():
    np.testing.assert_allclose(self_confidence(PROBS, LABELS), [0.3, 0.7, 0.6], atol=1e-6)


def test_normalized_margin_by_hand():
    # margins: 0.7-0.2 = 0.5; 0.3-0.6 = -0.3; 0.4-0.5 = -0.1
    np.testing.assert_allclose(normalized_margin(PROBS, LABELS), [0.25, 0.65, 0.55], atol=1e-6)


def test_row_order_does_not_matter():
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(normalized_margin(PROBS[perm], LABELS[perm]),
                               normalized_margin(PROBS, LABELS)[perm])


def test_area_under_margin_averages_epochs_and_skips_gaps():
    margins = np.array([[0.8, 0.9, 1.0], [-0.5, np.nan, 0.5], [-1.0, -1.0, -1.0]])
    np.testing.assert_allclose(area_under_margin(margins), [0.05, 0.5, 1.0], atol=1e-6)


@pytest.mark.parametrize("fn", [self_confidence, normalized_margin])
def test_bad_inputs_name_the_argument(fn):
    with pytest.raises(ValueError, match="labels: expected 3 labels"):
        fn(PROBS, LABELS[:2])
    with pytest.raises(ValueError, match="labels: class id 3 is out of range for 3 classes"):
        fn(PROBS, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="probs: row 1 sums to"):
        fn(np.array([[0.5, 0.5], [0.9, 0.9]], dtype=np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="probs: row 0 has NaN"):
        fn(np.array([[np.nan, 0.5]], dtype=np.float32), np.array([0]))
    with pytest.raises(TypeError, match="labels: expected integer class ids"):
        fn(PROBS, np.array([0.0, 1.0, 2.0]))


def test_area_under_margin_rejects_rows_without_values():
    with pytest.raises(ValueError, match="margins: row 1 has no epoch"):
        area_under_margin(np.array([[0.1, 0.2], [np.nan, np.nan]]))


def test_cleanlab_through_relabeler_keeps_the_processs_warning_filters():
    """cleanlab's package import runs warnings.filterwarnings("ignore"); through relabeler it
    must not silence a notebook's own warnings (a fresh interpreter: this one has cleanlab)."""
    import subprocess
    import sys

    code = ("import relabeler.selectors.confidence, relabeler.selectors.noise; "
            "import cleanlab.multiannotator, warnings; "
            "warnings.warn('the caller still sees this'); print('done')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "done"), done.stderr[-2000:]
    assert "UserWarning: the caller still sees this" in done.stderr
