"""relabeler from Python: the stages of a run as methods, and one call for a DataFrame.

This is the layer the CLI stands on: each verb parses its flags, calls a method of
:class:`Run` and prints what it returns. In a notebook::

    run = relabeler.Run("runs/x", config="relabeler.toml")
    run.data(); run.train(); run.extract(); run.score()
    run.suspects().head()

or, like cleanlab's ``Datalab(...).find_issues()``, for a labeled DataFrame::

    issues = relabeler.find_label_issues(frame, text="review", label="sentiment")
"""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import RunConfig, apply_overrides, load_config
from relabeler.errors import DataError, NoRunError
from relabeler.store import RunStore

log = logging.getLogger(__name__)


class Run:
    """One run directory and its configuration.

    run_dir: a folder or an fsspec URI. config: a :class:`RunConfig`, the path of a
    ``relabeler.toml``, or None for the defaults; a RunConfig is copied (:attr:`config` is the
    run's own, pointed at ``run_dir``), the caller's is not changed. Each stage method returns
    what the stage reports (the info its marker records) and skips a finished stage unless
    ``force``.
    Only :meth:`data`, :meth:`train` and :meth:`pipeline` make a run directory that is not
    there yet; the other methods, and :attr:`store`, read a run made earlier and raise
    :class:`~relabeler.errors.NoRunError` (a StoreError) where there is none, creating nothing.
    """

    def __init__(self, run_dir: str | os.PathLike, config: RunConfig | str | os.PathLike |
                 None = None, *, progress: bool = False):
        config = _as_config(config)
        # a copy: the caller's config stays as it was, and two runs made from it stay apart
        config = config.model_copy(deep=True)
        config.run_dir = os.fspath(run_dir)
        self.config = config
        self.progress = progress
        self._store: RunStore | None = None
        try:  # a run dir that is a file (or an unknown protocol) is refused here and now
            self._store = RunStore(config.run_dir, create=False)
        except NoRunError:
            pass  # not there yet: data(), train() or pipeline() make it

    def __repr__(self) -> str:
        return f"Run({self._store.uri if self._store else self.config.run_dir!r})"

    @property
    def store(self) -> RunStore:
        """The run directory; a NoRunError where there is none (nothing is created)."""
        return self._open(create=False)

    def _open(self, *, create: bool) -> RunStore:
        # opened when first needed: a mistyped run_dir given to a step that reads an earlier
        # run would otherwise leave an empty folder and a confusing "not found"
        if self._store is None:
            self._store = RunStore(self.config.run_dir, create=create)
        return self._store

    def data(self, *, force: bool = False) -> dict:
        from relabeler.jobs.dataset import prepare_dataset

        return prepare_dataset(self._open(create=True), self.config, force=force)

    def train(self, *, force: bool = False) -> dict:
        from relabeler.jobs.train import run_train

        return run_train(self._open(create=True), self.config, force=force,
                         progress=self.progress)

    def extract(self, *, force: bool = False) -> dict:
        from relabeler.jobs.extract import run_extract

        return run_extract(self.store, self.config, force=force, progress=self.progress)

    def score(self, *, force: bool = False) -> dict:
        from relabeler.jobs.score import run_score

        return run_score(self.store, self.config, force=force)

    def attribute(self, *, force: bool = False) -> dict:
        from relabeler.jobs.attribute import run_attribute

        return run_attribute(self.store, self.config, force=force, progress=self.progress)

    def pipeline(self, *, push: bool = True, force: bool = False, say=None) -> dict:
        """train, extract, score, attribute and (unless ``push=False``) push."""
        from relabeler.jobs.loop import run_pipeline

        kwargs = {"say": say} if say is not None else {}
        return run_pipeline(self._open(create=True), self.config, force=force,
                            progress=self.progress, push=push, **kwargs)

    def push(self, *, client: Any = None) -> Any:
        """The queue plan into Label Studio; returns a ``PushResult``."""
        from relabeler.plugin.push import run_push

        return run_push(self.store, self.config, client=client, progress=self.progress)

    def pull(self, *, client: Any = None) -> Any:
        """The people's answers into ``labels/corrections.parquet``; returns a ``PullResult``."""
        from relabeler.plugin.pull import run_pull

        return run_pull(self.store, self.config, client=client)

    def serve(self, *, register: bool = True) -> None:
        """The Label Studio ML backend and webhook for this run, until interrupted; it
        re-ranks the waiting tasks as people answer (``loop.rerank_every``)."""
        from relabeler.jobs.live_ranking import LiveRanking
        from relabeler.plugin.backend import run_serve

        run_serve(self.store, self.config, register=register, ranking=LiveRanking.load)

    def next(self, *, client: Any = None, say=None) -> Any:
        """One more round: pull, retrain, re-score, push the next batch into the same review
        project; returns a ``RoundResult`` (its ``round`` is None when there was nothing to
        do)."""
        from relabeler.jobs.rounds import run_next

        kwargs = {"say": say} if say is not None else {}
        return run_next(self.store, self.config, client=client, progress=self.progress,
                        **kwargs)

    def retrain(self, *, force: bool = False, dedupe: bool = False) -> dict:
        from relabeler.jobs.retrain import run_retrain

        return run_retrain(self.store, self.config, force=force, progress=self.progress,
                           dedupe=dedupe)

    def report(self) -> dict:
        from relabeler.report.build import write_report

        return write_report(self.store, self.config)

    def suspects(self) -> pd.DataFrame:
        """The ranked training rows (rank 1 = review first) with their texts: rank, id, text,
        given_label, suggested_label, suggested_confidence, suspect_score, reasons."""
        suspects = self.store.read_table(artifacts.SUSPECTS.path).to_pandas()
        texts = self.store.read_table(artifacts.TRAIN.path, columns=["id", "text"]).to_pandas()
        frame = suspects.merge(texts, on="id", how="left", validate="one_to_one")
        front = ["rank", "id", "text", "given_label", "suggested_label", "suggested_confidence",
                 "suspect_score", "reasons"]
        rest = [c for c in frame.columns if c not in front]
        return frame[front + rest].sort_values("rank", kind="stable").reset_index(drop=True)


