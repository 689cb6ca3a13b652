"""A scored run with a systematic flip, for live re-ranking: written features, real scoring.

The features stand in for what extract writes (so no model runs); ``relabeler score`` ranks
them. Three clusters of training rows in feature space:

* ``P`` (true pos) and ``N`` (true neg), each with a few isolated flips the model sees through,
  and ``B`` between them, labeled right, where the model and the neighbours are unsure;
* ``S`` (true pos, a sub-topic): annotators filed most of it under neg. The model, trained on
  those labels, leans neg there, and the neighbours' votes agree with the wrong labels, so most
  of S ranks below the B rows. A few S rows the model doubts more rank near the top.

Answering the top of the queue reveals the flip in S; the rest of S should then rise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.jobs.score import run_score
from relabeler.store import RunStore

CLASSES = ["neg", "pos"]
DIM = 16


def _probs(p_pos: np.ndarray) -> np.ndarray:
    return np.stack([1.0 - p_pos, p_pos], axis=1).astype(np.float32)


def make_live_run(root: str, *, seed: int = 0) -> tuple[RunStore, RunConfig, pd.DataFrame]:
    """The scored run, its config and the rows (id, label, true_label, group: P, N, S,
    B,
  S-top, S-kept; flips in P and N are P-flip, N-flip)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(DIM, dtype=np.float32)[:3] * 3.0
    groups = ([("P", "pos", "pos", 0.9)] * 36 + [("P-flip", "pos", "neg", 0.9)] * 4
              + [("N", "neg", "neg", 0.1)] * 36 + [("N-flip", "neg", "pos", 0.1)] * 4
              + [("B", "pos", "pos", 0.5)] * 8 + [("B", "neg", "neg", 0.5)] * 8
              + [("S-top", "pos", "neg", 0.75)] * 6 + [("S", "pos", "neg", 0.42)] * 16
              + [("S-kept", "pos", "pos", 0.42)] * 2)
    cluster = {"P": [0], "N": [1], "B": [0, 1], "S": [2]}
    rows, features = [], []
    for i, (group, true, given, p_pos) in enumerate(groups):
        centre = centres[cluster[group.split("-")[0]]].mean(axis=0)
        features.append(centre + rng.normal(0, 0.5, DIM).astype(np.float32))
        rows.append({"id": f"r{i:03d}", "text": f"{group.lower()} text number {i} "
                     + " ".join(rng.choice(["alpha", "beta", "gamma", "delta"], 6)),
                     "label": given, "true_label": true, "flipped": given != true,
                     "group": group, "p_pos": p_pos + rng.uniform(-0.03, 0.03)})
    frame = pd.DataFrame(rows)
    store = RunStore(root)
    config = RunConfig(run_dir=root)
    config.score.acquire_budget = 0
    config.score.min_agreement = 0.5  # the probabilities are written, not a linear head's
    store.write_json(artifacts.LABELS.path, CLASSES)
    store.write_table(artifacts.TRAIN.path, pa.Table.from_pandas(
        frame[["id", "text", "label", "true_label", "flipped"]], preserve_index=False))
    probs = _probs(frame["p_pos"].to_numpy())
    logits = np.log(probs)
    pred = np.asarray(CLASSES, dtype=object)[probs.argmax(1)]
    given = frame["label"].map(CLASSES.index).to_numpy()
    features_table = pa.table({
        "id": frame["id"], "label": frame["label"],
        "embedding": pa.FixedSizeListArray.from_arrays(np.concatenate(features), DIM),
        "logits": pa.FixedSizeListArray.from_arrays(logits.ravel(), 2),
        "probs": pa.FixedSizeListArray.from_arrays(probs.ravel(), 2),
        "pred": pred.tolist(),
        "loss": -np.log(probs[np.arange(len(probs)), given]).astype(np.float32),
        "n_tokens": pa.array(frame["text"].str.split().str.len(), pa.int32())})
    store.write_table(f"{artifacts.FEATURES(split='train')}/part-00000.parquet", features_table)
    store.mark_done("extract.train", {})
    run_score(store, config)
    return store, config, frame.drop(columns=["p_pos"])
