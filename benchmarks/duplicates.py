"""Duplicate groups on the dev datasets as they ship, with synthetic near-duplicates injected.

Each demo dataset (sms-spam, bbc-news, drug-review) is split at random into train / eval / pool
(70 / 15 / 15). 200 random rows get an edited copy of each kind: ``case`` (the case of the
whole text or of random words changed), ``punctuation`` (punctuation added, removed or
changed), ``word`` (one word replaced by another word of the corpus); each copy goes into a
split other than its original's. The features are those the classifier sees in head mode (the
CPU default): the packaged MiniLM-L6, mean-pooled over ``[model] pool_layers`` layers
(``--pool-layers``), ``max_length`` 128.

Reported per dataset: exact-duplicate pairs of the shipped data found (texts equal after
whitespace and case normalisation, all must share a group), the share of synthetic copies
grouped with their original per kind, the near-duplicate groups of the shipped data, and a
sample of those groups written out to be read (``--show``).

    python benchmarks/duplicates.py                       # all three datasets
    python benchmarks/duplicates.py --show 50 --datasets sms-spam
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import torch

from relabeler.data import DEMO_DATASETS
from relabeler.model import (
    DEFAULT_POOL_LAYERS,
    encoder_head_states,
    iter_text_batches,
    load_classifier,
    load_tokenizer,
)
from relabeler.selectors.duplicates import find_duplicates, normalize_text

KINDS = ("case", "punctuation", "word")
MIN_WORDS = 5
_WORD = re.compile(r"[A-Za-z]{2,}")


def edit(text: str, kind: str, vocabulary: list[str], rng: np.random.Generator) -> str:
    """One light edit of ``kind``; always returns a text different from ``text``."""
    words = text.split(" ")
    if kind == "case":
        if rng.random() < 0.5:
            out = text.upper() if text != text.upper() else text.lower()
        else:
            out = " ".join(w.swapcase() if rng.random() < 0.5 else w for w in words)
    elif kind == "punctuation":
        marks = [i for i, c in enumerate(text) if c in ".,!?;:'\"-"]
        if marks and rng.random() < 0.5:
            i = int(rng.choice(marks))
            out = text[:i] + str(rng.choice(["", "!", ",", "?"])) + text[i + 1:]
        else:
            i = int(rng.integers(0, len(words)))
            words[i] = words[i] + str(rng.choice([",", "!", ".", "..."]))
            out = " ".join(words)
    else:
        spots = [i for i, w in enumerate(words) if _WORD.fullmatch(w.strip(".,!?;:"))]
        i = int(rng.choice(spots)) if spots else int(rng.integers(0, len(words)))
        replacement = str(rng.choice(vocabulary))
        while replacement.casefold() == words[i].casefold():
            replacement = str(rng.choice(vocabulary))
        words[i] = replacement
        out = " ".join(words)
    return out if out != text else text + "!"


def embed(texts: list[str], cache: Path, max_length: int = 128, pool_layers: int = 0
          ) -> np.ndarray:
    """The head-mode classifier's features (the packaged MiniLM-L6 pooled as ``[model]
    pooling`` auto and ``pool_layers`` pool it; 0 = the shipped default), cached per text."""
    known: dict[str, np.ndarray] = {}
    if cache.exists():
        stored = np.load(cache, allow_pickle=True)
        known = dict(zip(stored["texts"].tolist(), stored["features"], strict=True))
    missing = sorted({t for t in texts if t not in known})
    if missing:
        tokenizer = load_tokenizer(None)
        model = load_classifier(None, ["a", "b"], pooling="auto", pool_layers=pool_layers)
        with torch.inference_mode():
            for idx, enc in iter_text_batches(tokenizer, missing, max_length, 64):
                pooled = encoder_head_states(model, dict(enc)).numpy()
                known.update(zip([missing[i] for i in idx], pooled, strict=True))
        np.savez(cache, texts=np.array(list(known), dtype=object),
                 features=np.stack(list(known.values())))
    return np.stack([known[t] for t in texts]).astype(np.float32)


def run(name: str, args, rng: np.random.Generator) -> dict:
    frame = DEMO_DATASETS[name]()
    texts = frame["text"].astype(str).tolist()
    n = len(texts)
    split = rng.choice(["train", "eval", "pool"], size=n, p=[0.7, 0.15, 0.15])
    vocabulary = sorted({w for t in texts for w in _WORD.findall(t)})
    copies, origin, kinds, copy_split = [], [], [], []
    # a light edit needs a text to edit: one word changed in a text of two words is another
    # text, so the originals have at least MIN_WORDS words
    eligible = np.flatnonzero([len(t.split()) >= MIN_WORDS for t in texts])
    for kind in KINDS:
        for row in rng.choice(eligible, size=args.copies, replace=False).tolist():
            copies.append(edit(texts[row], kind, vocabulary, rng))
            origin.append(row)
            kinds.append(kind)
            copy_split.append(rng.choice([s for s in ("train", "eval", "pool")
                                          if s != split[row]]))
    all_texts = texts + copies
    layers = args.pool_layers or DEFAULT_POOL_LAYERS
    features = embed(all_texts, Path(args.cache) / f"{name}-L{layers}.npz", pool_layers=layers)
    result = {"dataset": name, "rows": n, "copies": len(copies)}
    for label, threshold, sketch in [(f"features {t}", t, False) for t in args.thresholds] + \
            [(f"features {t} + text sketch", t, True) for t in args.thresholds]:
        started = time.perf_counter()
        groups = find_duplicates(features, all_texts, threshold=threshold,
                                 text_threshold=args.text_threshold, k=args.k,
                                 text_neighbors=sketch)
        seconds = time.perf_counter() - started
        g = groups.group
        # exact duplicates of the shipped data: every pair must share a group
        norm = [normalize_text(t) for t in texts]
        by_text: dict[str, list[int]] = {}
        for i, t in enumerate(norm):
            by_text.setdefault(t, []).append(i)
        exact_sets = [rows for rows in by_text.values() if len(rows) > 1]
        exact_rows = sum(len(r) for r in exact_sets)
        exact_found = sum(len(r) for r in exact_sets if g[r[0]] >= 0 and len(set(g[r])) == 1)
        found = np.array([g[n + j] >= 0 and g[n + j] == g[o] for j, o in enumerate(origin)])
        recall = {kind: float(found[np.array(kinds) == kind].mean()) for kind in KINDS}
        # near-duplicate groups of the shipped data: groups of original rows that are not
        # all one normalised text
        shipped = g[:n]
        near_groups = [int(x) for x in np.unique(shipped[shipped >= 0])
                       if len({norm[i] for i in np.flatnonzero(shipped == x)}) > 1]
        cross = sum(1 for x in np.unique(shipped[shipped >= 0])
                    if len(set(split[np.flatnonzero(shipped == x)])) > 1)
        result[label] = {
            "seconds": round(seconds, 2), "groups": groups.n_groups,
            "exact_rows": exact_rows, "exact_found": exact_found,
            "near_recall": recall, "near_recall_all": float(found.mean()),
            "missed_examples": [[texts[origin[j]][:120], copies[j][:120]]
                                for j in np.flatnonzero(~found)[:8].tolist()],
            "shipped_near_groups": len(near_groups), "shipped_cross_split_groups": cross,
            "candidates": groups.n_candidates, "rejected_by_text": groups.n_rejected}
        if args.show and sketch and threshold == args.thresholds[0]:
            sample = rng.choice(near_groups, size=min(args.show, len(near_groups)),
                                replace=False) if near_groups else []
            shown = [[f"[{split[i]}|{frame['label'].iloc[i]}] {texts[i][:300]!r}"
                      for i in np.flatnonzero(shipped == x)] for x in sample]
            Path(args.cache, f"{name}-groups.json").write_text(json.dumps(shown, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DEMO_DATASETS))
    parser.add_argument("--copies", type=int, default=200, help="edited copies per kind")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.98])
    parser.add_argument("--text-threshold", type=float, default=0.8)
    parser.add_argument("--k", type=int, default=20, help="as the score stage: max(k, 20)")
    parser.add_argument("--show", type=int, default=50, help="near groups written out to read")
    parser.add_argument("--cache", default="/tmp/relabeler-duplicates-bench")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-layers", type=int, default=0,
                        help="[model] pool_layers of the features (0 = the shipped default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    for name in args.datasets:
        print(json.dumps(run(name, args, np.random.default_rng(args.seed)), indent=1),
              flush=True)


if __name__ == "__main__":
    main()
