"""What a live re-rank in `relabeler serve` costs, on synthetic features and probabilities.

The kNN of the training features runs once per score (the first re-rank after serve starts
or after a re-score); each re-rank then recomputes the neighbours' votes and the noise model
with the answered labels and combines the views (`LiveRanking.scores`); in head mode it also
refits the final layer (the first time twice: the base fit on the given labels, then the one
with the answers, warm-started from it). Label Studio's share (one task update per moved task)
is not in here. Times are CPU seconds of this process (all its threads): on a shared machine
the wall clock measures the neighbours' load. The ratio is against the baseline a re-rank
would be without the kNN kept between re-ranks: the kNN again, then the re-rank with the
answers, over the re-rank alone.

    python benchmarks/rerank.py --n 5574 20000 --answers 400
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from score import synthetic_view  # noqa: E402

from relabeler.config import ScoreConfig  # noqa: E402
from relabeler.jobs.live_ranking import LiveRanking  # noqa: E402
from relabeler.selectors.knn import knn  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[5574, 20000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--answers", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3, help="timed re-ranks; median kept")
    args = parser.parse_args()
    cfg = ScoreConfig()
    warm = synthetic_view(64, 8, 2)  # torch.optim's first use imports for seconds: not timed
    LiveRanking(warm, knn(warm.features, k=5, metric="cosine"), cfg, head_refit=True).scores(
        {str(warm.ids[0]): warm.classes[1 - int(warm.labels[0])]})
    print("| rows | kNN, once per score | re-rank, no answers | re-rank, "
          f"{args.answers} answers | ratio: kNN again + re-rank / re-rank | head mode: first "
          "re-rank | head mode: next |\n|---|---|---|---|---|---|---|")
    for n in args.n:
        view = synthetic_view(n, args.dim, 2)
        started = time.process_time()
        neighbours = knn(view.features, k=cfg.k, metric="cosine")
        knn_seconds = time.process_time() - started
        live = LiveRanking(view, neighbours, cfg)
        rows = np.random.default_rng(0).choice(n, args.answers, replace=False)
        answered = {str(view.ids[i]): view.classes[0] for i in rows}
        medians = []
        for answers in ({}, answered):
            times = []
            for _ in range(args.repeat):
                started = time.process_time()
                live.scores(answers)
                times.append(time.process_time() - started)
            medians.append(sorted(times)[len(times) // 2])
        head = LiveRanking(view, neighbours, cfg, head_refit=True)
        started = time.process_time()
        head.scores(answered)  # fits the base refit once, then the one with the answers
        first = time.process_time() - started
        started = time.process_time()
        head.scores(answered)
        ratio = (knn_seconds + medians[1]) / max(medians[1], 1e-9)
        print(f"| {n} | {knn_seconds:.2f} | {medians[0]:.3f} | {medians[1]:.3f} | {ratio:.1f}x "
              f"| {first:.2f} | {time.process_time() - started:.2f} |")


if __name__ == "__main__":
    main()
