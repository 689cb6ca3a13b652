"""Several annotators: each task's label resolved with the model's help, and each annotator's
quality.

With two or more annotators, a plain majority trusts a tired annotator as much as a careful one
and breaks no ties. ``studio.consensus`` picks how the class answers of every task are resolved
with the model's help:

* ``dawid_skene`` (the default, :mod:`relabeler.plugin.dawid_skene`): an EM that estimates each
  annotator's accuracy, with the model's out-of-fold probabilities as the prior, weighted by
  how far the model can be trusted on these tasks; mistakes may land on the classes the model
  finds plausible. ``second_opinion`` ranks the tasks by the chance that one more answer
  changes the resolved label (1 = ask there first).
* ``crowdlab``: cleanlab's CROWDLAB (``cleanlab.multiannotator``); ``second_opinion`` is its
  ActiveLab order.
* ``majority``: no model; ties need review.

The model-aided methods need the model's probabilities for the task's sample and at least two
annotators across the project; otherwise the majority stands. A task whose majority answer is
"Drop" or "Not sure" keeps it: those are not classes the model can weigh.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.corrections import KEEP, RELABEL
from relabeler.plugin.dawid_skene import MISSING, dawid_skene, flip_chance
from relabeler.plugin.votes import Vote, resolve
from relabeler.store import RunStore

log = logging.getLogger(__name__)

DAWID_SKENE, CROWDLAB, MAJORITY = "dawid_skene", "crowdlab", "majority"
METHODS = (DAWID_SKENE, CROWDLAB, MAJORITY)
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
                       classes: list[str], *, method: str = DAWID_SKENE,
                       strata: Mapping[tuple[int, str], Hashable] | None = None
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Corrections with the model-aided consensus (``method``: dawid_skene or crowdlab) where
    it applies (``consensus`` says which rows), and one row per annotator (annotator, answers,
    agreement_with_consensus, quality, estimated_accuracy). strata: (project, sample) -> the
    stratum of its task (its source and round); Dawid-Skene weighs the model per stratum of at
    least ``MIN_STRATUM`` tasks (smaller ones share one weight)."""
    if method not in (DAWID_SKENE, CROWDLAB):
        raise ValueError(f"method must be {DAWID_SKENE} or {CROWDLAB}, got {method!r}")
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
    wide = np.array([[index.get(answers[i].get(a), MISSING) for a in who] for i in eligible],
                    dtype=np.int64)
    pred = np.stack([probs[corrections["id"].iloc[i]] for i in eligible])
    pred = np.clip(pred, 1e-9, None)
    pred /= pred.sum(axis=1, keepdims=True)
    groups = _groups([None] * len(eligible) if not strata else [
        strata.get((int(p), str(i))) if pd.notna(p) else None for p, i in zip(
            corrections["project_id"].iloc[eligible], corrections["id"].iloc[eligible],
            strict=True)])
    found = (_dawid_skene(wide, pred, who, groups) if method == DAWID_SKENE
             else _crowdlab(wide, pred, who))
    second = np.empty(len(eligible), dtype=np.int64)
    second[found.ask_order] = np.arange(1, len(eligible) + 1)
    for row, label, rank in zip(eligible, found.labels, second, strict=True):
        given = [index.get(x) for x in answers[row].values() if x in index]
        corrections.iloc[row, corrections.columns.get_loc("second_opinion")] = int(rank)
        new = classes[int(label)]
        old = corrections["old_label"].iloc[row]
        corrections.iloc[row, corrections.columns.get_loc("new_label")] = new
        corrections.iloc[row, corrections.columns.get_loc("action")] = (
            KEEP if new == old else RELABEL)
        corrections.iloc[row, corrections.columns.get_loc("agreement")] = float(
            np.mean([g == int(label) for g in given]))
        corrections.iloc[row, corrections.columns.get_loc("needs_review")] = False
        corrections.iloc[row, corrections.columns.get_loc("consensus")] = method
    log.info("pull: %d tasks resolved with the model's help (%s) over %d annotators",
             len(eligible), method, len(who))
    agreement = {a: float(np.mean(wide[wide[:, j] != MISSING, j]
                                  == found.labels[wide[:, j] != MISSING]))
                 for j, a in enumerate(who)}
    stats = pd.DataFrame({"agreement_with_consensus": agreement, "quality": found.quality,
                          "estimated_accuracy": found.accuracy})
    return corrections, _annotator_table(counts, stats)


@dataclass(frozen=True)
class _Consensus:
    """labels: (N,) resolved class per task; ask_order: task positions, the one most in need
    of another answer first; quality / accuracy: per annotator (accuracy NaN when the method
    does not estimate it)."""

    labels: np.ndarray
    ask_order: np.ndarray
    quality: dict[str, float]
    accuracy: dict[str, float]


MIN_STRATUM = 30  # tasks a stratum needs to earn its own model weight


def _groups(keys: list[Hashable]) -> np.ndarray:
    """(N,) group index per task: one per stratum of at least MIN_STRATUM tasks, the rest
    (small strata, unknown tasks) together."""
    sizes = pd.Series(keys, dtype=object).value_counts(dropna=False)
    big = {k: g for g, k in enumerate(sizes.index[sizes >= MIN_STRATUM], start=1)}
    codes = np.array([big.get(k, 0) for k in keys], dtype=np.int64)
    return np.unique(codes, return_inverse=True)[1].astype(np.int64)


def _dawid_skene(wide: np.ndarray, pred: np.ndarray, who: list[str],
                 groups: np.ndarray) -> _Consensus:
    found = dawid_skene(wide, pred, groups=groups)
    # ask again where one more answer from a typical annotator most likely changes the label;
    # among equal chances, the least certain task first
    chance = flip_chance(found.posterior, float(np.mean(found.accuracy)))
    order = np.lexsort((found.posterior.max(axis=1), -chance))
    accuracy = dict(zip(who, found.accuracy.astype(float).tolist(), strict=True))
    log.info("pull: Dawid-Skene: model weight %s, annotator accuracy %s",
             [round(w, 2) for w in found.group_weights],
             {a: round(x, 3) for a, x in accuracy.items()})
    return _Consensus(labels=found.labels, ask_order=order, quality=accuracy, accuracy=accuracy)


def _crowdlab(wide: np.ndarray, pred: np.ndarray, who: list[str]) -> _Consensus:
    frame = pd.DataFrame(np.where(wide == MISSING, np.nan, wide), columns=who, dtype=float)
    with warnings.catch_warnings():  # cleanlab warns about annotators with few labels
        warnings.simplefilter("ignore")
        from cleanlab.multiannotator import (
            get_active_learning_scores,
            get_label_quality_multiannotator,
        )

        result = get_label_quality_multiannotator(frame, pred, verbose=False)
        # ActiveLab: the lower, the more one more answer would tell about the true label
        activelab, _ = get_active_learning_scores(frame, pred)
    stats = result["annotator_stats"]
    return _Consensus(
        labels=result["label_quality"]["consensus_label"].to_numpy(dtype=np.int64),
        ask_order=np.argsort(activelab, kind="stable"),
        quality={a: float(stats["annotator_quality"][a]) for a in who},
        accuracy={a: float("nan") for a in who})


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
    for column in ("agreement_with_consensus", "quality", "estimated_accuracy"):
        frame[column] = (np.nan if stats is None
                         else frame["annotator"].map(stats[column]).astype(float))
    return frame.sort_values("annotator", kind="stable").reset_index(drop=True)
