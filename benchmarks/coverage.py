"""Coverage acquisition on held-out sub-populations (``relabeler simulate --undercover``), in
one process: ratios against random picks over seeds.

For each dataset and spec and seed: split (20% eval, ``--pool`` pool, stratified, seeded), hold
the group out as ``simulate --undercover`` does (:func:`group_members` on the encoder's states,
:func:`move_group`, keep 0.1), fit the head on
the cached encoder states of the packaged MiniLM (head mode), score coverage and acquisition with
``relabeler score``'s own :func:`relabeler.jobs.coverage.score_coverage` on the head's features
and predictions, and measure the first k picks against k random pool samples
(:func:`subgroup_measure`) on the group's eval rows that did not steer acquisition (the half of
the eval rows outside ``[score] acquire_eval_share``; the picks were chosen to fix the others).
The picks are ``[score] acquire_targets = "eval"``'s; ``undercovered targets`` is the same with
``"undercovered"`` (the default: pool samples near the under-covered eval and pool samples,
spread over their regions).

    PYTHONPATH=. python benchmarks/coverage.py --seeds 0,1,2,3,4 --sample 1500 --pool 0.6 \\
        --specs "bbc-news:cluster:10;bbc-news:label=tech;sms-spam:cluster:10;\\
sms-spam:label=spam;drug-review:condition=Birth Control;drug-review:cluster:8"
    PYTHONPATH=. python benchmarks/coverage.py --seeds 0,1,2,3,4 --sample 1500 --pool 0.4 \
        --specs "drug-review:condition=Depression,Anxiety,Bipolar Disorde;\
drug-review:drug=Nexplanon,Etonogestrel,Levonorgestrel;drug-review:condition=Birth Control"

    HORM="drug=Ethinyl estradiol / norethindrone,Nexplanon,Etonogestrel,\
Ethinyl estradiol / norgestimate,Implanon,Ethinyl estradiol / levonorgestrel,\
Drospirenone / ethinyl estradiol,Desogestrel / ethinyl estradiol,Lo Loestrin Fe,\
Ethinyl estradiol / etonogestrel,Norethindrone,Sprintec,Junel Fe 1 / 20"
    PYTHONPATH=. python benchmarks/coverage.py --seeds 0,1,2,3,4 --sample 1500 --pool 0.6 \
        --specs "drug-review:condition=Birth Control;drug-review:$HORM"

``--ceilings`` adds what any k picks could buy (every pool row of the group labeled, k random
rows of the group, k random rows outside it), as measured for docs/benchmarks.md "Coverage:
more specs and ceilings":

    PYTHONPATH=. python benchmarks/coverage.py --seeds 0,1,2,3,4 --sample 1500 --pool 0.6 \
        --ceilings --specs "bbc-news:label=business;bbc-news:label=entertainment;\
bbc-news:cluster:10"

The encoder's features follow ``[model] pool_layers`` (``--pool-layers``: 0 = what relabeler
ships, 1 = the last layer only, as before it existed); ``--diversity-threshold`` and
``--center`` (acquire on features less the train rows' mean) and ``--thin N`` (the first N
candidates of each acquisition, k of them kept farthest-first: ``[score] acquire_spread`` = N / k)
measure acquisition variants:

    PYTHONPATH=. python benchmarks/coverage.py --seeds 0,1,2,3,4 --sample 1500 --pool 0.6 \
        --ceilings --pool-layers 3 --specs "drug-review:condition=Birth Control;drug-review:$HORM"

(about 10 to 30 seconds per dataset, spec and seed on a shared 2-core CPU once the encoder's
states are cached; the tables are in docs/benchmarks.md, "Coverage").
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pandas as pd

from relabeler.config import RunConfig, ScoreConfig
from relabeler.data import load_dataset
from relabeler.data.split import stratified_split
from relabeler.jobs.coverage import score_coverage
from relabeler.jobs.score import SplitView, TrainView
from relabeler.jobs.simulate_coverage import (
    group_members,
    move_group,
    parse_undercover,
    subgroup_measure,
)
from relabeler.report.stats import mean_interval
from relabeler.selectors.eval_support import steering


def encoded(name: str, sample: int, config: RunConfig):
    """The dataset's rows (one seeded sample) and a head refitter over all their texts."""
    from relabeler.jobs.head_states import encoder_states
    from relabeler.jobs.train import fit_options
    from relabeler.model import pick_device
    ds = load_dataset(name, sample=sample or None, seed=0, eval_fraction=0.0)
    rows = ds.train.reset_index(drop=True)
    device = pick_device()
    opts = fit_options(config, device, mode="head", progress=False)
    model = opts.new_classifier(config.model.name, ds.classes).to(device)
    states = encoder_states(config, model, rows["text"].tolist(), device, progress=True)
    return rows, ds.classes, model, states, opts, device


