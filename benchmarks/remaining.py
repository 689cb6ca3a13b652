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
    from relabeler.jobs.score import noise_summary, suspect_signals, wrong_probability
    from relabeler.selectors import rank

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
        play = sr.play_rounds(
            refit, rescorer, ids=view.ids, noisy=view.labels, truth=truth, suspect=suspect,
            sizes=sr.round_sizes(total, 4)[:upto], test_rows=np.arange(n, n + len(evaluation)),
            test_labels=evaluation["label"].map(index).to_numpy(dtype=np.int64),
            control_share=config.studio.control_share,
            model_wrong=None if share is None else share * n,
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


def estimates(replayed: dict) -> list[dict]:
    """Per round: the truth, the estimate the run made (``before``: the noise model's count
    less the corrections found) and :func:`estimate_remaining`'s now (``after``), each
    [low, point, high]."""
    from relabeler.report.remaining import estimate_remaining

    rows = []
    for r, record in enumerate(replayed["rounds"]):
        # round q + 1 was picked by scoring q
        chances = {q + 1: pd.Series(scoring["p_wrong"], index=replayed["ids"])
                   for q, scoring in enumerate(replayed["scorings"][:r + 1])}
        left = estimate_remaining(record["manifest"], record["corrections"], replayed["n"],
                                  next_batch=record["next_batch"], stop_rate=0.05,
                                  model_wrong=replayed["model_wrong"],
                                  wrong_probability=chances)
        rows.append({"run": replayed["name"], "round": r + 1,
                     "truth": replayed["true_remaining"][r], "before": record["remaining"],
                     "after": left["remaining"] if left["available"] else None})
    return rows


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("relabeler",):
        logging.getLogger(name).setLevel(logging.WARNING)
    folders = sorted(p for p in args.runs.iterdir() if NAME.match(p.name)
                     and (p / "rounds4-refit" / "simulation.json").exists()
                     and args.only in p.name)
    rows = []
    for folder in folders:
        if args.cached_only and not (args.cache / f"{folder.name}-upto{args.upto}.pkl").exists():
            continue
        rows += estimates(cached_replay(folder, args.cache, args.pooling, upto=args.upto))
    print(markdown(summary(rows)))
    print()
    print(markdown(summary(rows, by="round")))
    if args.cases:
        pd.DataFrame(rows).to_json(args.cases, orient="records", indent=1)


if __name__ == "__main__":
    main()
