"""The eval rows ranked by how likely their label is wrong: ``scores/eval_suspects.parquet``.

A gain measured on eval labels that are themselves wrong is noise. The trained model never saw
the eval rows, so its probabilities on them are out-of-sample, like the fold models' on the
training rows. Two views vote, each a normalised margin of the given label: the model's
distribution and the similarity-weighted labels of the eval row's nearest training rows. Both
are first corrected by the noise model the training rows gave (the same ``score.noise_model``),
then combined by mean rank as the training queue is.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.selectors import confidence, neighbors, noise, rank
from relabeler.selectors.knn import knn
from relabeler.store import RunStore

log = logging.getLogger(__name__)


def score_eval(train, evaluation, cfg, noise_model: noise.NoiseModel | None = None
               ) -> pd.DataFrame:
    """train: the TrainView; evaluation: the eval SplitView (labels known); noise_model: the
    one the training rows gave (None: no correction). Returns the eval
    suspects, rank 1 first: id, rank, suspect_score, given_label, suggested_label,
    suggested_confidence, margin, knn_margin."""
    classes = train.classes
    n_classes = len(classes)
    keep = evaluation.labels >= 0
    ids, labels = evaluation.ids[keep], evaluation.labels[keep]
    k = max(1, min(cfg.k, len(train.ids)))
    found = knn(train.features, evaluation.features[keep], k=k)
    views = {"model": evaluation.probs[keep].astype(np.float64),
             "knn": neighbors.neighbor_label_distribution(found, train.labels, n_classes)}
    if noise_model is not None:
        views = {name: noise.noise_aware_posterior(dist, labels, noise_model.transition)
                 for name, dist in views.items()}
    signals = {"margin": confidence.normalized_margin(views["model"], labels),
               "knn_margin": confidence.normalized_margin(views["knn"], labels)}
    score = rank.combine(signals, views=("margin", "knn_margin"))
    suggested, suggested_conf = rank.suggest_labels(rank.ensemble_posterior(views), labels)
    frame = pd.DataFrame({
        "id": ids, "rank": rank.ranks_from_scores(score).astype(np.int64),
        "suspect_score": score.astype(np.float32),
        "given_label": [classes[i] for i in labels],
        "suggested_label": [classes[i] for i in suggested],
        "suggested_confidence": suggested_conf.astype(np.float32),
        **{name: value.astype(np.float32) for name, value in signals.items()}})
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)


def write_eval_suspects(store: RunStore, train, splits: dict, cfg,
                        noise_model: noise.NoiseModel | None) -> dict:
    """Rank the eval rows when their features exist; returns the summary's ``eval_audit``."""
    evaluation = splits.get("eval")
    if evaluation is None or not (evaluation.labels >= 0).any():
        return {"ranked": 0}
    frame = score_eval(train, evaluation, cfg, noise_model)
    store.write_table(artifacts.EVAL_SUSPECTS.path,
                      pa.Table.from_pandas(frame, schema=artifacts.EVAL_SUSPECTS.schema,
                                           preserve_index=False))
    log.info("score: %d eval rows ranked for the eval audit", len(frame))
    return {"ranked": len(frame)}
