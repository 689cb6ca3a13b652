"""How many task updates serve's live re-ranks send, with priorities as push gives them now (a
step of ``PRIORITY_STEP`` between tasks) against the baseline of values packed 1, 2, 3 (push
before the step). Each update is one request to Label Studio, and while a re-rank sends them
the "Priority queue" tab is half in the old order.

A queue of N waiting tasks is re-ranked R times. Before each re-rank the first ``--answers``
waiting tasks are answered (they leave the queue) and the scores of ``--touched`` of the
waiting tasks (a share) move by Gaussian noise of ``--drift`` standard deviations of the
scores: the answers change the votes of their neighbours and the noise model, and the other
tasks keep their order. The wanted order is the new scores', and the values follow
:func:`relabeler.plugin.priorities.minimal_priorities`, as serve's re-rank computes them. No
Label Studio here: the counts are what the re-rank would send.

    python benchmarks/priorities.py --n 150 1500 15000 --reranks 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relabeler.plugin.priorities import minimal_priorities  # noqa: E402
from relabeler.queue_plan import PRIORITY_STEP  # noqa: E402


def updates(n: int, step: int, *, reranks: int, answers: int, touched: float, drift: float,
            seed: int) -> int:
    """Task updates over ``reranks`` re-ranks of a queue pushed with values ``step`` apart."""
    rng = np.random.default_rng(seed)
    score = np.sort(rng.normal(size=n))[::-1].copy()  # pushed in score order
    value = {i: step * (k + 1) for k, i in enumerate(range(n))}
    waiting = list(range(n))
    sent = 0
    for _ in range(reranks):
        waiting = sorted(waiting, key=value.__getitem__)[answers:]
        moved = rng.choice(waiting, size=max(1, round(touched * len(waiting))), replace=False)
        score[moved] += rng.normal(scale=drift, size=len(moved))
        wanted = sorted(waiting, key=lambda i: (-score[i], i))
        new = minimal_priorities([value[i] for i in wanted])
        for i, v in zip(wanted, new, strict=True):
            sent += v != value[i]
            value[i] = v
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[150, 1500, 15000])
    parser.add_argument("--reranks", type=int, default=20)
    parser.add_argument("--answers", type=int, default=3, help="answers between re-ranks")
    parser.add_argument("--touched", type=float, nargs="+", default=[0.05, 0.2, 1.0],
                        help="shares of the waiting tasks whose scores move per re-rank")
    parser.add_argument("--drift", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"| waiting tasks | scores moved per re-rank | updates in {args.reranks} re-ranks, "
          f"values 1, 2, 3 (baseline) | updates, {PRIORITY_STEP} apart | ratio |\n"
          f"|---|---|---|---|---|")
    for n in args.n:
        for touched in args.touched:
            packed = spaced = 0
            for seed in range(args.seeds):
                common = dict(reranks=args.reranks, answers=args.answers, touched=touched,
                              drift=args.drift, seed=seed)
                packed += updates(n, 1, **common)
                spaced += updates(n, PRIORITY_STEP, **common)
            print(f"| {n} | {touched:.0%} | {packed / args.seeds:.0f} | "
                  f"{spaced / args.seeds:.0f} | {packed / max(spaced, 1):.1f}x |")


if __name__ == "__main__":
    main()
