"""``[model] long_text`` on long texts: truncate against windows and evidence, in one process
(issue 21's target: the default beats truncation in accuracy, detection does not drop; and what
it costs).

Default (``heads``): one fixed stratified sample of ``--sample`` texts is encoded once per
reading (the frozen packaged MiniLM, head mode, ``max_length`` 128: the truncated texts, and
every window of ``--stride`` shared tokens; timed, wall and this process's CPU seconds, from an
empty encoder cache under ``--out``).
Each seed then splits it (``--eval-fraction``), flips ``--noise`` of the training labels
(uniform) and trains one head per reading, as ``relabeler train`` does: ``truncate`` on the
truncated states, ``windows`` on the mean of the window states, ``evidence`` on the window a
windows head finds the most class evidence in (eval windows picked by the final head). Per
mode: eval accuracy on clean labels, and the detection AUPRC of the out-of-fold (3 folds)
self-confidence ranking (``1 - p(given label)``: the queue's model view) against the flipped
rows. The windows head's eval windows are also pooled three ways (mean of logits, what the mode
does; mean of probabilities; max of each class's logit).

``--pipeline``: one full ``relabeler simulate`` run per seed and mode of ``--modes`` instead
(``simulate --noise 0.2 --noise-kind uniform --mode head --folds 3 --budgets none`` with
``model.long_text`` set; truncation first, the baseline every ratio is against): eval accuracy,
the queue's detection AUPRC (the relabeler ranking of ``simulation.json``, its views and noise
model), the train+extract+score seconds and the whole run's wall seconds. Each run has its own
encoder cache, so each pays its own encoding, as a fresh run does. A run folder that holds a
``simulation.json`` is read, not rerun, when it was made with the same sample, noise, folds,
max length and stride (one made with others is refused, naming them). Much slower.

``--agree``: does the head experiment stand for ``relabeler train``? Over the ``truncate`` and
``windows`` runs ``--pipeline`` left under ``--out`` (nothing is encoded: each run's own cache
holds its states), the head experiment's features (:func:`window_states`, :func:`pick_states`)
fed to the run's saved head, and a head refitted on them as the head experiment fits it
(:class:`HeadRefitter`, the run's training seed), each against the run's
``train/eval_predictions.parquet``.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/long_text.py --data bbc-news \
        --sample 400 --seeds 0,1,2,3,4 --out /tmp/long-text
    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/long_text.py --pipeline --data bbc-news \
        --sample 400 --seeds 0,1,2,3,4 --modes truncate,windows --out /tmp/lt-pipe
    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/long_text.py --agree --data bbc-news \
        --sample 400 --seeds 0,1,2,3,4 --out /tmp/lt-pipe
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from ray_temp import ray_temp_dir  # a sibling script, not a package
from reuse import record_settings, stored_result  # a sibling script, not a package

from relabeler import artifacts
from relabeler.config import apply_overrides
from relabeler.data import read_split
from relabeler.jobs.head_states import head_window_logits, pick_states, window_states
from relabeler.jobs.simulate import run_simulation, simulation_config
from relabeler.long_text import TextWindows, mean_by_text
from relabeler.model import load_classifier, pick_device
from relabeler.report.stats import format_interval
from relabeler.store import RunStore
from relabeler.training import head_probs

MODES = ("truncate", "windows", "evidence")
STAGES = ("train", "extract", "score")



def heads_experiment(args: argparse.Namespace, seeds: list[int]) -> None:
    """The default experiment (see the module docstring); prints its tables."""
    from relabeler.config import RunConfig
    from relabeler.data import DEMO_DATASETS
    from relabeler.data.noise import inject_noise
    from relabeler.data.split import stratified_sample, stratified_split
    from relabeler.jobs.folds import stratified_folds
    from relabeler.jobs.train import fit_options
    from relabeler.report.metrics import detection_metrics
    from relabeler.training import HeadRefitter

    frame = DEMO_DATASETS[args.data]()
    frame = frame.iloc[np.sort(stratified_sample(frame["label"].tolist(), args.sample,
                                                 np.random.default_rng(0)))]
    texts, labels = frame["text"].tolist(), frame["label"].to_numpy(dtype=object)
    classes = sorted(set(labels))
    truth = np.array([classes.index(x) for x in labels])
    device = pick_device()
    encoded, seconds, cpu = {}, {}, {}
    # the timings are of encodings from an empty cache: a rerun's would be cache reads
    shutil.rmtree(args.out / "encoder-cache", ignore_errors=True)
    for mode in ("truncate", "windows"):
        config = RunConfig()
        apply_overrides(config, {"model.long_text": mode, "model.max_length": args.max_length,
                                 "model.window_stride": args.stride, "train.mode": "head",
                                 "model.cache_dir": str(args.out / "encoder-cache")})
        model = load_classifier(config.model.name, classes, pooling="auto")
        started, cpu_started = time.perf_counter(), time.process_time()
        encoded[mode] = window_states(config, model, texts, device, progress=False)
        seconds[mode] = time.perf_counter() - started
        cpu[mode] = time.process_time() - cpu_started
    states, windows = encoded["windows"]
    truncated = encoded["truncate"][0]
    mean_states = pick_states(states, windows, "windows")
    counts = windows.counts()
    print(f"{len(texts)} texts, {len(states)} windows ({counts.mean():.2f} per text, "
          f"{np.mean(counts > 1):.0%} longer than one window); encoding {seconds['truncate']:.0f} "
          f"s truncated, {seconds['windows']:.0f} s windows "
          f"({seconds['windows'] / seconds['truncate']:.2f}x); this process's CPU seconds "
          f"{cpu['truncate']:.0f} and {cpu['windows']:.0f} "
          f"({cpu['windows'] / cpu['truncate']:.2f}x)\n")
    opts = fit_options(config, device, mode="head", progress=False)

    def refitter(features: torch.Tensor) -> HeadRefitter:
        return HeadRefitter(load_classifier(config.model.name, classes, pooling="auto"),
                            features, opts, device)

    def run(features: torch.Tensor, train: np.ndarray, given: np.ndarray, evaluation: np.ndarray,
            flipped: np.ndarray, seed: int) -> tuple[float, float, np.ndarray]:
        fit = refitter(features)
        oof = np.zeros((len(train), len(classes)))
        fold = stratified_folds(given, args.folds, seed)
        for k in range(args.folds):
            held = fold == k
            oof[held] = fit.fit_predict(train[~held], given[~held], train[held])
        probs = fit.fit_predict(train, given, evaluation)
        auprc = detection_metrics(1 - oof[np.arange(len(train)), given], flipped)["auprc"]
        return float(np.mean(probs.argmax(1) == truth[evaluation])), auprc, probs

    rows = {mode: [] for mode in MODES}
    pools: list[dict[str, float]] = []
    print("| seed | mode | eval accuracy | detection AUPRC (out-of-fold self-confidence) |")
    print("|---|---|---|---|")
    for seed in seeds:
        split = np.array(stratified_split(labels.tolist(), args.eval_fraction, 0.0,
                                          np.random.default_rng(seed)))
        train, evaluation = np.flatnonzero(split == "train"), np.flatnonzero(split == "eval")
        noisy, _ = inject_noise(labels[train], args.noise, seed=seed, classes=classes)
        given = np.array([classes.index(x) for x in noisy])
        flipped = given != truth[train]
        results = {"truncate": run(truncated, train, given, evaluation, flipped, seed),
                   "windows": run(mean_states, train, given, evaluation, flipped, seed)}
        # evidence: a windows head on the training texts picks the windows, as train does
        selector = refitter(mean_states)
        selector.fit_predict(train, given, train[:1])
        picked = pick_states(states, windows, "evidence", selector.model, device)
        acc, auprc, _ = run(picked, train, given, evaluation, flipped, seed)
        final = refitter(picked)
        final.fit_predict(train, given, train[:1])
        picked_eval = pick_states(states, windows, "evidence", final.model, device)
        eval_probs = head_probs(final.model, picked_eval[evaluation], device)
        results["evidence"] = (float(np.mean(eval_probs.argmax(1) == truth[evaluation])), auprc,
                               eval_probs)
        for mode in MODES:
            rows[mode].append(results[mode][:2])
            print(f"| {seed} | {mode} | {results[mode][0]:.4f} | {results[mode][1]:.3f} |",
                  flush=True)
        pools.append(_poolings(selector.model, states, windows, evaluation, truth, device))
    print("\n| mode | eval accuracy | minus truncate | detection AUPRC | minus truncate |")
    print("|---|---|---|---|---|")
    for mode in MODES:
        acc, auprc = (list(x) for x in zip(*rows[mode], strict=True))
        base_acc, base_auprc = (list(x) for x in zip(*rows["truncate"], strict=True))
        print(f"| {mode} | {format_interval(acc)} | "
              f"{format_interval([a - b for a, b in zip(acc, base_acc, strict=True)])} | "
              f"{format_interval(auprc)} | "
              f"{format_interval([a - b for a, b in zip(auprc, base_auprc, strict=True)])} |")
    print("\n| windows pooled by | eval accuracy |")
    print("|---|---|")
    for name in pools[0]:
        print(f"| {name} | {format_interval([p[name] for p in pools])} |")


def _poolings(model, states: torch.Tensor, windows: TextWindows, evaluation: np.ndarray,
              truth: np.ndarray, device) -> dict[str, float]:
    """Eval accuracy of a windows head with the eval texts' windows pooled three ways."""
    logits = head_window_logits(model, states, device)
    probs = torch.from_numpy(logits).softmax(-1).numpy()
    pooled = {"mean of logits": mean_by_text(logits, windows),
              "mean of probabilities": mean_by_text(probs, windows),
              "max of logits": _max_by_text(logits, windows)}
    return {name: float(np.mean(p[evaluation].argmax(1) == truth[evaluation]))
            for name, p in pooled.items()}


