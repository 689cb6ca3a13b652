"""``relabeler simulate``: inject known label noise, run the pipeline, measure detection.

On any labeled dataset: hold out a test split, flip training labels with a seed, train (with
out-of-fold models), extract, score, and measure how well relabeler's ranking finds the flipped
rows next to cleanlab (on the same out-of-fold probabilities), TrustAI's dirty score and a
random ranking. Writes ``DIR/simulation.json`` and ``DIR/simulation.md``.

``simulation.json`` is a contract others script against:
``{"dataset", "n_train", "n_test", "n_flipped", "classes", "detection": {method: {"auroc",
"auprc", "precision_at_k", "recall_at_k"}}, "seconds": {stage: s}}``; extra keys
(``signals``: the detection of every single signal, ``settings``) may follow.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from relabeler.config import RunConfig
from relabeler.jobs.dataset import prepare_dataset
from relabeler.jobs.extract import run_extract
from relabeler.jobs.score import load_train_view, run_score
from relabeler.jobs.train import run_train
from relabeler.report.metrics import detection_metrics
from relabeler.selectors import representer
from relabeler.store import RunStore

log = logging.getLogger(__name__)

METHODS = ("relabeler", "cleanlab_self_confidence", "cleanlab_normalized_margin",
           "cleanlab_find_label_issues", "trustai", "random")


def simulation_config(*, data: str, out: str | Path, noise: float, noise_kind: str, seed: int,
                      text_col: str = "text", label_col: str = "label", id_col: str = "id",
                      sample: int = 0, mode: str = "auto", folds: int = 5,
                      test_fraction: float = 0.2, base: RunConfig | None = None) -> RunConfig:
    """The run configuration of one simulation (its run directory is ``out/run``)."""
    config = base or RunConfig()
    config.run_dir = str(Path(out) / "run")
    config.data.source = data
    config.data.text_col = text_col
    config.data.label_col = label_col
    config.data.id_col = id_col
    config.data.sample = sample
    config.data.eval_fraction = test_fraction
    config.data.pool_fraction = 0.0
    config.data.seed = seed
    config.data.noise_rate = noise
    config.data.noise_kind = noise_kind
    config.train.mode = mode
    config.train.folds = folds
    config.train.seed = seed
    config.extract.splits = ["train", "eval"]
    return config


def cleanlab_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
    """cleanlab's rankings on the given probabilities, as suspect scores (higher = worse).

    ``find_label_issues`` returns a set, not a ranking: its flagged samples score
    ``1 + (1 - self-confidence quality)`` (cleanlab's own order inside the set) and the rest 0.
    """
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    self_conf = get_label_quality_scores(labels, probs, method="self_confidence")
    margin = get_label_quality_scores(labels, probs, method="normalized_margin")
    flagged = find_label_issues(labels, probs)
    return {
        "cleanlab_self_confidence": 1.0 - self_conf,
        "cleanlab_normalized_margin": 1.0 - margin,
        "cleanlab_find_label_issues": np.where(flagged, 2.0 - self_conf, 0.0),
    }


def run_simulation(config: RunConfig, out: str | Path, *, force: bool = False,
                   progress: bool = True) -> dict:
    """Run one simulation and write ``simulation.json`` and ``simulation.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(config.run_dir)
    seconds: dict[str, float] = {}
    for stage, fn in (("data", lambda: prepare_dataset(store, config, force=force)),
                      ("train", lambda: run_train(store, config, force=force,
                                                  progress=progress)),
                      ("extract", lambda: run_extract(store, config, force=force,
                                                      progress=progress)),
                      ("score", lambda: run_score(store, config, force=force))):
        started = time.perf_counter()
        fn()
        seconds[stage] = round(time.perf_counter() - started, 2)
        log.info("simulate: %s took %.1f s", stage, seconds[stage])

    view = load_train_view(store)
    train = store.read_table("dataset/train.parquet").to_pandas().set_index("id")
    flipped = train["flipped"].reindex(view.ids).to_numpy(dtype=bool)
    suspects = store.read_table("scores/suspects.parquet").to_pandas().set_index("id")
    suspects = suspects.reindex(view.ids)

    probs = view.oof_probs if view.oof_probs is not None else view.probs
    scores = {"relabeler": suspects["suspect_score"].to_numpy(dtype=np.float64)}
    scores.update(cleanlab_scores(view.labels, probs))
    fit = representer.fit_trustai(view.features, view.probs,
                                  lam=config.score.representer_lambda)
    scores["trustai"] = representer.trustai_dirty_score(fit, view.features)
    scores["random"] = np.random.default_rng(config.data.seed).random(len(view.ids))
    detection = {name: detection_metrics(scores[name], flipped) for name in METHODS}
    signal_names = [c for c in suspects.columns if c not in (
        "rank", "suspect_score", "given_label", "suggested_label", "suggested_confidence",
        "reasons", "support_ids", "support_scores", "oppose_ids", "oppose_scores",
        "duplicate_ids")]
    signals = {name: detection_metrics(suspects[name].to_numpy(dtype=np.float64), flipped)
               for name in signal_names}
    # how often the suggestion is the true label, among the flipped rows
    truth = train["true_label"].reindex(view.ids).to_numpy(dtype=object)
    suggestion_accuracy = float(np.mean(
        suspects["suggested_label"].to_numpy(dtype=object)[flipped] == truth[flipped]))
    info = store.stage_info("data")["info"]
    result = {
        "dataset": config.data.source,
        "n_train": int(len(view.ids)),
        "n_test": int(info["n_eval"]),
        "n_flipped": int(flipped.sum()),
        "classes": view.classes,
        "detection": detection,
        "seconds": seconds,
        "signals": signals,
        "suggestion_accuracy_on_flipped": suggestion_accuracy,
        "settings": {"noise": config.data.noise_rate, "noise_kind": config.data.noise_kind,
                     "seed": config.data.seed, "mode": store.stage_info("train")["info"]["mode"],
                     "folds": config.train.folds, "method": config.score.method,
                     "sample": config.data.sample},
    }
    (out / "simulation.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "simulation.md").write_text(markdown_table(result), encoding="utf-8")
    return result


def markdown_table(result: dict) -> str:
    s = result["settings"]
    lines = [f"# Detection on {result['dataset']}", "",
             f"{result['n_train']} training samples, {result['n_flipped']} labels flipped "
             f"({s['noise']:.0%} {s['noise_kind']} noise, seed {s['seed']}), {s['mode']} mode, "
             f"{s['folds']} folds, {result['n_test']} test samples; K = number of flips.", "",
             "| method | AUROC | AUPRC | precision@K | recall@K |", "|---|---|---|---|---|"]
    for name, m in result["detection"].items():
        lines.append(f"| {name} | {m['auroc']:.3f} | {m['auprc']:.3f} | "
                     f"{m['precision_at_k']:.3f} | {m['recall_at_k']:.3f} |")
    lines += ["", "Single signals:", "", "| signal | AUROC | AUPRC | precision@K |",
              "|---|---|---|---|"]
    for name, m in result["signals"].items():
        lines.append(f"| {name} | {m['auroc']:.3f} | {m['auprc']:.3f} | "
                     f"{m['precision_at_k']:.3f} |")
    lines += ["", f"Suggested label = true label on {result['suggestion_accuracy_on_flipped']:.1%}"
              " of the flipped rows.", "", "Seconds: " + ", ".join(
                  f"{k} {v:.1f}" for k, v in result["seconds"].items()), ""]
    return "\n".join(lines)
