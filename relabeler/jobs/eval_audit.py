"""The eval rows ranked by how likely their label is wrong: ``scores/eval_suspects.parquet``.

A gain measured on eval labels that are themselves wrong is noise. The trained model never saw
the eval rows, so its probabilities on them are out-of-sample, like the fold models' on the
training rows. Three views: the model's distribution, the similarity-weighted mean of the
out-of-fold probabilities of the eval row's nearest training rows (what the fold models said
of them, not their given labels, which carry the training noise), and, when the texts are
given, what the words say (:mod:`relabeler.selectors.lexical`: a TF-IDF logistic regression
fitted on the training texts, whose errors are not the encoder's). The rows rank by
cleanlab's normalized margin of the given label under the mean of the views.

When the training rows' noise model is class-conditional, knowing which class a wrong label
came from turns the neighbours' noisy labels into evidence: they are a third view beside the
model and the neighbours' probabilities, all three are corrected by the noise model, and the
rows rank by the mean rank of the three margins, as the training queue does. The words are
left out there: on class-conditional flips of sms-spam and bbc-news they ranked level with the
three views alone (AUPRC .935 against .937), and lower on sms-spam.

Chosen by measurement (docs/benchmarks.md, "Eval audit: the ranking chosen by measurement"),
with eval flips drawn afresh on cached runs of three datasets. A uniform noise model is not
applied: it says nothing about which class a label came from, and with a weak model it
overestimates the noise (about half the labels on drug-review, where 10% were flipped), which
flattens every margin; there the neighbours' labels cost AUPRC too.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler import artifacts
from relabeler.jobs.duplicates import split_texts
from relabeler.selectors import confidence, lexical, neighbors, noise, rank
from relabeler.selectors.knn import Neighbors, knn
from relabeler.store import RunStore

log = logging.getLogger(__name__)

#: Training neighbours whose out-of-fold probabilities are averaged into an eval row's
#: posterior. More than ``score.k`` (10, the neighbours whose labels vote): a mean of
#: probabilities has less variance with more neighbours; 20, 50 and 100 ranked alike on
#: drug-review, 10 worse.
NEIGHBOURS = 20


def score_eval(train, evaluation, cfg, noise_model: noise.NoiseModel | None = None, *,
               texts: list[str] | None = None, words_checked: bool = False) -> pd.DataFrame:
    """train: the TrainView (its out-of-fold probabilities, else its model probabilities, are
    the neighbours' view; its texts, with ``texts``, fit the words' view); evaluation: the
    eval SplitView (labels known); cfg: the ScoreConfig (``k``: the neighbours whose labels
    vote; ``words``: off, no view from the words); noise_model: the one the training rows
    gave (used only when class-conditional; None: none); texts: the eval rows' texts, aligned
    with ``evaluation.ids`` (None: no view from the words; a class-conditional noise model
    leaves the words out too); words_checked: the training queue's words, fitted on the same
    texts and labels, told more than the class shares, so that check is not made again
    (:func:`relabeler.selectors.lexical.lexical_probabilities`). Returns the eval suspects,
    rank 1 first: id, rank, suspect_score, given_label, suggested_label,
    suggested_confidence, margin (the model's view alone), knn_margin (the neighbours'
    probabilities alone)."""
    classes = train.classes
    keep = evaluation.labels >= 0
    ids, labels = evaluation.ids[keep], evaluation.labels[keep]
    found = knn(train.features, evaluation.features[keep],
                k=max(1, min(max(NEIGHBOURS, cfg.k), len(train.ids))))
    reference = train.oof_probs if train.oof_probs is not None else train.probs
    views = {"model": evaluation.probs[keep].astype(np.float64),
             "knn": neighbors.neighbor_probability_mean(found, reference).astype(np.float64)}
    words = (_words_view(train, texts, keep, checked=words_checked)
             if cfg.words and lexical.words_vote(noise_model) else None)
    if words is not None:
        views["words"] = words
    if noise_model is not None and noise_model.kind == "class_conditional":
        nearest = Neighbors(indices=found.indices[:, :cfg.k], scores=found.scores[:, :cfg.k],
                            metric=found.metric)
        views["knn_labels"] = neighbors.neighbor_label_distribution(
            nearest, train.labels, len(classes)).astype(np.float64)
        views = {name: noise.noise_aware_posterior(dist, labels, noise_model.transition)
                 for name, dist in views.items()}
    posterior = rank.ensemble_posterior(views)
    if "knn_labels" in views:
        score = rank.rank_mean({name: confidence.normalized_margin(dist, labels)
                                for name, dist in views.items()})
    else:
        score = confidence.normalized_margin(posterior, labels)
    signals = {"margin": confidence.normalized_margin(views["model"], labels),
               "knn_margin": confidence.normalized_margin(views["knn"], labels)}
    suggested, suggested_conf = rank.suggest_labels(posterior, labels)
    chance = posterior
    if noise_model is not None and noise_model.kind == "uniform":
        # the chance that the label is wrong weighs the views against how rarely labels are:
        # without it, 1 - p(given) is the model's doubt, and a weak model of many classes
        # doubts nearly every right label (196 of 221 "likelier wrong than right" where the
        # noise model put 1.6% of the labels wrong). The ranking stays the views' own
        chance = noise.noise_aware_posterior(posterior, labels, noise_model.transition)
    frame = pd.DataFrame({
        "id": ids, "rank": rank.ranks_from_scores(score).astype(np.int64),
        "suspect_score": score.astype(np.float32),
        "given_label": [classes[i] for i in labels],
        "suggested_label": [classes[i] for i in suggested],
        "suggested_confidence": suggested_conf.astype(np.float32),
        **{name: value.astype(np.float32) for name, value in signals.items()},
        "wrong_probability": rank.wrong_probability(chance, labels)})
    return frame.sort_values("rank", kind="stable").reset_index(drop=True)


def _words_view(train, texts: list[str] | None, keep: np.ndarray, *,
                checked: bool = False) -> np.ndarray | None:
    """The words' view of the kept eval rows, or None (no texts, or none the words can make)."""
    if texts is None or train.texts is None:
        return None
    if len(texts) != len(keep):
        raise ValueError(f"texts: expected {len(keep)} eval texts, one per eval row, got "
                         f"{len(texts)}")
    return lexical.lexical_probabilities(train.texts, train.labels, len(train.classes),
                                         [t for t, kept in zip(texts, keep, strict=True) if kept],
                                         checked=checked)


