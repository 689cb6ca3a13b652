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
    # the row it is in the caller's frame (11 rows hold that text): position and index label
    assert top["row"] == 3 and issues.index[0] == 3
    assert Path(issues.attrs["run_dir"], "run", "scores", "suspects.parquet").exists()


@pytest.mark.slow
def test_results_point_at_the_callers_rows_and_nothing_of_the_caller_changes(
        ray_session, tmp_path, tiny_bert_dir):
    import pandas as pd

    from relabeler.config import RunConfig

    texts = [f"good film {i}" if i % 2 else f"bad film {i}" for i in range(40)]
    frame = pd.DataFrame({"review": texts, "y": [i % 2 for i in range(40)],  # int labels
                          "key": [1000 + i for i in range(40)],
                          "extra": [1, "mixed", 2.5, None] * 10},  # not relabeler's business
                         index=[f"k{i % 7}" for i in range(40)])  # labels repeat
    frame.iloc[7, frame.columns.get_loc("review")] = None  # index 'k0', as rows 0, 14, ... are
    config = RunConfig()
    config.train.epochs = 2
    config.score.min_agreement = 0.0  # a tiny random model: no representer to check
    config.data.on_bad_rows = "skip"
    before = config.model_dump()
    issues = relabeler.find_label_issues(frame, text="review", label="y", id="key",
                                         model=tiny_bert_dir, folds=0, config=config,
                                         run_dir=tmp_path / "r")
    assert config.model_dump() == before
    # skipped, the bad row is named, not silently missing from the result
    assert sorted(issues["row"]) == [i for i in range(40) if i != 7]
    rejected = issues.attrs["rejected"]
    assert rejected.index.tolist() == ["k0"] and rejected["row"].tolist() == [7]
    assert rejected["reason"].tolist() == ["null text"]
    for label, row in zip(issues.index, issues.itertuples(), strict=True):
        assert label == frame.index[row.row] and row.id == str(frame["key"].iloc[row.row])
        assert row.text == frame["review"].iloc[row.row]
    # the labels come back as the caller's ints ("1" and "0" before)
    assert issues["given_label"].dtype == frame["y"].dtype
    assert issues["given_label"].tolist() == frame["y"].iloc[issues["row"]].tolist()
    assert issues["suggested_label"].tolist() == (1 - issues["given_label"]).tolist()
    # the same run directory and another frame: refused before anything is overwritten
    source = (tmp_path / "r" / "source.parquet").read_bytes()
    with pytest.raises(DataError, match="already holds the run of another frame"):
        relabeler.find_label_issues(frame.iloc[:30], text="review", label="y", id="key",
                                    model=tiny_bert_dir, folds=0, run_dir=tmp_path / "r",
                                    config=config)
    assert (tmp_path / "r" / "source.parquet").read_bytes() == source


def test_a_column_of_mixed_types_is_named_and_the_temporary_run_goes(tmp_path, monkeypatch):
    import pandas as pd

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    frame = pd.DataFrame({"t": ["a", "b", "c"], "y": [1, "x", 2]})
    with pytest.raises(DataError, match=r"label='y' holds values of several types \(int, "
                                        r"str\)"):
        relabeler.find_label_issues(frame, text="t", label="y")
    assert list(tmp_path.iterdir()) == []  # the temporary run it made is removed


