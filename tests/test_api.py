"""The Python API: the README's example as written, and a Run driven stage by stage."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

import relabeler
from relabeler.errors import ConfigError, DataError

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_readme_example_finds_the_wrong_label(ray_session, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the example's run directory
    namespace: dict = {}
    exec(compile(_readme_example(), str(README), "exec"), namespace)
    issues = namespace["issues"]
    assert len(issues) == 80 and issues["rank"].tolist() == list(range(1, 81))
    top = issues.iloc[0]
    assert (top["text"], top["given_label"], top["suggested_label"]) == (
        "superb, funny and warm", "neg", "pos")
    assert len(top["reasons"]) >= 1
    assert issues["suspect_score"].is_monotonic_decreasing


def test_a_missing_column_is_named():
    import pandas as pd

    frame = pd.DataFrame({"review": ["a"], "sentiment": ["pos"]})
    with pytest.raises(DataError, match="text='text' is not a column"):
        relabeler.find_label_issues(frame)
    with pytest.raises(ConfigError, match=r"\[train\] folds must be 0 \(none\) or >= 2"):
        relabeler.find_label_issues(frame, text="review", label="sentiment", folds=1)
    with pytest.raises(TypeError, match="DataFrame"):
        relabeler.find_label_issues([("a", "pos")])


def test_run_loads_a_config_file_and_points_it_at_the_run(tmp_path):
    (tmp_path / "relabeler.toml").write_text('[train]\nepochs = 7\n')
    run = relabeler.Run(tmp_path / "run", tmp_path / "relabeler.toml")
    assert run.config.train.epochs == 7
    assert run.config.run_dir == str(tmp_path / "run")
    assert run.store.uri == str(tmp_path / "run")
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        relabeler.nothing  # noqa: B018
