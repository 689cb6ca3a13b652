"""``[model] long_text`` on long texts: truncate against windows and evidence, per seed, in one
process (issue 21's target: the default beats truncation in accuracy, the queue's detection
AUPRC does not drop; and what it costs).

Per seed and mode one ``relabeler simulate`` run (head mode, training labels flipped at
``--noise``, clean eval labels): eval accuracy of the trained model, the relabeler ranking's
detection AUPRC, and the seconds of train + extract + score, with their ratios against
truncation. Each seed starts from an empty encoder cache; ``windows`` pays the encoding of the
windows and ``evidence``, which reads the same windows, reuses it (its time is its own extra
work: the selecting head fit and extract), so the cost of ``evidence`` from scratch is that of
``windows`` plus its own ratio minus the truncate share of train. For the ``windows``
run the eval windows are also pooled three ways through the same head (mean of logits, what
the mode does; mean of probabilities; max of each class's logit) to choose the pooling.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python benchmarks/long_text.py --data bbc-news \\
        --sample 1000 --seeds 0,1,2 --max-length 128 --out /tmp/long-text
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from relabeler import artifacts
from relabeler.config import apply_overrides
from relabeler.data import read_split
from relabeler.jobs.simulate import run_simulation, simulation_config
from relabeler.jobs.train import head_window_logits, window_states
from relabeler.long_text import TextWindows, mean_by_text
from relabeler.model import load_classifier, pick_device
from relabeler.store import RunStore

MODES = ("truncate", "windows", "evidence")
STAGES = ("train", "extract", "score")


def interval(values: list[float]) -> str:
    """``mean ± half-width`` of a 95% t-interval."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        return f"{x.mean():.4f}"
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return f"{x.mean():.4f} ± {half:.4f}"


def run_mode(args: argparse.Namespace, seed: int, mode: str) -> dict:
    """One simulation of ``mode`` (reused when its folder holds one): accuracy, AUPRC, seconds,
    windows per text."""
    out = args.out / f"{args.data}-{seed}-{mode}"
    config = simulation_config(data=args.data, out=out, noise=args.noise, noise_kind="uniform",
                               seed=seed, sample=args.sample, mode="head", folds=args.folds)
    apply_overrides(config, {"model.long_text": mode, "model.max_length": args.max_length,
                             "model.window_stride": args.stride,
                             "model.cache_dir": str(args.out / f"{args.data}-{seed}-cache")})
    path = out / "simulation.json"
    if not path.exists():
        run_simulation(config, out, progress=False, budgets=None)
    result = json.loads(path.read_text())
    store = RunStore(config.run_dir)
    return {"config": config, "store": store,
            "accuracy": store.stage_info("train")["info"]["eval_accuracy"],
            "auprc": result["detection"]["relabeler"]["auprc"],
            "seconds": sum(result["seconds"][s] for s in STAGES)}


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
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, list[dict]] = {m: [] for m in MODES}
    poolings: list[dict[str, float]] = []
    print("| seed | mode | eval accuracy | detection AUPRC | train+extract+score s | "
          "time / truncate |")
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        base = None
        for mode in MODES:
            run = run_mode(args, seed, mode)
            base = base or run
            rows[mode].append(run)
            print(f"| {seed} | {mode} | {run['accuracy']:.4f} | {run['auprc']:.3f} | "
                  f"{run['seconds']:.0f} | {run['seconds'] / base['seconds']:.2f} |", flush=True)
            if mode == "windows":
                poolings.append(eval_poolings(run))
    print("\n| mode | eval accuracy | minus truncate | detection AUPRC | minus truncate | "
          "time / truncate |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        acc = [r["accuracy"] for r in rows[mode]]
        auprc = [r["auprc"] for r in rows[mode]]
        d_acc = [a - r["accuracy"] for a, r in zip(acc, rows["truncate"], strict=True)]
        d_auprc = [a - r["auprc"] for a, r in zip(auprc, rows["truncate"], strict=True)]
        ratio = [r["seconds"] / t["seconds"] for r, t in zip(rows[mode], rows["truncate"],
                                                            strict=True)]
        print(f"| {mode} | {interval(acc)} | {interval(d_acc)} | {interval(auprc)} | "
              f"{interval(d_auprc)} | {interval(ratio)} |")
    print("\n| windows pooled by | eval accuracy |")
    print("|---|---|")
    for name in poolings[0]:
        print(f"| {name} | {interval([p[name] for p in poolings])} |")


if __name__ == "__main__":
    main()
