"""Several annotators, over seeds: majority vote, relabeler's consensus and cleanlab's CROWDLAB
on the same simulated answers.

For each dataset and seed, one simulation without retraining (``relabeler simulate --sample
2000 --noise 0.2 --mode head --folds 3 --budgets none``, bbc-news ``--sample 1000``: 20%
uniform noise, out-of-fold probabilities); finished ones are reused. Then, in this process,
annotators of the given accuracies answer the top K of the queue (K = the number of flipped
labels; a mistake picks the wrong class the model finds most plausible) through
:func:`relabeler.jobs.simulate.annotator_experiment`, and every resolver runs on the same
answers. Prints, per dataset, each method's label accuracy and the differences against
majority vote and CROWDLAB (mean over seeds x draws, 95% t-interval; with several draws also
over the seeds' means, since the draws of one seed share its model and queue). Resolving
again after a change to the consensus needs no retraining: the finished simulations are reused
and the answers are drawn again from the same seeds.

    python benchmarks/annotators.py --out /tmp/ann --seeds 0,1,2,3,4
    python benchmarks/annotators.py --out /tmp/ann --only sms-spam --draws 3
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from ray_temp import ray_temp_dir  # a sibling script, not a package

from relabeler.report.stats import mean_interval as interval

DATASETS = ("sms-spam", "bbc-news", "drug-review")
#: rows sampled per dataset: bbc-news's articles are long, so fewer of them on a CPU
SAMPLE = {"sms-spam": 2000, "bbc-news": 1000, "drug-review": 2000}
METHODS = ("majority", "crowdlab", "consensus")


def prepare(dataset: str, seed: int, out: Path) -> Path:
    """The run folder of one simulation (trained, extracted and scored)."""
    from relabeler.jobs.simulate import run_simulation, simulation_config

    folder = out / f"ann-{dataset}-{seed}"
    if not (folder / "simulation.json").exists():
        config = simulation_config(data=dataset, out=folder, noise=0.2, noise_kind="uniform",
                                   seed=seed, sample=SAMPLE[dataset], mode="head",
                                   folds=3)
        config.ray.temp_dir = ray_temp_dir()
        run_simulation(config, folder, progress=False, budgets=None)
    return folder


def answer_accuracy(folder: Path, accuracies: list[float], *, draw: int) -> dict:
    """The annotator experiment on one finished simulation; ``draw`` seeds the answers."""
    from relabeler import artifacts
    from relabeler.jobs.score import load_train_view
    from relabeler.jobs.simulate import annotator_experiment
    from relabeler.store import RunStore

    store = RunStore(str(folder / "run"))
    view = load_train_view(store)
    train = store.read_table(artifacts.TRAIN.path).to_pandas().set_index("id")
    truth = train["true_label"].reindex(view.ids).to_numpy(dtype=object)
    suspects = store.read_table(artifacts.SUSPECTS.path).to_pandas().set_index("id")
    suspects = suspects.reindex(view.ids)
    budget = int(train["flipped"].sum())
    return annotator_experiment(view, suspects, truth, accuracies, budget=budget, seed=draw)



def cell(values: list[float], *, points: bool = False) -> str:
    scale = 100.0 if points else 1.0
    mean, low, high = interval([v * scale for v in values])
    if points:
        return f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the simulations")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--only", action="append", default=[], choices=DATASETS)
    parser.add_argument("--accuracies", default="0.95,0.8,0.65")
    parser.add_argument("--draws", type=int, default=1,
                        help="answer draws per simulation (seeded seed*100 + draw)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="run the simulations, print nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    accuracies = [float(a) for a in args.accuracies.split(",")]
    out = Path(args.out)
    datasets = args.only or list(DATASETS)
    folders = {(d, s): prepare(d, s, out) for d in datasets for s in seeds}
    if args.prepare_only:
        return
    print(f"annotators {accuracies}; label accuracy of the resolved answers, mean over "
          f"{len(seeds)} seeds x {args.draws} draws [95% t-interval]")
    print("| dataset | tasks | majority | CROWDLAB (cleanlab) | relabeler consensus "
          "| consensus - majority (points) | consensus - CROWDLAB (points) |")
    print("|---|---|---|---|---|---|---|")
    per_seed = {}
    for dataset in datasets:
        runs = [answer_accuracy(folders[dataset, s], accuracies, draw=s * 100 + d)
                for s in seeds for d in range(args.draws)]
        acc = {m: np.array([r[f"{m}_accuracy"] for r in runs]) for m in METHODS}
        over_majority = list(acc["consensus"] - acc["majority"])
        over_crowdlab = list(acc["consensus"] - acc["crowdlab"])
        print(f"| {dataset} | {runs[0]['tasks']} | {cell(acc['majority'])} "
              f"| {cell(acc['crowdlab'])} | {cell(acc['consensus'])} "
              f"| {cell(over_majority, points=True)} | {cell(over_crowdlab, points=True)} |")
        # the draws of one seed share its model and queue: the seed is the independent unit
        per_seed[dataset] = [np.reshape(d, (len(seeds), args.draws)).mean(axis=1)
                             for d in (over_majority, over_crowdlab)]
    if args.draws > 1:
        print(f"\nover the {len(seeds)} seeds' means (each seed's {args.draws} draws averaged)")
        print("| dataset | consensus - majority (points) | consensus - CROWDLAB (points) |")
        print("|---|---|---|")
        for dataset, (over_majority, over_crowdlab) in per_seed.items():
            print(f"| {dataset} | {cell(list(over_majority), points=True)} "
                  f"| {cell(list(over_crowdlab), points=True)} |")


if __name__ == "__main__":
    main()