def run_mode(args: argparse.Namespace, seed: int, mode: str) -> dict:
    """One simulation of ``mode`` (reused when its folder holds one): accuracy, AUPRC, seconds,
    windows per text."""
    out = args.out / f"{args.data}-{seed}-{mode}"
    config = simulation_config(data=args.data, out=out, noise=args.noise, noise_kind="uniform",
                               seed=seed, sample=args.sample, mode="head", folds=args.folds)
    config.score.min_agreement = 0.0  # as gain.py: a small sample's refit may not follow
    # each run its own encoder cache: windows and evidence share one fingerprint, and a cache
    # filled by the run before would hide the encoding a fresh run pays
    apply_overrides(config, {"model.long_text": mode, "model.max_length": args.max_length,
                             "model.window_stride": args.stride,
                             "model.cache_dir": str(out / "encoder-cache"),
                             "ray.temp_dir": ray_temp_dir()})
    result, wall = timed_simulation(config, out, {
        "seed": seed, "sample": args.sample, "noise": args.noise, "folds": args.folds,
        "max_length": args.max_length, "stride": args.stride})
    store = RunStore(config.run_dir)
    return {"config": config, "store": store,
            "accuracy": store.stage_info("train")["info"]["eval_accuracy"],
            "auprc": result["detection"]["relabeler"]["auprc"],
            "signals": {name: m["auprc"] for name, m in result["signals"].items()},
            "seconds": sum(result["seconds"][s] for s in STAGES), "wall": wall}


