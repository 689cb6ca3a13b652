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

The model-aided methods resolve the tasks that two or more annotators answered with a class,
given the model's probabilities for the task's sample and at least two such tasks and two
annotators; a lone answer stands (the model alone would overrule the person, and an
annotator's accuracy cannot be told apart from the model's without another answer), and so
does each annotator's table without estimates. Every task with a class answer is still ranked
for a second opinion (``second_opinion``), lone answers included, by a fit that decides no
label. A task whose majority answer is "Drop" or "Not sure" keeps it: those are not classes
the model can weigh; where they hold half the answers or more against the resolved class, the
task still needs review.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.corrections import KEEP, RELABEL
from relabeler.plugin.dawid_skene import MISSING, dawid_skene, flip_chance
from relabeler.plugin.labeling import DROP, NOT_SURE
from relabeler.plugin.votes import Vote, resolve
from relabeler.store import RunStore

log = logging.getLogger(__name__)

DAWID_SKENE, CROWDLAB, MAJORITY = "dawid_skene", "crowdlab", "majority"
METHODS = (DAWID_SKENE, CROWDLAB, MAJORITY)
SKIPPED = "(skipped)"  # how a vote records a skipped task
NOT_CLASSES = (DROP, NOT_SURE)  # answers the model cannot weigh


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
    counts = pd.Series([a for given in answers for a, x in given.items() if x != SKIPPED],
                       dtype=object).value_counts()
    # a lone answer stands: without another answer to the task, the model alone would decide
    # against the person (and an annotator's accuracy cannot be told apart from the model's)
    overlap = [i for i in eligible if sum(x in index for x in answers[i].values()) >= 2]
    strata_keys = None if not strata else {
        i: strata.get((int(p), str(s))) if pd.notna(p) else None
        for i, p, s in zip(range(len(corrections)), corrections["project_id"],
                           corrections["id"], strict=True)}
    fit = _fit(method, overlap, answers, index, probs, corrections, strata_keys)
    if fit is None:
        stats = None
    else:
        who, wide, found = fit
        for row, label in zip(overlap, found.labels, strict=True):
            _apply(corrections, row, classes[int(label)], answers[row], method)
        estimated = {a: round(x, 3) for a, x in found.accuracy.items() if np.isfinite(x)}
        log.info("pull: %d tasks answered by several annotators resolved with the model's help "
                 "(%s) over %d annotators%s", len(overlap), method, len(who),
                 f"; estimated accuracy {estimated}" if estimated else "")
        agreement = {a: float(np.mean(wide[wide[:, j] != MISSING, j]
                                      == found.labels[wide[:, j] != MISSING]))
                     for j, a in enumerate(who)}
        stats = pd.DataFrame({"agreement_with_consensus": agreement, "quality": found.quality,
                              "estimated_accuracy": found.accuracy})
    # which task one more answer would most likely change: every task, lone answers included
    # (where a second opinion matters most); this fit decides no label
    if fit is not None and len(overlap) == len(eligible):
        ranked, order = overlap, fit
    else:
        ranked, order = eligible, _fit(method, eligible, answers, index, probs, corrections,
                                       strata_keys)
    ask_order = order[2].ask_order if order is not None else _doubt_order(
        ranked, corrections, probs, index)
    if len(ranked):
        second = np.empty(len(ranked), dtype=np.int64)
        second[ask_order] = np.arange(1, len(ranked) + 1)
        column = corrections.columns.get_loc("second_opinion")
        for row, rank in zip(ranked, second, strict=True):
            corrections.iloc[row, column] = int(rank)
    return corrections, _annotator_table(counts, stats)


