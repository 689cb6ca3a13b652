"""`relabeler score` vs cleanlab's Datalab on the same features and probabilities.

Both get the training features (the classifier head's input) and the out-of-fold
probabilities of a run directory; Datalab looks for label issues, outliers and near-duplicates
(cleanlab's kNN graph on the features), relabeler computes its whole suspect table (kNN,
duplicates, representer refit and evidence, every signal, reasons). The coverage map, which
Datalab has no counterpart for, is not timed.

    python benchmarks/score.py --run runs/demo          # a run directory after extract
    python benchmarks/score.py --n 20000 --dim 384      # synthetic features and probs

Prints seconds for each and the ratio (target >= 5x).
"""

from __future__ import annotations

import argparse
import logging
import time
from types import SimpleNamespace

import numpy as np

from relabeler.config import ScoreConfig


def synthetic_view(n: int, dim: int, classes: int, seed: int = 0):
    """Clustered features, probabilities from a noisy linear model, 10% flipped labels."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)).astype(np.float32)
    truth = rng.integers(0, classes, n)
    features = (centers[truth] + rng.normal(scale=1.5, size=(n, dim))).astype(np.float32)
    logits = features @ centers.T / np.sqrt(dim) * 3
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)
    labels = truth.copy()
    flip = rng.random(n) < 0.1
    labels[flip] = (labels[flip] + 1) % classes
    margins = rng.uniform(-1, 1, size=(n, 5)).astype(np.float32)
    return SimpleNamespace(ids=np.array([f"s{i}" for i in range(n)], dtype=object),
                           labels=labels, features=features, probs=probs,
                           pred=probs.argmax(1), classes=[f"c{c}" for c in range(classes)],
                           oof_probs=probs, margins=margins, texts=None)


def subset(view, rows: np.ndarray):
    """The rows ``rows`` of a train view (every per-sample array sliced)."""
    def rows_of(v):
        if isinstance(v, np.ndarray) and len(v) == len(view.ids):
            return v[rows]
        if isinstance(v, list) and len(v) == len(view.ids):  # the texts
            return [v[i] for i in rows]
        return v

    return type(view)(**{k: rows_of(v) for k, v in vars(view).items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run directory after train and extract")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each; best kept")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from relabeler.jobs.score import load_train_view, score_suspects

    if args.run:
        from relabeler.store import RunStore

        view = load_train_view(RunStore(args.run))
        source = args.run
    else:
        view = synthetic_view(args.n, args.dim, args.classes)
        source = f"synthetic {args.n} x {args.dim}, {args.classes} classes"
    probs = view.oof_probs if view.oof_probs is not None else view.probs
    print(f"{source}: {len(view.ids)} samples, {view.features.shape[1]} dims")

    from cleanlab import Datalab

    def datalab(rows: np.ndarray) -> None:
        lab = Datalab(data={"label": view.labels[rows]}, label_name="label", verbosity=0)
        lab.find_issues(features=view.features[rows], pred_probs=probs[rows],
                        issue_types={"label": {}, "outlier": {}, "near_duplicate": {}})

    # relabeler as shipped (evidence for the top [score] evidence_top suspects), and with
    # evidence for every row; min_agreement off: synthetic probabilities are not a linear head's
    shipped = ScoreConfig(min_agreement=0.0)
    every = ScoreConfig(evidence_top=0, min_agreement=0.0)
    # warm-up on a slice: imports and first calls, for both
    score_suspects(subset(view, np.arange(min(500, len(view.ids)))), shipped)
    datalab(np.arange(min(500, len(view.ids))))
    ours = ours_all = theirs = float("inf")
    for _ in range(args.repeat):  # interleaved, each one's best kept
        started = time.perf_counter()
        suspects, _ = score_suspects(view, shipped)
        ours = min(ours, time.perf_counter() - started)
        started = time.perf_counter()
        score_suspects(view, every)
        ours_all = min(ours_all, time.perf_counter() - started)
        started = time.perf_counter()
        datalab(np.arange(len(view.ids)))
        theirs = min(theirs, time.perf_counter() - started)

    top = min(shipped.evidence_top, len(view.ids))
    print(f"{'method':62s} seconds")
    print(f"{f'relabeler score (all signals, evidence for the top {top})':62s} {ours:8.2f}")
    print(f"{'relabeler score (all signals, evidence for every row)':62s} {ours_all:8.2f}")
    print(f"{'cleanlab Datalab (label, outlier, near_duplicate)':62s} {theirs:8.2f}")
    print(f"relabeler score vs cleanlab Datalab: {theirs / ours:.1f}x (target >= 5x); "
          f"with evidence for every row {theirs / ours_all:.1f}x")
    assert len(suspects) == len(view.ids)


if __name__ == "__main__":
    main()
