"""The remaining-errors estimate, re-measured on finished ``simulate --rounds`` runs.

``simulation.json`` keeps each round's estimate and the truth, not what the estimate was made
from. :func:`replay` plays a finished run's rounds again (head refits on the cached encoder
states, no extract or train) and keeps, per round, the manifest and answers the estimate saw
and, per scoring, each training row's suspect score and the score's probability that its label
is wrong. :func:`estimates` then runs :func:`relabeler.report.remaining.estimate_remaining` on every
(setting, seed, round) case in seconds, beside the estimate the run's own code made (the
noise model's count; "before"). Round 1 reproduces the stored estimates exactly; the replay
records, per round, whether it did.

    python benchmarks/remaining.py --runs /tmp/remaining/runs --cache /tmp/remaining/replay

``--runs`` holds the run folders of ``benchmarks/gain.py --rounds 4`` (each ``<setting>-seed<S>-
<variant>/`` with ``run/`` and ``rounds4-refit/simulation.json``); replays are cached under
``--cache`` and reused.

``--redraw-controls`` asks what more random controls (``studio.control_share``) would buy:
:func:`redraw_controls` draws them again from the known truth at several shares and
:func:`controls_needed` works out how many a point within 20% of the truth would take.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import pickle
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

log = logging.getLogger("remaining")

NAME = re.compile(r"(?P<dataset>[a-z-]+?)-(?P<kind>uniform|asymmetric)-(?P<rate>\d+)-seed"
                  r"(?P<seed>\d+)(?:-n(?P<sample>\d+))?(?:-b(?P<batch>\d+))?(?:-f(?P<folds>\d+))?$")


def run_config(folder: Path, pooling: str):
    """The run configuration ``benchmarks/gain.py`` made the run folder with."""
    from relabeler.config import RunConfig
    from relabeler.jobs.simulate import simulation_config

    m = NAME.match(folder.name)
    if m is None:
        raise ValueError(f"folder: {folder.name!r} is not a gain.py run folder name")
    base = RunConfig()
    base.model.pooling = pooling
    if m["batch"]:
        base.train.batch_size = int(m["batch"])
    base.score.min_agreement = 0.0
    return simulation_config(data=m["dataset"], out=folder, noise=int(m["rate"]) / 100,
                             noise_kind=m["kind"], seed=int(m["seed"]), mode="head",
                             folds=int(m["folds"] or 5), sample=int(m["sample"] or 0),
                             base=base)


def _scoring(view, cfg) -> dict:
    """One scoring of the training rows: suspect score, the probability that the label is
    wrong under the score's noise-aware posterior, and the noise model's wrong share."""
    from relabeler.jobs.score import noise_summary, suspect_signals
    from relabeler.selectors import rank
    from relabeler.selectors.rank import wrong_probability

    signals, distributions, details = suspect_signals(view, cfg)
    posterior = rank.ensemble_posterior(distributions)
    share = (noise_summary(details["noise"], view.classes)["estimated_wrong_share"]
             if details["noise"] is not None else None)
    return {"suspect": rank.combine(signals).astype(np.float64),
            "p_wrong": wrong_probability(posterior, view.labels).astype(np.float64),
            "noise_share": share, "labels": np.asarray(view.labels).copy()}


def replay(folder: Path, pooling: str, *, upto: int = 4) -> dict:
    """Play the run's first ``upto`` rounds (of 4) again and keep what each round's estimate
    was made from."""
    from relabeler import artifacts
    from relabeler.data import read_split
    from relabeler.jobs import simulate_rounds as sr
    from relabeler.jobs.score import load_train_view
    from relabeler.jobs.simulate import _refitter
    from relabeler.store import RunStore

    stored = json.loads((folder / "rounds4-refit" / "simulation.json").read_text())
    config = run_config(folder, pooling)
    store = RunStore(config.run_dir)
    view = load_train_view(store)
    classes = view.classes
    index = {c: i for i, c in enumerate(classes)}
    train = read_split(store.read_table(artifacts.TRAIN.path)).set_index("id").loc[view.ids]
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    suspects = store.read_table(artifacts.SUSPECTS.path).to_pandas().set_index("id")
    suspect = suspects["suspect_score"].reindex(view.ids).to_numpy(dtype=np.float64)
    from relabeler.report.remaining import stored_chances

    chances = stored_chances(store)
    texts = train["text"].tolist() + evaluation["text"].tolist()
    refit = _refitter(store, config, texts, classes, False)
    n = len(train)
    truth = train["true_label"].map(index).to_numpy(dtype=np.int64)
    share = (store.read_json(artifacts.SUMMARY.path).get("noise") or {}).get(
        "estimated_wrong_share")
    cfg = config.score.model_copy(update={"min_agreement": 0.0})
    scorings = [_scoring(view, cfg)]
    scorings[0]["suspect"] = suspect  # the queue the run picked from

    class Recording(sr.QueueRescorer):
        def __call__(self, labels, model_probs=None):
            v = dataclasses.replace(self.view, labels=np.asarray(labels, dtype=np.int64))
            v = dataclasses.replace(v, probs=model_probs.astype(np.float32),
                                    pred=model_probs.argmax(axis=1).astype(np.int64),
                                    oof_probs=self._out_of_fold(v.labels))
            scorings.append(_scoring(v, self.cfg))
            # no chances for the play itself: its estimates stay the run's own (the noise
            # model's count), the "before" of the measurement
            return scorings[-1]["suspect"], None

    rounds: list[dict] = []
    real_estimate = sr.estimate_remaining

    def recording_estimate(manifest, corrections, n_train, **options):
        left = real_estimate(manifest, corrections, n_train, **options)
        rounds.append({"manifest": copy.deepcopy(manifest), "corrections": corrections.copy(),
                       "next_batch": options["next_batch"], "remaining": left.get("remaining")})
        return left

    sr.estimate_remaining = recording_estimate
    try:
        rescorer = Recording(view, config.score, mode="refit", refit=refit,
                             folds=config.train.folds, seed=config.data.seed)
        total = max(stored["gain"]["budget_samples"])
        sizes = sr.round_sizes(total, 4)
        play = sr.play_rounds(
            refit, rescorer, ids=view.ids, noisy=view.labels, truth=truth, suspect=suspect,
            sizes=sizes[:upto], test_rows=np.arange(n, n + len(evaluation)),
            # the first rounds of the stored four-round play, with its controls
            controls=sr.round_controls(sizes, config.studio.control_share)[:upto],
            test_labels=evaluation["label"].map(index).to_numpy(dtype=np.int64),
            control_share=config.studio.control_share,
            model_wrong=None if share is None else share * n,
            # round 1 calibrates on the first queue's chances, as the simulation passed them
            wrong_probability=(None if chances is None
                               else chances.reindex(view.ids).to_numpy(np.float64)),
            stop_rate=config.loop.stop_rate, seed=config.data.seed)
    finally:
        sr.estimate_remaining = real_estimate
    stored_rounds = stored["rounds"]["estimated_remaining"][:upto]
    same = [np.allclose(a, b) for a, b in zip(play.estimated_remaining, stored_rounds,
                                               strict=True)]
    return {"name": folder.name, "n": n, "model_wrong": None if share is None else share * n,
            "ids": np.asarray(view.ids), "flipped": view.labels != truth, "truth": truth,
            "scorings": scorings, "rounds": rounds, "true_remaining": play.true_remaining,
            "stored": stored["rounds"], "reproduced": same}


def cached_replay(folder: Path, cache: Path, pooling: str, *, upto: int = 4) -> dict:
    path = cache / f"{folder.name}-upto{upto}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    started = time.perf_counter()
    result = replay(folder, pooling, upto=upto)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(result))
    log.info("%s: replayed in %.0f s, stored estimates reproduced: %s", folder.name,
             time.perf_counter() - started, result["reproduced"])
    return result


def as_sent(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest as the product keeps it. Replays cached before the per-cohort estimate
    recorded a control that a later queue reached as flagged, at that round's last rank (the
    simulation did so; ``relabeler next`` never could): such an entry shares its rank with the
    later round's last flagged task and carries an earlier round. It is a control again here."""
    manifest = pd.DataFrame(manifest).copy()
    flagged = manifest[manifest["source"] == "flagged"]
    shared = flagged[flagged.duplicated("rank", keep=False)]
    for _, group in shared.groupby("rank"):
        moved = group.index[group["round"] < group["round"].max()]
        manifest.loc[moved, "source"] = "random_control"
        manifest.loc[moved, "rank"] = np.nan
    return manifest