def _as_config(config: RunConfig | str | os.PathLike | None) -> RunConfig:
    """``config`` as a RunConfig: itself, the file it names, or the defaults for None."""
    if config is None:
        return RunConfig()
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise TypeError(f"config must be a RunConfig, the path of a relabeler.toml or None, got "
                    f"{type(config).__name__}")


def find_label_issues(frame: pd.DataFrame, *, text: str = "text", label: str = "label",
                      id: str | None = None, model: str | None = None, folds: int = 5,
                      run_dir: str | os.PathLike | None = None,
                      config: RunConfig | str | os.PathLike | None = None) -> pd.DataFrame:
    """Every row of ``frame`` ranked by how likely its label is wrong, with a suggested label
    and the reasons in plain words (:meth:`Run.suspects`).

    Trains the classifier (``model``: a Hugging Face folder; the packaged MiniLM by default)
    with ``folds`` out-of-fold models, extracts features and scores every row; nothing is held
    out for evaluation. The result's index is ``frame``'s (each row's own label), and its
    ``row`` column the row's position in ``frame``; the sample ids are ``id``'s values as
    strings, or the positions where ``id`` is None. ``given_label`` and ``suggested_label``
    hold ``label``'s own values, of its dtype (``1``, not ``"1"``; the run itself stores labels
    as strings). The run stays in ``run_dir`` (a folder or
    an fsspec URI; a new temporary folder by default, removed again if the call fails), named
    by the result's ``attrs["run_dir"]``, and ``attrs["config"]`` is the :class:`RunConfig` it
    was made with (``model``, ``folds``, the frame as its source; its ``run_dir`` the run's own
    folder) for :class:`Run` to go on with: attribute, push to Label Studio::

        config = issues.attrs["config"]
        relabeler.Run(config.run_dir, config).pipeline()  # the finished stages are skipped

    (a Run with the default config refuses to reuse the models: its ``train.folds`` is 0, the
    model the packaged one). It holds no eval split, so it cannot be retrained or reported
    (they compare the models on eval rows): for that, make a run with ``data.eval_fraction``
    > 0.
    ``config``: a :class:`RunConfig` or the path of a ``relabeler.toml``, as :class:`Run`
    takes; it is not changed. Bad rows raise the data stage's :class:`DataError` before
    anything trains, naming the frame, the argument with its column (``text='body'``) and the
    row by its index label (with its position where two rows share the label). With
    ``data.on_bad_rows = "skip"`` in ``config`` they are left out instead: the result lacks
    them, a warning says so, and ``attrs["rejected"]`` lists them (index: their labels;
    ``row``: position, ``reason``).
    """
    import shutil

    from relabeler.data.validate import _scalar_to_str

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, got {type(frame).__name__}")
    for argument, column in (("text", text), ("label", label), ("id", id)):
        if column is not None and column not in frame.columns:
            raise DataError(f"find_label_issues: {argument}={column!r} is not a column of the "
                            f"frame (columns: {list(frame.columns)})")
        if column is not None and (count := list(frame.columns).count(column)) > 1:
            raise DataError(f"find_label_issues: {argument}={column!r} is {count} columns of "
                            f"the frame (columns: {list(frame.columns)}); name them apart")
    settings = {"data.text_col": "text", "data.label_col": "label", "data.id_col": "id",
                "data.eval_fraction": 0.0, "data.pool_fraction": 0.0, "train.folds": folds,
                "model.name": model}
    # a copy: the caller's config stays as it was; checked before any folder is made. An
    # error names the argument that set the key ("flag" and "config" are the CLI's words)
    named = {key: "find_label_issues" for key in settings}
    named.update({"train.folds": f"find_label_issues: folds={folds!r}",
                  "model.name": f"find_label_issues: model={model!r}"})
    config = apply_overrides(_as_config(config).model_copy(deep=True), settings,
                             earlier="find_label_issues: config", flags=named)
    # only the columns relabeler reads, under names of its own: an extra column of mixed
    # types is none of its business, and the row's position comes back with it
    data = pd.DataFrame({"id": (frame[id].to_numpy(dtype=object) if id is not None
                                else [str(i) for i in range(len(frame))]),
                         "text": frame[text].to_numpy(dtype=object),
                         "label": frame[label].to_numpy(dtype=object)})
    made = run_dir is None
    where = os.fspath(run_dir) if run_dir is not None else tempfile.mkdtemp(prefix="relabeler-")
    if not made:
        try:  # a file in its place: the StoreError a Run gives, before anything is written
            RunStore(where, create=False)
        except NoRunError:
            pass  # made below, with the frame in it
    source = f"{where.rstrip('/')}/source.parquet"
    try:
        # before anything is written: a refused frame leaves no source.parquet in run_dir
        left_out = _check_frame(frame, text=text, label=label, id=id,
                                on_bad_rows=config.data.on_bad_rows)
        stored = _as_parquet(data, {"id": id, "text": text, "label": label})
        kept = np.ones(len(frame), dtype=bool)
        kept[left_out["row"].to_numpy()] = False
        _check_folds(frame[label][kept], folds)
        _write_source(data, stored, source)
        config.data.source = source
        run = Run(f"{where.rstrip('/')}/run", config)
        run.data()
        run.train()
        run.extract()
        run.score()
        issues = run.suspects()
    except BaseException:
        if made:
            shutil.rmtree(where, ignore_errors=True)
        raise
    # the run holds each label as the string the data stage made of it: the caller's values back
    values = {}
    for value in frame[label].tolist():
        values.setdefault(_scalar_to_str(value), value)
    for column in ("given_label", "suggested_label"):
        issues[column] = issues[column].map(values).astype(frame[label].dtype)
    if id is not None:
        position = {_scalar_to_str(v): i for i, v in enumerate(frame[id].tolist())}
        rows = issues["id"].map(position)
    else:
        rows = issues["id"].astype(int)
    issues.insert(1, "row", rows.to_numpy(dtype="int64"))
    issues.index = frame.index[issues["row"].to_numpy()]
    issues.attrs["run_dir"] = where
    # what the run was made with: a Run given other settings would refuse to go on with it
    issues.attrs["config"] = run.config
    issues.attrs["rejected"] = left_out
    if len(left_out):
        shown = "; ".join(f"index {i!r}: {r}" for i, r in zip(
            left_out.index[:5], left_out["reason"][:5], strict=True))
        log.warning("find_label_issues: %d row(s) of the frame were left out under "
                    "data.on_bad_rows = skip and are not in the result (%s%s); "
                    "attrs['rejected'] lists them", len(left_out), shown,
                    "; ..." if len(left_out) > 5 else "")
    return issues


