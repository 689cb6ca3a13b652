"""``relabeler simulate --rounds R``: the relabeling loop played R times with an oracle.

The total budget K (the largest of ``--budgets`` as a count of training rows: the number of
flipped labels when it equals the noise rate, as in the gain experiment) is split into R rounds
(:func:`round_sizes`). Each round sends the top of the current queue and its share of the
random controls (:func:`round_controls`: ``studio.control_share`` of the total, as
:func:`relabeler.queue_plan.split_budget` gives the one shot, spread over the rounds); an
oracle answers with the true labels; the reviewed rows leave the queue with their answered labels
fixed; the head is refit on the cached encoder states to measure the test accuracy, and the queue
is re-scored for the next round (:class:`QueueRescorer`). After every round the report's
remaining-errors estimate (:func:`relabeler.report.remaining.estimate_remaining`) is computed
from the controls, the reviewed queue so far and the chances that labels are wrong under the
scoring that picked the round, next to the truth the simulation knows.

A control is a uniform draw from the rows the queue had not reached when it was sent; once
answered, its label is fixed like any reviewed row's, as ``relabeler next`` does. The estimate
reads the controls by the round that drew them, less what later rounds found among the rows
they stand for (:func:`relabeler.report.remaining.control_cohorts`).

The same play with one round is the one-shot baseline at the same total budget, with as many
controls and so as many flagged tasks, so the two differ only in re-scoring between rounds.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from relabeler.config import ScoreConfig
from relabeler.jobs.folds import stratified_folds
from relabeler.queue_plan import CONTROL, FLAGGED, split_budget
from relabeler.report.remaining import estimate_remaining, true_remaining
from relabeler.selectors import rank

log = logging.getLogger(__name__)

#: ``labels``: the label-dependent views only, on the cached probabilities; ``refit``: the head's
#: folds and full model refit too (:class:`QueueRescorer`).
RESCORE_MODES = ("labels", "refit")


def round_sizes(total: int, rounds: int) -> list[int]:
    """The tasks of each round: ``total // rounds``, the first ``total % rounds`` rounds one
    more, so the rounds add up to ``total``."""
    if not isinstance(rounds, int | np.integer) or rounds < 1:
        raise ValueError(f"rounds: expected an integer >= 1, got {rounds!r}")
    if total < rounds:
        raise ValueError(f"total: a budget of {total} cannot be split into {rounds} rounds "
                         "(each round needs at least one task)")
    return _spread(total, rounds)


def _spread(total: int, rounds: int) -> list[int]:
    """``total`` over ``rounds``: ``total // rounds`` each, the first ``total % rounds`` one
    more (a round may get none)."""
    return [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]


def round_controls(sizes: list[int], control_share: float) -> list[int]:
    """The random controls of each round: the one shot's for the whole budget
    (:func:`relabeler.queue_plan.split_budget` of ``sum(sizes)``) spread as
    :func:`round_sizes` spreads the tasks (the first rounds one more), so R rounds send as
    many flagged tasks as one shot. A round may get none; none gets more than its size."""
    _, total = split_budget(sum(sizes), control_share)
    return _spread(total, len(sizes))


def pick_round(suspect: np.ndarray, reviewed: np.ndarray, size: int, *, control_share: float,
               rng: np.random.Generator, controls: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(flagged, controls) row indices of one round of ``size`` tasks.

    suspect: (N,) suspect scores, higher = more suspect. reviewed: (N,) bool, rows answered in
    earlier rounds (they never return). Flagged: the top of the unreviewed queue, best first;
    controls: uniform among the unreviewed rows outside the flagged ones, ``controls`` of them
    (None: :func:`relabeler.queue_plan.split_budget`'s share of ``size``).
    """
    n_flagged, n_controls = (split_budget(size, control_share) if controls is None
                             else (size - controls, controls))
    order = np.argsort(-np.asarray(suspect, dtype=np.float64), kind="stable")
    order = order[~reviewed[order]]
    flagged = order[:n_flagged]
    rest = order[n_flagged:]
    controls = np.sort(rng.choice(rest, size=min(n_controls, len(rest)), replace=False))
    return flagged, controls