def replayed_estimate(replayed: dict, r: int) -> dict:
    """:func:`estimate_remaining` on replayed round ``r`` (0-based) as the product sees it:
    its manifest as sent, its answers, and the chances of the scorings that picked rounds
    1..r+1 (round q + 1 was picked by scoring q)."""
    from relabeler.report.remaining import estimate_remaining

    record = replayed["rounds"][r]
    chances = {q + 1: pd.Series(scoring["p_wrong"], index=replayed["ids"])
               for q, scoring in enumerate(replayed["scorings"][:r + 1])}
    return estimate_remaining(as_sent(record["manifest"]), record["corrections"],
                              replayed["n"], next_batch=record["next_batch"], stop_rate=0.05,
                              model_wrong=replayed["model_wrong"], wrong_probability=chances)


def estimates(replayed: dict) -> list[dict]:
    """Per round: the truth, the estimate the run made (``before``: the noise model's count
    less the corrections found) and :func:`estimate_remaining`'s now (``after``), each
    [low, point, high]."""
    rows = []
    for r, record in enumerate(replayed["rounds"]):
        left = replayed_estimate(replayed, r)
        rows.append({"run": replayed["name"], "round": r + 1,
                     "truth": replayed["true_remaining"][r], "before": record["remaining"],
                     "after": left["remaining"] if left["available"] else None})
    return rows


