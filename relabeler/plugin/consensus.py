"""Several annotators: each task's label resolved with the model's help, and each annotator's
quality.

With two or more annotators, a plain majority trusts a tired annotator as much as a careful one
and breaks no ties. ``studio.consensus = crowdlab`` (the default) resolves the class answers of
every task with cleanlab's CROWDLAB (``cleanlab.multiannotator``): the model's out-of-fold
probabilities and each annotator's estimated reliability, weighted together. It needs the
model's probabilities for the task's sample and at least two annotators across the project;
otherwise the majority stands. A task whose majority answer is "Drop" or "Not sure" keeps it:
those are not classes the model can weigh. ``majority`` turns the model's help off.

Beside the consensus, ``second_opinion`` ranks the resolved tasks by cleanlab's ActiveLab score
(1 = the task where one more answer is most likely to change the resolved label): the order in
which to ask for another answer.

A Dawid-Skene EM with the model as prior was tried beside it and was not better everywhere
(docs/benchmarks.md, "Annotators"), so the library's method is used.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.corrections import KEEP, RELABEL
from relabeler.plugin.votes import Vote, resolve
from relabeler.store import RunStore

log = logging.getLogger(__name__)

METHODS = ("crowdlab", "majority")
SKIPPED = "(skipped)"  # how a vote records a skipped task


def vote_answers(annotators: list[str], votes: list[str]) -> dict[str, str]:
    """annotator -> answer from a correction row's ``annotators`` and ``votes`` columns (each
    vote is ``"<annotator>: <answer>"``)."""
    return {who: vote[len(who) + 2:] for who, vote in zip(annotators, votes, strict=True)}


def model_probabilities(store: RunStore, classes: list[str]) -> dict[str, np.ndarray]:
    """Per sample id: the out-of-fold probabilities where ``train --folds`` made them, else the
    model's own (training and pool features)."""
    probs: dict[str, np.ndarray] = {}
    for split in ("pool", "train"):
        path = artifacts.FEATURES(split=split)
        if store.exists(path):
            table = store.read_table(path, columns=["id", "probs"])
            probs.update(zip(table.column("id").to_pylist(),
                             np.asarray(table.column("probs").to_pylist(), dtype=np.float64),
                             strict=True))
    if store.exists(artifacts.OOF.path):
        table = store.read_table(artifacts.OOF.path, columns=["id", "probs"])
        probs.update(zip(table.column("id").to_pylist(),
                         np.asarray(table.column("probs").to_pylist(), dtype=np.float64),
                         strict=True))
    return {k: v for k, v in probs.items() if v.shape == (len(classes),)}


def resolve_with_model(corrections: pd.DataFrame, probs: Mapping[str, np.ndarray],
                       classes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Corrections with CROWDLAB's consensus where it applies (``consensus`` says which rows),
    and one row per annotator (annotator, answers, agreement_with_consensus, quality)."""
    corrections = corrections.copy()
    corrections["consensus"] = "majority"
    corrections["second_opinion"] = pd.array([None] * len(corrections), dtype="Int64")
    index = {c: i for i, c in enumerate(classes)}
    answers = [vote_answers(list(a), list(v)) if a is not None and v is not None else {}
               for a, v in zip(corrections["annotators"], corrections["votes"], strict=True)]
    _restore_majority(corrections, answers)
    eligible = [i for i, (row, given) in enumerate(zip(
        corrections.itertuples(index=False), answers, strict=True))
        if row.id in probs and any(x in index for x in given.values())
        and (row.action in (KEEP, RELABEL) or bool(row.needs_review))]
    who = sorted({a for i in eligible for a, x in answers[i].items() if x in index})
    counts = pd.Series([a for given in answers for a, x in given.items() if x != SKIPPED],
                       dtype=object).value_counts()
    if len(who) < 2 or len(eligible) < 2:
        return corrections, _annotator_table(counts, None)
    wide = pd.DataFrame([[index.get(answers[i].get(a), np.nan) for a in who] for i in eligible],
                        columns=who, dtype=float)
    pred = np.stack([probs[corrections["id"].iloc[i]] for i in eligible])
    pred = np.clip(pred, 1e-9, None)
    pred /= pred.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():  # cleanlab warns about annotators with few labels
        warnings.simplefilter("ignore")
        from cleanlab.multiannotator import (
            get_active_learning_scores,
            get_label_quality_multiannotator,
        )

        result = get_label_quality_multiannotator(wide, pred, verbose=False)
        # ActiveLab: the lower, the more one more answer would tell about the true label
        activelab, _ = get_active_learning_scores(wide, pred)
    order = np.argsort(activelab, kind="stable")
    second = np.empty(len(eligible), dtype=np.int64)
    second[order] = np.arange(1, len(eligible) + 1)
    quality = result["label_quality"]
    for row, label, agreement, rank in zip(eligible, quality["consensus_label"],
                                           quality["annotator_agreement"], second, strict=True):
        corrections.iloc[row, corrections.columns.get_loc("second_opinion")] = int(rank)
        new = classes[int(label)]
        old = corrections["old_label"].iloc[row]
        corrections.iloc[row, corrections.columns.get_loc("new_label")] = new
        corrections.iloc[row, corrections.columns.get_loc("action")] = (
            KEEP if new == old else RELABEL)
        corrections.iloc[row, corrections.columns.get_loc("agreement")] = float(agreement)
        corrections.iloc[row, corrections.columns.get_loc("needs_review")] = False
        corrections.iloc[row, corrections.columns.get_loc("consensus")] = "crowdlab"
    log.info("pull: %d tasks resolved with the model's help (CROWDLAB) over %d annotators",
             len(eligible), len(who))
    return corrections, _annotator_table(counts, result["annotator_stats"])


def _restore_majority(corrections: pd.DataFrame, answers: list[dict[str, str]]) -> None:
    """Each row's majority resolution from its votes, so that resolving again (another pull,
    another method) starts from the answers, not from an earlier consensus."""
    for row, given in enumerate(answers):
        if not given:
            continue
        votes = [Vote(who, None if answer == SKIPPED else answer, 0, "")
                 for who, answer in given.items()]
        res = resolve(votes, given_label=corrections["old_label"].iloc[row])
        for column, value in (("action", res.action), ("new_label", res.new_label),
                              ("agreement", res.agreement), ("needs_review", res.needs_review)):
            corrections.iloc[row, corrections.columns.get_loc(column)] = value


def _annotator_table(counts: pd.Series, stats: pd.DataFrame | None) -> pd.DataFrame:
    frame = pd.DataFrame({"annotator": counts.index.astype(str),
                          "answers": counts.to_numpy(dtype=np.int64)})
    if stats is None:
        frame["agreement_with_consensus"] = np.nan
        frame["quality"] = np.nan
    else:
        frame["agreement_with_consensus"] = frame["annotator"].map(
            stats["agreement_with_consensus"]).astype(float)
        frame["quality"] = frame["annotator"].map(stats["annotator_quality"]).astype(float)
    return frame.sort_values("annotator", kind="stable").reset_index(drop=True)
