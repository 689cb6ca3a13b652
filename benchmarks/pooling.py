"""``[model] pool_layers`` over seeds and datasets: how many of the encoder's last layers mean
pooling should average (the decision for ``DEFAULT_POOL_LAYERS``), in one process.

Default (heads, the ``heads`` experiment of ``benchmarks/long_text.py`` with the layers in place
of the long-text modes): for each dataset of ``--data`` (``NAME:SAMPLE``, a fixed stratified
sample; 0 = every row) and each L of ``--layers``, the packaged MiniLM loaded with ``pooling =
auto`` and ``pool_layers = L`` encodes the sample once (``long_text = windows``, ``max_length``
128, an empty encoder cache under ``--out``; wall and this process's CPU seconds). Each seed then
splits it (stratified, ``--eval-fraction``; drug-review keeps its package's train/test split,
so there the seed draws only the noise and the folds), flips ``--noise`` of the training labels
for each kind of ``--kinds`` (a kind :func:`relabeler.data.noise.inject_noise` cannot apply at
that rate is skipped and said: asymmetric noise on sms-spam, whose spam is fewer than 20% of the
rows) and fits one head per L as ``relabeler train`` does in head mode (the same seeded initial
head for every L). Per run: eval accuracy on the clean labels, and the detection AUPRC of the
out-of-fold (``--folds``) self-confidence ranking (``1 - p(given label)``, the queue's model
view) against the flipped rows. Tables: per dataset, kind and L, the mean over seeds with its
95% t-interval and the seed-paired difference against L = 1, the encoding seconds against
L = 1's, then each L's accuracy against the current default's over the datasets. A dataset's
results are kept in ``--out/<dataset>.json`` with the arguments that made them: a rerun with
the same arguments reads them instead of encoding again; one with others is refused, naming
them.

``--pipeline``: one real ``relabeler simulate`` per dataset of ``--pipeline-data`` and L of
``--pipeline-layers`` at the first seed (``--noise`` uniform, head mode, ``--folds`` folds, no
gain budgets, each run its own encoder cache): eval accuracy on clean labels and the queue's
detection AUPRC (the relabeler ranking of ``simulation.json``: all its views and the noise
model). A run folder that holds a ``simulation.json`` is read, not rerun (one made with
another ``--noise`` or ``--folds`` is refused, naming them).

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/pooling.py \
        --data drug-review:0,sms-spam:2000,bbc-news:800 --seeds 0,1,2,3,4,5,6,7,8,9 \
        --out /tmp/pooling
    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/pooling.py --pipeline \
        --pipeline-data drug-review:0,sms-spam:500,bbc-news:200 --seeds 0 --out /tmp/pooling
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers.utils import logging as transformers_logging

from relabeler.config import RunConfig, apply_overrides
from relabeler.data import DEMO_DATASETS
from relabeler.data.noise import NOISE_KINDS, inject_noise
from relabeler.data.split import stratified_sample, stratified_split
from relabeler.jobs.train import (
    fit_options,
    long_text_settings,
    pick_states,
    stratified_folds,
    window_states,
)
from relabeler.long_text import mean_by_text, text_windows
from relabeler.model import (
    DEFAULT_POOL_LAYERS,
    autocast,
    iter_text_batches,
    load_classifier,
    load_tokenizer,
    pick_device,
    pool_layers_of,
)
from relabeler.report.metrics import detection_metrics
from relabeler.report.stats import format_interval
from relabeler.training import HeadRefitter, seed_everything

log = logging.getLogger("pooling")

STAGES = ("train", "extract", "score")


def parse_data(spec: str) -> dict[str, int]:
    """``"sms-spam:2000,drug-review"`` -> ``{"sms-spam": 2000, "drug-review": 0}`` (0 = every
    row), in the order given; an unknown dataset or a bad size is a ValueError."""
    chosen: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, size = item.partition(":")
        if name not in DEMO_DATASETS:
            raise ValueError(f"dataset {name!r}: expected one of {', '.join(DEMO_DATASETS)}")
        try:
            sample = int(size or 0)
        except ValueError:
            raise ValueError(f"dataset {item!r}: the sample size must be an integer") from None
        if sample < 0:
            raise ValueError(f"dataset {item!r}: the sample size must be >= 0")
        chosen[name] = sample
    if not chosen:
        raise ValueError(f"no dataset in {spec!r}")
    return chosen


def layer_summary(runs: list[dict], layers: list[int], base: int = 1) -> list[dict]:
    """Per L, the mean ± 95% t-interval over seeds of ``accuracy`` and ``auprc`` and their
    seed-paired differences against L = ``base``.

    runs: one dict per (seed, L) with keys ``seed``, ``layers``, ``accuracy``, ``auprc``; every
    seed must have a run of every L (a missing one is a ValueError, not a silently unpaired
    mean). Returns one dict per L with ``layers`` and the formatted ``accuracy``,
    ``accuracy_diff``, ``auprc``, ``auprc_diff``, and the raw ``accuracy_diffs`` (by seed)
    and their mean ``mean_accuracy_diff`` (likewise for ``auprc``).
    """
    by_key = {(r["seed"], r["layers"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    missing = [(s, n) for s in seeds for n in {*layers, base} if (s, n) not in by_key]
    if missing:
        raise ValueError(f"runs lack (seed, layers) {missing}")
    rows = []
    for n in layers:
        row: dict = {"layers": n}
        for metric in ("accuracy", "auprc"):
            values = [by_key[s, n][metric] for s in seeds]
            diffs = [by_key[s, n][metric] - by_key[s, base][metric] for s in seeds]
            row[metric] = format_interval(values)
            row[f"{metric}_diff"] = "" if n == base else format_interval(diffs)
            row[f"{metric}_diffs"] = diffs
            row[f"mean_{metric}_diff"] = float(np.mean(diffs))
        rows.append(row)
    return rows


def layer_means(model, tokenizer, texts: list[str], *, layers: int, max_length: int,
                batch_size: int, device: torch.device) -> np.ndarray:
    """(N, layers, H) float32: each text's L2-normalised token mean (over the attention mask) of
    the encoder's last ``layers`` layers, the last layer last, from one forward pass per batch.

    Mean pooling with ``pool_layers = L`` is :func:`pooled_features` of these (what
    ``relabeler.model`` computes, one layer count per forward), so every L of the experiment
    costs one encoding instead of one each.
    """
    out = None
    with torch.inference_mode():
        for idx, enc in iter_text_batches(tokenizer, texts, max_length, batch_size, device):
            with autocast(device):
                hidden = model.base_model(**enc, output_hidden_states=True).hidden_states
            weights = enc["attention_mask"].to(torch.float32).unsqueeze(-1)
            means = torch.stack([F.normalize((h.float() * weights).sum(1)
                                             / weights.sum(1).clamp_min(1.0), dim=-1)
                                 for h in hidden[-layers:]], dim=1)
            if out is None:
                out = np.empty((len(texts), layers, means.shape[-1]), dtype=np.float32)
            out[idx] = means.cpu().numpy()
    if out is None:
        raise ValueError("no texts to encode")
    return out


def pooled_features(means: np.ndarray, layers: int) -> np.ndarray:
    """(N, H): mean pooling over the last ``layers`` of :func:`layer_means`' (N, K, H) output
    (the normalised mean of their normalised means; the last layer's alone for one)."""
    if not 1 <= layers <= means.shape[1]:
        raise ValueError(f"layers must be in 1..{means.shape[1]}, got {layers}")
    if layers == 1:
        return means[:, -1]
    return F.normalize(torch.from_numpy(means[:, -layers:]).mean(1), dim=-1).numpy()


def encode(name: str, texts: list[str], classes: list[str], layers: list[int],
           args: argparse.Namespace) -> tuple[dict[int, torch.Tensor], dict]:
    """Each L's (N, H) head input of ``texts`` (the mean of each text's window states) from one
    shared pass (:func:`layer_means`); then, per L, the first ``--check`` texts encoded as
    ``relabeler train`` reads them (that pool_layers, the encoder cache under ``--out``, timed)
    and compared with the shared pass's (a difference above 1e-4 is an error)."""
    device = pick_device()
    cache = args.out / "encoder-cache" / name
    shutil.rmtree(cache, ignore_errors=True)  # the check times encodings from an empty cache
    config = _config(args, 1, cache)
    model = load_classifier(config.model.name, classes, pooling="auto", pool_layers=1)
    tokenizer = load_tokenizer(config.model.name)
    windows = text_windows(tokenizer, texts, max_length=args.max_length,
                           settings=long_text_settings(config, model))
    started, cpu_started = time.perf_counter(), time.process_time()
    means = layer_means(model, tokenizer, windows.texts(texts), layers=max(layers),
                        max_length=args.max_length, batch_size=64, device=device)
    timing = {"shared_seconds": time.perf_counter() - started,
              "shared_cpu_seconds": time.process_time() - cpu_started,
              "windows": len(means), "longer": float(np.mean(windows.counts() > 1)),
              "check_texts": min(args.check, len(texts)),
              "seconds": {}, "cpu_seconds": {}, "max_difference": {}}
    log.warning("%s: %d texts (%d windows), the last %d layers' means in %.0f s", name,
                len(texts), len(means), max(layers), timing["shared_seconds"])
    features = {n: torch.from_numpy(mean_by_text(pooled_features(means, n), windows))
                for n in layers}
    subset = texts[:timing["check_texts"]]
    for n in layers:
        config = _config(args, n, cache)
        model = load_classifier(config.model.name, classes, pooling="auto", pool_layers=n)
        if pool_layers_of(model) != n:
            raise RuntimeError(f"asked for pool_layers {n}, the model pools "
                               f"{pool_layers_of(model)}")
        started, cpu_started = time.perf_counter(), time.process_time()
        states, subset_windows = window_states(config, model, subset, device, progress=False)
        timing["seconds"][n] = time.perf_counter() - started
        timing["cpu_seconds"][n] = time.process_time() - cpu_started
        product = pick_states(states, subset_windows, "windows")
        difference = float((product - features[n][:len(subset)]).abs().max())
        timing["max_difference"][n] = difference
        if difference > 1e-4:
            raise RuntimeError(f"{name}, pool_layers {n}: the shared pass differs from train's "
                               f"encoding by {difference:.2g}")
    return features, timing


def _config(args: argparse.Namespace, layers: int, cache: Path) -> RunConfig:
    return apply_overrides(RunConfig(), {
        "model.long_text": "windows", "model.max_length": args.max_length,
        "model.pool_layers": layers, "train.mode": "head", "model.cache_dir": str(cache)})


def heads_experiment(name: str, sample: int, args: argparse.Namespace, seeds: list[int],
                     layers: list[int]) -> dict:
    """One dataset's runs (see the module docstring): ``{"timing", "skipped", "runs"}``."""
    frame = DEMO_DATASETS[name]()
    if sample and sample < len(frame):
        frame = frame.iloc[np.sort(stratified_sample(frame["label"].tolist(), sample,
                                                     np.random.default_rng(0)))]
    texts, labels = frame["text"].tolist(), frame["label"].to_numpy(dtype=object)
    classes = sorted(set(labels))
    truth = np.array([classes.index(x) for x in labels])
    features, timing = encode(name, texts, classes, layers, args)
    device = pick_device()
    own_split = frame["split"].to_numpy() if "split" in frame else None
    runs, skipped = [], {}
    for seed in seeds:
        split = own_split if own_split is not None else np.array(stratified_split(
            labels.tolist(), args.eval_fraction, 0.0, np.random.default_rng(seed)))
        train, evaluation = np.flatnonzero(split == "train"), np.flatnonzero(split == "eval")
        for kind in args.kinds:
            try:
                noisy, flipped = inject_noise(labels[train], args.noise, kind=kind, seed=seed,
                                              classes=classes)
            except ValueError as exc:
                skipped[kind] = str(exc)
                continue
            given = np.array([classes.index(x) for x in noisy])
            folds = stratified_folds(given, args.folds, seed)
            for n in layers:
                seed_everything(seed)  # the same initial head for every L, as train draws it
                config = _config(args, n, args.out / "encoder-cache" / name)
                model = load_classifier(config.model.name, classes, pooling="auto",
                                        pool_layers=n)
                opts = replace(fit_options(config, device, mode="head", progress=False),
                               seed=seed)
                refit = HeadRefitter(model, features[n], opts, device)
                oof = np.zeros((len(train), len(classes)))
                for k in range(args.folds):
                    held = folds == k
                    oof[held] = refit.fit_predict(train[~held], given[~held], train[held])
                probs = refit.fit_predict(train, given, evaluation)
                run = {"seed": seed, "kind": kind, "layers": n,
                       "accuracy": float(np.mean(probs.argmax(1) == truth[evaluation])),
                       "auprc": detection_metrics(1 - oof[np.arange(len(train)), given],
                                                  flipped)["auprc"]}
                runs.append(run)
                print(f"| {name} | {seed} | {kind} | {n} | {run['accuracy']:.4f} | "
                      f"{run['auprc']:.3f} |", flush=True)
    return {"n_texts": len(texts), "n_train": int(len(train)), "n_eval": int(len(evaluation)),
            "own_split": own_split is not None, "timing": timing, "skipped": skipped,
            "runs": runs}


def print_tables(results: dict[str, dict], layers: list[int]) -> None:
    """Per dataset and kind the layer table, then each L against the default over datasets."""
    for name, result in results.items():
        timing = result["timing"]
        seconds = {int(k): v for k, v in timing["seconds"].items()}
        cpu = {int(k): v for k, v in timing["cpu_seconds"].items()}
        split = "its own split" if result["own_split"] else "stratified split per seed"
        print(f"\n{name}: {result['n_texts']} texts ({split}: {result['n_train']} train, "
              f"{result['n_eval']} eval), {timing['windows']} windows "
              f"({timing['longer']:.0%} of texts longer than one)")
        for kind, reason in result["skipped"].items():
            print(f"{kind} noise skipped: {reason}")
        print("\n| kind | L | eval accuracy | minus L=1 | detection AUPRC | minus L=1 | "
              "encoding s (CPU s) | / L=1 (CPU) |")
        print("|---|---|---|---|---|---|---|---|")
        for kind in dict.fromkeys(r["kind"] for r in result["runs"]):
            runs = [r for r in result["runs"] if r["kind"] == kind]
            for row in layer_summary(runs, layers):
                n = row["layers"]
                print(f"| {kind} | {n} | {row['accuracy']} | {row['accuracy_diff']} | "
                      f"{row['auprc']} | {row['auprc_diff']} | {seconds[n]:.0f} ({cpu[n]:.0f}) | "
                      f"{seconds[n] / seconds[1]:.2f} ({cpu[n] / cpu[1]:.2f}) |")
    default = DEFAULT_POOL_LAYERS
    if default not in layers:
        return
    for kind in NOISE_KINDS:
        shared = [name for name, r in results.items() if any(x["kind"] == kind
                                                             for x in r["runs"])]
        if not shared:
            continue
        print(f"\n{kind} noise: minus L={default}'s, seed-paired (mean ± 95% t-interval; the "
              f"mean of the datasets per seed, then over seeds; worst: the lowest dataset mean)\n")
        print("| L | metric | " + " | ".join(shared) + " | mean of the datasets | worst |")
        print("|---|---|" + "---|" * (len(shared) + 2))
        for n in layers:
            for metric in ("accuracy", "auprc"):
                diffs = [layer_summary([r for r in results[name]["runs"] if r["kind"] == kind],
                                       [n], base=default)[0][f"{metric}_diffs"]
                         for name in shared]
                cells = [format_interval(d) for d in diffs]
                if len({len(d) for d in diffs}) == 1:
                    cells.append(format_interval(np.mean(diffs, axis=0)))
                else:  # the datasets ran different seeds: no per-seed mean
                    cells.append(f"{np.mean([np.mean(d) for d in diffs]):.4f}")
                cells.append(f"{min(np.mean(d) for d in diffs):+.4f}")
                print(f"| {n} | {metric} | " + " | ".join(cells) + " |")

def pipeline_experiment(args: argparse.Namespace, seed: int) -> None:
    """``--pipeline`` (see the module docstring); prints one row per dataset and L."""
    from long_text import timed_simulation  # sibling scripts (main puts them on sys.path)
    from ray_temp import ray_temp_dir

    from relabeler.jobs.simulate import simulation_config
    from relabeler.store import RunStore

    print("| dataset | L | training rows | eval rows | eval accuracy | queue detection AUPRC | "
          "train+extract+score s | simulate wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, sample in parse_data(args.pipeline_data).items():
        for n in (int(x) for x in args.pipeline_layers.split(",")):
            out = args.out / "pipeline" / f"{name}-{sample}-seed{seed}-L{n}"
            config = simulation_config(data=name, out=out, noise=args.noise,
                                       noise_kind="uniform", seed=seed, sample=sample,
                                       mode="head", folds=args.folds)
            apply_overrides(config, {"model.pool_layers": n,
                                     "model.cache_dir": str(out / "encoder-cache"),
                                     "ray.temp_dir": ray_temp_dir()})
            result, wall = timed_simulation(config, out, {
                "seed": seed, "sample": sample, "noise": args.noise, "folds": args.folds})
            info = RunStore(config.run_dir).stage_info("train")["info"]
            auprc = result["detection"]["relabeler"]["auprc"]
            print(f"| {name} | {n} | {result['n_train']} | {result['n_test']} | "
                  f"{info['eval_accuracy']:.4f} | {auprc:.3f} | "
                  f"{sum(result['seconds'][s] for s in STAGES):.0f} | {wall:.0f} |", flush=True)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="drug-review:0,sms-spam:2000,bbc-news:800",
                        help="NAME:SAMPLE,... (0 = every row), run in this order")
    parser.add_argument("--layers", default="1,2,3,4", help="pool_layers values; 1 first")
    parser.add_argument("--seeds", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--kinds", default="uniform,asymmetric")
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-fraction", type=float, default=0.2)
    parser.add_argument("--check", type=int, default=32,
                        help="texts per dataset encoded per L as train does (timed, compared)")
    parser.add_argument("--pipeline", action="store_true",
                        help="one relabeler simulate per dataset and L at the first seed")
    parser.add_argument("--pipeline-data", default="drug-review:0,sms-spam:500,bbc-news:200")
    parser.add_argument("--pipeline-layers", default="1,3")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    transformers_logging.set_verbosity_error()  # a load report per head fit otherwise
    transformers_logging.disable_progress_bar()
    seeds = [int(s) for s in args.seeds.split(",")]
    layers = [int(x) for x in args.layers.split(",")]
    args.kinds = args.kinds.split(",")
    if layers[0] != 1 or not set(args.kinds) <= set(NOISE_KINDS):
        parser.error(f"--layers: 1 (the baseline) first; --kinds: any of {NOISE_KINDS}")
    try:
        data = parse_data(args.data)
        parse_data(args.pipeline_data)
    except ValueError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).parent))
    from reuse import stored_result  # a sibling script, not a package

    if args.pipeline:
        pipeline_experiment(args, seeds[0])
        return
    results = {}
    print("| dataset | seed | kind | L | eval accuracy | detection AUPRC |")
    print("|---|---|---|---|---|---|")
    for name, sample in data.items():
        path = args.out / f"{name}.json"
        settings = {"data": f"{name}:{sample}", "seeds": seeds, "layers": layers,
                    "kinds": args.kinds, "noise": args.noise, "folds": args.folds,
                    "max_length": args.max_length, "eval_fraction": args.eval_fraction,
                    "check": args.check}
        results[name] = stored_result(path, settings, remove=path)
        if results[name] is None:
            results[name] = {**heads_experiment(name, sample, args, seeds, layers),
                             "settings": settings}
            path.write_text(json.dumps(results[name], indent=1))
    print_tables(results, layers)


if __name__ == "__main__":
    main()