def timed_simulation(config, out: Path, settings: dict) -> tuple[dict, float]:
    """``simulation.json`` of the simulation in ``out`` (run first, timed, when missing; a
    finished one made with other ``settings``, the arguments that define it, is refused) and
    its wall seconds (nan when it ran before the time was kept)."""
    path, wall_path = out / "simulation.json", out / "wall.json"
    result = stored_result(path, settings)
    if result is None:
        started = time.perf_counter()
        run_simulation(config, out, progress=False, budgets=None)
        wall_path.write_text(json.dumps({"seconds": time.perf_counter() - started}))
        result = record_settings(path, settings)
    wall = json.loads(wall_path.read_text())["seconds"] if wall_path.exists() else float("nan")
    return result, wall


def eval_poolings(run: dict) -> dict[str, float]:
    """Eval accuracy of the ``windows`` run's head with its eval windows pooled three ways."""
    store, config = run["store"], run["config"]
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    model = load_classifier(store.get_dir(artifacts.MODEL.path))
    classes = [model.config.id2label[i] for i in range(model.config.num_labels)]
    truth = evaluation["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    device = pick_device()
    states, windows = window_states(config, model, evaluation["text"].tolist(), device,
                                    progress=False)
    logits = head_window_logits(model, states, device)
    probs = torch.from_numpy(logits).softmax(-1).numpy()
    pooled = {"mean of logits": mean_by_text(logits, windows),
              "mean of probabilities": mean_by_text(probs, windows),
              "max of logits": _max_by_text(logits, windows)}
    return {name: float(np.mean(p.argmax(1) == truth)) for name, p in pooled.items()}


def agreement(args: argparse.Namespace, seeds: list[int]) -> None:
    """``--agree`` (see the module docstring); prints one row per run."""
    from relabeler.jobs.train import fit_options
    from relabeler.training import HeadRefitter, seed_everything

    print("| seed | mode | eval rows | train's eval accuracy | saved head on these features: "
          "same predictions | refitted head: same predictions | refitted head: eval accuracy |")
    print("|---|---|---|---|---|---|---|")
    for seed in seeds:
        for mode in ("truncate", "windows"):
            if not (args.out / f"{args.data}-{seed}-{mode}" / "simulation.json").exists():
                continue
            run = run_mode(args, seed, mode)
            store, config = run["store"], run["config"]
            train = read_split(store.read_table(artifacts.TRAIN.path))
            evaluation = read_split(store.read_table(artifacts.EVAL.path))
            saved = load_classifier(store.get_dir(artifacts.MODEL.path))
            classes = [saved.config.id2label[i] for i in range(saved.config.num_labels)]
            device = pick_device()
            states, windows = window_states(
                config, saved, train["text"].tolist() + evaluation["text"].tolist(), device,
                progress=False)
            features = pick_states(states, windows, mode)
            n = len(train)
            written = store.read_table(artifacts.EVAL_PREDICTIONS.path).to_pandas()
            pred = written["pred"].map(classes.index).to_numpy()
            truth = evaluation["label"].map(classes.index).to_numpy()
            by_saved = head_probs(saved, features[n:], device).argmax(1)
            seed_everything(config.train.seed)  # the initial head train's fit starts from
            fresh = load_classifier(config.model.name, classes, pooling=config.model.pooling)
            refit = HeadRefitter(fresh, features, fit_options(config, device, progress=False),
                                 device)
            by_refit = refit.fit_predict(np.arange(n), train["label"].map(classes.index)
                                         .to_numpy(), np.arange(n, len(features))).argmax(1)
            print(f"| {seed} | {mode} | {len(evaluation)} | {run['accuracy']:.4f} | "
                  f"{np.mean(by_saved == pred):.4f} | {np.mean(by_refit == pred):.4f} | "
                  f"{np.mean(by_refit == truth):.4f} |", flush=True)


def _max_by_text(values: np.ndarray, windows: TextWindows) -> np.ndarray:
    out = np.full((windows.n_texts, values.shape[1]), -np.inf)
    np.maximum.at(out, windows.sample, values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="bbc-news")
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=32)
    parser.add_argument("--eval-fraction", type=float, default=0.4)
    parser.add_argument("--pipeline", action="store_true",
                        help="a full relabeler simulate run per seed and mode")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="--pipeline: the modes to run, truncate (the baseline) first")
    parser.add_argument("--agree", action="store_true",
                        help="check the head experiment against --pipeline's runs under --out")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.agree:
        agreement(args, seeds)
        return
    if not args.pipeline:
        heads_experiment(args, seeds)
        return
    modes = args.modes.split(",")
    if modes[0] != "truncate" or not set(modes) <= set(MODES):
        parser.error(f"--modes: truncate first, then any of {', '.join(MODES[1:])}")
    pipeline_experiment(args, seeds, modes)