#: an eval split below this many rows is audited with a warning (one row is over 1 point of
#: accuracy, the issue's bar for a trusted audit)
FEW_EVAL_ROWS = 100


def write_eval_suspects(store: RunStore, train, splits: dict, cfg,
                        noise_model: noise.NoiseModel | None) -> dict:
    """Rank the eval rows when their features exist (their texts read from the run, for the
    words' view); returns the summary's ``eval_audit``."""
    evaluation = splits.get("eval")
    texts = None if evaluation is None else split_texts(store, "eval", evaluation.ids)
    table, summary = eval_suspects_table(train, splits, cfg, noise_model, texts=texts)
    if table is not None:
        store.write_table(artifacts.EVAL_SUSPECTS.path, table)
    return summary


def eval_suspects_table(train, splits: dict, cfg, noise_model: noise.NoiseModel | None, *,
                        texts: list[str] | None = None, words_checked: bool = False
                        ) -> tuple[pa.Table | None, dict]:
    """``scores/eval_suspects.parquet``'s table (None when no eval row has features and a
    label), unwritten, and the summary's ``eval_audit``. texts: the eval rows' texts, aligned
    with ``splits["eval"].ids`` (None: no view from the words); words_checked as
    :func:`score_eval`."""
    evaluation = splits.get("eval")
    if evaluation is None or not (evaluation.labels >= 0).any():
        return None, {"ranked": 0}
    frame = score_eval(train, evaluation, cfg, noise_model, texts=texts,
                       words_checked=words_checked)
    log.info("score: %d eval rows ranked for the eval audit", len(frame))
    if len(frame) < FEW_EVAL_ROWS:
        log.warning("score: the eval split has %d rows: they are ranked for the eval audit, "
                    "but one row is %.1f points of eval accuracy there, so neither the audit "
                    "nor a measured gain says much; give more eval rows (data.eval_fraction, "
                    "an eval file)", len(frame), 100 / len(frame))
    return (pa.Table.from_pandas(frame, schema=artifacts.EVAL_SUSPECTS.schema,
                                 preserve_index=False), {"ranked": len(frame)})