def _check_folds(labels: pd.Series, folds: int) -> None:
    """A DataError naming ``folds=`` and the class, where a class has fewer rows than folds
    (each fold model must see every class), in the caller's terms, before anything trains."""
    if folds < 2:
        return
    counts = labels.value_counts(sort=True, ascending=True)
    if len(counts) and counts.iloc[0] < folds:
        thin = counts.index.tolist()[0]
        raise DataError(f"find_label_issues: folds={folds} needs at least {folds} rows of each "
                        f"class: label {thin!r} has {int(counts.iloc[0])}; pass fewer folds "
                        f"(0 for none: the model's own probabilities), or add rows")


def _check_frame(frame: pd.DataFrame, *, text: str, label: str, id: str | None,
                 on_bad_rows: str) -> pd.DataFrame:
    """The data stage's checks of the rows, on the caller's frame: a DataError names the frame,
    the argument and its column (``text='body'``) and the row by its index label, not the
    temporary file relabeler reads, its own column names and a position in that file. Under
    ``skip``: the rows left out, by index label (``row``: position, ``reason``)."""
    from relabeler.data.load import check_frame
    from relabeler.data.validate import Columns, Source

    chosen = {column: argument for argument, column in
              (("id", id), ("label", label), ("text", text)) if column is not None}
    source = Source("frame", "find_label_issues: the frame", frame[list(chosen)],
                    index=frame.index.tolist(), arguments=chosen)
    rejected = check_frame(source, Columns(id=id, text=text, label=label, split=None,
                                           id_given=id is not None), on_bad_rows)
    rows = [r.row for r in rejected]
    return pd.DataFrame({"row": np.array(rows, dtype=np.int64),
                         "reason": np.array([r.reason for r in rejected], dtype=object)},
                        index=frame.index[rows])