def features_of(model, states) -> np.ndarray:
    """The embedding the classifier receives (what ``extract`` stores), from cached states."""
    import torch

    from relabeler.model import pooling_of

    with torch.inference_mode():
        if model.config.model_type == "bert" and pooling_of(model) != "mean":
            pooler = model.base_model.pooler
            return pooler.activation(pooler.dense(states)).float().cpu().numpy()
        return states.float().cpu().numpy()


def ceilings(refit, *, train_rows: np.ndarray, train_labels: np.ndarray, pool_rows: np.ndarray,
             pool_truth: np.ndarray, in_group_pool: np.ndarray, group_eval_rows: np.ndarray,
             group_eval_truth: np.ndarray, k: int, seed: int) -> dict:
    """What any k picks could buy: the group's eval accuracy after labeling every pool row of
    the group ("all"), k random pool rows of the group ("group", richness 1) and k random pool
    rows outside it ("outside": is the group learned from the rest of the data?)."""

    def accuracy(extra: np.ndarray) -> float:
        probs = refit.fit_predict(np.concatenate([train_rows, pool_rows[extra]]),
                                  np.concatenate([train_labels, pool_truth[extra]]),
                                  group_eval_rows)
        return float(np.mean(probs.argmax(axis=1) == group_eval_truth))

    rng = np.random.default_rng(seed + 5000)
    group, outside = np.flatnonzero(in_group_pool), np.flatnonzero(~in_group_pool)
    return {"all": accuracy(group),
            "group": accuracy(rng.choice(group, size=min(k, len(group)), replace=False)),
            "outside": accuracy(rng.choice(outside, size=min(k, len(outside)), replace=False))}


