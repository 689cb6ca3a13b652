"""What is left: the wrong labels still in the unreviewed training rows, what the next batch of
tasks would find, and whether the queue beats random picks at all.

The random controls of a round are drawn uniformly from the training rows nobody had been sent
and the round's queue left out, so their correction rate estimates the error rate of those
rows when they were drawn. Later rounds take wrong labels out of exactly those rows, so the
estimate is kept per cohort (:func:`control_cohorts`): the rows a round's controls stand for
times their rate, less the corrections later rounds have found among those rows since. Without
this the early controls, drawn while more errors were left, overstate what is left: on the dev
sets' replayed rounds the 95% interval missed the truth from above in 10 of 120 cases (8 of 30
in round 4); per cohort it misses none (docs/benchmarks.md, "Rounds": "Controls by cohort").
Tasks pushed but not answered yet are counted at the flagged rate. Each rate gets its Wilson 95%
interval and the count's interval adds the ends (a conservative interval: it is never narrower
than the exact one).

The next batch takes the ranks just below the reviewed part of the queue. A ranking that works
finds fewer errors further down, so its rate lies between the rate of the rows left (the
controls' rate less what later rounds found: the floor) and the rate of the last reviewed window
of the same size (the ceiling); the point estimate extrapolates
a logistic fit of correction against rank over the next ranks, held within those bounds.
The point estimate of what remains is the score's own chances, calibrated on the answers: the
suspects' ``wrong_probability`` (1 - the noise-aware posterior of the given label) of the
scoring that picked the latest round, times the corrections of that round's tasks over the
sum of their chances, summed over the rows nobody answered. The chances are averaged views
and far from calibrated (the round's tasks held 1 to 4 times the wrong labels their chances
said), and the noise model's count of wrong labels, the point before, took the model's own
errors for wrong labels (about 400 against 157 on drug-review): on the dev sets' simulated
rounds the calibrated point came within 20% of the truth more often and its median error fell
from 80% to 24% (see docs/benchmarks.md, "Rounds"). Where the noise model's count less the
corrections found is smaller, it is the point: both over-count (the noise model takes the
model's errors for wrong labels; the calibrated chances of thousands of rows the model is sure
of add up), and on the demo's 3902 rows the calibrated count said 144 where 23 were left.
Without chances (a scoring older than the column, or fewer than 10 corrections in the round's
tasks to calibrate on) the point is the noise model's count; else the controls'. Either
is held inside the controls' interval (the controls are few: the point is sharper, the
interval keeps it honest). The next batch never finds more than remains; where the queue's
latest rate promises more than the point leaves, the report says the two disagree and to read
the interval (``point_below_queue``). The queue is read in the order it was sent, round by round
(each round of ``relabeler next`` is ranked afresh).
``stop`` is advised when the next batch's upper limit falls below ``stop_rate``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from relabeler import artifacts
from relabeler.report.stats import queue_against_controls, rate_interval

ANSWERED = ("keep", "relabel", "drop")


def corrected(corrections: pd.DataFrame) -> pd.Series:
    """Per answered row: did the people change it (a new label, or dropped)?"""
    relabeled = (corrections["action"] == "relabel") & (
        corrections["new_label"] != corrections["old_label"])
    return relabeled | (corrections["action"] == "drop")


def stored_chances(store) -> pd.Series | None:
    """The score's chance that each row's label is wrong (the suspects' ``wrong_probability``,
    id-indexed) in ``store`` (a RunStore); None where the score predates the column."""
    suspects = store.read_table(artifacts.SUSPECTS.path).to_pandas()
    if "wrong_probability" not in suspects.columns:
        return None
    return suspects.set_index("id")["wrong_probability"].astype(np.float64)


#: the corrections a calibration needs: its ratio's relative error is about 1/sqrt(count), 30%
#: at 10 (sms-spam's first asymmetric queue held 3 to 5, and the ratio said 11 to 18 were left
#: where 70 to 77 were)
MIN_CORRECTIONS = 10


def calibrated_count(answered: pd.DataFrame, wrong_probability: Mapping[int, pd.Series], *,
                     reviewed: set) -> tuple[float, float] | None:
    """The wrong labels left by the score's calibrated chances: (count, calibration).

    answered: the answered review tasks (id, corrected, round; no round: all round 1).
    wrong_probability: round -> the chance that each training row's label is wrong (id-indexed)
    under the scoring that picked that round. The latest answered round's tasks calibrate its
    scoring: calibration = their corrections / the sum of their chances, and the count is
    calibration x the sum of the chances of the rows not in ``reviewed`` (every id people
    answered). None where that round's scoring gave no chances, or none to its tasks, or
    its tasks hold fewer than :data:`MIN_CORRECTIONS` corrections.
    """
    rounds = (answered["round"].fillna(1).astype(int) if "round" in answered.columns
              else pd.Series(1, index=answered.index))
    latest = int(rounds.max())
    chances_now = wrong_probability.get(latest)
    if chances_now is None:
        return None
    tasks = answered[rounds == latest]
    chances = chances_now.reindex(tasks["id"]).to_numpy(dtype=np.float64)
    known = np.isfinite(chances)
    if not known.any() or chances[known].sum() <= 0:
        return None
    hits = tasks["corrected"].to_numpy(dtype=float)[known].sum()
    if hits < MIN_CORRECTIONS:
        return None
    ratio = float(hits / chances[known].sum())
    left = chances_now[~chances_now.index.isin(reviewed)].to_numpy(dtype=np.float64)
    return ratio * float(np.nansum(left)), ratio


def control_cohorts(tasks: pd.DataFrame, n_train: int) -> dict | None:
    """The answered random controls by the round that drew them, pooled.

    tasks: the review tasks (id, source, round) with ``corrected`` (NaN: not answered yet).
    A round's controls stand for the rows nobody had been sent before it and its queue left
    out (less the controls themselves); every correction found since among those rows (the
    tasks of later rounds) has left them. Per cohort r: ``rows`` = n_train - rows sent before
    r - r's flagged tasks - r's answered controls, ``found_since`` = corrections among the
    answered tasks of rounds after r, and the tasks not answered yet that lie outside those
    rows (flagged ones of rounds up to r, controls of rounds before r). Each is averaged over
    the cohorts weighted by their answered controls, so that ``rows`` x the pooled rate -
    ``found_since`` estimates the wrong labels left in the rows never sent plus the waiting
    tasks inside them. A row sent twice counts from its first round. None without answered
    controls."""
    first = tasks.groupby("id")["round"].transform("min")
    tasks = tasks.assign(first=first.to_numpy())
    answered = tasks["corrected"].notna()
    control = tasks["source"] == "random_control"
    cohorts = []
    for r in sorted(tasks.loc[control & answered, "round"].unique()):
        mine = control & answered & (tasks["round"] == r)
        sent_before = tasks.loc[tasks["first"] < r, "id"].nunique()
        flagged_r = tasks.loc[(tasks["first"] == r) & (tasks["round"] == r)
                              & ~control, "id"].nunique()
        later = answered & (tasks["first"] > r)
        waiting = ~answered & (((tasks["round"] <= r) & ~control)
                               | ((tasks["round"] < r) & control))
        cohorts.append({"round": int(r), "controls": int(mine.sum()),
                        "rows": max(0, n_train - sent_before - flagged_r - int(mine.sum())),
                        "found_since": float(tasks.loc[later, "corrected"].astype(bool).sum()),
                        "waiting_flagged": float((waiting & ~control).sum()),
                        "waiting_controls": float((waiting & control).sum())})
    if not cohorts:
        return None
    frame = pd.DataFrame(cohorts)
    weight = frame["controls"] / frame["controls"].sum()
    pooled = {key: float(weight @ frame[key]) for key in
              ("rows", "found_since", "waiting_flagged", "waiting_controls")}
    return {**pooled, "cohorts": cohorts}


def estimate_remaining(manifest: pd.DataFrame, corrections: pd.DataFrame, n_train: int, *,
                       next_batch: int, stop_rate: float, model_wrong: float | None = None,
                       wrong_probability: Mapping[int, pd.Series] | None = None) -> dict:
    """manifest: what was pushed (id, source, rank, round). corrections: the answers (id,
    action, old_label, new_label). n_train: training rows. model_wrong: the wrong labels the
    score's noise model estimates in the whole training set, if known. wrong_probability:
    round -> the chance that each training row's label is wrong (id-indexed; the suspects'
    ``wrong_probability``) under the scoring that picked that round, where known. Returns the
    estimates and the advice."""
    sent = manifest[manifest["source"].isin(("flagged", "random_control"))]
    # only the review tasks' answers: an acquired pool row or an eval audit is no training
    # label found wrong (counting them made the report's total disagree with the burn-down)
    answered = corrections[corrections["action"].isin(ANSWERED)
                           & corrections["id"].isin(set(sent["id"]))]
    answered = answered.assign(corrected=corrected(answered))
    if "rank" not in sent.columns:  # a manifest without ranks: its order is the queue's
        sent = sent.assign(rank=np.arange(1, len(sent) + 1))
    rounds = sent["round"].fillna(1) if "round" in sent.columns else 1  # none: all round 1
    sent = sent.assign(round=pd.Series(rounds, index=sent.index).astype(int))
    merged = sent.merge(answered[["id", "corrected"]], on="id", how="left")
    controls = merged[(merged["source"] == "random_control") & merged["corrected"].notna()]
    flagged = merged[(merged["source"] == "flagged") & merged["corrected"].notna()]
    pending = int(((merged["source"] == "flagged") & merged["corrected"].isna()).sum())
    if not len(controls) or not len(flagged):
        return {"available": False,
                "why": "needs answered random controls and answered flagged tasks"}
    n_c, k_c = len(controls), int(controls["corrected"].sum())
    n_f, k_f = len(flagged), int(flagged["corrected"].sum())
    p_c, (c_lo, c_hi) = k_c / n_c, rate_interval(k_c, n_c)
    p_f, (f_lo, f_hi) = k_f / n_f, rate_interval(k_f, n_f)
    reviewed = len(answered)
    rest = max(0, n_train - reviewed - pending)
    cohort = control_cohorts(merged, n_train)
    rows, since = max(cohort["rows"], 1.0), cohort["found_since"]
    # the rows never sent, now: the controls' rate less what later rounds found among them
    left_rate = [max(0.0, c - since / rows) for c in (c_lo, p_c, c_hi)]
    remaining = [rows * c + cohort["waiting_flagged"] * f + cohort["waiting_controls"] * c
                 for c, f in zip(left_rate, (f_lo, p_f, f_hi), strict=True)]
    found = int(answered["corrected"].sum())
    model_remaining = None if model_wrong is None else max(0.0, float(model_wrong) - found)
    calibrated = None
    if wrong_probability is not None:
        tasks = merged[merged["corrected"].notna()]
        calibrated = calibrated_count(
            tasks.assign(corrected=tasks["corrected"].astype(bool)), wrong_probability,
            reviewed=set(corrections.loc[corrections["action"].isin(ANSWERED), "id"]))
    point, point_from = remaining[1], "controls"
    if model_remaining is not None:
        point, point_from = model_remaining, "noise model"
    # the smaller of the two: the noise model counts the model's own errors too, and the
    # calibrated chances of thousands of rows the model is sure of can add up to more than the
    # wrong labels left (the demo's 3302 rows after round 1: 144 for 23)
    if calibrated is not None and (model_remaining is None or calibrated[0] <= point):
        point, point_from = calibrated[0], "calibrated score"
    # a sharper point where the controls' interval allows it; where it does not, the point is
    # the interval's bound, and the report says so (not only the estimate it overruled)
    remaining[1] = min(max(point, remaining[0]), remaining[2])
    point_bound = None
    if point_from != "controls" and remaining[1] != point:
        point_bound = "lower" if point < remaining[0] else "upper"
    # no more wrong labels than rows that could hold them: the rows nobody answered
    remaining = [min(r, float(rest + pending)) for r in remaining]

    # the next batch draws from the rows never sent: it is no larger than they are
    batch = max(1, min(int(next_batch), rest))
    # the queue in the order it was sent: round by round, each round by its own ranking
    # (`relabeler next` ranks every round afresh, so ranks alone would mix the rounds' tails)
    ordered = flagged.sort_values(["round", "rank"], kind="stable")
    hits = ordered["corrected"].to_numpy(dtype=float)
    ranks = np.arange(1, len(ordered) + 1, dtype=float)
    # the latest rate: the tail of the latest round's answered tasks alone (a window reaching
    # back into the round before took in its tail, ranked on older scores: the demo's last
    # 200 held 10 of round 1's, all corrected, and said "continue" on a round that found 2 in
    # its last 100)
    latest = ordered["round"].to_numpy() == ordered["round"].max()
    window = hits[latest][-batch:]
    t_hi = rate_interval(int(window.sum()), len(window))[1]
    ceiling = float(window.mean())
    floor_lo, floor, floor_hi = left_rate
    if ceiling >= floor and hits.sum() > 0:
        # the ranking still beats random picks at its tail: extrapolate its decay (a queue
        # whose every task was corrected shows none yet: its tail is its window's rate)
        tail, upper = ceiling, t_hi
        if hits.sum() < len(hits):
            scale = max(float(ranks[-1]), 1.0)
            following = np.arange(ranks[-1] + 1, ranks[-1] + batch + 1)[:, None] / scale
            tail, decay_hi = _decay(ranks / scale, hits, following)
            # the decay's own 95% upper bound where it is the tighter one: the window counts
            # all its tasks alike, though the decay shows its end finds far fewer (the demo's
            # last round: 29 of 190, 2 in its last 100, bounded at 21%)
            upper = min(t_hi, decay_hi)
        next_rate = [floor_lo, min(max(tail, floor), ceiling), max(upper, min(tail, ceiling))]
    else:  # exhausted, or never better than random: the next batch is a random one
        next_rate = [floor_lo, floor, floor_hi]
    # the next batch cannot find more than is left
    corrections = [min(batch * r, left) for r, left in zip(next_rate, remaining, strict=True)]
    # where the queue's own rate promises more than the point leaves, the two disagree: a model
    # that learnt the wrong labels counts none of them (sms-spam, spam flipped to ham: 14-39
    # left by the counts after a round whose tasks were 84-100% wrong, 61-64 in truth), and a
    # queue about to run dry cannot show it (sms-spam, uniform: 72-80 promised, 29 left).
    # Holding the point at either one lost on the replays (docs/benchmarks.md, "Controls by
    # cohort"): the report says so and points to the interval
    promised = batch * next_rate[1]
    # does the queue beat random picks? one-sided Fisher exact test on the two rates
    test = queue_against_controls(k_f, n_f, k_c, n_c)
    advice = "stop" if rest == 0 or corrections[2] / batch < stop_rate else "continue"
    return {
        "available": True,
        "controls": {"reviewed": n_c, "corrected": k_c, "rate": p_c, "ci95": [c_lo, c_hi],
                     "found_since": since, "rate_left": left_rate[1],
                     "cohorts": cohort["cohorts"]},
        "flagged": {"reviewed": n_f, "corrected": k_f, "rate": p_f, "ci95": [f_lo, f_hi],
                    "pending": pending},
        "unreviewed_rows": rest + pending,
        "remaining": remaining,
        "remaining_model": model_remaining,
        "remaining_calibrated": None if calibrated is None else calibrated[0],
        "calibration": None if calibrated is None else calibrated[1],
        "point_from": point_from,
        # "lower" / "upper": point_from's estimate (point_estimate) lay outside the controls'
        # interval, and the point is that bound
        "point_bound": point_bound,
        "point_estimate": point,
        "next_batch": {"size": batch, "rate": [c / batch for c in corrections],
                       "corrections": corrections, "at_queue_rate": promised},
        "point_below_queue": bool(promised > remaining[1] + 0.5),
        "queue_beats_random": test["verdict"] == "beats",
        "queue_vs_random": test["verdict"],
        "queue_vs_random_p": test["p_value"],
        "stop_rate": stop_rate,
        "advice": advice,
        "window": {"tasks": int(len(window)), "corrected": int(window.sum())},
    }


def _decay(x: np.ndarray, hits: np.ndarray, following: np.ndarray) -> tuple[float, float]:
    """The mean chance, over the ``following`` positions, that a task is corrected, by a
    logistic fit of the corrections on the queue's position (``x``, scaled), and its 95% upper
    bound: the delta method on the fit's coefficients (their covariance the inverse of the
    penalised Fisher information; bootstrap refits gave the same bound at 200 times the cost)."""
    decay = LogisticRegression().fit(x[:, None], hits.astype(int))
    design = np.column_stack([np.ones(len(x)), x])
    fitted = decay.predict_proba(x[:, None])[:, 1]
    # sklearn's L2 penalty (1 / C) is on the slope alone
    information = (design * (fitted * (1 - fitted))[:, None]).T @ design + np.diag(
        [0.0, 1.0 / decay.C])
    ahead = decay.predict_proba(following)[:, 1]
    gradient = np.column_stack([np.ones(len(following)), following[:, 0]]) \
        * (ahead * (1 - ahead))[:, None]
    slope = gradient.mean(axis=0)
    spread = float(np.sqrt(max(slope @ np.linalg.pinv(information) @ slope, 0.0)))
    tail = float(ahead.mean())
    return tail, min(1.0, tail + 1.96 * spread)


#: how the report names where the point estimate came from
POINT_SOURCES = {
    "calibrated score": "; the point: the score's chances that labels are wrong, calibrated "
                        "on the latest round's answers",
    "noise model": "; the point: the noise model's count less the corrections found",
    "controls": "; the point: the random controls' rate",
}
#: the estimates the controls' interval can overrule, as :func:`advice_text` names them
POINT_ESTIMATES = {"calibrated score": "the count from the score's calibrated chances",
                   "noise model": "the noise model's count less the corrections found"}


def advice_text(left: dict) -> str:
    """The report's plain-words reading of :func:`estimate_remaining`."""
    if not left.get("available"):
        return f"Not estimated: it {left.get('why', 'needs answers')}."
    low, mid, high = left["remaining"]
    nxt = left["next_batch"]
    source = POINT_SOURCES.get(left.get("point_from"), "")
    bound = left.get("point_bound")
    if bound:
        source = (f"; the point: the random controls' {bound} bound, as "
                  f"{POINT_ESTIMATES[left['point_from']]} ({left['point_estimate']:.0f}) is "
                  f"{'below' if bound == 'lower' else 'above'} their interval")
    lines = [f"About {mid:.0f} wrong labels remain in the {left['unreviewed_rows']} unreviewed "
             f"training rows (95% interval {low:.0f} to {high:.0f}{source}).",
             f"The next {nxt['size']} tasks would correct about {nxt['corrections'][1]:.0f} "
             f"(95% interval {nxt['corrections'][0]:.0f} to {nxt['corrections'][2]:.0f}), a "
             f"rate of {100 * nxt['rate'][1]:.1f}%."]
    controls = left["controls"]
    if controls.get("found_since"):
        lines.append(
            f"The random controls were corrected at {100 * controls['rate']:.1f}% when they "
            f"were drawn; the wrong labels later rounds found among the rows they stand for "
            f"(about {controls['found_since']:.0f}: each round's controls' rows count their "
            f"own, averaged over the rounds by their answered controls) leave those rows at "
            f"about {100 * controls['rate_left']:.1f}%.")
    if left.get("point_below_queue"):
        lines.append(
            f"At the reviewed queue's latest rate the next {nxt['size']} tasks would correct "
            f"about {nxt['at_queue_rate']:.0f}, more than the point says is left: the two "
            "disagree (a model that learnt wrong labels does not count them; a queue about to "
            "run dry does not show it), so read the interval, not the point.")
    verdict = left.get("queue_vs_random", "beats" if left["queue_beats_random"] else
                       "no better")
    if verdict == "no better":
        lines.append(
            "The flagged tasks were not corrected significantly more often than the random "
            f"controls (one-sided Fisher test p = {left['queue_vs_random_p']:.2f}): on this "
            "data the ranking is not shown to beat random picks. Full fine-tuning on a GPU "
            "(train.mode = full), a stronger model or more eval data would help; until then "
            "random review is as good as the queue.")
    elif verdict == "undecided":
        lines.append(
            f"The {left['controls']['reviewed']} random controls are too few to tell whether "
            "the ranking beats random picks: even had none of them needed a change, the "
            "one-sided Fisher test could not show it (p = "
            f"{left['queue_vs_random_p']:.2f} now). More controls (studio.control_share) "
            "would tell.")
    stop = left["stop_rate"]
    if left["advice"] == "stop":
        lines.append(f"Stop: the next batch's correction rate is below loop.stop_rate = "
                     f"{100 * stop:.1f}% (its 95% upper bound, {100 * nxt['rate'][2]:.1f}%).")
    elif nxt["rate"][1] < stop:
        window = left.get("window") or {}
        lines.append(
            f"Continue, on the upper bound alone: the expected rate, {100 * nxt['rate'][1]:.1f}"
            f"%, is below loop.stop_rate = {100 * stop:.1f}%, but its 95% upper bound, "
            f"{100 * nxt['rate'][2]:.1f}%, is not"
            + (f" ({window['corrected']} corrected of the latest round's last "
               f"{window['tasks']} tasks)" if window else "")
            + ". Answers that change right labels (an annotator's mistakes) keep a queue's rate "
              "above zero after the wrong labels run out: if the latest corrections look like "
              "such mistakes, stopping is sound.")
    else:
        lines.append(f"Continue: the next batch's expected rate, {100 * nxt['rate'][1]:.1f}%, "
                     f"is above loop.stop_rate = {100 * stop:.1f}%.")
    return " ".join(lines)


def true_remaining(train: pd.DataFrame, corrections: pd.DataFrame) -> int | None:
    """Wrong labels left in the unreviewed rows, where a simulation knows the truth."""
    if "flipped" not in train.columns:
        return None
    answered = set(corrections.loc[corrections["action"].isin(ANSWERED), "id"])
    left = train[~train["id"].isin(answered)]
    return int(np.sum(left["flipped"].to_numpy(dtype=bool)))
