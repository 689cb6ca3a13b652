"""Rounds: does the latest round's queue beat random picks, and the burn-down across rounds.

:func:`queue_test` decides how ``relabeler next`` fills a round: the latest round's answered
flagged tasks against every answered random control (one-sided Fisher exact test, the test
:func:`relabeler.report.remaining.estimate_remaining` uses). Controls are few per round, so
they are pooled over the rounds; the flagged side is the latest round alone, because a ranking
that worked at the top of the queue can stop working further down.

:func:`burn_down` reads every round as it stood after its tasks: the tasks of rounds 1..r and
the answers they have now (an answer to an older round's task counts for that round), and the
remaining-errors estimate with its 95% interval from those alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from relabeler.report.remaining import (
    ANSWERED,
    advice_text,
    corrected,
    estimate_remaining,
    true_remaining,
)
from relabeler.report.stats import queue_against_controls

REVIEW = ("flagged", "random_control")

#: what the round's output and the report say when the queue does no better than random picks
NO_BETTER = ("The flagged tasks were not corrected significantly more often than the random "
             "controls: on this data the ranking is not shown to beat random picks, so the next "
             "round fills its batch with random picks (never worse than random review). What "
             "would help: full fine-tuning on a GPU (train.mode = full), a stronger model "
             "(model.name), or more eval data for a better-calibrated model.")
#: what they say when the controls are too few for the test to say anything
UNDECIDED = ("The random controls are too few to tell whether the ranking beats random picks "
             "(even had none of them needed a change, the test could not show it), so the queue "
             "stays ranked; more controls (studio.control_share) would tell.")


#: answered flagged tasks a round needs before its correction rate is tested against the controls
MIN_TESTED = 10


def _answered(manifest: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    """Review tasks with an answer (keep, relabel or drop), with ``corrected`` and round."""
    sent = manifest[manifest["source"].isin(REVIEW)]
    answers = corrections[corrections["action"].isin(ANSWERED)]
    answers = answers.assign(corrected=corrected(answers))[["id", "corrected"]]
    return sent[["id", "source", "round"]].merge(answers, on="id", how="inner")


def queue_test(manifest: pd.DataFrame, corrections: pd.DataFrame, *, alpha: float = 0.05
               ) -> dict:
    """Did the latest round with at least :data:`MIN_TESTED` answered flagged tasks beat the
    random controls? (A round just begun, with a few answers, says nothing yet: a test of 4
    answers cannot tell a working ranking from random picks, and would switch the next round
    to random ones.)

    manifest: id, source, round. corrections: id, action, old_label, new_label. Returns
    ``available`` (False without such a round or without answered controls), the round
    tested, both sides' counts and rates, the one-sided p-value, ``beats_random`` (p <
    ``alpha``) and ``decisive`` (False where the controls are too few for the test to say
    anything: :func:`relabeler.report.stats.queue_against_controls`; ``relabeler next`` then
    keeps the ranking).
    """
    answered = _answered(manifest, corrections)
    flagged = answered[answered["source"] == "flagged"]
    controls = answered[answered["source"] == "random_control"]
    sizes = flagged["round"].value_counts()
    tested = sizes.index[sizes >= MIN_TESTED]
    if not len(tested) or not len(controls):
        return {"available": False,
                "why": f"needs a round with at least {MIN_TESTED} answered flagged tasks and "
                       f"answered random controls"}
    latest = int(tested.max())
    flagged = flagged[flagged["round"] == latest]
    n_f, k_f = len(flagged), int(flagged["corrected"].sum())
    n_c, k_c = len(controls), int(controls["corrected"].sum())
    test = queue_against_controls(k_f, n_f, k_c, n_c, alpha=alpha)
    return {"available": True, "round": latest,
            "flagged": {"answered": n_f, "corrected": k_f, "rate": k_f / n_f},
            "controls": {"answered": n_c, "corrected": k_c, "rate": k_c / n_c},
            "p_value": test["p_value"], "p_best": test["p_best"], "alpha": alpha,
            "beats_random": test["verdict"] == "beats",
            "decisive": test["verdict"] != "undecided"}


def review_answers(manifest: pd.DataFrame, corrections: pd.DataFrame, *,
                   upto_round: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The review tasks (flagged and random controls) of rounds 1..``upto_round`` (None: all)
    and the answers to them: what every remaining-errors estimate reads, so that the report's
    "What is left" and the burn-down's last round are one computation."""
    if "round" not in manifest.columns:
        manifest = manifest.assign(round=1)
    review = manifest[manifest["source"].isin(REVIEW)]
    if upto_round is not None:
        review = review[review["round"] <= upto_round]
    return review, corrections[corrections["id"].isin(set(review["id"]))]


