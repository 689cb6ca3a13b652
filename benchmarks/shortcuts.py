"""Does the shortcut test find a planted token, and how much does it report on the clean corpus?

For each demo dataset, the training split that ``relabeler data`` makes (stratified, 20% eval,
seed 0) is tested as ``relabeler score`` tests it (1-2 word n-grams, min count 10, alpha 0.01
Bonferroni-corrected). Then a token is inserted at a random word position into RATE of one
class's training texts (as ``simulate --shortcut`` does) and its rank among the significant
(token, class) pairs is read, for every class, every rate and several seeds: as shipped (the
merge of two orderings), by association (the lower confidence bound of the class share) alone
and by Gardner's z alone. Two tokens: one that does not occur in the corpus (``zqxv``) and a
common word that does (``today``), whose existing uses in every class dilute the planted
association.

    .venv/bin/python benchmarks/shortcuts.py [--datasets drug-review,sms-spam,bbc-news] [--seeds 5]
        [--rates 0.5,0.3,0.1,0.05]

Prints one JSON line per (dataset, token, class, rate) and a summary table.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from relabeler.data import load_dataset
from relabeler.jobs.simulate_shortcut import insert_token
from relabeler.selectors.shortcuts import token_class_stats

TOKENS = ("zqxv", "today")


def rank_of(found, token: str, cls: int) -> tuple[int | None, int | None, int | None]:
    """The token's rank as shipped, by association alone and by Gardner's z alone."""
    hit = np.flatnonzero((found.tokens == token) & (found.classes == cls))
    if not len(hit):
        return None, None, None
    i = hit[0]
    return (int(i) + 1, int((found.association > found.association[i]).sum()) + 1,
            int((found.z > found.z[i]).sum()) + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="drug-review,sms-spam,bbc-news")
    parser.add_argument("--seeds", type=int, default=5,
                        help="how many seeds (0..N-1) plant the token per setting; at least 1")
    parser.add_argument("--rates", default="0.5,0.3,0.1,0.05")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: the number of seeds to plant with, at least 1 "
                     "(a count here, not a list of seeds)")
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    for name in args.datasets.split(","):
        train = load_dataset(name, eval_fraction=0.2, seed=0).train
        classes = sorted(train["label"].unique())
        labels = train["label"].map({c: i for i, c in enumerate(classes)}).to_numpy()
        texts = train["text"].tolist()
        started = time.perf_counter()
        clean = token_class_stats(texts, labels, num_classes=len(classes))
        seconds = time.perf_counter() - started
        print(json.dumps({"dataset": name, "n_train": len(texts), "n_tested": clean.n_tested,
                          "p_threshold": clean.p_threshold, "n_significant": len(clean),
                          "top": [f"{t} ({classes[c]}, z={z:.1f})" for t, c, z in zip(
                              clean.tokens[:5], clean.classes[:5], clean.z[:5], strict=True)],
                          "seconds": round(seconds, 2)}))
        for token in TOKENS:
            for cls, cls_name in enumerate(classes):
                members = np.flatnonzero(labels == cls)
                for rate in rates:
                    ranks = []
                    for seed in range(args.seeds):
                        rng = np.random.default_rng(seed)
                        rows_ = rng.choice(members, size=max(1, round(rate * len(members))),
                                           replace=False)
                        planted = insert_token(texts, np.sort(rows_), token, rng)
                        found = token_class_stats(planted, labels, num_classes=len(classes))
                        ranks.append(rank_of(found, token, cls))
                    row = {"dataset": name, "token": token, "class": cls_name,
                           "class_share": round(len(members) / len(texts), 3), "rate": rate,
                           "ranks": [r[0] for r in ranks],
                           "association_ranks": [r[1] for r in ranks],
                           "z_ranks": [r[2] for r in ranks]}
                    rows.append(row)
                    print(json.dumps(row))
    print("\n| dataset | token | class (share) | rate | rank (worst of seeds) | rank 1 in | "
          "association alone: worst | rank 1 in | z alone: worst | rank 1 in |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cells = []
        for key in ("ranks", "association_ranks", "z_ranks"):
            cells.append("not found" if None in r[key] else str(max(r[key])))
            cells.append(f"{sum(x == 1 for x in r[key])}/{len(r[key])}")
        print(f"| {r['dataset']} | {r['token']} | {r['class']} ({r['class_share']:.0%}) | "
              f"{r['rate']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