def test_bad_rows_are_named_in_the_callers_frame_and_columns(tmp_path, monkeypatch):
    # the data stage named the temporary <tmp>/source.parquet (removed by then), relabeler's
    # own columns 'text'/'id'/'label' and a position in that file
    import pandas as pd

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    good = pd.DataFrame({"body": ["a", "b", "c", "d"], "Topic": ["Sport", "Sport", "Arts", "Arts"],
                         "article_id": ["s1", "s2", "a1", "a2"], "other": [1, 2, 3, 4]},
                        index=["w", "x", "y", "z"])

    def refused(frame, match):
        with pytest.raises(DataError, match=match) as raised:
            relabeler.find_label_issues(frame, text="body", label="Topic", id="article_id")
        assert "source.parquet" not in str(raised.value)
        assert list(tmp_path.iterdir()) == []  # the temporary run it made is removed

    blank = good.assign(body=["a", "b", "  ", "d"])
    refused(blank, r"^find_label_issues: the frame, index 'y', text='body': empty text")
    missing = good.assign(body=["a", None, "c", "d"])
    refused(missing, r"^find_label_issues: the frame, index 'x', text='body': null text$")
    twice = good.assign(article_id=["s1", "s2", "s1", "a2"])
    refused(twice, r"^find_label_issues: the frame, index 'y', id='article_id': duplicate id "
                   r"'s1' \(first at index 'w'\)$")
    spelled = good.assign(Topic=["Sport", "sport", "Arts", "Arts"])
    refused(spelled, r"^find_label_issues: the frame, label='Topic': labels differ only in type "
                     r"or spelling: 'Sport' \(str, first at index 'w', 1 row\) vs 'sport' "
                     r"\(str, first at index 'x', 1 row\)")
    reserved = good.assign(Topic=["Sport", "Sport", "Not sure", "Arts"])
    refused(reserved, r"^find_label_issues: the frame, index 'y', label='Topic': label 'Not "
                      r"sure' \(1 row\) is an answer reviewers give")
    single = good.assign(Topic="Sport")
    refused(single, r"^find_label_issues: the frame, label='Topic': the train set has a single "
                    r"class 'Sport'")
    # a frame of the default RangeIndex: the index label is the position
    refused(missing.reset_index(drop=True), r"the frame, index 1, text='body': null text")
    # a label two rows carry names no row: the position comes with it
    refused(missing.set_axis(["w", "x", "x", "z"]),
            r"the frame, index 'x' \(position 1\), text='body': null text$")
    refused(good.set_axis(["body", "Topic", "article_id", "body"], axis=1),
            r"^find_label_issues: text='body' is 2 columns of the frame \(columns:")
    # folds: named as the argument, the class as the caller's value (it was "train.folds = 5
    # ... '2' has 1; use fewer folds (--folds)", after the run's folder was written)
    refused(good.assign(Topic=[1, 1, 1, 2]), r"^find_label_issues: folds=5 needs at least 5 "
                                             r"rows of each class: label 2 has 1; pass fewer")


def test_a_missing_column_is_named():
    import pandas as pd

    frame = pd.DataFrame({"review": ["a"], "sentiment": ["pos"]})
    with pytest.raises(DataError, match="text='text' is not a column"):
        relabeler.find_label_issues(frame)
    # the argument in the caller's words (it was the CLI's "flag: ...")
    with pytest.raises(ConfigError, match=r"^find_label_issues: folds=1: \[train\] folds must "
                                          r"be 0 \(none\) or >= 2, got 1$"):
        relabeler.find_label_issues(frame, text="review", label="sentiment", folds=1)
    with pytest.raises(ConfigError, match=r"^find_label_issues: model=5: model\.name: input "
                                          r"should be a valid string, got int 5$"):
        relabeler.find_label_issues(frame, text="review", label="sentiment", model=5)
    with pytest.raises(TypeError, match="DataFrame"):
        relabeler.find_label_issues([("a", "pos")])


def test_a_run_without_eval_rows_cannot_be_retrained_and_says_why(tmp_path):
    # find_label_issues holds nothing out (data.eval_fraction = 0): retrain failed on a missing
    # train/eval_predictions.parquet, which named no cause
    import pandas as pd
    import pyarrow as pa

    from relabeler import artifacts
    from relabeler.errors import StageError

    (tmp_path / "run").mkdir()  # Run.store opens a run made earlier, as retrain reads one
    run = relabeler.Run(tmp_path / "run")
    rows = pd.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "label": ["pos", "neg"]})
    run.store.write_table(artifacts.TRAIN.path, pa.Table.from_pandas(rows))
    run.store.write_table(artifacts.EVAL.path, pa.Table.from_pandas(rows.iloc[:0]))
    run.store.write_table(artifacts.CORRECTIONS.path, pa.Table.from_pandas(pd.DataFrame(
        {"id": ["a"], "old_label": ["pos"], "new_label": ["neg"], "action": ["relabel"]})))
    run.store.mark_done("data")
    run.store.mark_done("train")
    with pytest.raises(StageError, match=r"and .*run has no eval rows \(data.eval_fraction = "
                                         r"0, as find_label_issues makes its runs\)"):
        run.retrain()
    assert "cannot be retrained" in relabeler.find_label_issues.__doc__


