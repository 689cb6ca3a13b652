"""The coverage part of ``relabeler score``: under-covered eval and pool samples, the thin
regions they form, and the pool samples to label for them.

Method (measured by ``relabeler simulate --undercover``, docs/benchmarks.md "Coverage"):

0. The similarity every step reads: the cosine of the classifier's features, blended with the
   cosine of the texts' words (``[score] coverage_words``, :func:`with_words`).
1. Label-aware coverage (:func:`relabeler.selectors.coverage.coverage_scores`): density of the
   nearest training samples in that space times their agreement with the model's
   prediction.
2. Representation (:func:`relabeler.selectors.thin_regions.representation`): the share of
   training rows among a sample's neighbours in train, eval and pool together, against train's
   share overall. ``coverage_score`` is the product of the two (representation capped at 1), so
   a sample counts as under-covered when the training data lacks its neighbourhood, not only
   when it is hard.
3. The lowest ``[score] coverage_quantile`` are under-covered; they are clustered into regions
   (:func:`relabeler.selectors.thin_regions.group_regions`), each named by its size, the words
   that set it apart (TF-IDF inside vs outside) and a few example texts
   (``scores/thin_regions.parquet``).
4. Acquisition, ``[score] acquire_targets``: ``undercovered`` (the default;
   :func:`relabeler.selectors.coverage.acquire`) ranks pool samples by their support of the
   under-covered samples, round the regions; ``eval`` (:mod:`relabeler.selectors.eval_support`)
   by their gradient-similarity support of the labeled eval samples that are thin (low
   representation) and misclassified (only the stable ``acquire_eval_share`` of them that may
   steer it), times the square root of their own representation deficit, falling back to
   ``undercovered`` without eval labels. No near-duplicates either way. Each pick's
   ``targets`` column says which targets chose it: the report measures the gain of ``eval``
   picks on the eval rows that did not steer them. With ``acquire_spread`` above 1, that many
   times the budget are ranked and the budget kept farthest-first
   (:func:`relabeler.selectors.coverage.farthest_first`). Measured on held-out groups and on eval
   rows that did not steer the picks, ``eval`` buys more than ``undercovered`` on drug-review
   and less on bbc-news (``label=business``), so it is not the default.
5. A pool sample whose text is a copy of a training or eval row (a duplicate group of
   ``scores/duplicates.parquet`` holds both) is never acquired: labeling the copy of a training
   row adds nothing, and the copy of an eval row would put that row into training (the
   report's leakage would then count it, and the gain on it would be no gain).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import ScoreConfig
from relabeler.data import read_split
from relabeler.selectors import coverage, eval_support, lexical, thin_regions
from relabeler.selectors.knn import unit_rows
from relabeler.store import RunStore

log = logging.getLogger(__name__)

#: example texts and characteristic words kept per thin region
EXAMPLES, TERMS = 3, 8
_EXAMPLE_CHARS = 300


def score_coverage(train, splits: dict, cfg: ScoreConfig, *, seed: int = 0,
                   copies: set | frozenset = frozenset(),
                   texts: Mapping[str, Sequence[str]] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Coverage of eval and pool samples (``scores/coverage.parquet``) and the pool samples to
    acquire (``scores/acquire.parquet``). ``train`` is the TrainView, ``splits`` the eval/pool
    SplitViews that were extracted; ``copies`` the pool ids never to acquire (copies of a
    training or eval row: :func:`pool_copies`); ``texts`` each split's texts ("train" and
    those of ``splits``, in their rows' order): with ``score.coverage_words`` above 0 the
    similarities read their words too (:func:`with_words`)."""
    if cfg.coverage_words > 0 and texts is not None:
        train, splits = with_words(train, splits, texts, cfg.coverage_words, seed=seed)
    frames = []
    for split, view in splits.items():
        cov = coverage.coverage_scores(train.features, train.labels, view.features, view.pred,
                                       k=cfg.k, num_classes=len(train.classes))
        frames.append(pd.DataFrame({
            "id": view.ids, "split": split, "coverage_score": cov.coverage_score,
            "density": cov.density, "label_agreement": cov.label_agreement,
            "nearest_ids": [train.ids[row[row >= 0]].tolist() for row in cov.nearest_ids],
        }))
    cov_frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["id", "split", "coverage_score", "density", "label_agreement", "nearest_ids"])
    features = (np.concatenate([v.features for v in splits.values()]) if splits
                else np.zeros((0, train.features.shape[1]), np.float32))
    rep = thin_regions.representation(train.features, features, k=2 * cfg.k)
    cov_frame["representation"] = rep
    cov_frame["coverage_score"] = (cov_frame["coverage_score"].to_numpy(dtype=np.float32)
                                   * np.minimum(rep, 1.0)).astype(np.float32)
    cov_frame["is_undercovered"] = coverage.undercovered(
        cov_frame["coverage_score"].to_numpy(dtype=np.float64), quantile=cfg.coverage_quantile)
    target_rows = np.flatnonzero(cov_frame["is_undercovered"].to_numpy(dtype=bool))
    regions = thin_regions.group_regions(features[target_rows], seed=seed)
    region = np.full(len(cov_frame), -1, dtype=np.int64)
    region[target_rows] = regions
    cov_frame["region"] = region

    acquire_frame = pd.DataFrame({"id": pd.Series(dtype=object),
                                  "rank": pd.Series(dtype=np.int64),
                                  "near_id": pd.Series(dtype=object),
                                  "similarity": pd.Series(dtype=np.float32),
                                  "support": pd.Series(dtype=np.float32),
                                  "region": pd.Series(dtype=np.int64),
                                  "targets": pd.Series(dtype=object)})
    pool = splits.get("pool")
    if pool is None or not len(pool.ids):
        return cov_frame, acquire_frame
    allowed = ~np.isin(pool.ids, np.asarray(sorted(copies), dtype=object))
    candidate = np.full(len(pool.ids), -1, dtype=np.int64)  # pool row -> candidate row
    candidate[allowed] = np.arange(int(allowed.sum()))
    if not allowed.all():
        log.info("score: %d pool samples copy a training or eval row and are not acquired",
                 int((~allowed).sum()))
        pool = dataclasses.replace(pool, ids=pool.ids[allowed], labels=pool.labels[allowed],
                                   features=pool.features[allowed], probs=pool.probs[allowed],
                                   pred=pool.pred[allowed])
    if not len(pool.ids):
        return cov_frame, acquire_frame
    budget = cfg.acquire_budget
    if cfg.acquire_spread > 1:  # rank more candidates, keep the budget farthest-first (below)
        cfg = cfg.model_copy(update={"acquire_budget": math.ceil(cfg.acquire_spread * budget)})
    evaluation = splits.get("eval")
    labeled = np.zeros(0, dtype=np.int64)  # the labeled eval rows that may steer the picks
    if cfg.acquire_targets == "eval" and evaluation is not None:
        labeled = np.flatnonzero((evaluation.labels >= 0) & eval_support.steering(
            evaluation.ids, cfg.acquire_eval_share))
    picked = np.zeros(0, dtype=np.int64)
    if len(labeled):
        rows = {name: cov_frame["split"].to_numpy() == name for name in ("eval", "pool")}
        acquire_frame, picked = _eval_acquisition(
            evaluation, labeled, pool, cfg, eval_rep=rep[rows["eval"]],
            pool_rep=rep[rows["pool"]][allowed], eval_region=region[rows["eval"]])
    if len(picked) < cfg.acquire_budget and len(target_rows):
        # the under-covered samples' support fills what the eval targets leave of the budget
        # (all of it without eval labels, or when the model gets every thin eval sample right)
        thinness = 1.0 - cov_frame["coverage_score"].to_numpy(dtype=np.float64)[target_rows]
        in_pool = cov_frame["split"].to_numpy() == "pool"
        pool_row = np.full(len(cov_frame), -1, dtype=np.int64)
        pool_row[in_pool] = candidate  # cov_frame holds the pool in order
        picks = coverage.acquire(pool.features, features[target_rows],
                                 budget=cfg.acquire_budget, k=cfg.k,
                                 diversity_threshold=cfg.diversity_threshold,
                                 target_regions=regions,
                                 target_weights=np.clip(thinness, 0.0, None),
                                 target_pool_rows=pool_row[target_rows])
        target_ids = cov_frame["id"].to_numpy(dtype=object)[target_rows]
        more = pd.DataFrame({
            "id": pool.ids[picks.pool_idx], "near_id": target_ids[picks.near_idx],
            "similarity": picks.similarity, "support": picks.support, "region": picks.region,
            "targets": "undercovered"})
        keep = _apart(pool.features, picked, picks.pool_idx, cfg.diversity_threshold)
        more = more[keep].head(cfg.acquire_budget - len(picked))
        picked = np.concatenate([picked, picks.pool_idx[keep][:len(more)]])
        acquire_frame = (pd.concat([acquire_frame.drop(columns="rank"), more], ignore_index=True)
                         if len(acquire_frame) else more.reset_index(drop=True))
        acquire_frame.insert(1, "rank", np.arange(1, len(acquire_frame) + 1))
    if len(picked) > budget:  # acquire_spread: the budget, farthest-first
        kept = coverage.farthest_first(pool.features[picked], budget)
        acquire_frame = acquire_frame.iloc[kept].reset_index(drop=True)
        acquire_frame["rank"] = np.arange(1, len(acquire_frame) + 1)
    return cov_frame, acquire_frame


