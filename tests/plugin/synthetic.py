"""A small synthetic scored run: what push needs, written the way the stages write it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from relabeler.store import RunStore

CLASSES = ["neg", "pos"]
CUES = {"pos": ["great", "wonderful", "superb"], "neg": ["awful", "dreadful", "boring"]}
FILLER = ["the", "movie", "was", "really", "quite", "a", "story", "about", "people", "and"]
SPAN_TYPE = pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32()),
                                ("text", pa.string()), ("score", pa.float32())]))


def _text(rng: np.random.Generator, label: str) -> tuple[str, int, int]:
    words = list(rng.choice(FILLER, size=int(rng.integers(4, 12))))
    at = int(rng.integers(0, len(words) + 1))
    words.insert(at, str(rng.choice(CUES[label])))
    text = " ".join(words)
    start = len(" ".join(words[:at])) + (1 if at else 0)
    return text, start, start + len(words[at])


def make_run(root: str, *, n_train: int = 400, n_pool: int = 30, n_acquire: int = 8,
             attributions: bool = True, seed: int = 0, bad_suggestion: bool = False,
             n_eval: int = 0) -> RunStore:
    """Training texts with one sentiment cue each; every 7th label flipped; suspects ranked
    with the flipped ones first; attributions point at the cue word. ``n_eval`` eval rows
    (every 5th label flipped) are ranked into scores/eval_suspects.parquet, flipped first."""
    rng = np.random.default_rng(seed)
    store = RunStore(root)
    rows, cues = [], {}
    for i in range(n_train):
        true = CLASSES[i % 2]
        text, start, end = _text(rng, true)
        label = CLASSES[1 - i % 2] if i % 7 == 0 else true
        sid = f"t{i:04d}"
        rows.append({"id": sid, "text": text, "label": label, "true_label": true,
                     "flipped": label != true})
        cues[sid] = (start, end, true)
    train = pd.DataFrame(rows)
    store.write_json("model/labels.json", CLASSES)
    store.write_table("dataset/train.parquet", pa.Table.from_pandas(train, preserve_index=False))
    score = np.where(train["flipped"], 0.9, 0.1) + rng.uniform(0, 0.09, n_train)
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(n_train, dtype=np.int64)
    ranks[order] = np.arange(1, n_train + 1)
    suggested = [("bogus" if bad_suggestion else t) for t in train["true_label"]]
    same_class = {c: list(train.loc[train["label"] == c, "id"]) for c in CLASSES}
    # the nearest rows share the cue's (true) class, whatever their labels
    same_cue = {c: list(train.loc[train["true_label"] == c, "id"]) for c in CLASSES}
    suspects = pd.DataFrame({
        "id": train["id"], "rank": ranks, "suspect_score": score.astype(np.float32),
        "given_label": train["label"], "suggested_label": suggested,
        "suggested_confidence": np.float32(0.8),
        "margin": score.astype(np.float32),
        "reasons": [["the model prefers another class"] if f else ["no strong signal"]
                    for f in train["flipped"]],
        "support_ids": [[x for x in same_class[t][:4] if x != i]
                        for i, t in zip(train["id"], train["true_label"], strict=True)],
        "support_scores": [[0.9, 0.7, 0.5, 0.3][:3] for _ in range(n_train)],
        "oppose_ids": [[] for _ in range(n_train)], "oppose_scores": [[] for _ in range(n_train)],
        "neighbor_ids": [[x for x in same_cue[t][:4] if x != i][:3]
                         for i, t in zip(train["id"], train["true_label"], strict=True)],
        "neighbor_scores": [[0.95, 0.9, 0.85] for _ in range(n_train)],
        "duplicate_ids": [[] for _ in range(n_train)],
    }).sort_values("rank", ignore_index=True)
    store.write_table("scores/suspects.parquet",
                      pa.Table.from_pandas(suspects, preserve_index=False))

    pool_rows, pool_cues = [], {}
    for i in range(n_pool):
        label = CLASSES[i % 2]
        text, start, end = _text(rng, label)
        pool_rows.append({"id": f"p{i:03d}", "text": text, "label": None})
        pool_cues[f"p{i:03d}"] = (start, end, label)
    pool = pd.DataFrame(pool_rows, columns=["id", "text", "label"])
    store.write_table("dataset/pool.parquet", pa.Table.from_pandas(
        pool, schema=pa.schema([("id", pa.string()), ("text", pa.string()),
                                ("label", pa.string())]), preserve_index=False))
    acquire = pd.DataFrame({"id": [f"p{i:03d}" for i in range(n_acquire)],
                            "rank": np.arange(1, n_acquire + 1),
                            "near_id": [f"p{i + 10:03d}" for i in range(n_acquire)],
                            "similarity": np.float32(0.7)})
    store.write_table("scores/acquire.parquet", pa.Table.from_pandas(acquire,
                                                                     preserve_index=False))
    coverage = pd.DataFrame({"id": pool["id"], "split": "pool",
                             "coverage_score": np.float32(0.5), "density": np.float32(0.5),
                             "label_agreement": np.float32(1.0),
                             "nearest_ids": [list(train["id"][:3]) for _ in range(n_pool)],
                             "is_undercovered": False})
    store.write_table("scores/coverage.parquet", pa.Table.from_pandas(coverage,
                                                                      preserve_index=False))
    if attributions:
        attr = []
        for sid, given, text in zip(train["id"], train["label"], train["text"], strict=True):
            start, end, true = cues[sid]
            for target in dict.fromkeys([true, given]):
                score = 0.8 if target == true else -0.4
                attr.append({"id": sid, "target_label": target, "method": "ig",
                             "spans": [{"start": start, "end": end, "text": text[start:end],
                                        "score": score},
                                       {"start": 0, "end": 3, "text": text[:3],
                                        "score": 0.1}],
                             "delta": 0.01, "truncated": False, "rank": 0,
                             "source": "suspects", "n_tokens": 12, "n_steps": 20,
                             "target_role": "suggested" if target == true else "given"})
        pool_text = dict(zip(pool["id"], pool["text"], strict=True))
        for sid, (start, end, label) in pool_cues.items():
            text = pool_text[sid]
            attr.append({"id": sid, "target_label": label, "method": "ig",
                         "spans": [{"start": start, "end": end, "text": text[start:end],
                                    "score": 0.7}], "delta": 0.02, "truncated": False,
                         "rank": 0, "source": "acquire", "n_tokens": 12, "n_steps": 20,
                         "target_role": "predicted"})
        frame = pd.DataFrame(attr)
        schema = pa.schema([("id", pa.string()), ("target_label", pa.string()),
                            ("method", pa.string()), ("spans", SPAN_TYPE),
                            ("delta", pa.float32()), ("truncated", pa.bool_()),
                            ("rank", pa.int32()), ("source", pa.string()),
                            ("n_tokens", pa.int32()), ("n_steps", pa.int32()),
                            ("target_role", pa.string())])
        store.write_table("attributions.parquet",
                          pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
    if n_eval:
        _write_eval(store, rng, n_eval)
    return store


def _write_eval(store: RunStore, rng: np.random.Generator, n_eval: int) -> None:
    true = [CLASSES[i % 2] for i in range(n_eval)]
    given = [CLASSES[1 - i % 2] if i % 5 == 0 else t for i, t in enumerate(true)]
    evaluation = pd.DataFrame({"id": [f"e{i:03d}" for i in range(n_eval)],
                               "text": [_text(rng, t)[0] for t in true], "label": given,
                               "true_label": true})
    store.write_table("dataset/eval.parquet", pa.Table.from_pandas(evaluation,
                                                                   preserve_index=False))
    score = np.array([0.9 if g != t else 0.1 for g, t in zip(given, true, strict=True)])
    score = score - np.arange(n_eval) * 1e-4
    order = np.argsort(-score, kind="stable")
    ranks = np.empty(n_eval, dtype=np.int64)
    ranks[order] = np.arange(1, n_eval + 1)
    suspects = pd.DataFrame({
        "id": evaluation["id"], "rank": ranks, "suspect_score": score.astype(np.float32),
        "given_label": given, "suggested_label": true,
        "suggested_confidence": np.float32(0.8), "margin": score.astype(np.float32),
        "knn_margin": score.astype(np.float32),
        "wrong_probability": score.astype(np.float32)}).sort_values("rank", ignore_index=True)
    store.write_table("scores/eval_suspects.parquet",
                      pa.Table.from_pandas(suspects, preserve_index=False))