class QueueRescorer:
    """The suspect scores of the training rows under the labels answered so far.

    ``mode = "labels"`` recomputes what depends on the labels on the cached probabilities: the
    neighbours' votes, the noise model and every view's noise-aware posterior. ``"refit"`` also
    refits the head on the cached encoder states, once per fold for new out-of-fold
    probabilities (folds as the train stage makes them: :func:`stratified_folds`); the model's
    own probabilities come from the caller's fit on every row.
    """

    def __init__(self, view, cfg: ScoreConfig, *, mode: str, refit=None, folds: int = 5,
                 seed: int = 0):
        if mode not in RESCORE_MODES:
            raise ValueError(f"mode: expected one of {RESCORE_MODES}, got {mode!r}")
        if mode == "refit" and refit is None:
            raise ValueError("mode 'refit' needs a refitter")
        # the representer refit is reported, never a vote: a queue re-scored on refit
        # probabilities must not stop where its evidence would not be shown
        self.cfg = cfg.model_copy(update={"min_agreement": 0.0})
        self.view, self.mode, self.refit = view, mode, refit
        # the train stage's folds: each class spread evenly, the copies of a text in one fold;
        # as many as the smallest class allows (relabeler next's retrain trains fewer too),
        # and with a class of one row (no fold can hold it out and learn it) a plain permutation
        smallest = int(np.bincount(view.labels)[np.bincount(view.labels) > 0].min())
        k = max(2, min(folds, smallest))
        if smallest >= 2:
            self.fold = stratified_folds(view.labels, k, seed, view.texts, view.classes)
        else:
            self.fold = np.random.default_rng(seed).permutation(len(view.ids)) % k

    def __call__(self, labels: np.ndarray, model_probs: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """labels: (N,) the answered labels where reviewed, the given ones elsewhere.
        model_probs: (N, C) the head refit on every row with ``labels`` (``refit`` mode).
        Returns (N,) suspect scores and (N,) the chances that the labels are wrong (the
        suspects' ``wrong_probability``)."""
        from relabeler.jobs.score import suspect_signals

        view = dataclasses.replace(self.view, labels=np.asarray(labels, dtype=np.int64))
        if self.mode == "refit":
            if model_probs is None:
                raise ValueError("model_probs: the refit mode needs the model's probabilities")
            view = dataclasses.replace(view, probs=model_probs.astype(np.float32),
                                       pred=model_probs.argmax(axis=1).astype(np.int64),
                                       oof_probs=self._out_of_fold(view.labels))
        signals, distributions, _ = suspect_signals(view, self.cfg)
        return (rank.combine(signals),
                rank.wrong_probability(rank.ensemble_posterior(distributions), view.labels))

    def _out_of_fold(self, labels: np.ndarray) -> np.ndarray:
        oof = np.zeros((len(labels), len(self.view.classes)), dtype=np.float32)
        for f in np.unique(self.fold):
            held = np.flatnonzero(self.fold == f)
            fit_rows = np.flatnonzero(self.fold != f)
            oof[held] = self.refit.fit_predict(fit_rows, labels[fit_rows], held)
        return oof


@dataclass
class RoundsPlay:
    """What one play of the loop found: per round, the corrections, the test accuracy after
    retraining, the remaining-errors estimate [low, estimate, high] and the truth; and the
    manifest of every task sent."""

    found: list[int]
    accuracy: list[float]
    estimated_remaining: list[list[float | None]]
    true_remaining: list[int]
    manifest: list[dict] = dataclasses.field(default_factory=list)  # what was sent: id,
    # source (flagged or random_control), rank, round


def play_rounds(refit, rescore, *, ids: np.ndarray, noisy: np.ndarray, truth: np.ndarray,
                suspect: np.ndarray, sizes: list[int], test_rows: np.ndarray,
                test_labels: np.ndarray, control_share: float, model_wrong: float | None,
                stop_rate: float, wrong_probability: np.ndarray | None = None,
                controls: list[int] | None = None, seed: int = 0) -> RoundsPlay:
    """Play the rounds ``sizes`` with oracle answers.

    Training rows are ``0..N-1`` of the refitter's cache; noisy, truth: (N,) class ids;
    suspect, wrong_probability: (N,) the first queue's scores and the chances that its labels
    are wrong (None: not known); rescore(labels, model_probs) -> the next queue's, the same
    pair (called between rounds only, on the labels with every answer so far). controls: the
    random controls of each round (None: ``control_share`` of the whole budget,
    :func:`round_controls`; a replay of the first rounds of a longer play passes that play's).
    """
    n = len(noisy)
    rows = np.arange(n)
    predict = np.concatenate([rows, test_rows])
    labels = np.asarray(noisy, dtype=np.int64).copy()
    reviewed = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(seed + 3000)
    train = pd.DataFrame({"id": ids, "flipped": np.asarray(noisy) != np.asarray(truth)})
    answers: list[dict] = []
    chances: dict[int, pd.Series] = {}  # round -> the chances that the labels are wrong
    play = RoundsPlay([], [], [], [])
    manifest = play.manifest
    # the controls of the whole budget, spread over the rounds: as many as one shot's
    per_round = round_controls(sizes, control_share) if controls is None else controls
    if len(per_round) != len(sizes) or any(not 0 <= c <= s
                                            for c, s in zip(per_round, sizes, strict=True)):
        raise ValueError(f"controls: expected one count in [0, size] per round of {sizes}, "
                         f"got {per_round}")
    for r, size in enumerate(sizes):
        flagged, controls = pick_round(suspect, reviewed, size, control_share=control_share,
                                       rng=rng, controls=per_round[r])
        sent = int(sum(m["source"] == FLAGGED for m in manifest))
        manifest += [{"id": ids[i], "source": FLAGGED, "rank": sent + j + 1, "round": r + 1}
                     for j, i in enumerate(flagged)]
        manifest += [{"id": ids[i], "source": CONTROL, "rank": None, "round": r + 1}
                     for i in controls]
        batch = np.concatenate([flagged, controls])
        answers += [{"id": ids[i], "action": "relabel" if truth[i] != labels[i] else "keep",
                     "old_label": int(labels[i]), "new_label": int(truth[i])} for i in batch]
        play.found.append(int(np.sum(labels[batch] != truth[batch])))
        labels[batch] = truth[batch]
        reviewed[batch] = True
        probs = refit.fit_predict(rows, labels, predict)
        play.accuracy.append(float(np.mean(probs[n:].argmax(axis=1) == test_labels)))
        corrections = pd.DataFrame(answers)
        if wrong_probability is not None:  # the scoring that picked this round's tasks
            chances[r + 1] = pd.Series(wrong_probability, index=ids)
        left = estimate_remaining(pd.DataFrame(manifest), corrections, n,
                                  next_batch=sizes[min(r + 1, len(sizes) - 1)],
                                  stop_rate=stop_rate, model_wrong=model_wrong,
                                  wrong_probability=chances)
        play.estimated_remaining.append([float(x) for x in left["remaining"]]
                                        if left["available"] else [None, None, None])
        play.true_remaining.append(int(true_remaining(train, corrections)))
        log.info("simulate: round %d/%d: %d tasks, %d corrected, accuracy %.4f, remaining %s "
                 "(true %d)", r + 1, len(sizes), len(batch), play.found[-1],
                 play.accuracy[-1], play.estimated_remaining[-1], play.true_remaining[-1])
        if r + 1 < len(sizes):
            suspect, wrong_probability = rescore(labels.copy(), probs[:n])
    return play


def rounds_block(rounds: RoundsPlay, one_shot: RoundsPlay, *, total: int, clean: float,
                 noisy: float) -> dict:
    """The ``"rounds"`` block of ``simulation.json``: gap shares are (accuracy - noisy) /
    (clean - noisy) of the same refitter, None where retraining on clean labels gained
    nothing. ``budget_per_round`` is the largest round's tasks; ``round_sizes`` says each
    (:func:`round_sizes`: 24 tasks in 5 rounds are 5, 5, 5, 5 and 4)."""
    gap = clean - noisy
    sizes = round_sizes(total, len(rounds.found))

    def share(accuracy: float) -> float | None:
        return (accuracy - noisy) / gap if gap > 0 else None

    return {"R": len(rounds.found), "budget_per_round": max(sizes), "round_sizes": sizes,
            "found": rounds.found,
            "gap_recovered": [share(a) for a in rounds.accuracy],
            "one_shot_gap_recovered": share(one_shot.accuracy[-1]),
            "estimated_remaining": rounds.estimated_remaining,
            "true_remaining": rounds.true_remaining}


def rounds_experiment(refit, view, *, truth: np.ndarray, suspect: np.ndarray,
                      test_rows: np.ndarray, test_labels: np.ndarray, total: int, rounds: int,
                      clean: float, noisy: float, score_cfg: ScoreConfig,
                      control_share: float, stop_rate: float, model_wrong: float | None,
                      wrong_probability: np.ndarray | None = None, rescore: str = "refit",
                      folds: int = 5, seed: int = 0) -> dict:
    """R rounds against one shot at the same total budget; returns the ``"rounds"`` block."""
    sizes = round_sizes(total, rounds)
    rescorer = QueueRescorer(view, score_cfg, mode=rescore, refit=refit, folds=folds,
                             seed=seed)
    common = {"ids": view.ids, "noisy": view.labels, "truth": truth, "suspect": suspect,
              "test_rows": test_rows, "test_labels": test_labels,
              "control_share": control_share, "model_wrong": model_wrong,
              "wrong_probability": wrong_probability,
              "stop_rate": stop_rate, "seed": seed}
    played = play_rounds(refit, rescorer, sizes=sizes, **common)
    one_shot = play_rounds(refit, rescorer, sizes=[total], **common)
    return rounds_block(played, one_shot, total=total, clean=clean, noisy=noisy)