def with_words(train, splits: dict, texts: Mapping[str, Sequence[str]], weight: float, *,
               seed: int = 0) -> tuple:
    """``train`` and ``splits`` with features whose cosine is ``1 - weight`` times the
    encoder's plus ``weight`` times the words' (:func:`relabeler.selectors.lexical.
    word_features` of every split's texts together; :func:`coverage.blended_features`). The
    encoder's features hold a text's topic weakly where its words hold it plainly: on
    drug-review's held-out groups the picks found more of the group and bought more of its
    accuracy (docs/benchmarks.md, "Coverage: the words beside the encoder"). Unchanged where
    the texts give no word features (logged)."""
    names = ["train", *splits]
    missing = [name for name in names if name not in texts]
    if missing:
        raise ValueError(f"texts: no texts for {missing}")
    views = {"train": train, **splits}
    for name in names:
        if len(texts[name]) != len(views[name].ids):
            raise ValueError(f"texts[{name!r}]: expected {len(views[name].ids)} texts, got "
                             f"{len(texts[name])}")
    words = lexical.word_features([t for name in names for t in texts[name]], seed=seed)
    if words is None:
        return train, splits
    bounds = np.cumsum([0] + [len(views[name].ids) for name in names])
    blended = {name: coverage.blended_features(views[name].features,
                                               words[bounds[i]:bounds[i + 1]], weight)
               for i, name in enumerate(names)}
    return (dataclasses.replace(train, features=blended["train"]),
            {name: dataclasses.replace(view, features=blended[name])
             for name, view in splits.items()})