def test_run_loads_a_config_file_and_points_it_at_the_run(tmp_path):
    (tmp_path / "relabeler.toml").write_text('[train]\nepochs = 7\n')
    run = relabeler.Run(tmp_path / "run", tmp_path / "relabeler.toml")
    assert run.config.train.epochs == 7
    assert run.config.run_dir == str(tmp_path / "run")
    assert repr(run) == f"Run({str(tmp_path / 'run')!r})"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        relabeler.nothing  # noqa: B018


def test_a_step_that_reads_a_run_creates_no_folder_where_there_is_none(tmp_path):
    # Run opened its folder with create=True: Run("runs/typo").score() left an empty folder
    # and said "data is unfinished"; the CLI says "no run directory at ..." and creates nothing
    import pandas as pd

    from relabeler.errors import NoRunError, StoreError

    typo = tmp_path / "typo"
    run = relabeler.Run(typo)
    steps = {"extract": run.extract, "score": run.score, "attribute": run.attribute,
             "push": run.push, "pull": run.pull, "next": run.next, "retrain": run.retrain,
             "report": run.report, "suspects": run.suspects, "serve": run.serve,
             "store": lambda: run.store}
    for name, step in steps.items():
        with pytest.raises(NoRunError, match=f"^no run directory at {re.escape(str(typo))}$"):
            step()
        assert not typo.exists(), name
    assert issubclass(NoRunError, StoreError)
    # a file where the run should be: refused when the Run is made
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        relabeler.Run(tmp_path / "file")
    # data() makes the folder (train() and pipeline() too), and the others then find it
    pd.DataFrame({"text": ["good", "bad"] * 4, "label": ["pos", "neg"] * 4}).to_csv(
        tmp_path / "rows.csv", index=False)
    from relabeler.config import RunConfig

    config = RunConfig()
    config.data.source = str(tmp_path / "rows.csv")
    config.data.eval_fraction = 0.0
    made = relabeler.Run(tmp_path / "new", config)
    assert made.data()["n_train"] == 8
    assert relabeler.Run(tmp_path / "new").store.exists("dataset/train.parquet")


def test_runs_made_from_one_config_leave_it_alone_and_stay_apart(tmp_path):
    # Run set run_dir on the caller's config and kept it: two runs from one config shared it,
    # so the first one's run_dir became the second's
    from relabeler.config import RunConfig

    config = RunConfig()
    config.train.epochs = 3
    before = config.model_dump()
    first = relabeler.Run(tmp_path / "a", config)
    second = relabeler.Run(tmp_path / "b", config)
    assert config.model_dump() == before
    assert (first.config.run_dir, second.config.run_dir) == (str(tmp_path / "a"),
                                                             str(tmp_path / "b"))
    assert first.config.train.epochs == second.config.train.epochs == 3
    first.config.train.epochs = 9
    assert (second.config.train.epochs, config.train.epochs) == (3, 3)


