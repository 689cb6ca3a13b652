"""What a live re-rank in `relabeler serve` costs, on synthetic features and probabilities.

The kNN of the training features runs once per score (the first re-rank after serve starts
or after a re-score); each re-rank then recomputes the neighbours' votes and the noise model
with the answered labels and combines the views (`LiveRanking.scores`). Label Studio's share
(one task update per moved task) is not in here.

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
    print("| rows | kNN, once per score (s) | re-rank, no answers (s) | re-rank, "
          f"{args.answers} answers (s) |\n|---|---|---|---|")
    for n in args.n:
        view = synthetic_view(n, args.dim, 2)
        started = time.perf_counter()
        neighbours = knn(view.features, k=cfg.k, metric="cosine")
        knn_seconds = time.perf_counter() - started
        live = LiveRanking(view, neighbours, cfg)
        rows = np.random.default_rng(0).choice(n, args.answers, replace=False)
        answered = {str(view.ids[i]): view.classes[0] for i in rows}
        medians = []
        for answers in ({}, answered):
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                live.scores(answers)
                times.append(time.perf_counter() - started)
            medians.append(sorted(times)[len(times) // 2])
        print(f"| {n} | {knn_seconds:.2f} | {medians[0]:.3f} | {medians[1]:.3f} |")


if __name__ == "__main__":
    main()