def one_run(rows: pd.DataFrame, classes: list[str], refit, features: np.ndarray, spec_text: str,
            *, seed: int, pool_fraction: float, k: int, states: np.ndarray,
            with_ceilings: bool = False, diversity_threshold: float | None = None,
            center: bool = False, thin: int = 0, words: float | None = None) -> dict | None:
    rng = np.random.default_rng(seed)
    split = np.asarray(stratified_split(rows["label"].tolist(), 0.2, pool_fraction, rng))
    frames = {"train": rows[split == "train"], "eval": rows[split == "eval"],
              "pool": rows[split == "pool"].assign(true_label=lambda f: f["label"], label=None)}
    frames = {n: f.assign(position=np.flatnonzero(split == n)) for n, f in frames.items()}
    spec = parse_undercover(spec_text)
    order = np.concatenate([f["position"].to_numpy() for f in frames.values()])
    member, _ = group_members({n: f.reset_index(drop=True) for n, f in frames.items()}, spec,
                              seed=seed, embeddings=states[order] if spec.clusters else None)
    new, counts = move_group({n: f.reset_index(drop=True) for n, f in frames.items()}, member,
                             keep=spec.keep, seed=seed)
    index = {c: i for i, c in enumerate(classes)}
    train_pos = new["train"]["position"].to_numpy()
    eval_pos = new["eval"]["position"].to_numpy()
    pool_pos = new["pool"]["position"].to_numpy()
    labels = new["train"]["label"].map(index).to_numpy(dtype=np.int64)
    if center:  # the train rows' mean removed: cosines between samples, not the shared direction
        features = features - features[train_pos].mean(axis=0, keepdims=True)
    everything = np.concatenate([train_pos, eval_pos, pool_pos])
    probs = refit.fit_predict(train_pos, labels, everything)
    n, m = len(train_pos), len(eval_pos)

    def view(part, lab, cls=SplitView, **extra):
        return cls(ids=np.asarray([f"r{p}" for p in everything[part]], dtype=object),
                   labels=lab, features=features[everything[part]], probs=probs[part],
                   pred=probs[part].argmax(axis=1), **extra)

    train_view = view(slice(0, n), labels, TrainView, classes=classes, oof_probs=None,
                      margins=None)
    eval_labels = new["eval"]["label"].map(index).to_numpy(dtype=np.int64)
    splits = {"eval": view(slice(n, n + m), eval_labels),
              "pool": view(slice(n + m, None), np.full(len(pool_pos), -1))}
    spread = {} if diversity_threshold is None else {"diversity_threshold": diversity_threshold}
    if words is not None:  # [score] coverage_words (None: relabeler's)
        spread["coverage_words"] = words
    texts = {name: new[name]["text"].astype(str).tolist() for name in ("train", "eval", "pool")}
    if thin > k:  # the first `thin` candidates, k of them farthest-first ([score] acquire_spread)
        spread["acquire_spread"] = thin / k
    cfg = ScoreConfig(acquire_budget=k, acquire_targets="eval", **spread)
    started = time.perf_counter()
    _, acquired = score_coverage(train_view, splits, cfg, seed=seed, texts=texts)
    seconds = time.perf_counter() - started
    pool_index = pd.Series(np.arange(len(pool_pos)), index=splits["pool"].ids)
    picks = pool_index.reindex(acquired["id"]).to_numpy(dtype=np.int64)
    truth_pool = new["pool"]["true_label"].map(index).to_numpy(dtype=np.int64)
    # measured on the group's eval rows that did not steer acquisition (simulate's measured_rows)
    group_eval = np.flatnonzero(new["eval"]["undercover"].to_numpy(dtype=bool)
                                & ~steering(splits["eval"].ids, cfg.acquire_eval_share))
    if not len(group_eval):  # every group eval row steers: nothing left to measure on
        return None
    common = dict(train_rows=train_pos, train_labels=labels, pool_rows=pool_pos,
                  pool_truth=truth_pool,
                  in_group_pool=new["pool"]["undercover"].to_numpy(dtype=bool),
                  group_eval_rows=eval_pos[group_eval],
                  group_eval_truth=new["eval"]["label"].map(index).to_numpy(
                      dtype=np.int64)[group_eval], seed=seed)
    _, before_acquired = score_coverage(train_view, splits, ScoreConfig(
        acquire_budget=k, acquire_targets="undercovered", **spread), seed=seed, texts=texts)
    before_picks = pool_index.reindex(before_acquired["id"]).to_numpy(dtype=np.int64)
    result = subgroup_measure(refit, picks=picks, **common)
    rows = np.concatenate([train_pos, pool_pos[before_picks]])
    probs = refit.fit_predict(rows, np.concatenate([labels, truth_pool[before_picks]]),
                              common["group_eval_rows"])
    undercovered = {"precision_selected": float(common["in_group_pool"][before_picks].mean()),
                    "accuracy": float(np.mean(probs.argmax(axis=1)
                                              == common["group_eval_truth"]))}
    extra = {"ceilings": ceilings(refit, k=k, **common)} if with_ceilings else {}
    return {**counts, **result, "undercovered": undercovered, "score_seconds": seconds,
            "n_group_eval_measured": int(len(group_eval)), **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--specs", required=True,
                        help="DATASET:SPEC;DATASET:SPEC;... (spec as --undercover takes it)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sample", type=int, default=1500)
    parser.add_argument("--pool", type=float, default=0.5, help="pool fraction")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--json", default="", help="also write every run's result here")
    parser.add_argument("--pool-layers", type=int, default=0,
                        help="[model] pool_layers of the encoder's features (0 = what relabeler "
                             "ships; 1 = the last layer only)")
    parser.add_argument("--diversity-threshold", type=float, default=None,
                        help="[score] diversity_threshold of both acquisitions (default: "
                             "relabeler's)")
    parser.add_argument("--center", action="store_true",
                        help="acquire on features less the train rows' mean (the features "
                             "pool_layers 3 gives share one direction: mean cosine .69)")
    parser.add_argument("--thin", type=int, default=0,
                        help="acquire this many candidates and keep k of them farthest-first "
                             "([score] acquire_spread = THIN / k; 0 = the first k)")
    parser.add_argument("--words", type=float, default=None,
                        help="[score] coverage_words of both acquisitions (default: "
                             "relabeler's; 0 = the encoder's features alone)")
    parser.add_argument("--ceilings", action="store_true",
                        help="also measure every group pool row labeled, k random group rows "
                             "and k random rows outside the group")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from relabeler.training import HeadRefitter, seed_everything

    config = RunConfig()
    config.model.pool_layers = args.pool_layers
    seeds = [int(s) for s in args.seeds.split(",")]
    by_dataset: dict[str, list[str]] = {}
    for item in args.specs.split(";"):
        name, _, spec = item.strip().partition(":")
        by_dataset.setdefault(name, []).append(spec)
    print("| dataset | spec | seed | group pool / pool | group eval | picks in group: selected"
          " / random (ratio) | group eval accuracy before / selected / random (gain vs random)"
          " | undercovered targets: picks in group, accuracy |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    summary = []
    for name, specs in by_dataset.items():
        rows, classes, model, states, opts, device = encoded(name, args.sample, config)
        seed_everything(config.train.seed)
        refit = HeadRefitter(model, states, opts, device)
        features = features_of(model, states)
        states_np = states.float().cpu().numpy()
        for spec in specs:
            results = []
            for seed in seeds:
                r = one_run(rows, classes, refit, features, spec, seed=seed,
                            pool_fraction=args.pool, k=args.k, states=states_np,
                            with_ceilings=args.ceilings,
                            diversity_threshold=args.diversity_threshold,
                            center=args.center, thin=args.thin, words=args.words)
                if r is None:
                    print(f"| {name} | `{spec}` | {seed} | no group eval row left to measure "
                          "(all steer acquisition); seed skipped |", flush=True)
                    continue
                results.append(r)
                if args.json:
                    with open(args.json, "a") as out:
                        out.write(json.dumps({"dataset": name, "spec": spec, "seed": seed,
                                              **r}) + "\n")
                acc, ab = r["accuracy"], r["undercovered"]
                ratio = r["precision_selected"] / max(r["precision_random"], 1e-9)
                print(f"| {name} | `{spec}` | {seed} | {r['n_group_pool']} / {r['n_pool']} | "
                      f"{r['n_group_eval']} ({r['n_group_eval_measured']} measured) | "
                      f"{r['precision_selected']:.2f} / "
                      f"{r['precision_random']:.2f} ({ratio:.1f}x) | {acc['before']:.3f} / "
                      f"{acc['selected']:.3f} / {acc['random']:.3f} "
                      f"({100 * (acc['selected'] - acc['random']):+.1f}) | "
                      f"{ab['precision_selected']:.2f}, {ab['accuracy']:.3f} |"
                      + (" ceilings: all {all:.3f}, group {group:.3f}, outside {outside:.3f}"
                         .format(**r["ceilings"]) if args.ceilings else ""),
                      flush=True)
            summary.append((name, spec, results))
    print("\nMean over seeds (95% t-interval of the per-seed difference):\n")
    print("| dataset | spec | seeds | ratio selected / random | accuracy gain vs random, "
          "points | undercovered targets: ratio, gain |"
          + (" every group pool row: gain | k group rows | k rows outside |"
             if args.ceilings else ""))
    print("|---|---|---|---|---|---|" + ("---|---|---|" if args.ceilings else ""))
    for name, spec, results in summary:
        sel = np.array([r["precision_selected"] for r in results])
        rnd = np.array([r["precision_random"] for r in results])
        gain = 100 * np.array([r["accuracy"]["selected"] - r["accuracy"]["random"]
                               for r in results])
        ab_sel = np.array([r["undercovered"]["precision_selected"] for r in results])
        ab_gain = 100 * np.array([r["undercovered"]["accuracy"] - r["accuracy"]["random"]
                                  for r in results])
        half = _half_width(gain)
        line = (f"| {name} | `{spec}` | {len(results)} | {sel.mean() / rnd.mean():.1f}x | "
                f"{gain.mean():+.1f} ± {half:.1f} | {ab_sel.mean() / rnd.mean():.1f}x, "
                f"{ab_gain.mean():+.1f} ± {_half_width(ab_gain):.1f} |")
        if args.ceilings:
            for key in ("all", "group", "outside"):
                diff = 100 * np.array([r["ceilings"][key] - r["accuracy"]["random"]
                                       for r in results])
                line += f" {key} {diff.mean():+.1f} ± {_half_width(diff):.1f} |"
        print(line, flush=True)


def _half_width(values: np.ndarray) -> float:
    mean, _, high = mean_interval(values)
    return high - mean


if __name__ == "__main__":
    main()
