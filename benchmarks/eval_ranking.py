"""The eval ranking (``relabeler.jobs.eval_audit.score_eval``) against cleanlab's rankings, on
eval flips drawn afresh over finished runs: how the ranking was chosen (issue 21).

The eval labels never reach training (the model only predicts the eval rows), so flipping
them after the run is the same experiment as simulating with ``--eval-noise``, at a few
seconds per draw instead of a training run. Per run directory (any finished ``relabeler
simulate`` or ``run``; read, never written) and draw: ``--rate`` of the eval rows' true labels
flipped by ``relabeler.data.noise.inject_noise`` (``--kind``, seed 1000 + draw), then the AUPRC
against the flipped rows of the shipped ranking and of cleanlab's three rankings of the model's
eval probabilities. One row per run (mean over draws), then the mean and a 95% t-interval over
runs; "cleanlab best" is the best of the three per draw, picked after the fact. "without the
words" is the shipped ranking without its view from the words (no eval texts given). The
last two columns are issue 21's other bar on the same draws: the model's accuracy on the clean
eval labels less that on the labels audited by an oracle at R x eval size rows, in points, for
the shipped ranking and without the words.

    PYTHONPATH=. python benchmarks/eval_ranking.py --kind uniform --draws 10 \\
        /tmp/ea-new/drug/drug-review-*/run
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.data.noise import inject_noise
from relabeler.jobs.duplicates import split_texts
from relabeler.jobs.eval_audit import score_eval
from relabeler.jobs.score import SplitView, fit_view_noise, load_split, load_train_view
from relabeler.jobs.simulate_eval_audit import audit_at
from relabeler.report.metrics import detection_metrics
from relabeler.report.stats import format_interval
from relabeler.selectors.confidence import cleanlab_scores
from relabeler.store import RunStore

COLUMNS = {"relabeler": "relabeler eval ranking",
           "no_words": "without the words",
           "cleanlab_self_confidence": "cleanlab self-confidence",
           "cleanlab_normalized_margin": "cleanlab normalized margin",
           "cleanlab_best": "cleanlab best",
           "gap:relabeler": "clean - audited (points)",
           "gap:no_words": "the same, without the words"}


def run_draws(run_dir: str, *, kind: str, rate: float, draws: int) -> dict[str, float]:
    """Mean AUPRC per ranking over ``draws`` fresh eval flips of one finished run."""
    store = RunStore(run_dir)
    train = load_train_view(store)
    evaluation = load_split(store, "eval", train.classes)
    table = store.read_table(artifacts.EVAL.path).to_pandas().set_index("id")
    column = "true_label" if "true_label" in table else "label"
    truth = table[column].reindex(evaluation.ids).to_numpy(dtype=object)
    index = {c: i for i, c in enumerate(train.classes)}
    cfg = ScoreConfig(noise_model=store.read_json(artifacts.SUMMARY.path)["noise_model"])
    noise_model = fit_view_noise(train, cfg)
    texts = split_texts(store, "eval", evaluation.ids)
    pred = pd.Series([train.classes[i] for i in evaluation.pred], index=evaluation.ids)
    clean = float((pred.to_numpy(dtype=object) == truth).mean())
    budget = int(round(rate * len(evaluation.ids)))
    results = []
    for draw in range(draws):
        noisy, flipped = inject_noise(truth, rate, kind=kind, seed=1000 + draw,
                                      classes=train.classes)
        labels = np.array([index[x] for x in noisy], dtype=np.int64)
        redrawn = SplitView(ids=evaluation.ids, labels=labels, features=evaluation.features,
                            probs=evaluation.probs, pred=evaluation.pred)
        shipped = score_eval(train, redrawn, cfg, noise_model, texts=texts)
        no_words = score_eval(train, redrawn, cfg, noise_model)
        scores = {name: frame.set_index("id")["suspect_score"].reindex(evaluation.ids)
                  .to_numpy(dtype=np.float64)
                  for name, frame in (("relabeler", shipped), ("no_words", no_words))}
        scores.update(cleanlab_scores(labels, evaluation.probs))
        auprc = {name: detection_metrics(score, flipped)["auprc"]
                 for name, score in scores.items()}
        auprc["cleanlab_best"] = max(v for k, v in auprc.items() if k.startswith("cleanlab"))
        drawn = pd.DataFrame({"label": noisy, "true_label": truth, "flipped": flipped},
                             index=pd.Index(evaluation.ids))
        for name, frame in (("relabeler", shipped), ("no_words", no_words)):
            audited = audit_at(drawn, frame["id"], pred, budget)["audited"]
            auprc[f"gap:{name}"] = 100 * (clean - audited)
        results.append(auprc)
    return pd.DataFrame(results).mean().to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (the `run` of a simulation)")
    parser.add_argument("--kind", choices=("uniform", "asymmetric"), default="uniform")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print("| run | noise model | " + " | ".join(COLUMNS.values()) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    rows = []
    for run_dir in args.runs:
        row = run_draws(run_dir, kind=args.kind, rate=args.rate, draws=args.draws)
        kind = (RunStore(run_dir).read_json(artifacts.SUMMARY.path).get("noise") or {}).get(
            "model", "none")
        rows.append(row)
        name = run_dir.rstrip("/").removesuffix("/run").rsplit("/", 1)[-1]
        print(f"| {name} | {kind} | " + " | ".join(
            f"{row[c]:.2f}" if c.startswith("gap:") else f"{row[c]:.3f}" for c in COLUMNS)
              + " |", flush=True)
    means = [format_interval([row[c] for row in rows], digits=2 if c.startswith("gap:") else 3)
             for c in COLUMNS]
    print(f"| mean of {len(rows)} runs, 95% CI | | " + " | ".join(means) + " |")


if __name__ == "__main__":
    main()
