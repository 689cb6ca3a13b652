"""What relabeling buys, over seeds: `relabeler simulate` at a budget of the number of flips.

For each (dataset, noise kind) and seed, one simulation (head mode on CPU): inject noise, train,
score, then oracle-relabel relabeler's top K, cleanlab's top K (out-of-fold self-confidence) and
K random samples (3 draws), K = the number of flipped labels, retrain, and measure accuracy on
the held-out test split. Prints, per setting, the share of the noisy -> clean accuracy gap each
recovered (mean over seeds with a 95% t-interval), and relabeler's gain as a multiple of the
random gain and of cleanlab's (targets: >= 80% of the gap, >= 2x random, >= cleanlab).

    python benchmarks/gain.py --out /tmp/gain                          # the four settings
    python benchmarks/gain.py --out /tmp/gain --only sms-spam:uniform --seeds 0,1
    python benchmarks/gain.py --out /tmp/gain --only bbc-news:asymmetric:0.1
    python benchmarks/gain.py --out /tmp/gain-cls --pooling cls      # the pooler on [CLS]
    python benchmarks/gain.py --out /tmp/rounds --rounds 4 --sample 1000 --seeds 0,1,2,3,4

With ``--rounds R`` each simulation also plays the budget in R rounds (``simulate --rounds``)
and one shot at the same budget (controls included in both), in the same process: the table
gives both shares of the gap, their difference in points per seed (targets: >= +5 on
asymmetric noise, >= -2 on uniform), and how often the remaining-errors interval covered the
truth (target >= 90% of setting x seed x round) with the point estimate's relative error
(target <= 20% from round 1 on). ``--rescore labels`` re-scores between rounds on the cached
probabilities only (kNN votes and noise model from the answered labels) instead of refitting
the head's folds. With ``--annotators`` the simulations' annotators blocks are summarised too.

Finished simulations are reused: a rerun only computes what is missing. A finished one made
with another ``--pooling``, ``--pool-layers`` or ``--annotators`` is refused, naming them (the
folder names hold the other arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from ray_temp import ray_temp_dir  # a sibling script, not a package
from reuse import record_settings, stored_result  # a sibling script, not a package

from relabeler.config import RunConfig
from relabeler.model import POOLINGS
from relabeler.report.stats import mean_interval as interval

#: (dataset, noise kind, rate). sms-spam's asymmetric noise flips spam into ham, and 20% of the
#: training rows is more than the spam it has, so that setting runs at 10%.
SETTINGS = [("sms-spam", "uniform", 0.20), ("sms-spam", "asymmetric", 0.10),
            ("bbc-news", "uniform", 0.20), ("bbc-news", "asymmetric", 0.20),
            ("drug-review", "uniform", 0.20), ("drug-review", "asymmetric", 0.20)]
#: the four settings run by default (drug-review only when --only names it, or with --rounds)
DEFAULT_SETTINGS = SETTINGS[:4]
METHODS = ("relabeler", "cleanlab", "random")


def simulate(dataset: str, kind: str, rate: float, seed: int, out: Path, pooling: str, *,
             sample: int = 0, batch_size: int = 0, folds: int = 5, rounds: int = 0,
             rescore: str = "refit", annotators: list[float] | None = None,
             pool_layers: int = 0, words: bool = True) -> dict:
    """One simulation (reused when its simulation.json exists and was made with the same
    pooling, pool_layers and annotators: the folder name holds the rest; one made with others
    is refused, naming them); variants of the rounds share the run folder, so only the
    retraining part is repeated."""
    from relabeler.jobs.simulate import run_simulation, simulation_config

    folder = out / (f"{dataset}-{kind}-{int(rate * 100)}-seed{seed}"
                    + (f"-n{sample}" if sample else "") + (f"-b{batch_size}" if batch_size else "")
                    + (f"-f{folds}" if folds != 5 else ""))
    result_dir = folder / f"rounds{rounds}-{rescore}" if rounds else folder
    done = result_dir / "simulation.json"
    settings = {"pooling": pooling, "pool_layers": pool_layers, "annotators": annotators,
                "words": words}
    stored = stored_result(done, settings)
    if stored is not None:
        return stored
    base = RunConfig()
    base.model.pooling = pooling
    base.model.pool_layers = pool_layers
    base.ray.temp_dir = ray_temp_dir()
    if batch_size:
        base.train.batch_size = batch_size
    # the representer is reported, never a vote: a benchmark of the ranking must not stop where
    # its evidence would not be shown (drug-review's head at 1000 rows: 66% agreement)
    base.score.min_agreement = 0.0
    base.score.words = words
    config = simulation_config(data=dataset, out=folder, noise=rate, noise_kind=kind,
                               seed=seed, mode="head", folds=folds, sample=sample, base=base)
    run_simulation(config, result_dir, progress=False, budgets=[rate], rounds=rounds or None,
                   rescore=rescore, annotators=annotators)
    return record_settings(done, settings)



def ratio(gain: float, baseline: float) -> str:
    """``gain`` as a multiple of ``baseline``; none when the baseline gained nothing."""
    return f"{gain / baseline:.2f}x" if baseline > 0 else "n/a (<= 0)"


def settings_from(only: list[str], parser: argparse.ArgumentParser) -> list[tuple]:
    """The settings ``--only`` names (the four defaults otherwise)."""
    if not only:
        return list(DEFAULT_SETTINGS)
    chosen = []
    for item in only:
        parts = item.split(":")
        if len(parts) == 2:
            matches = [s for s in SETTINGS if (s[0], s[1]) == tuple(parts)]
            if not matches:
                parser.error(f"--only {item}: no such setting; give DATASET:KIND:RATE")
            chosen += matches
        elif len(parts) == 3:
            try:
                rate = float(parts[2])
            except ValueError:
                parser.error(f"--only {item}: RATE must be a number, got {parts[2]!r}")
            chosen.append((parts[0], parts[1], rate))
        else:
            parser.error(f"--only {item}: expected DATASET:KIND or DATASET:KIND:RATE")
    return chosen


def rounds_summary(runs: list[dict]) -> dict:
    """Per setting: the rounds' and the one shot's share of the gap (per seed), their
    difference in points, and each (seed, round) remaining-errors case: covered? relative
    error of the point estimate."""
    blocks = [run["rounds"] for run in runs]
    one_shot = [b["one_shot_gap_recovered"] for b in blocks]
    final = [b["gap_recovered"][-1] for b in blocks]
    diffs = [100 * (f - o) for f, o in zip(final, one_shot, strict=True)
             if f is not None and o is not None]
    covered, errors = [], []
    for b in blocks:
        for (low, mid, high), truth in zip(b["estimated_remaining"], b["true_remaining"],
                                           strict=True):
            covered.append(low is not None and low <= truth <= high)
            errors.append(abs(mid - truth) / truth if mid is not None and truth else None)
    return {"final": final, "one_shot": one_shot, "diff_points": diffs, "covered": covered,
            "relative_errors": errors,
            "found": [sum(b["found"]) for b in blocks]}


def print_rounds(label: str, runs: list[dict], seeds: list[int]) -> dict:
    summary = rounds_summary(runs)
    r = runs[0]["rounds"]["R"]
    ok = [x for x in summary["final"] if x is not None]
    base = [x for x in summary["one_shot"] if x is not None]
    mean, low, high = interval(ok) if ok else (float("nan"),) * 3
    o_mean, o_low, o_high = interval(base) if base else (float("nan"),) * 3
    d_mean, d_low, d_high = interval(summary["diff_points"]) if summary["diff_points"] \
        else (float("nan"),) * 3
    errs = [e for e in summary["relative_errors"] if e is not None]
    print(f"{label:28s} one shot {o_mean:6.0%} [{o_low:5.0%}, {o_high:5.0%}]  {r} rounds "
          f"{mean:6.0%} [{low:5.0%}, {high:5.0%}]  difference {d_mean:+5.1f} points "
          f"[{d_low:+5.1f}, {d_high:+5.1f}]  interval covers {np.mean(summary['covered']):4.0%}"
          f"  point error median {np.median(errs) if errs else float('nan'):4.0%}, "
          f"<= 20% in {np.mean([e <= 0.2 for e in errs]) if errs else float('nan'):4.0%}")
    for seed, run in zip(seeds, runs, strict=True):
        b = run["rounds"]
        print(f"    seed {seed}: found {b['found']} gap {_shares(b['gap_recovered'])} one shot "
              f"{_shares([b['one_shot_gap_recovered']])} remaining "
              + " ".join(f"{m:.0f} [{lo:.0f}, {hi:.0f}] (true {t})" if m is not None else "n/a"
                         for (lo, m, hi), t in zip(b["estimated_remaining"],
                                                   b["true_remaining"], strict=True)))
    return summary


def _shares(values: list) -> str:
    return "[" + ", ".join("n/a" if v is None else f"{v:.0%}" for v in values) + "]"


def print_annotators(label: str, runs: list[dict]) -> None:
    blocks = [run["annotators"] for run in runs if "annotators" in run]
    if not blocks:
        return
    cells = []
    for key in ("majority_accuracy", "consensus_accuracy", "crowdlab_accuracy"):
        mean, low, high = interval([b[key] for b in blocks])
        cells.append(f"{key.split('_')[0]} {mean:.3f} [{low:.3f}, {high:.3f}]")
    print(f"{label:28s} annotators {blocks[0]['accuracies']}: " + "  ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the simulations")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", action="append", default=[],
                        help="DATASET:KIND or DATASET:KIND:RATE to run (repeatable; a rate "
                             "outside the settings adds one); default: the four settings of "
                             "sms-spam and bbc-news, all six with --rounds")
    parser.add_argument("--pooling", default=RunConfig().model.pooling, choices=POOLINGS,
                        help="[model] pooling of the simulations (default: what relabeler "
                             "ships; use a separate --out for each: a finished run made with "
                             "another is refused)")
    parser.add_argument("--pool-layers", type=int, default=0,
                        help="[model] pool_layers of the simulations (0 = what relabeler ships; "
                             "use a separate --out for each)")
    parser.add_argument("--sample", type=int, default=0,
                        help="stratified subsample of each dataset (0 = every row)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="[train] batch_size of the head fits (0 = the default)")
    parser.add_argument("--folds", type=int, default=5, help="[train] folds")
    parser.add_argument("--rounds", type=int, default=0,
                        help="also play the budget in R rounds against one shot")
    parser.add_argument("--rescore", default="refit", choices=("refit", "labels"),
                        help="re-scoring between rounds (see above)")
    parser.add_argument("--annotators", default="",
                        help="A1,A2,...: simulated annotators (summarised per setting)")
    parser.add_argument("--no-words", action="store_true",
                        help="score without the words' view (score.words = false): the "
                             "baseline of the shipped view; use a separate --out")
    parser.add_argument("--json", help="write the per-setting numbers the tables print here "
                        "(budget, gap, shares recovered per seed and pooled, the ratios, each "
                        "seed's accuracies; with --rounds the rounds summary)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    settings = settings_from(args.only, parser) if args.only or not args.rounds \
        else list(SETTINGS)
    annotators = [float(a) for a in args.annotators.split(",")] if args.annotators else None
    options = {"sample": args.sample, "batch_size": args.batch_size, "folds": args.folds,
               "rounds": args.rounds, "pool_layers": args.pool_layers,
               "rescore": args.rescore, "annotators": annotators, "words": not args.no_words}

    print(f"{'setting':28s} {'K':>5s} {'gap':>6s}  " + "  ".join(
        f"{m + ' recovered':>26s}" for m in METHODS) + "  vs random  vs cleanlab")
    all_runs, numbers = {}, {}
    for dataset, kind, rate in settings:
        runs = [simulate(dataset, kind, rate, seed, out, args.pooling, **options)
                for seed in seeds]
        all_runs[(dataset, kind, rate)] = runs
        gains = {m: [] for m in METHODS}
        gaps = []
        for run in runs:
            acc = run["gain"]["accuracy"]
            gaps.append(acc["clean"] - acc["noisy"])
            for m in METHODS:
                gains[m].append(acc[m][-1] - acc["noisy"])
        # share of the gap recovered, per seed and pooled (mean gain / mean gap)
        mean_gap = float(np.mean(gaps))
        k = runs[0]["gain"]["budget_samples"][-1]
        label = f"{dataset} {kind} {rate:.0%}"
        numbers[label] = {"budget": k, "gap": mean_gap, "recovered": {}, "seeds": {}}
        cells = []
        for m in METHODS:
            shares = [g / gap for g, gap in zip(gains[m], gaps, strict=True) if gap > 0]
            mean, low, high = interval(shares) if shares else (float("nan"),) * 3
            pooled = np.mean(gains[m]) / mean_gap if mean_gap > 0 else float("nan")
            cells.append(f"{mean:6.0%} [{low:5.0%}, {high:5.0%}] p{pooled:4.0%}")
            numbers[label]["recovered"][m] = {  # null: no interval (one seed) or no gap
                "per_seed": shares, **{key: None if np.isnan(value) else float(value)
                                       for key, value in (("mean", mean), ("low", low),
                                                          ("high", high), ("pooled", pooled))}}
        for m in ("random", "cleanlab"):  # relabeler's gain as a multiple of theirs
            baseline = float(np.mean(gains[m]))
            numbers[label][f"vs_{m}"] = (float(np.mean(gains["relabeler"])) / baseline
                                         if baseline > 0 else None)
        vs_random = ratio(np.mean(gains["relabeler"]), np.mean(gains["random"]))
        vs_cleanlab = ratio(np.mean(gains["relabeler"]), np.mean(gains["cleanlab"]))
        print(f"{dataset + ' ' + kind + f' {rate:.0%}':28s} {k:5d} {mean_gap:6.2%}  "
              + "  ".join(f"{c:>26s}" for c in cells)
              + f"  {vs_random:>9s}  {vs_cleanlab:>10s}")
        for seed, run in zip(seeds, runs, strict=True):
            acc = run["gain"]["accuracy"]
            numbers[label]["seeds"][seed] = {
                "accuracy": {"clean": acc["clean"], "noisy": acc["noisy"],
                             **{m: acc[m][-1] for m in METHODS}},
                "detection_auprc": {
                    "relabeler": run["detection"]["relabeler"]["auprc"],
                    "cleanlab": run["detection"]["cleanlab_self_confidence"]["auprc"]}}
            print(f"    seed {seed}: clean {acc['clean']:.4f} noisy {acc['noisy']:.4f} "
                  + " ".join(f"{m} {acc[m][-1]:.4f}" for m in METHODS)
                  + f"; detection AUPRC relabeler {run['detection']['relabeler']['auprc']:.3f}"
                  f" cleanlab {run['detection']['cleanlab_self_confidence']['auprc']:.3f}")
    print("recovered = (accuracy after relabeling - noisy) / (clean - noisy), mean over seeds "
          "[95% t-interval]; p = pooled (mean gain / mean gap); targets: relabeler >= 80%, "
          ">= 2x random, >= cleanlab")
    summaries = {}  # label -> its rounds summary
    if args.rounds:
        print(f"\nRounds ({args.rounds}, re-scoring: {args.rescore}) against one shot at the "
              "same budget, both with random controls:")
        for (dataset, kind, rate), runs in all_runs.items():
            label = f"{dataset} {kind} {rate:.0%}"
            summaries[label] = print_rounds(label, runs, seeds)
        covered = [c for s in summaries.values() for c in s["covered"]]
        errs = [e for s in summaries.values() for e in s["relative_errors"] if e is not None]
        print(f"remaining errors: the 95% interval covers the truth in {np.mean(covered):.0%} of "
              f"{len(covered)} (setting, seed, round) cases (target >= 90%); the point "
              f"estimate is within 20% in {np.mean([e <= 0.2 for e in errs]):.0%} "
              f"(median relative error {np.median(errs):.0%})")
    if annotators:
        print()
        for (dataset, kind, rate), runs in all_runs.items():
            label = f"{dataset} {kind} {rate:.0%}"
            print_annotators(label, runs)
            numbers[label]["annotators"] = [run["annotators"] for run in runs
                                            if "annotators" in run]
    if args.json:  # what the tables print, per setting
        for label, summary in summaries.items():
            numbers[label]["rounds"] = summary
        Path(args.json).write_text(json.dumps(numbers, indent=1))


if __name__ == "__main__":
    main()