def pipeline_experiment(args: argparse.Namespace, seeds: list[int], modes: list[str]) -> None:
    """``--pipeline``: one ``relabeler simulate`` per seed and mode, truncation first (the
    baseline every ratio is against); prints the per-seed and the mean tables."""
    rows: dict[str, list[dict]] = {m: [] for m in modes}
    poolings: list[dict[str, float]] = []
    print("| seed | mode | eval accuracy | detection AUPRC | train+extract+score s | "
          "time / truncate | simulate wall s |")
    print("|---|---|---|---|---|---|---|")
    for seed in seeds:
        for mode in modes:
            run = run_mode(args, seed, mode)
            rows[mode].append(run)
            base = rows["truncate"][-1]
            print(f"| {seed} | {mode} | {run['accuracy']:.4f} | {run['auprc']:.3f} | "
                  f"{run['seconds']:.0f} | {run['seconds'] / base['seconds']:.2f} | "
                  f"{run['wall']:.0f} |", flush=True)
            if mode == "windows":
                poolings.append(eval_poolings(run))
    print("\n| mode | eval accuracy | minus truncate | detection AUPRC | minus truncate | "
          "time / truncate | wall / truncate |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        acc = [r["accuracy"] for r in rows[mode]]
        auprc = [r["auprc"] for r in rows[mode]]
        d_acc = [a - r["accuracy"] for a, r in zip(acc, rows["truncate"], strict=True)]
        d_auprc = [a - r["auprc"] for a, r in zip(auprc, rows["truncate"], strict=True)]
        ratio = [r["seconds"] / t["seconds"] for r, t in zip(rows[mode], rows["truncate"],
                                                            strict=True)]
        wall = [r["wall"] / t["wall"] for r, t in zip(rows[mode], rows["truncate"], strict=True)]
        print("| " + " | ".join([mode, *(format_interval(v) for v in
                                         (acc, d_acc, auprc, d_auprc, ratio)),
                                 format_interval(wall, 2)]) + " |")
    print("\n| signal (the ranking's inputs): AUPRC | " + " | ".join(modes) + " |")
    print("|---|" + "---|" * len(modes))
    for name in rows["truncate"][0]["signals"]:
        print(f"| {name} | " + " | ".join(
            format_interval([r["signals"][name] for r in rows[mode]], 3) for mode in modes)
            + " |")
    if poolings:
        print("\n| windows pooled by | eval accuracy |")
        print("|---|---|")
        for name in poolings[0]:
            print(f"| {name} | {format_interval([p[name] for p in poolings])} |")


if __name__ == "__main__":
    main()
