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

Finished simulations are reused: a rerun only computes what is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from relabeler.config import RunConfig
from relabeler.model import POOLINGS

#: (dataset, noise kind, rate). sms-spam's asymmetric noise flips spam into ham, and 20% of the
#: training rows is more than the spam it has, so that setting runs at 10%.
SETTINGS = [("sms-spam", "uniform", 0.20), ("sms-spam", "asymmetric", 0.10),
            ("bbc-news", "uniform", 0.20), ("bbc-news", "asymmetric", 0.20)]
METHODS = ("relabeler", "cleanlab", "random")


def simulate(dataset: str, kind: str, rate: float, seed: int, out: Path,
             pooling: str) -> dict:
    from relabeler.jobs.simulate import run_simulation, simulation_config

    folder = out / f"{dataset}-{kind}-{int(rate * 100)}-seed{seed}"
    done = folder / "simulation.json"
    if done.exists():
        return json.loads(done.read_text())
    base = RunConfig()
    base.model.pooling = pooling
    config = simulation_config(data=dataset, out=folder, noise=rate, noise_kind=kind,
                               seed=seed, mode="head", folds=5, base=base)
    return run_simulation(config, folder, progress=False, budgets=[rate])


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and a 95% t-interval over seeds (t quantiles for 2-9 degrees of freedom)."""
    t95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = t95.get(len(x) - 1, 1.96) * float(x.std(ddof=1)) / np.sqrt(len(x))
    return mean, mean - half, mean + half


def ratio(gain: float, baseline: float) -> str:
    """``gain`` as a multiple of ``baseline``; none when the baseline gained nothing."""
    return f"{gain / baseline:.2f}x" if baseline > 0 else "n/a (<= 0)"


def settings_from(only: list[str], parser: argparse.ArgumentParser) -> list[tuple]:
    """The settings ``--only`` names (all four by default)."""
    if not only:
        return list(SETTINGS)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the simulations")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", action="append", default=[],
                        help="DATASET:KIND or DATASET:KIND:RATE to run (repeatable; a rate "
                             "outside the four settings adds one); default: the four settings")
    parser.add_argument("--pooling", default=RunConfig().model.pooling, choices=POOLINGS,
                        help="[model] pooling of the simulations (default: what relabeler "
                             "ships; use a separate --out for each)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    settings = settings_from(args.only, parser)

    print(f"{'setting':28s} {'K':>5s} {'gap':>6s}  " + "  ".join(
        f"{m + ' recovered':>26s}" for m in METHODS) + "  vs random  vs cleanlab")
    for dataset, kind, rate in settings:
        runs = [simulate(dataset, kind, rate, seed, out, args.pooling) for seed in seeds]
        gains = {m: [] for m in METHODS}
        gaps = []
        for run in runs:
            acc = run["gain"]["accuracy"]
            gaps.append(acc["clean"] - acc["noisy"])
            for m in METHODS:
                gains[m].append(acc[m][-1] - acc["noisy"])
        # share of the gap recovered, per seed and pooled (mean gain / mean gap)
        mean_gap = float(np.mean(gaps))
        cells = []
        for m in METHODS:
            shares = [g / gap for g, gap in zip(gains[m], gaps, strict=True) if gap > 0]
            mean, low, high = interval(shares)
            pooled = np.mean(gains[m]) / mean_gap
            cells.append(f"{mean:6.0%} [{low:5.0%}, {high:5.0%}] p{pooled:4.0%}")
        vs_random = ratio(np.mean(gains["relabeler"]), np.mean(gains["random"]))
        vs_cleanlab = ratio(np.mean(gains["relabeler"]), np.mean(gains["cleanlab"]))
        k = runs[0]["gain"]["budget_samples"][-1]
        print(f"{dataset + ' ' + kind + f' {rate:.0%}':28s} {k:5d} {mean_gap:6.2%}  "
              + "  ".join(f"{c:>26s}" for c in cells)
              + f"  {vs_random:>9s}  {vs_cleanlab:>10s}")
        for seed, run in zip(seeds, runs, strict=True):
            acc = run["gain"]["accuracy"]
            print(f"    seed {seed}: clean {acc['clean']:.4f} noisy {acc['noisy']:.4f} "
                  + " ".join(f"{m} {acc[m][-1]:.4f}" for m in METHODS)
                  + f"; detection AUPRC relabeler {run['detection']['relabeler']['auprc']:.3f}"
                  f" cleanlab {run['detection']['cleanlab_self_confidence']['auprc']:.3f}")
    print("recovered = (accuracy after relabeling - noisy) / (clean - noisy), mean over seeds "
          "[95% t-interval]; p = pooled (mean gain / mean gap); targets: relabeler >= 80%, "
          ">= 2x random, >= cleanlab")


if __name__ == "__main__":
    main()
