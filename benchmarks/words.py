"""The training queue with and without the words' view (``score.words``), on finished runs.

Per run directory (any finished ``relabeler simulate``: its training split keeps which labels
were flipped; read, never written): the suspects table made twice in this process, with the
words' view (the shipped default) and without it (the baseline), each ranking's AUPRC against
the flipped training labels, and cleanlab's best ranking of the same out-of-fold
probabilities (self-confidence, normalized margin or its issue finder, picked per run after
the fact). Then the mean and a 95% t-interval per noise model, and the time the words add:
score's suspect ranking with them over without them.

    PYTHONPATH=. python benchmarks/words.py /tmp/s29/ea/drug/*/run /tmp/s29/asym/*/run
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import defaultdict

import numpy as np

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.jobs.score import load_train_view, score_suspects
from relabeler.report.metrics import detection_metrics
from relabeler.report.stats import format_interval
from relabeler.selectors.confidence import cleanlab_scores
from relabeler.store import RunStore


def queue_auprcs(run_dir: str) -> dict:
    """The AUPRCs and seconds of one run's queue with and without the words."""
    store = RunStore(run_dir)
    view = load_train_view(store)
    table = store.read_table(artifacts.TRAIN.path).to_pandas().set_index("id")
    flipped = table["flipped"].reindex(view.ids).to_numpy(dtype=bool)
    noise_model = store.read_json(artifacts.SUMMARY.path)["noise_model"]
    result = {"noise": (store.read_json(artifacts.SUMMARY.path).get("noise") or {}).get(
        "model", "none")}
    for name, words in (("without", False), ("with", True)):
        started = time.perf_counter()
        frame, summary = score_suspects(view, ScoreConfig(noise_model=noise_model,
                                                          words=words))
        result[f"seconds_{name}"] = time.perf_counter() - started
        score = frame.set_index("id")["suspect_score"].reindex(view.ids).to_numpy(
            dtype=np.float64)
        result[name] = detection_metrics(score, flipped)["auprc"]
        if words:
            result["voted"] = "words_margin" in summary["signals"]
    reference = view.oof_probs if view.oof_probs is not None else view.probs
    result["cleanlab_best"] = max(detection_metrics(score, flipped)["auprc"]
                                  for score in cleanlab_scores(view.labels, reference).values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (the `run` of a simulation)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| run | noise model | words vote | without the words | with the words (shipped) "
          "| cleanlab best | seconds without / with |")
    print("|---|---|---|---|---|---|---|")
    groups: dict[str, list[dict]] = defaultdict(list)
    for run_dir in args.runs:
        row = queue_auprcs(run_dir)
        groups[row["noise"]].append(row)
        name = run_dir.rstrip("/").removesuffix("/run").rsplit("/", 1)[-1]
        print(f"| {name} | {row['noise']} | {'yes' if row['voted'] else 'no'} | "
              f"{row['without']:.3f} | {row['with']:.3f} | {row['cleanlab_best']:.3f} | "
              f"{row['seconds_without']:.1f} / {row['seconds_with']:.1f} |", flush=True)
    print("\n| noise model | runs | without the words | with the words | paired gain | "
          "cleanlab best | time ratio (with / without) |")
    print("|---|---|---|---|---|---|---|")
    for noise, rows in sorted(groups.items()):
        def column(key: str, rows: list[dict] = rows) -> list[float]:
            return [row[key] for row in rows]
        gain = [row["with"] - row["without"] for row in rows]
        ratio = sum(column("seconds_with")) / sum(column("seconds_without"))
        print(f"| {noise} | {len(rows)} | {format_interval(column('without'), digits=3)} | "
              f"{format_interval(column('with'), digits=3)} | {format_interval(gain, digits=3)} "
              f"| {format_interval(column('cleanlab_best'), digits=3)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