@pytest.mark.slow
def test_the_config_it_returns_goes_on_with_the_run(ray_session, tmp_path, tiny_bert_dir):
    # find_label_issues threw its config away: a Run made without it had other folds and
    # another model, and refused to go on ("train.folds was 2, now 0")
    import pandas as pd

    from relabeler.config import RunConfig
    from relabeler.errors import StageError

    texts = [f"good film {i}" if i % 2 else f"bad film {i}" for i in range(24)]
    frame = pd.DataFrame({"review": texts, "y": ["pos", "neg"] * 12})
    given = RunConfig()
    given.train.epochs = 1
    given.score.min_agreement = 0.0  # a tiny random model: no representer to check
    given.attribute.top = 3
    issues = relabeler.find_label_issues(frame, text="review", label="y", model=tiny_bert_dir,
                                         folds=2, config=given, run_dir=tmp_path / "r")
    config = issues.attrs["config"]
    assert config.run_dir == str(tmp_path / "r" / "run")
    assert (config.train.folds, config.model.name, config.data.eval_fraction) == (
        2, tiny_bert_dir, 0.0)
    assert config.data.source == str(tmp_path / "r" / "source.parquet")
    assert config.train.epochs == 1 and given.train.folds == 0  # the caller's, unchanged
    with pytest.raises(StageError, match=r"train\.folds was 2, now 0"):
        relabeler.Run(issues.attrs["run_dir"] + "/run").train()
    stages = tmp_path / "r" / "run" / "_stages"
    before = {stage: (stages / f"{stage}.json").read_bytes()
              for stage in ("train", "extract.train", "score")}
    out = relabeler.Run(config.run_dir, config).pipeline(push=False)
    assert list(out) == ["train", "extract", "score", "attribute"]
    # the finished stages are skipped, not run again; attribute goes on from them
    assert {stage: (stages / f"{stage}.json").read_bytes() for stage in before} == before
    assert (stages / "attribute.json").exists()
    assert (tmp_path / "r" / "run" / "attributions.parquet").exists()


def test_config_may_be_a_file_and_a_run_dir_that_is_a_file_is_refused(tmp_path):
    # config="relabeler.toml" raised a raw AttributeError (a str has no model_copy), and a
    # run_dir that is a file a raw FileExistsError from the write of the frame
    import pandas as pd

    from relabeler.errors import StoreError

    frame = pd.DataFrame({"t": ["a", "b", None, "c", "d"], "y": ["p", "p", "p", "n", "n"]})
    toml = tmp_path / "relabeler.toml"
    toml.write_text("[train]\nfolds = 1\n")  # read: its error names it
    with pytest.raises(ConfigError, match=f"^{re.escape(str(toml))}: \\[train\\] folds must"):
        relabeler.find_label_issues(frame, text="t", label="y", config=toml)
    with pytest.raises(DataError, match="index 2, text='t': null text"):
        relabeler.find_label_issues(frame, text="t", label="y", folds=2)
    toml.write_text('[data]\non_bad_rows = "skip"\n')  # the file's setting is used
    with pytest.raises(DataError, match="folds=3 needs at least 3 rows of each class: label "
                                        "'[pn]' has 2"):
        relabeler.find_label_issues(frame, text="t", label="y", folds=3, config=str(toml),
                                    run_dir=tmp_path / "r")
    with pytest.raises(TypeError, match=r"^config must be a RunConfig, the path of a "
                                        r"relabeler.toml or None, got dict$"):
        relabeler.find_label_issues(frame, text="t", label="y", config={"train": {}})
    with pytest.raises(TypeError, match="config must be a RunConfig"):
        relabeler.Run(tmp_path / "run", config=5)
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    with pytest.raises(StoreError, match=f"^run directory {re.escape(str(taken))} is a file, "
                                         f"not a folder$"):
        relabeler.find_label_issues(frame, text="t", label="y", folds=2, run_dir=taken)
    assert taken.read_text() == "keep me"


def test_the_readme_names_the_errors_a_caller_can_catch():
    # the Python API section named no exception type, and not that the first Run starts Ray
    import relabeler.errors as errors

    text = README.read_text()
    section = text[text.index("## Python API"):text.index("## Configuration")]
    assert "`relabeler.errors.RelabelerError`" in section
    named = re.findall(r"`([A-Z][A-Za-z]+Error)`", section)
    assert {"ConfigError", "DataError", "StoreError", "StageError", "NoRunError"} <= set(named)
    for name in named:
        if name not in ("RelabelerError", "TypeError"):
            assert issubclass(getattr(errors, name), errors.RelabelerError), name
    assert "with the `[ray]` settings of the first `Run`" in section