def _doubt_order(rows: list[int], corrections: pd.DataFrame, probs: Mapping[str, np.ndarray],
                 index: dict[str, int]) -> np.ndarray:
    """Positions of ``rows`` in the order to ask for a second opinion where no annotator model
    can be fitted (one annotator, or no task answered twice): the model's probability of the
    answered label, lowest first (the answer the model doubts most is the likeliest to change
    with one more answer); a task resolved to no class (drop, not sure) comes first."""
    doubt = np.array([float(probs[corrections["id"].iloc[i]][index[label]])
                      if (label := corrections["new_label"].iloc[i]) in index else -1.0
                      for i in rows], dtype=np.float64)
    if len(rows):  # debug: with studio.second_opinions = 0 (the default) nothing is asked
        log.debug("pull: the %d answered tasks are ranked for a second opinion by the model's "
                 "doubt in their answer (too few annotators or shared tasks to weigh them)",
                 len(rows))
    return np.argsort(doubt, kind="stable")


def _fit(method: str, rows: list[int], answers: list[dict[str, str]], index: dict[str, int],
         probs: Mapping[str, np.ndarray], corrections: pd.DataFrame,
         strata: Mapping[int, Hashable] | None
         ) -> tuple[list[str], np.ndarray, _Consensus] | None:
    """The model-aided method over the tasks at ``rows``: (annotators, answers wide, result);
    None with fewer than two tasks or two annotators among them."""
    who = sorted({a for i in rows for a, x in answers[i].items() if x in index})
    if len(who) < 2 or len(rows) < 2:
        return None
    wide = np.array([[index.get(answers[i].get(a), MISSING) for a in who] for i in rows],
                    dtype=np.int64)
    pred = np.stack([probs[corrections["id"].iloc[i]] for i in rows])
    pred = np.clip(pred, 1e-9, None)
    pred /= pred.sum(axis=1, keepdims=True)
    if method == CROWDLAB and not (wide != MISSING).sum(axis=1).max() >= 2:
        log.warning("pull: no task has two answers: cleanlab's CROWDLAB cannot rank the tasks "
                    "for a second opinion")
        return None
    groups = _groups([None] * len(rows) if not strata else [strata.get(i) for i in rows])
    found = (_dawid_skene(wide, pred, who, groups) if method == DAWID_SKENE
             else _crowdlab(wide, pred, who))
    return who, wide, found


def _apply(corrections: pd.DataFrame, row: int, new: str, given: dict[str, str],
           method: str) -> None:
    """Write the resolved label ``new`` into ``corrections`` at ``row``; its agreement is over
    every answer, "Drop" and "Not sure" included. The task still needs review where those hold
    half the answers or more against the resolved class (the model weighs classes only), or
    where another class had more answers than ``new`` (the weights overruled the annotators'
    majority: the label stands, and a person should look); a tie the weights broke does not."""
    old = corrections["old_label"].iloc[row]
    answered = [x for x in given.values() if x != SKIPPED]
    agreement = float(np.mean([x == new for x in answered])) if answered else 0.0
    others = sum(x not in (new, SKIPPED) and x in NOT_CLASSES for x in given.values())
    votes = Counter(x for x in answered if x not in NOT_CLASSES)
    overruled = bool(votes) and max(votes.values()) > votes.get(new, 0)
    review = overruled or (others > 0 and agreement <= 0.5)
    for column, value in (("new_label", new), ("action", KEEP if new == old else RELABEL),
                          ("agreement", agreement), ("needs_review", review),
                          ("consensus", method)):
        corrections.iloc[row, corrections.columns.get_loc(column)] = value


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
    log.debug("pull: Dawid-Skene: model weight %s, annotator accuracy %s",
              [round(w, 2) for w in found.group_weights],
              {a: round(x, 3) for a, x in accuracy.items()})
    return _Consensus(labels=found.labels, ask_order=order, quality=accuracy, accuracy=accuracy)


def _crowdlab(wide: np.ndarray, pred: np.ndarray, who: list[str]) -> _Consensus:
    frame = pd.DataFrame(np.where(wide == MISSING, np.nan, wide), columns=who, dtype=float)
    with warnings.catch_warnings():  # cleanlab warns about annotators with few labels
        warnings.simplefilter("ignore")
        from relabeler.selectors.cleanlab_imports import (
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