#: the control shares :func:`redraw_controls` tries (of a round's tasks; 0.05 is the default)
SHARES = (0.05, 0.1, 0.2, 0.5, 1.0)


def _population(replayed: dict, r: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Round ``r`` (0-based): the rows nobody had answered after it, whether each label is
    wrong, the chances under the scoring that picked the round, and that round's ratio of
    corrections to chances on its flagged tasks (the calibration the point uses)."""
    from relabeler.report.remaining import ANSWERED, corrected

    record = replayed["rounds"][r]
    answers = record["corrections"][record["corrections"]["action"].isin(ANSWERED)]
    ids = pd.Index(replayed["ids"])
    unanswered = ~ids.isin(set(answers["id"]))
    chances = replayed["scorings"][r]["p_wrong"]
    manifest = record["manifest"]
    # as estimate_remaining calibrates: every answered task of the round
    tasks = answers[answers["id"].isin(set(manifest.loc[manifest["round"] == r + 1, "id"]))]
    ratio = corrected(tasks).sum() / chances[ids.get_indexer(tasks["id"])].sum()
    rows = np.flatnonzero(unanswered)
    return replayed["flipped"][rows], chances[rows], float(ratio)


def redraw_controls(replayed: dict, *, shares=SHARES, draws: int = 200, seed: int = 0
                    ) -> list[dict]:
    """Per round, control share and draw: the wrong labels left and three points when
    ``share`` x the round's tasks controls a round (so r x that by round r) are drawn afresh
    from the rows nobody answered, each [low, point, high] in the controls' interval: the
    controls' rate, the ratio estimator (the chances' sum x the controls' corrections over
    their chances) and the queue-calibrated chances (the point as it is, without the noise
    model's count). Every control is an extra label: the queue's tasks stay as replayed."""
    from relabeler.report.stats import rate_interval

    rng = np.random.default_rng(seed)
    out = []
    for r, record in enumerate(replayed["rounds"]):
        wrong, chances, ratio = _population(replayed, r)
        manifest = record["manifest"]
        size = int((manifest["round"] == r + 1).sum())
        for share in shares:
            k = min((r + 1) * max(1, round(share * size)), len(wrong) - 1)
            for _ in range(draws):
                drawn = np.zeros(len(wrong), dtype=bool)
                drawn[rng.choice(len(wrong), size=k, replace=False)] = True
                hits, rest = wrong[drawn].sum(), ~drawn
                low, high = (len(wrong) - k) * np.asarray(rate_interval(int(hits), k))
                points = {"controls": (len(wrong) - k) * hits / k,
                          "ratio": chances[rest].sum() * hits / max(chances[drawn].sum(), 1e-9),
                          "calibrated": ratio * chances[rest].sum()}
                out.append({"run": replayed["name"], "round": r + 1, "share": share,
                            "n_controls": k, "truth": int(wrong[rest].sum()),
                            **{name: [low, min(max(p, low), high), high]
                               for name, p in points.items()}})
    return out


def controls_needed(replayed: dict, *, within: float = 0.2, chance: float = 0.9) -> list[dict]:
    """Per round: the controls (drawn from the rows nobody answered) that put the point
    within ``within`` of the truth with probability ``chance``, for the controls' rate and for
    the ratio estimator on the chances; simple random sampling's normal approximation with
    the finite-population correction, from the known truth."""
    z = stats.norm.ppf(0.5 + chance / 2)
    out = []
    for r in range(len(replayed["rounds"])):
        wrong, chances, _ = _population(replayed, r)
        n, total = len(wrong), wrong.sum()
        if not total:
            continue
        need = {}
        for name, residual in (("controls", wrong - wrong.mean()),
                               ("ratio", wrong - total / chances.sum() * chances)):
            a = (z * n * residual.std(ddof=1) / (within * total)) ** 2
            need[name] = a / (1 + a / n)
        out.append({"run": replayed["name"], "round": r + 1, "rows": n, "truth": int(total),
                    **need})
    return out


def redraw_tables(rows: list[dict], needed: list[dict]) -> str:
    """The markdown of ``--redraw-controls``: per share, the controls a round and the share of
    cases within 20% (all rounds; round 1) and covered, then the controls needed."""
    frame = pd.DataFrame([r for r in rows if r["truth"] > 0])
    # one interval for the three points: the controls' own
    frame["covers"] = [lo <= t <= hi for (lo, _, hi), t in
                       zip(frame["controls"], frame["truth"], strict=True)]
    for name in ("controls", "ratio", "calibrated"):
        point = frame[name].map(lambda x: x[1])
        frame[name] = (point - frame["truth"]).abs() / frame["truth"] <= 0.2
    lines = ["| control share | controls a round (median) | within 20%: controls' rate | "
             "ratio estimator | calibrated chances | round 1: ratio estimator | "
             "interval covers |", "|---|---|---|---|---|---|---|"]
    for share, group in frame.groupby("share"):
        first = group[group["round"] == 1]
        lines.append(f"| {share:g} | {np.median(group['n_controls'] / group['round']):.0f} | "
                     f"{group['controls'].mean():.0%} | {group['ratio'].mean():.0%} | "
                     f"{group['calibrated'].mean():.0%} | {first['ratio'].mean():.0%} | "
                     f"{group['covers'].mean():.0%} |")
    need = pd.DataFrame(needed)
    need["setting"] = need["run"].str.replace(r"-seed\d+.*", "", regex=True)
    lines += ["", "| setting | rows unanswered | wrong left | controls needed: controls' rate "
              "| ratio estimator |", "|---|---|---|---|---|"]
    # medians over the seeds, rounds 1 / 2 / 3 / 4
    for setting, group in need.groupby("setting"):
        per_round = group.groupby("round")[["rows", "truth", "controls", "ratio"]].median()
        cells = [" / ".join(f"{v:.0f}" for v in per_round[c]) for c in per_round.columns]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: the chance bands of the per-band ratios, and their prior's weight in corrections (the
#: calibration's own minimum, ``MIN_CORRECTIONS``): chosen before measuring, not fitted
BANDS = (0.0, 0.05, 0.2, 0.5, 1.01)
PRIOR_CORRECTIONS = 10.0


#: the chances below which a row counts as agreeing with its label in
#: :func:`eval_referenced_total`; 0.5 was chosen first (the model prefers the given label to
#: all the others together), the other two show how much the count depends on it
AGREEING = (0.3, 0.5, 0.7)
#: shares of the eval labels flipped (uniformly to another class) to see what the
#: eval-referenced total (at 0.5) makes of an eval set that is not clean
EVAL_FLIPS = (0.05, 0.1, 0.2)


def eval_referenced_total(folder: Path, *, at_most: float = 0.5, eval_flips: float = 0.0,
                          seed: int = 0) -> float:
    """The wrong labels in the training rows by Storey's estimate of the null share, with the
    eval rows as clean labels (true in the simulation, where only training labels are
    flipped): 1 - the share of training rows whose out-of-fold chance that the label is
    wrong is at most ``at_most`` over the same share on the eval rows (their model's), with
    ``eval_flips`` of the eval labels flipped at random first."""
    from relabeler import artifacts
    from relabeler.store import RunStore

    store = RunStore(folder / "run")
    classes = {c: i for i, c in enumerate(store.read_json(artifacts.LABELS.path))}

    def agreeing(table, labels) -> np.ndarray:
        probs = np.stack(table["probs"].to_numpy())
        return probs[np.arange(len(probs)), labels] >= 1.0 - at_most

    train = store.read_table(artifacts.TRAIN.path).to_pandas()
    oof = store.read_table(artifacts.OOF.path).to_pandas().merge(train[["id", "label"]], on="id")
    held = store.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas()
    given = held["label"].map(classes).to_numpy().copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(given)) < eval_flips
    given[flip] = (given[flip] + rng.integers(1, len(classes), flip.sum())) % len(classes)
    share = agreeing(oof, oof["label"].map(classes)).mean() / agreeing(held, given).mean()
    return len(oof) * (1.0 - share)


def variants(replayed: dict, folder: Path) -> list[dict]:
    """Per round: the truth, the controls' interval, and the points of the estimators tried on
    2026-12-05 (docs/benchmarks.md): the calibrated count and the noise model's count as the
    point uses them, the round's ratio applied to the chances of the scoring after the round
    (the next round's), a ratio per chance band shrunk toward the round's, and the
    eval-referenced total less the corrections found in place of the noise model's count."""
    from relabeler.report.remaining import ANSWERED, corrected

    ids = pd.Index(replayed["ids"])
    totals = {f"{at_most:g}": eval_referenced_total(folder, at_most=at_most)
              for at_most in AGREEING}
    totals |= {f"0.5, eval flips {flips:g}": eval_referenced_total(folder, eval_flips=flips)
               for flips in EVAL_FLIPS}
    rows = []
    for r, record in enumerate(replayed["rounds"]):
        left = replayed_estimate(replayed, r)
        answers = record["corrections"][record["corrections"]["action"].isin(ANSWERED)]
        unanswered = ~ids.isin(set(answers["id"]))
        calibration = left["calibration"]
        after = replayed["scorings"][r + 1] if r + 1 < len(replayed["scorings"]) else None
        found = float(corrected(answers).sum())
        point = {"calibrated": left["remaining_calibrated"], "noise model": left["remaining_model"]}
        # a total below the corrections already found is refuted by the answers
        point |= {f"eval-referenced {name}": (total - found if total > found
                                               else left["remaining_model"])
                  for name, total in totals.items()}
        point["next scoring"] = (None if calibration is None or after is None
                                 else calibration * after["p_wrong"][unanswered].sum())
        if calibration is not None:
            # the round's tasks and the controls still standing, all under the round's scoring
            manifest = record["manifest"]
            used = manifest[(manifest["round"] == r + 1) | (manifest["source"] == "random_control")]
            used = answers[answers["id"].isin(set(used["id"]))]
            x = pd.Series(replayed["scorings"][r]["p_wrong"], index=ids)  # the round's scoring
            band = np.digitize(x.loc[used["id"]], BANDS) - 1
            band_left = np.digitize(x[unanswered], BANDS) - 1
            hits = corrected(used).to_numpy(dtype=float)
            point["bands"] = sum(
                (hits[band == b].sum() + PRIOR_CORRECTIONS)
                / (x.loc[used["id"]].to_numpy()[band == b].sum() + PRIOR_CORRECTIONS / calibration)
                * x[unanswered].to_numpy()[band_left == b].sum() for b in range(len(BANDS) - 1))
        rows.append({"run": replayed["name"], "round": r + 1,
                     "truth": replayed["true_remaining"][r], "interval": left["remaining"],
                     **point})
    return rows


def variants_table(rows: list[dict]) -> str:
    """The markdown of ``--variants``: each rule's share of cases within 20% of the truth
    (all, round 1 and per setting) and its median error. A rule "in place of X" keeps the
    point's rule (the calibrated count where it exists and is the smaller, else the noise
    model's count; inside the controls' interval) with X swapped; the inverse-variance
    combination weights the log counts by their mean squared log error on the other two
    data sets (leave one data set out)."""
    frame = pd.DataFrame([r for r in rows if r["truth"] > 0]).reset_index(drop=True)
    frame["setting"] = frame["run"].str.replace(r"-seed\d+.*", "", regex=True)
    frame["dataset"] = frame["run"].str.split("-").str[0]
    low = np.array([x[0] for x in frame["interval"]])
    high = np.array([x[2] for x in frame["interval"]])

    def rule(calibrated: pd.Series, model: pd.Series) -> np.ndarray:
        take = calibrated.notna() & (calibrated.fillna(np.inf) <= model)
        return np.where(take, calibrated.fillna(0), model).astype(float)

    log_error = {name: np.log(np.maximum(frame[name].astype(float), 1) / frame["truth"])
                 for name in ("calibrated", "noise model")}
    combined = np.empty(len(frame))
    for dataset in frame["dataset"].unique():
        mine = (frame["dataset"] == dataset).to_numpy()
        mse = {name: np.nanmean(e[~mine] ** 2) for name, e in log_error.items()}
        weight = (1 / mse["calibrated"]) / (1 / mse["calibrated"] + 1 / mse["noise model"])
        logs = {name: np.log(np.maximum(frame[name].astype(float), 1)) for name in mse}
        both = np.exp(weight * logs["calibrated"] + (1 - weight) * logs["noise model"])
        combined[mine] = np.where(frame["calibrated"].notna(), both,
                                  frame["noise model"])[mine]
    model = frame["noise model"].astype(float)
    points = {
        "the point now (calibrated, else the noise model)": rule(frame["calibrated"], model),
        "next round's scoring, in place of the calibrated count":
            rule(frame["next scoring"].fillna(frame["calibrated"]), model),
        "inverse-variance combination (leave one data set out)": combined,
        "ratios per chance band, in place of the calibrated count":
            rule(frame["bands"], model),
    }
    for name in [f"{at_most:g}" for at_most in AGREEING] + [
            f"0.5, eval flips {flips:g}" for flips in EVAL_FLIPS]:
        points[f"eval-referenced total (chance <= {name}), in place of the noise model's"] = (
            rule(frame["calibrated"], frame[f"eval-referenced {name}"]))
    settings = sorted(frame["setting"].unique())
    lines = ["| point | within 20% | median error | round 1 | " + " | ".join(settings) + " |",
             "|---|---|---|---|" + "---|" * len(settings)]
    for name, point in points.items():
        error = np.abs(np.clip(point, low, high) - frame["truth"]) / frame["truth"]
        within = error <= 0.2
        cells = [f"{within[frame['setting'] == s].mean():.0%}" for s in settings]
        lines.append(f"| {name} | {within.mean():.0%} | {np.median(error):.0%} | "
                     f"{within[frame['round'] == 1].mean():.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict], *, by: str = "setting") -> pd.DataFrame:
    """Per setting (or round, ``by``) and overall: cases, the share of points within 20% of
    the truth, the median relative error and the interval's coverage, before and after."""
    frame = pd.DataFrame([r for r in rows if r["after"] is not None and r["truth"] > 0])
    frame["setting"] = frame["run"].str.replace(r"-seed\d+.*", "", regex=True)
    frame["round"] = "round " + frame["round"].astype(str)
    for side in ("before", "after"):
        point = frame[side].map(lambda x: x[1])
        error = (point - frame["truth"]).abs() / frame["truth"]
        frame[f"{side}_within"] = error <= 0.2
        frame[f"{side}_error"] = error
        frame[f"{side}_covers"] = [lo <= t <= hi for (lo, _, hi), t in
                                   zip(frame[side], frame["truth"], strict=True)]
    columns = {"cases": ("truth", "size")}
    for side in ("before", "after"):
        columns |= {f"within 20% {side}": (f"{side}_within", "mean"),
                    f"median error {side}": (f"{side}_error", "median"),
                    f"covers {side}": (f"{side}_covers", "mean")}
    table = frame.groupby(by).agg(**columns)
    table.loc["all"] = frame.assign(**{by: "all"}).groupby(by).agg(**columns).iloc[0]
    return table


def markdown(table: pd.DataFrame) -> str:
    """The summary as the markdown table of docs/benchmarks.md."""
    lines = [f"| {table.index.name} | " + " | ".join(table.columns) + " |",
             "|---|" + "---|" * len(table.columns)]
    for setting, row in table.iterrows():
        cells = [f"{int(v)}" if k == "cases" else f"{v:.0%}" for k, v in row.items()]
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from relabeler.config import RunConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--cache", required=True, type=Path)
    parser.add_argument("--pooling", default=RunConfig().model.pooling)
    parser.add_argument("--only", default="", help="a substring of the run folders to replay")
    parser.add_argument("--upto", type=int, default=4, help="replay the first rounds only")
    parser.add_argument("--cached-only", action="store_true",
                        help="measure the replays cached so far, replay nothing")
    parser.add_argument("--cases", type=Path, help="write every case's numbers here (JSON)")
    parser.add_argument("--variants", action="store_true",
                        help="also measure the estimators tried and dropped (variants)")
    parser.add_argument("--redraw-controls", action="store_true",
                        help="also draw the controls again at several shares (SHARES)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("relabeler",):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not args.runs.is_dir():
        parser.error(f"--runs {args.runs}: no such folder")
    folders = sorted(p for p in args.runs.iterdir() if NAME.match(p.name)
                     and (p / "rounds4-refit" / "simulation.json").exists()
                     and args.only in p.name)
    if not folders:
        only = f" whose name holds --only {args.only!r}" if args.only else ""
        parser.error(f"--runs {args.runs} holds no run folder of benchmarks/gain.py --rounds 4 "
                     f"(--rescore refit){only}: expected <dataset>-<kind>-<rate>-seed<S>"
                     "[-n<N>][-b<B>][-f<F>]/rounds4-refit/simulation.json")
    rows, tried, redrawn, needed = [], [], [], []
    for folder in folders:
        if args.cached_only and not (args.cache / f"{folder.name}-upto{args.upto}.pkl").exists():
            continue
        replayed = cached_replay(folder, args.cache, args.pooling, upto=args.upto)
        rows += estimates(replayed)
        if args.variants:
            tried += variants(replayed, folder)
        if args.redraw_controls:
            redrawn += redraw_controls(replayed)
            needed += controls_needed(replayed)
    if not rows:  # --cached-only, and none of them replayed yet
        parser.error(f"--cached-only: no replay of the {len(folders)} runs in --runs "
                     f"{args.runs} is cached under --cache {args.cache} (up to round "
                     f"{args.upto}); run without --cached-only first")
    print(markdown(summary(rows)))
    print()
    print(markdown(summary(rows, by="round")))
    if args.variants:
        print()
        print(variants_table(tried))
    if args.redraw_controls:
        print()
        print(redraw_tables(redrawn, needed))
    if args.cases:
        pd.DataFrame(rows).to_json(args.cases, orient="records", indent=1)


if __name__ == "__main__":
    main()
