"""Shortcut mitigation over seeds: what a planted token costs the model and what mitigation wins
back, per (dataset, class), with 95% intervals.

For every setting ``DATASET:CLASS`` and seed, the ``"shortcut"`` block of ``relabeler simulate
--shortcut TOKEN:CLASS:RATE --mode head`` (5% label noise) is computed (a finished one in
``--work`` is reused when made with the same sample, noise, token, tops and mask rates; one
made with others is refused, naming them): the token's rank and the eval and anti-shortcut
accuracy of the head refit without the token (clean), with it (shortcut) and with it and the
shipped mitigation (mitigated), all in the same process on the same cached encoder states.
``--tops`` and ``--mask-rates`` other than the shipped ``1`` and ``1.0`` refit each run again
with those ``train.debias_top`` / ``train.debias_mask_rate``.

    PYTHONPATH=. python benchmarks/shortcut_mitigation.py --work /tmp/mitigation --seeds 3 \\
        --settings sms-spam:spam,drug-review:neutral,bbc-news:entertainment \\
        --samples sms-spam=1000,drug-review=0,bbc-news=600

Prints one JSON line per run and a table: means over seeds with 95% t-intervals, the
anti-shortcut accuracy the shortcut cost (clean - shortcut), the share of it mitigation
recovers ((mitigated - shortcut) / (clean - shortcut), of the means; "no cost" where the
cost's interval reaches 0) and the ordinary accuracy mitigation costs against the shortcut
model (shortcut - mitigated).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from reuse import record_settings, stored_result  # a sibling script, not a package

from relabeler import artifacts
from relabeler.jobs.dataset import prepare_dataset
from relabeler.jobs.shortcuts import score_shortcuts
from relabeler.jobs.simulate import simulation_config
from relabeler.jobs.simulate_shortcut import (
    parse_shortcut,
    plant_shortcut,
    shortcut_accuracy,
    shortcut_result,
)
from relabeler.report.stats import mean_interval
from relabeler.store import RunStore


def half_width(values) -> float:
    """Half the width of the 95% t-interval of the mean over seeds; infinite for one seed
    (no interval: it said 0, as if one seed were certain)."""
    mean, _, high = mean_interval(values)
    return float("inf") if np.isnan(high) else high - mean


def interval(values) -> str:
    """``mean ± half-width`` of the 95% t-interval over seeds; ``mean (one seed)`` for one."""
    if len(values) < 2:
        return f"{np.mean(values):.3f} (one seed)"
    return f"{np.mean(values):.3f} ± {half_width(values):.3f}"


def run_one(work: Path, name: str, label: str, seed: int, args) -> dict:
    """The ``"shortcut"`` block of one simulation (computed now or read from ``work``).

    The stages ``simulate --shortcut`` runs before the block that the block does not read
    (training, feature extraction, the rest of scoring) are skipped: the block refits the head
    from the packaged encoder and reads only the planted split and ``scores/shortcuts.parquet``,
    which :func:`score_shortcuts` writes as ``score`` does.
    """
    out = work / f"{name}-{label}-{args.rate}-s{seed}"
    done = out / "shortcut.json"
    settings = {"samples": f"{name}={args.samples.get(name, 0)}", "noise": args.noise,
                "token": args.token, "tops": args.tops, "mask_rates": args.mask_rates}
    stored = stored_result(done, settings, out_flag="--work")
    if stored is not None:
        return stored
    config = simulation_config(data=name, out=out, noise=args.noise, noise_kind="uniform",
                               seed=seed, sample=args.samples.get(name, 0), mode="head",
                               folds=2)
    spec = parse_shortcut(f"{args.token}:{label}:{args.rate}")
    store = RunStore(config.run_dir)
    prepare_dataset(store, config)
    planted = plant_shortcut(store, spec, seed=seed)
    classes = sorted(set(store.read_table(artifacts.TRAIN.path).column("label").to_pylist()))
    score_shortcuts(store, classes, config.score)
    block = {**shortcut_result(store, spec, planted),
             **shortcut_accuracy(store, config, spec, progress=False, classes=classes,
                                 mode="head")}
    block["sweep"] = {}
    for top in args.tops:
        for mask_rate in args.mask_rates:
            if (top, mask_rate) == (1, 1.0):
                continue
            config.train.debias_top, config.train.debias_mask_rate = top, mask_rate
            other = shortcut_accuracy(store, config, spec, progress=False, classes=classes,
                                      mode="head")
            block["sweep"][f"top {top}, mask rate {mask_rate}"] = other["mitigations"]
    done.write_text(json.dumps(block))
    return record_settings(done, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=Path, help="folder of the simulate runs")
    parser.add_argument("--settings", default="sms-spam:spam,sms-spam:ham,drug-review:neutral,"
                        "drug-review:positive,bbc-news:entertainment,bbc-news:business")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--token", default="zqxv")
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--samples", default="sms-spam=1000,drug-review=0,bbc-news=600",
                        help="NAME=N,...: the stratified subsample of each dataset (0 = all)")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--tops", default="1")
    parser.add_argument("--mask-rates", default="1.0")
    args = parser.parse_args()
    args.tops = [int(x) for x in args.tops.split(",")]
    args.mask_rates = [float(x) for x in args.mask_rates.split(",")]
    args.samples = {name: int(n) for name, n in (x.split("=") for x in args.samples.split(","))}
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for setting in args.settings.split(","):
        name, label = setting.split(":", 1)
        blocks = []
        for seed in range(args.seeds):
            block = run_one(args.work, name, label, seed, args)
            blocks.append(block)
            print(json.dumps({"dataset": name, "class": label, "seed": seed, **block}),
                  flush=True)
        rows.append((name, label, blocks))
    print("\n| dataset | class | rank (worst) | eval clean | eval shortcut | eval mitigated | "
          "anti clean | anti shortcut | anti mitigated | cost (anti) | recovered | "
          "eval cost of mitigation | anti reweight (not shipped) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, label, blocks in rows:
        acc = {k: [b["accuracy"][k] for b in blocks] for k in ("clean", "shortcut", "mitigated")}
        anti = {k: [b["anti_accuracy"][k] for b in blocks]
                for k in ("clean", "shortcut", "mitigated")}
        ranks = [b["rank"] for b in blocks]
        cost = np.subtract(anti["clean"], anti["shortcut"])
        won = np.subtract(anti["mitigated"], anti["shortcut"])
        # a share of a cost that is not surely above 0 would be noise over noise
        recovered = (f"{won.mean() / cost.mean():.0%}" if cost.mean() - half_width(cost) > 0
                     else "– (one seed: no interval)" if len(cost) < 2 else "– (no cost)")
        print(f"| {name} | {label} | {'–' if None in ranks else max(ranks)} | "
              + " | ".join(interval(acc[k]) for k in acc) + " | "
              + " | ".join(interval(anti[k]) for k in anti) + " | "
              f"{interval(cost)} | {recovered} | "
              f"{interval(np.subtract(acc['shortcut'], acc['mitigated']))} | "
              f"{interval([b['mitigations']['reweight']['anti_accuracy'] for b in blocks])} |")


if __name__ == "__main__":
    main()
