"""A trained, extracted and scored run of the tiny BERT, shared by the score and attribute
tests (each module builds its own, with its own settings)."""

from __future__ import annotations

from pathlib import Path

from relabeler.config import RunConfig
from relabeler.jobs.extract import run_extract
from relabeler.jobs.score import run_score
from relabeler.jobs.train import run_train
from relabeler.store import RunStore
from tests.conftest import head_config, synthetic_frame


def make_scored_run(tmp: Path, model: str, *, rows: int, flipped: int, epochs: int, folds: int = 0,
               acquire_budget: int, evidence_top: int, min_agreement: float,
               edit_frame=None) -> tuple[RunStore, RunConfig, dict]:
    """Train (head mode), extract and score a synthetic dataset whose first ``flipped`` rows
    carry the wrong label. Returns the store, the config and the score stage's info."""
    frame = synthetic_frame(rows)
    frame.loc[frame.index[:flipped], "label"] = frame.loc[frame.index[:flipped], "label"].map(
        {"pos": "neg", "neg": "pos"})
    if edit_frame is not None:
        edit_frame(frame)
    frame.to_csv(tmp / "data.csv", index=False)
    config = head_config(tmp / "run", tmp / "data.csv", model, max_length=48, epochs=epochs)
    config.data.pool_fraction = 0.25
    config.train.folds = folds
    config.score.acquire_budget = acquire_budget
    config.score.evidence_top = evidence_top
    config.score.min_agreement = min_agreement
    store = RunStore(config.run_dir)
    run_train(store, config, progress=False)
    run_extract(store, config, progress=False)
    info = run_score(store, config)
    return store, config, info
