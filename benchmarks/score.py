"""`relabeler score` vs cleanlab's Datalab on the same features and probabilities.

Both get the training features (the classifier head's input) and the out-of-fold
probabilities of a run directory; Datalab looks for label issues, outliers and near-duplicates
(cleanlab's kNN graph on the features), relabeler computes its whole suspect table (kNN,
duplicates, representer refit and evidence, every signal, reasons) and the coverage map.

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
                           oof_probs=probs, margins=margins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run directory after train and extract")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=2)
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

    cfg = ScoreConfig(evidence_top=0, min_agreement=0.0)
    score_suspects(view, ScoreConfig(evidence_top=10, min_agreement=0.0))  # warm-up (imports)
    started = time.perf_counter()
    suspects, _ = score_suspects(view, cfg)
    ours = time.perf_counter() - started

    from cleanlab import Datalab

    data = {"label": view.labels}
    started = time.perf_counter()
    lab = Datalab(data=data, label_name="label", verbosity=0)
    lab.find_issues(features=view.features, pred_probs=probs,
                    issue_types={"label": {}, "outlier": {}, "near_duplicate": {}})
    theirs = time.perf_counter() - started

    print(f"{'method':58s} seconds")
    print(f"{'relabeler score (all signals, representer evidence for all)':58s} {ours:8.2f}")
    print(f"{'cleanlab Datalab (label, outlier, near_duplicate)':58s} {theirs:8.2f}")
    print(f"relabeler score vs cleanlab Datalab: {theirs / ours:.1f}x (target >= 5x)")
    assert len(suspects) == len(view.ids)


if __name__ == "__main__":
    main()