def _as_parquet(data: pd.DataFrame, columns: dict[str, str | None]) -> bytes:
    """The frame relabeler reads, as Parquet; a DataError names the argument whose column
    mixes types Parquet cannot hold in one column."""
    import io

    import pyarrow as pa

    try:
        buffer = io.BytesIO()
        data.to_parquet(buffer, index=False)
    except (pa.ArrowException, ValueError) as exc:
        for name, column in columns.items():
            kinds = sorted({type(v).__name__ for v in data[name].tolist() if v is not None
                            and v == v})
            if len(kinds) > 1:
                raise DataError(f"find_label_issues: {name}={column!r} holds values of several "
                                f"types ({', '.join(kinds)}); give it one type") from exc
        raise DataError(f"find_label_issues: the frame cannot be stored: {exc}") from exc
    return buffer.getvalue()


def _write_source(data: pd.DataFrame, stored: bytes, source: str) -> None:
    """``stored`` (:func:`_as_parquet` of ``data``) at ``source``; a DataError where the run
    directory holds another frame's run."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(source)
    if fs.exists(path):
        with fs.open(path, "rb") as handle:
            same = pd.read_parquet(handle).equals(data)
        if not same:
            raise DataError(f"find_label_issues: {source.rsplit('/', 1)[0]} already holds the "
                            f"run of another frame; give another run_dir (or remove it)")
        return
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        handle.write(stored)
