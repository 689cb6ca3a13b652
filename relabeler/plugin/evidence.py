"""What a task shows, read once from the run directory (push and the ML backend share it).

Reads ``model/labels.json``, ``scores/suspects.parquet``, ``dataset/train.parquet`` and, when
present, ``attributions.parquet``, ``scores/acquire.parquet``, ``dataset/pool.parquet``,
``scores/coverage.parquet``, ``features/pool``, ``scores/eval_suspects.parquet`` and
``dataset/eval.parquet``. Without attributions the tasks carry no evidence regions and their
panel says so. Eval-audit tasks never carry evidence regions: the attribute stage attributes
training and pool rows only, so every eval task is bare alike (its panel shows the given and
suggested labels and the suggestion's confidence, and one note saying so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.data import read_split
from relabeler.errors import PluginError
from relabeler.plugin.tasks import AttributionIndex, SampleInput, pool_samples, suspect_samples
from relabeler.store import RunStore, StoreError

log = logging.getLogger(__name__)

ATTRIBUTIONS = artifacts.ATTRIBUTIONS.path
#: What a re-run rewrites between two loads: score rewrites the scores (after extract, which
#: the pool predictions come from), attribute the attributions. The dataset and labels
#: change only with a new run of train, which a re-score follows.
SOURCES = tuple(a.path for a in (artifacts.SUSPECTS, artifacts.ACQUIRE, artifacts.COVERAGE,
                                 artifacts.ATTRIBUTIONS, artifacts.EVAL_SUSPECTS))


#: the note every eval-audit task carries (none of them has evidence regions)
EVAL_NOTE = ("Eval label audit: no evidence regions (eval rows are not attributed); judge the "
             "text alone.")


class RunInputError(PluginError):
    """The run lacks an artifact push needs; the message names the stage to run."""


@dataclass
class RunEvidence:
    classes: list[str]
    suspects: pd.DataFrame                 # rank order, indexed by id
    train_text: dict[str, str]
    train_label: dict[str, str]
    attributions: AttributionIndex
    acquire: pd.DataFrame                  # rank order; empty without a pool
    pool_text: dict[str, str]
    pool_pred: dict[str, tuple[str, float | None]]
    pool_neighbours: dict[str, list[str]]
    examples: int = 3
    eval_suspects: pd.DataFrame | None = None   # rank order, indexed by id; None: not scored
    eval_text: dict[str, str] | None = None

    @classmethod
    def load(cls, store: RunStore, *, examples: int = 3, needed_by: str = "push"
             ) -> RunEvidence:
        """The run's evidence; RunInputError names the first missing artifact and the stage
        that writes it (``needed_by``: the verb asking, for the message)."""
        for artifact in (artifacts.TRAIN, artifacts.LABELS, artifacts.SUSPECTS):
            if not store.exists(artifact.path):
                raise RunInputError(f"{needed_by} needs a scored run: {artifact.path} is missing "
                                    f"in {store.uri}; run `relabeler {artifact.writer}` first")
        try:
            classes = [str(c) for c in store.read_json(artifacts.LABELS.path)]
            suspects = store.read_table(artifacts.SUSPECTS.path).to_pandas()
            train = read_split(store.read_table(artifacts.TRAIN.path,
                                                columns=["id", "text", "label"]))
        except StoreError as exc:
            raise RunInputError(f"{needed_by} needs a scored run: {exc}; run `relabeler "
                                f"score` first") from exc
        suspects = suspects.sort_values("rank", kind="stable").set_index("id", drop=False)
        if "neighbor_ids" not in suspects.columns:
            log.warning("%s was scored before it kept each row's nearest training rows "
                        "(neighbor_ids): tasks show no similar training examples; run "
                        "`relabeler score --run %s --force` to add them",
                        store.path(artifacts.SUSPECTS.path), store.uri)
        attributions = AttributionIndex.empty()
        if store.exists(ATTRIBUTIONS):
            frame = store.read_table(ATTRIBUTIONS).to_pandas()
            attributions = AttributionIndex.from_frame(frame)
            pool_attr = frame[frame.get("source", pd.Series("", index=frame.index)) == "acquire"]
        else:
            pool_attr = pd.DataFrame(columns=["id", "target_label"])
            log.warning("%s has no %s: tasks get no evidence regions (run `relabeler "
                        "attribute` to add them)", store.uri, ATTRIBUTIONS)
        acquire = pd.DataFrame(columns=["id", "rank", "near_id", "similarity"])
        pool_text: dict[str, str] = {}
        pool_pred: dict[str, tuple[str, float | None]] = {}
        neighbours: dict[str, list[str]] = {}
        if store.exists(artifacts.ACQUIRE.path):
            acquire = store.read_table(artifacts.ACQUIRE.path).to_pandas()
            acquire = acquire.sort_values("rank", kind="stable").reset_index(drop=True)
        if len(acquire):
            pool = read_split(store.read_table(artifacts.POOL.path, columns=["id", "text"]))
            pool_text = dict(zip(pool["id"], pool["text"], strict=True))
            pool_pred = _pool_predictions(store, classes, pool_attr)
            if store.exists(artifacts.COVERAGE.path):
                cov = store.read_table(artifacts.COVERAGE.path,
                                       columns=["id", "nearest_ids"]).to_pandas()
                neighbours = {str(i): [str(x) for x in (n if n is not None else [])]
                              for i, n in zip(cov["id"], cov["nearest_ids"], strict=True)}
        eval_suspects, eval_text = None, None
        if store.exists(artifacts.EVAL_SUSPECTS.path) and store.exists(artifacts.EVAL.path):
            eval_suspects = store.read_table(artifacts.EVAL_SUSPECTS.path).to_pandas()
            eval_suspects = eval_suspects.sort_values("rank", kind="stable").set_index(
                "id", drop=False)
            frame = read_split(store.read_table(artifacts.EVAL.path, columns=["id", "text"]))
            eval_text = dict(zip(frame["id"], frame["text"], strict=True))
        return cls(classes=classes, suspects=suspects,
                   train_text=dict(zip(train["id"], train["text"], strict=True)),
                   train_label=dict(zip(train["id"], train["label"], strict=True)),
                   attributions=attributions, acquire=acquire, pool_text=pool_text,
                   pool_pred=pool_pred, pool_neighbours=neighbours, examples=examples,
                   eval_suspects=eval_suspects, eval_text=eval_text)

    @property
    def has_attributions(self) -> bool:
        return self.attributions.available

    def train_samples(self, ids: Sequence[str]) -> list[SampleInput]:
        """SampleInputs for training samples (suspect rows; a bare one if a row is missing)."""
        known = [i for i in ids if i in self.suspects.index]
        rows = self.suspects.loc[known] if known else self.suspects.iloc[:0]
        built = {s.id: s for s in suspect_samples(rows, self.train_text, self.train_label,
                                                  self.attributions, examples=self.examples)}
        missing = [i for i in ids if i not in built]
        if missing:
            bare = pd.DataFrame({"id": missing,
                                 "given_label": [self.train_label.get(i) for i in missing]})
            built.update({s.id: s for s in suspect_samples(
                bare, self.train_text, self.train_label, self.attributions,
                examples=self.examples)})
        return [built[i] for i in ids]

    def pool_samples(self, ids: Sequence[str]) -> list[SampleInput]:
        rows = self.acquire.set_index("id", drop=False).loc[list(ids)]
        return pool_samples(rows, self.pool_text, self.pool_pred, self.pool_neighbours,
                            self.train_text, self.train_label, self.attributions,
                            examples=self.examples)

    def eval_samples(self, ids: Sequence[str]) -> list[SampleInput]:
        """SampleInputs for eval rows of ``scores/eval_suspects.parquet``: the given eval
        label, the suggested one and its confidence, with no evidence regions (eval rows are
        not attributed) and the same note on every eval task."""
        if self.eval_suspects is None or self.eval_text is None:
            raise RunInputError("eval-audit tasks need scores/eval_suspects.parquet and "
                                "dataset/eval.parquet: run `relabeler score` first")
        rows = self.eval_suspects.loc[list(ids)]
        return [SampleInput(
            id=str(row.id), text=self.eval_text[str(row.id)], given_label=str(row.given_label),
            suggested_label=str(row.suggested_label),
            confidence=float(row.suggested_confidence),
            reasons=("eval label audit",), notes=(EVAL_NOTE,))
            for row in rows.itertuples(index=False)]

    def sample(self, sample_id: str) -> SampleInput | None:
        """The SampleInput for any training, acquired pool or ranked eval id; None if
        unknown."""
        if sample_id in self.train_text:
            return self.train_samples([sample_id])[0]
        if self.eval_suspects is not None and sample_id in self.eval_suspects.index:
            return self.eval_samples([sample_id])[0]
        if sample_id in self.pool_text and sample_id in set(self.acquire["id"]):
            return self.pool_samples([sample_id])[0]
        return None


def _pool_predictions(store: RunStore, classes: list[str], pool_attr: pd.DataFrame
                      ) -> dict[str, tuple[str, float | None]]:
    """The model's class (and confidence) per pool id: features/pool when extracted, else the
    attribution target (the predicted class)."""
    out: dict[str, tuple[str, float | None]] = {
        str(i): (str(t), None) for i, t in zip(pool_attr["id"], pool_attr["target_label"],
                                               strict=True)}
    if store.exists(artifacts.FEATURES(split="pool")):
        feats = store.read_table(artifacts.FEATURES(split="pool"),
                                 columns=["id", "probs"]).to_pandas()
        for sid, probs in zip(feats["id"], feats["probs"], strict=True):
            p = np.asarray(probs, dtype=np.float64)
            k = int(p.argmax())
            out[str(sid)] = (classes[k], float(p[k]))
    return out