def labels_given(answers: pd.DataFrame) -> pd.Series:
    """The labels spent on each answered task: the answers people gave it (``n_annotations``
    less the skips, ``n_skipped``: a skip is no label, as in the annotators' counts), one where
    that is unknown (a null, or a file without the column). Every count of labels spent in
    the report is a sum of these."""
    if "n_annotations" not in answers.columns:
        return pd.Series(1, index=answers.index, dtype="int64")
    skipped = (answers["n_skipped"].fillna(0) if "n_skipped" in answers.columns
               else pd.Series(0, index=answers.index))
    given = answers["n_annotations"].fillna(1) - skipped.where(answers["n_annotations"].notna(), 0)
    return given.clip(lower=0).astype("int64")


def burn_down(manifest: pd.DataFrame, corrections: pd.DataFrame, train: pd.DataFrame, *,
              next_batch: int, stop_rate: float, model_wrong: float | None = None,
              wrong_probability: Mapping[int, pd.Series] | None = None) -> list[dict]:
    """One row per round: tasks sent and answered, corrections found, labels spent, the
    estimated wrong labels left after it (95% interval), the advice, and, where a simulation
    knows the truth, the wrong labels really left.

    manifest: id, source, round, rank. corrections: the training answers (id, action,
    old_label, new_label; :func:`labels_given` counts the labels spent). train:
    the training rows (``flipped`` where known). wrong_probability: round -> the chances that
    the labels are wrong under the scoring that picked that round (id-indexed), where known.
    The last row is the report's "What is left": the same call on the same answers.
    """
    if "round" not in manifest.columns:
        manifest = manifest.assign(round=1)
    review = manifest[manifest["source"].isin(REVIEW)]
    spent = labels_given(corrections)
    rows = []
    for r in sorted({int(x) for x in review["round"]}):
        tasks = review[review["round"] == r]
        upto, theirs = review_answers(review, corrections, upto_round=r)
        mine = corrections["id"].isin(set(tasks["id"]))
        answers = corrections[mine & corrections["action"].isin(ANSWERED)]
        left = estimate_remaining(upto, theirs, len(train), next_batch=next_batch,
                                  stop_rate=stop_rate, model_wrong=model_wrong,
                                  wrong_probability=wrong_probability)
        rows.append({
            "round": r, "tasks": int(len(tasks)), "answered": int(mine.sum()),
            "corrections": int(corrected(answers).sum()),
            "labels_spent": int(spent[mine].sum()),
            "remaining": left.get("remaining"), "advice": left.get("advice"),
            "next_rate": (left.get("next_batch") or {}).get("rate"),
            "true_remaining": true_remaining(train, theirs),
        })
    return rows


def burn_down_text(rows: list[dict], left: dict) -> str:
    """The burn-down's reading in plain words: what the rounds found and the advice now."""
    if not rows:
        return "No rounds yet."
    found = sum(r["corrections"] for r in rows)
    spent = sum(r["labels_spent"] for r in rows)
    # answers that changed a label: the report cannot tell a right change from an annotator's
    # mistake (the demo's 405 changes held 15 that made a right label wrong)
    words = (f"{len(rows)} round{'s' if len(rows) > 1 else ''}: {found} labels changed by the "
             f"reviewers for {spent} labels spent on review tasks (flagged and random "
             f"controls).")
    if left.get("available"):
        words += " " + advice_text(left)
    return words


def remaining_plot(rows: list[dict], png) -> dict[str, bytes]:
    """``burndown.png``: corrections found per round (bars) and the estimated wrong labels left
    after each round with its 95% interval; ``png`` turns a figure into bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return {}
    rounds = np.array([r["round"] for r in rows])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(rounds, [r["corrections"] for r in rows], color="tab:green", alpha=0.6,
           label="corrections found")
    est = [r for r in rows if r["remaining"] is not None]
    if est:
        x = np.array([r["round"] for r in est])
        low, mid, high = (np.array([r["remaining"][i] for r in est]) for i in range(3))
        ax.errorbar(x, mid, yerr=[mid - low, high - mid], fmt="o-", color="tab:red",
                    capsize=4, label="estimated wrong labels left (95%)")
    truth = [r for r in rows if r["true_remaining"] is not None]
    if truth:
        ax.plot([r["round"] for r in truth], [r["true_remaining"] for r in truth], "x--",
                color="black", label="really left (simulation)")
    ax.set_xticks(rounds)
    ax.set_xlabel("round")
    ax.set_ylabel("wrong labels")  # not "labels", which the report spends on answers
    ax.set_title("Burn-down")
    ax.legend(fontsize=8)
    out = {"burndown.png": png(fig)}
    plt.close(fig)
    return out