def pool_copies(duplicates: pd.DataFrame) -> set:
    """The pool ids in a duplicate group (``scores/duplicates.parquet``'s rows) that also holds
    a training or eval row."""
    labeled = duplicates.groupby("group_id")["split"].transform(
        lambda split: bool((split != "pool").any()))
    return set(duplicates.loc[(duplicates["split"] == "pool") & labeled.astype(bool), "id"])


def _apart(features: np.ndarray, picked: np.ndarray, candidates: np.ndarray,
           threshold: float) -> np.ndarray:
    """(len(candidates),) bool: not already picked and less than ``threshold`` similar to every
    row of ``picked`` (rows of ``features``)."""
    if not len(picked) or not len(candidates):
        return ~np.isin(candidates, picked)
    normed = unit_rows(features)
    closest = (normed[candidates] @ normed[picked].T).max(axis=1)
    return (closest < threshold) & ~np.isin(candidates, picked)


def _eval_acquisition(evaluation, labeled: np.ndarray, pool, cfg: ScoreConfig, *,
                      eval_rep: np.ndarray, pool_rep: np.ndarray,
                      eval_region: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """``acquire_targets = "eval"``: pool samples by their support of the labeled eval samples
    (rows ``labeled``) the training data does not represent and the model gets wrong, times
    their own representation deficit (:mod:`relabeler.selectors.eval_support`). Returns the
    acquire rows and the pool rows picked."""
    weights = eval_support.target_weights(eval_rep[labeled], evaluation.probs[labeled],
                                          evaluation.labels[labeled])
    found = eval_support.eval_support(pool.features, pool.probs,
                                      evaluation.features[labeled],
                                      evaluation.labels[labeled], weights, k=2 * cfg.k)
    score = eval_support.pick_score(found.support, pool_rep)
    picks = eval_support.support_picks(score, pool.features, budget=cfg.acquire_budget,
                                       diversity_threshold=cfg.diversity_threshold)
    near = labeled[found.target[picks]]
    return pd.DataFrame({
        "id": pool.ids[picks], "rank": np.arange(1, len(picks) + 1),
        "near_id": evaluation.ids[near], "similarity": found.similarity[picks],
        "support": score[picks].astype(np.float32),
        "region": eval_region[near].astype(np.int64), "targets": "eval"}), picks


def thin_region_table(store: RunStore, cov_frame: pd.DataFrame) -> pd.DataFrame:
    """``scores/thin_regions.parquet``: one row per region of under-covered samples, largest
    first: its size by split, mean coverage and representation, the words that characterise
    it against every other train, eval and pool text, and the texts of its least covered
    members."""
    texts = {}
    for split in ("train", "eval", "pool"):
        if store.exists(artifacts.SPLIT(split=split)):
            frame = read_split(store.read_table(artifacts.SPLIT(split=split),
                                                columns=["id", "text"]))
            texts.update({(split, i): t for i, t in zip(frame["id"], frame["text"],
                                                         strict=True)})
    in_region = cov_frame[cov_frame["region"] >= 0]
    keyed = {(s, i): r for s, i, r in zip(in_region["split"], in_region["id"],
                                         in_region["region"], strict=True)}
    keys = list(texts)
    terms = thin_regions.region_terms([texts[key] for key in keys],
                                      np.array([keyed.get(key, -1) for key in keys]), top=TERMS)
    rows = []
    for region, members in in_region.groupby("region", sort=True):
        members = members.sort_values("coverage_score", kind="stable")
        examples = members.head(EXAMPLES)
        rows.append({
            "region": int(region), "n": int(len(members)),
            "n_eval": int((members["split"] == "eval").sum()),
            "n_pool": int((members["split"] == "pool").sum()),
            "coverage_mean": float(members["coverage_score"].mean()),
            "representation_mean": float(members["representation"].mean()),
            "terms": terms.get(int(region), []),
            "example_ids": examples["id"].astype(str).tolist(),
            "example_texts": [texts.get((s, i), "")[:_EXAMPLE_CHARS] for s, i in
                              zip(examples["split"], examples["id"], strict=True)]})
    columns = ["region", "n", "n_eval", "n_pool", "coverage_mean", "representation_mean",
               "terms", "example_ids", "example_texts"]
    return pd.DataFrame(rows, columns=columns)
