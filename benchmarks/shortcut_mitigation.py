"""Shortcut mitigation on a finished ``relabeler simulate --shortcut`` run: clean / shortcut /
mitigated eval and anti-shortcut accuracy for each mitigation setting (head refits on the run's
cached encoder states).

    relabeler simulate --data sms-spam --sample 1500 --noise 0.05 --seed 0 --out sim \\
        --mode head --folds 2 --pool-fraction 0 --budgets none --shortcut zqxv:spam:0.5
    PYTHONPATH=. python benchmarks/shortcut_mitigation.py --out sim --data sms-spam \\
        --sample 1500 --seed 0 --shortcut zqxv:spam:0.5
"""

from __future__ import annotations

import argparse
import itertools

from relabeler.jobs.simulate import simulation_config
from relabeler.jobs.simulate_shortcut import parse_shortcut, shortcut_accuracy
from relabeler.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="the simulate --out folder")
    parser.add_argument("--data", required=True)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shortcut", required=True)
    parser.add_argument("--tops", default="1,3,10")
    parser.add_argument("--mask-rates", default="0.5,1.0")
    args = parser.parse_args()
    spec = parse_shortcut(args.shortcut)
    print("| tokens | mask rate | eval acc clean / shortcut / reweight / mask | "
          "anti acc clean / shortcut / reweight / mask |")
    print("|---|---|---|---|")
    for top, rate in itertools.product([int(x) for x in args.tops.split(",")],
                                       [float(x) for x in args.mask_rates.split(",")]):
        config = simulation_config(data=args.data, out=args.out, noise=0.05,
                                   noise_kind="uniform", seed=args.seed, sample=args.sample,
                                   mode="head", folds=2)
        config.train.debias_top, config.train.debias_mask_rate = top, rate
        store = RunStore(config.run_dir)
        result = shortcut_accuracy(store, config, spec, progress=False)
        acc, anti, mit = result["accuracy"], result["anti_accuracy"], result["mitigations"]
        print(f"| {top} | {rate} | {acc['clean']:.3f} / {acc['shortcut']:.3f} / "
              f"{mit['reweight']['accuracy']:.3f} / {mit['mask']['accuracy']:.3f} | "
              f"{anti['clean']:.3f} / {anti['shortcut']:.3f} / "
              f"{mit['reweight']['anti_accuracy']:.3f} / {mit['mask']['anti_accuracy']:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
