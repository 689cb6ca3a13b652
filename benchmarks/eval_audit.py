"""The eval audit (issue 21) over seeds: ``relabeler simulate --eval-noise R`` per dataset and
seed, then one row per seed and a mean with a 95% t-interval per dataset.

Per run: the eval ranking's AUPRC against the flipped eval rows, cleanlab's best of its three
rankings on the same eval probabilities, the flipped rows in the top ``R x eval size`` (the
audit budget, answered by an oracle) and one model's accuracy on the clean, the noisy and the
audited eval labels. The target: audited accuracy within 1 point of clean, AUPRC at least
cleanlab's best.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/eval_audit.py \\
        --datasets bbc-news,drug-review --seeds 0,1,2 --sample 1000 --out /tmp/eval-audit
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from relabeler.jobs.simulate import run_simulation, simulation_config
from relabeler.report.stats import format_interval


def audit_run(dataset: str, seed: int, *, out: Path, sample: int, noise: float,
              eval_noise: float, folds: int) -> dict:
    """One simulation (reused when ``out`` already holds it); its ``eval_audit`` block."""
    result_path = out / "simulation.json"
    if not result_path.exists():
        config = simulation_config(data=dataset, out=out, noise=noise, noise_kind="uniform",
                                   seed=seed, sample=sample, mode="head", folds=folds,
                                   eval_noise=eval_noise)
        run_simulation(config, out, progress=False, budgets=None)
    return json.loads(result_path.read_text())["eval_audit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="bbc-news,drug-review")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sample", type=int, default=0, help="rows per dataset; 0 = all")
    parser.add_argument("--noise", type=float, default=0.1, help="training label noise")
    parser.add_argument("--eval-noise", type=float, default=0.1)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    print("| dataset | seed | eval ranking AUPRC | cleanlab best | flipped in the top budget | "
          "accuracy, clean labels | noisy labels | audited labels |")
    print("|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        rows = []
        for seed in seeds:
            audit = audit_run(dataset, seed, out=args.out / f"{dataset}-{seed}",
                              sample=args.sample, noise=args.noise, eval_noise=args.eval_noise,
                              folds=args.folds)
            acc = audit["accuracy"]
            best = max(audit["cleanlab_auprc"].values())
            rows.append((audit["auprc"], best, acc["clean"], acc["noisy"], acc["audited"]))
            print(f"| {dataset} | {seed} | {audit['auprc']:.3f} | {best:.3f} | "
                  f"{audit['found']} of {audit['budget']} | {acc['clean']:.4f} | "
                  f"{acc['noisy']:.4f} | {acc['audited']:.4f} |", flush=True)
        cols = list(zip(*rows, strict=True))
        gap = [c - a for c, a in zip(cols[2], cols[4], strict=True)]
        a, b, c, d, e = (format_interval(col) for col in cols[:5])
        print(f"| {dataset} | mean, 95% CI | {a} | {b} | | {c} | {d} | {e} |")
        print(f"| {dataset} | clean - audited | | | | {format_interval(gap)} | | |", flush=True)


if __name__ == "__main__":
    main()
