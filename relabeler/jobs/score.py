"""``relabeler score``: the ranked queue of suspect labels and the map of under-covered data.

Reads ``features/``, ``train/dynamics.parquet`` and (when present) ``train/oof.parquet``;
computes every signal in :mod:`relabeler.selectors`; writes

* ``scores/suspects.parquet``: every training sample, rank 1 first, with its suspect score,
  suggested label, one column per signal, reasons, its nearest training neighbours (the kNN
  view's, every row: the task panel's similar examples) and, for the top ``evidence_top``,
  representer evidence (training examples that push the suggestion's logit up and down;
  none, and no ``representer`` signal, when no refit follows the model: it does not vote,
  so the stage goes on and ``summary.json`` says why under ``representer_skipped``);
* ``scores/coverage.parquet``: label-aware coverage of every eval and pool sample;
* ``scores/acquire.parquet``: pool samples worth labeling, near the under-covered ones;
* ``scores/thin_regions.parquet``: the regions the under-covered samples form, named
  (:mod:`relabeler.jobs.coverage`);
* ``scores/shortcuts.parquet``, ``scores/balance.parquet``: tokens over-associated with a
  class, and class balance with eval recall (:mod:`relabeler.jobs.shortcuts`);
* ``scores/duplicates.parquet``: groups of duplicate texts within and across train, eval and
  pool (:mod:`relabeler.jobs.duplicates`);
* ``scores/summary.json``.

The algorithms are pure functions; this module reads, aligns, calls and writes.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from relabeler import artifacts
from relabeler.config import RayConfig, RunConfig, ScoreConfig
from relabeler.errors import StageError
from relabeler.jobs.coverage import pool_copies, score_coverage, thin_region_table
from relabeler.jobs.dataset import refuse_changes
from relabeler.jobs.duplicates import duplicate_table, split_texts
from relabeler.jobs.eval_audit import eval_suspects_table
from relabeler.jobs.shortcuts import shortcut_tables
from relabeler.jobs.stage_settings import setting_changes
from relabeler.selectors import confidence, lexical, neighbors, noise, rank, representer
from relabeler.selectors.duplicates import TextChecks
from relabeler.selectors.evidence import representer_evidence
from relabeler.selectors.knn import Neighbors, knn
from relabeler.stage_chain import run_first
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "score"
ARTIFACTS = tuple(artifacts.stage_outputs(STAGE))
FOLDER = "scores"  # every one of them, and nothing else


@dataclass
class SplitView:
    """One split's features, aligned with its dataset rows."""

    ids: np.ndarray          # (N,) object
    labels: np.ndarray       # (N,) int64 class ids, -1 where unlabeled
    features: np.ndarray     # (N, D) float32
    probs: np.ndarray        # (N, C) float32
    pred: np.ndarray         # (N,) int64


@dataclass
class TrainView(SplitView):
    classes: list[str]
    oof_probs: np.ndarray | None     # (N, C)
    margins: np.ndarray | None       # (N, E) probability margins per epoch
    texts: list[str] | None = None   # (N,) the training texts: duplicates are checked on them


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    return np.stack(column.to_numpy(zero_copy_only=False)).astype(np.float32)


def load_split(store: RunStore, split: str, classes: list[str]) -> SplitView:
    table = store.read_table(artifacts.FEATURES(split=split))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(x, -1) if x is not None else -1
                       for x in table.column("label").to_pylist()], dtype=np.int64)
    n = table.num_rows
    dim = table.schema.field("embedding").type.list_size if n == 0 else None
    features = _matrix(table.column("embedding")) if n else np.zeros((0, dim), np.float32)
    probs = _matrix(table.column("probs")) if n else np.zeros((0, len(classes)), np.float32)
    return SplitView(ids=np.asarray(table.column("id").to_pylist(), dtype=object),
                     labels=labels, features=features, probs=probs,
                     pred=probs.argmax(axis=1).astype(np.int64) if n else np.zeros(0, np.int64))


def load_train_view(store: RunStore) -> TrainView:
    """Features, probabilities, out-of-fold probabilities and training dynamics of the
    training split, aligned by the features' row order."""
    classes = store.read_json(artifacts.LABELS.path)
    base = load_split(store, "train", classes)
    if (base.labels < 0).any():
        raise StageError("features/train has rows without a label the model knows")
    oof = None
    if store.exists(artifacts.OOF.path):
        table = store.read_table(artifacts.OOF.path)
        order = pd.Series(np.arange(table.num_rows),
                          index=table.column("id").to_pylist()).reindex(base.ids)
        if order.isna().any():
            raise StageError(f"train/oof.parquet lacks some training ids: train the model "
                             f"again (`relabeler train --run {store.uri} --force`)")
        oof = _matrix(table.column("probs"))[order.to_numpy(dtype=np.int64)]
    margins = None
    if store.exists(artifacts.DYNAMICS.path):
        dyn = store.read_table(artifacts.DYNAMICS.path,
                               columns=["id", "epoch", "margin"]).to_pandas()
        pivot = dyn.pivot_table(index="id", columns="epoch", values="margin", aggfunc="mean")
        margins = pivot.reindex(base.ids).to_numpy(dtype=np.float32)
        if np.isnan(margins).all(axis=1).any():
            raise StageError(f"train/dynamics.parquet lacks some training ids: train the "
                             f"model again (`relabeler train --run {store.uri} --force`)")
    return TrainView(**vars(base), classes=classes, oof_probs=oof, margins=margins,
                     texts=split_texts(store, "train", base.ids))


# the configured L2 strength first, then alternately weaker and stronger
REFIT_STEPS = (1.0, 0.1, 10.0, 0.01, 100.0, 0.001)


def fit_representer_auto(view: TrainView, cfg: ScoreConfig) -> representer.RepresenterFit:
    """The representer refit at ``representer_lambda``, or, when that refit cannot follow the
    model (agreement below ``min_agreement``), at L2 strengths 10x, 100x and 1000x weaker and
    10x and 100x stronger, in turn from the nearest: the first that explains the model's
    predictions wins. Raises :class:`~relabeler.selectors.representer.RepresenterFitError`
    (its ``agreement`` the best of the refits) when none does. Weaker follows a model that
    fitted its labels (head mode's 40 epochs); stronger follows one that did not (full mode's
    3 epochs: on drug-review the refit agreed on 90% at 3e-3, 70% at 3e-6, and 94-99% at
    1e-2)."""
    tried: list[str] = []
    best, best_lam = -1.0, cfg.representer_lambda
    for step in REFIT_STEPS:
        lam = cfg.representer_lambda * step
        try:
            return representer.fit_representer(view.features, view.labels,
                                                model_pred=view.pred, lam=lam,
                                                min_agreement=cfg.min_agreement,
                                                num_classes=len(view.classes))
        except representer.RepresenterFitError as exc:
            tried.append(f"{lam:g}")
            if exc.agreement > best:
                best, best_lam = exc.agreement, lam
            last = exc
    raise representer.RepresenterFitError(
        f"the representer refit agrees with the model's predictions on at most {best:.1%} of "
        f"the {len(view.ids)} training rows (at representer_lambda {best_lam:g}), below "
        f"score.min_agreement={cfg.min_agreement:.1%} (tried representer_lambda "
        f"{', '.join(tried)})", agreement=best) from last


def train_neighbors(features: np.ndarray, k: int, cfg: ScoreConfig,
                    ray_config: RayConfig | None = None) -> Neighbors:
    """The cosine kNN of the training features among themselves: in the driver, or with the
    database sharded over Ray actors (``[score] knn_shards``; by default one per GPU when the
    driver joins a cluster whose GPUs it does not have itself, or has several)."""
    ray_config = ray_config or RayConfig()
    shards = cfg.knn_shards
    address = ray_config.address or os.environ.get("RAY_ADDRESS", "")
    if shards == 0 and not address:
        return knn(features, k=k, metric="cosine")
    from relabeler.jobs._ray import cluster_resources, connect, plan_from_config
    from relabeler.jobs.knn_shards import knn_on_ray

    # the setting as given: connect reads RAY_ADDRESS itself, and names it in its errors
    connect(ray_config.address, num_cpus=ray_config.num_cpus, temp_dir=ray_config.temp_dir)
    if shards == 0:
        _, gpus = cluster_resources()
        if gpus == 0 or (torch.cuda.is_available() and gpus < 2):
            return knn(features, k=k, metric="cosine")
    plan = plan_from_config(ray_config, num_actors=shards)
    log.info("score: training kNN over %d Ray shard actor(s) (%s GPU each)", plan.num_actors,
             plan.num_gpus)
    return knn_on_ray(features, k=k, metric="cosine", plan=plan)


def fit_view_noise(view: TrainView, cfg: ScoreConfig) -> noise.NoiseModel | None:
    """The label-noise model ``score.noise_model`` names, fitted on the out-of-fold (else the
    model's) probabilities of the training rows; None for ``none``."""
    if cfg.noise_model == "none":
        return None
    reference = view.oof_probs if view.oof_probs is not None else view.probs
    model = noise.fit_noise_model(reference, view.labels, len(view.classes),
                                  kind=cfg.noise_model)
    log.info("score: %s noise model (asymmetry %.2f per estimated flip, p = %.2g)",
             model.kind, model.asymmetry_per_flip, model.asymmetry_p_value)
    return model


def training_words(view: TrainView, cfg: ScoreConfig) -> np.ndarray | None:
    """The words' out-of-fold class probabilities of the training rows (the ``words`` view,
    :mod:`relabeler.selectors.lexical`), or None: ``score.words`` off, no training texts, or
    words that tell no more than the class shares."""
    if not cfg.words or view.texts is None:
        return None
    return lexical.out_of_fold_lexical_probabilities(view.texts, view.labels,
                                                     len(view.classes))


def voting_views(view: TrainView, knn_dist: np.ndarray,
                 noise_model: noise.NoiseModel | None,
                 words: np.ndarray | None = None) -> tuple[dict, dict]:
    """The voting views (``rank.VIEWS``) of the training rows and the noise-corrected class
    distributions behind them: the model's, the out-of-fold models', the neighbours' labels
    (``knn_dist``, (N, C)), the words' (``words``, (N, C): :func:`training_words`; None:
    none) and the training dynamics', each corrected by ``noise_model`` (none: as given).
    The words vote only where :func:`relabeler.selectors.lexical.words_vote` says so (not
    under a class-conditional noise model). ``relabeler serve`` calls it again
    with the neighbours' votes and the noise model updated from people's answers.

    Returns
    -------
    (view name -> (N,) normalised margin, distribution name -> (N, C)).
    """
    raw = {"model": view.probs, "knn": knn_dist}
    if view.oof_probs is not None:
        raw["oof"] = view.oof_probs
    if words is not None and lexical.words_vote(noise_model):
        raw["words"] = words

    def adjust(dist: np.ndarray) -> np.ndarray:
        if noise_model is None:
            return dist
        return noise.noise_aware_posterior(dist, view.labels, noise_model.transition)

    distributions = {name: adjust(dist) for name, dist in raw.items()}
    signals: dict[str, np.ndarray] = {}
    for name, column in (("model", "margin"), ("knn", "knn_margin"), ("oof", "oof_margin"),
                         ("words", "words_margin")):
        if name in distributions:
            signals[column] = confidence.normalized_margin(distributions[name], view.labels)
    if view.margins is not None:
        aum = confidence.area_under_margin(view.margins)
        if noise_model is not None:
            # the dynamics only score the given label: (1 + mean margin) / 2 on it, the rest
            # split as the other views split it
            dynamics = noise.given_label_distribution(1.0 - aum.astype(np.float64),
                                                      rank.ensemble_posterior(raw), view.labels)
            aum = confidence.normalized_margin(adjust(dynamics), view.labels)
        signals["area_under_margin"] = aum
    return signals, distributions


def suspect_signals(view: TrainView, cfg: ScoreConfig, ray_config: RayConfig | None = None,
                    *, noise_model: noise.NoiseModel | None = None,
                    checks: TextChecks | None = None) -> tuple[dict, dict, dict]:
    """(signals, distributions, details) for the training samples; ``noise_model`` is fitted
    here (:func:`fit_view_noise`) unless the caller has it. ``checks`` keeps the answers of
    the duplicate signal's text check for the duplicate table (:func:`run_score`).

    The voting views (``rank.VIEWS``) are normalised margins of class distributions: the
    model's, the out-of-fold models', the neighbours' labels, the words' (unless the noise
    model is class-conditional, :func:`voting_views`) and the training dynamics'. Unless
    ``noise_model = "none"``, each distribution is first turned into the posterior of the true
    class given the features and the given label, under the noise model ``noise_model`` names
    (``auto``: class-conditional where the data show it, else uniform; :mod:`selectors.noise`).
    """
    n_classes = len(view.classes)
    k = min(cfg.k, max(1, len(view.ids) - 1))  # a tiny training set has fewer neighbours
    nb = train_neighbors(view.features, k, cfg, ray_config)
    knn_dist = neighbors.neighbor_label_distribution(nb, view.labels, n_classes)
    signals: dict[str, np.ndarray] = {
        "self_confidence": confidence.self_confidence(view.probs, view.labels),
        "knn_disagreement": 1.0 - knn_dist[np.arange(len(view.labels)), view.labels],
    }
    if view.oof_probs is not None:
        signals["oof_self_confidence"] = confidence.self_confidence(view.oof_probs, view.labels)

    if noise_model is None:
        noise_model = fit_view_noise(view, cfg)
    words = training_words(view, cfg) if lexical.words_vote(noise_model) else None
    views, distributions = voting_views(view, knn_dist, noise_model, words)
    signals.update(views)
    dups = neighbors.conflicting_duplicates(view.features, view.labels,
                                            threshold=cfg.duplicate_threshold, k=k,
                                            neighbors=nb, texts=view.texts,
                                            text_threshold=cfg.duplicate_text_threshold,
                                            checks=checks)
    signals["duplicate_conflict"] = dups.suspect
    details = {"duplicates": dups, "representer": None, "noise": noise_model,
               "neighbors": nb}
    try:
        fit = fit_representer_auto(view, cfg)
    except representer.RepresenterFitError as exc:
        # evidence only (it does not vote): the ranking goes on without it
        details["representer_skipped"] = {"reason": str(exc), "agreement": exc.agreement}
        log.warning("score: no representer evidence: %s. The suspects are ranked without it "
                    "(it is no voting view): no representer signal, no supporting or opposing "
                    "examples. To use this refit anyway, lower score.min_agreement (--set "
                    "score.min_agreement=%.2f)", exc, math.floor(100 * exc.agreement) / 100)
        return signals, distributions, details
    signals["representer"] = representer.representer_suspect(fit, view.features, view.labels)
    log.info("score: representer refit agrees with the model on %.1f%% of predictions "
             "(reconstruction error %.2g)", 100 * fit.agreement, fit.reconstruction_error)
    details["representer"] = fit
    return signals, distributions, details


def score_suspects(view: TrainView, cfg: ScoreConfig, ray_config: RayConfig | None = None,
                   *, noise_model: noise.NoiseModel | None = None,
                   checks: TextChecks | None = None) -> tuple[pd.DataFrame, dict]:
    """The suspects table (rank 1 first) and a summary; ``ray_config`` (``[ray]``) only
    matters when the kNN runs on Ray (:func:`train_neighbors`); ``noise_model`` as in
    :func:`suspect_signals`, as ``checks``."""
    signals, distributions, details = suspect_signals(view, cfg, ray_config,
                                                      noise_model=noise_model, checks=checks)
    score = rank.combine(signals)
    posterior = rank.ensemble_posterior(distributions)
    suggested, suggested_conf = rank.suggest_labels(posterior, view.labels)
    dups = details["duplicates"]
    # a conflicting duplicate whose group majority differs names the suggestion outright
    dup_majority = (dups.suspect > 0.5) & (dups.majority != view.labels)
    suggested = np.where(dup_majority, dups.majority, suggested)
    rows = np.arange(len(suggested))  # the confidence is the named label's
    suggested_conf = np.where(dup_majority, posterior[rows, suggested],
                              suggested_conf).astype(np.float32)
    ranks = rank.ranks_from_scores(score)
    fit = details["representer"]
    n = len(view.ids)
    top = n if cfg.evidence_top <= 0 or fit is None else min(cfg.evidence_top, n)
    chosen = np.flatnonzero(ranks <= top) if fit is not None else np.zeros(0, np.int64)
    if fit is not None:
        evidence = representer_evidence(
            fit, view.features, view.features[chosen], suggested[chosen], k=cfg.evidence_k,
            exclude=chosen)
        support = (evidence.support_ids, evidence.support_scores)
        oppose = (evidence.oppose_ids, evidence.oppose_scores)
    else:  # no refit follows the model: every row's evidence lists stay empty
        support = oppose = (np.zeros((0, cfg.evidence_k), np.int64), np.zeros((0, cfg.evidence_k)))
    ids = view.ids

    def id_lists(rows_ids: np.ndarray, scores: np.ndarray) -> tuple[list, list]:
        id_col: list = [[] for _ in range(n)]
        score_col: list = [[] for _ in range(n)]
        for j, row in enumerate(chosen):
            keep = rows_ids[j] >= 0
            id_col[row] = ids[rows_ids[j][keep]].tolist()
            score_col[row] = scores[j][keep].astype(float).tolist()
        return id_col, score_col

    with collector_paused():
        reasons = rank.top_reasons({k: v for k, v in signals.items() if k in rank.SIGNALS},
                                   always={"duplicate_conflict": dups.suspect > 0})
        if "words" in distributions:
            reasons = with_word_evidence(reasons, view, distributions["words"])
        support_ids, support_scores = id_lists(*support)
        oppose_ids, oppose_scores = id_lists(*oppose)
        # every row's nearest training rows, whatever its rank: a random control's panel shows
        # the same kind of examples as a flagged row's
        nb = details["neighbors"]
        near = nb.indices >= 0
        neighbor_ids = [ids[row[keep]].tolist() for row, keep in zip(nb.indices, near,
                                                                     strict=True)]
        neighbor_scores = [row[keep].astype(float).tolist() for row, keep in zip(nb.scores, near,
                                                                                  strict=True)]
        duplicate_ids: list = [[] for _ in range(n)]
        found = dups.duplicate_ids >= 0
        for row in np.flatnonzero(found.any(axis=1)).tolist():
            duplicate_ids[row] = ids[dups.duplicate_ids[row][found[row]]].tolist()
    classes = np.asarray(view.classes, dtype=object)
    frame = pd.DataFrame({
        "id": ids,
        "rank": ranks,
        "suspect_score": score.astype(np.float32),
        "given_label": classes[view.labels],
        "suggested_label": classes[suggested],
        "suggested_confidence": suggested_conf,
        # the posterior's chance that the given label is wrong: what is left scales its sum
        "wrong_probability": rank.wrong_probability(posterior, view.labels),
        **{name: np.asarray(v, dtype=np.float32) for name, v in signals.items()},
        "reasons": reasons,
        "support_ids": support_ids,
        "support_scores": support_scores,
        "oppose_ids": oppose_ids,
        "oppose_scores": oppose_scores,
        "neighbor_ids": neighbor_ids,
        "neighbor_scores": neighbor_scores,
        "duplicate_ids": duplicate_ids,
    }).sort_values("rank", ignore_index=True)
    skipped = details.get("representer_skipped")
    summary = {"n_train": n, "signals": sorted(signals),
               # without a refit that follows the model: the best refit's agreement
               "representer_agreement": fit.agreement if fit is not None
               else skipped["agreement"],
               "representer_reconstruction_error": fit.reconstruction_error
               if fit is not None else None,
               "conflicting_duplicates": int(np.sum(dups.suspect > 0)),
               "noise_model": cfg.noise_model}
    if skipped is not None:
        summary["representer_skipped"] = skipped["reason"]
    if details["noise"] is not None:
        summary["noise"] = noise_summary(details["noise"], view.classes)
    return frame, summary


def with_word_evidence(reasons: list[list[str]], view: TrainView,
                       words: np.ndarray) -> list[list[str]]:
    """``reasons`` with the words' reason spelled out where it is given: the class the words
    point to (the best other class of ``words``, their (N, C) distribution) and the words
    of the text that point there ("its words point to another class: neg (失望, 太差)",
    :func:`relabeler.selectors.lexical.word_evidence`): whoever reads the suspects sees the
    words that decide, also where the encoder cannot read the script and its attributions
    miss them. (Review tasks show no reasons: they would give a control's low rank away.)"""
    phrase = rank.SIGNALS["words_margin"]
    rows = np.array([i for i, found in enumerate(reasons) if phrase in found], dtype=np.int64)
    if len(rows) == 0:
        return reasons
    toward, _ = rank.suggest_labels(words[rows], view.labels[rows])
    terms = lexical.word_evidence(view.texts, view.labels, len(view.classes), rows, toward)
    spelled = list(reasons)
    for row, cls, found in zip(rows.tolist(), toward.tolist(), terms, strict=True):
        said = f"{phrase}: {view.classes[cls]}" + (f" ({', '.join(found)})" if found else "")
        spelled[row] = [said if reason == phrase else reason for reason in reasons[row]]
    return spelled


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off while the per-row lists are built.

    Those lists hold only strings and numbers, so a collection finds nothing in them, but the
    tens of thousands of new containers trigger full passes over every object the process
    holds (torch, pandas, pyarrow): at 10k rows that was a sixth of the score's time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def noise_summary(model: noise.NoiseModel, classes: list[str]) -> dict:
    """The estimated noise for summary.json: the model the views were corrected by and why,
    the share of wrong labels, and per true class the share filed under each given class
    (rows of its transitions, pseudo-counts included)."""
    total = float(model.joint.sum())
    wrong = 1.0 - float(np.trace(model.joint)) / total if total else 0.0
    return {
        "model": model.kind,
        "asymmetry_per_flip": round(model.asymmetry_per_flip, 4),
        "asymmetry_p_value": float(f"{model.asymmetry_p_value:.3g}"),
        "estimated_wrong_share": round(wrong, 4),
        "given_by_true": {true: {given: round(float(model.transition[j, i]), 4)
                                 for i, given in enumerate(classes)}
                          for j, true in enumerate(classes)},
    }


#: [score] keys that decide where the work runs, not what it finds
SCORE_MACHINE = ("knn_shards",)


def scoring_settings(cfg: ScoreConfig) -> dict:
    """The [score] keys the scores are made with, as the marker records them."""
    return {k: v for k, v in cfg.model_dump().items() if k not in SCORE_MACHINE}


def run_score(store: RunStore, config: RunConfig, *, force: bool = False) -> dict:
    """The score stage; skipped when done unless ``force``. Returns the stage info.

    Everything is computed before anything is written: a redo that fails (``--force``, or a
    stage gone stale) keeps the previous scores and their marker. Then the marker goes and the
    new tables replace ``scores/`` whole (:meth:`RunStore.replace_folder`, as ``data`` does);
    the summary and the marker are written last."""
    if not store.stage_done("extract.train"):  # before a redo is announced
        raise StageError(run_first(store, "extract.train", "score needs training features"))
    # an eval or pool split extracted by an earlier model: scored beside the new training
    # features it would mix two models, and left out it would drop the eval audit and coverage
    # without a word (and the marker would record the stale split, so score never settles)
    stale_splits = {s: reason for s in ("eval", "pool")
                    if (reason := store.stale(f"extract.{s}")) is not None}
    if stale_splits:
        names = ",".join(stale_splits)
        why = "; ".join(f"features/{s}: {reason}" for s, reason in stale_splits.items())
        raise StageError(f"score needs the {' and '.join(stale_splits)} features of the current "
                         f"model ({why}): run `relabeler extract --run {store.uri} --splits "
                         f"{names}` (or `relabeler extract --run {store.uri}`, which redoes "
                         f"only the stale splits) first; the previous scores are kept")
    if not store.redo(STAGE, force) and store.stage_done(STAGE):
        info = (store.stage_info(STAGE) or {}).get("info", {})
        # as train: scores of other settings are not handed back as the ones asked for
        refuse_changes(setting_changes({"score": info.get("settings", {})},
                                       {"score": scoring_settings(config.score)}),
                       f"the scores in {store.uri} were made with other settings",
                       "Give the settings they were made with, or pass --force to score "
                       "again (the old scores stay until the new ones are written)")
        log.info("score: already done in %s (use --force to redo)", store.uri)
        return info
    started = time.perf_counter()
    view = load_train_view(store)
    noise_model = fit_view_noise(view, config.score)  # the eval audit uses it too
    # the duplicate-conflict signal and the duplicate table text-check the same pairs (the
    # check is most of the stage's time): each pair is compared once, for both
    checks = TextChecks()
    suspects, summary = score_suspects(view, config.score, config.ray, noise_model=noise_model,
                                       checks=checks)
    splits = {s: load_split(store, s, view.classes) for s in ("eval", "pool")
              if store.stage_done(f"extract.{s}")}
    # the texts serve the duplicates, the eval audit's words and coverage's: read once
    texts = {s: split_texts(store, s, split.ids) for s, split in splits.items()}
    eval_texts = texts.get("eval")
    duplicates, summary["duplicates"] = duplicate_table(
        store, {"train": view, **splits}, view.classes, config.score, checks, texts=texts)
    del checks  # its answers are of no use past here: let its arrays go
    copies = pool_copies(duplicates)
    cov, acquire = score_coverage(view, splits, config.score, seed=config.data.seed,
                                  copies=copies, texts=None if view.texts is None
                                  else {"train": view.texts, **texts})
    regions = thin_region_table(store, cov)
    outputs: dict[str, pa.Table] = {
        artifacts.SUSPECTS.path: pa.Table.from_pandas(suspects, preserve_index=False),
        artifacts.COVERAGE.path: pa.Table.from_pandas(cov, preserve_index=False),
        artifacts.ACQUIRE.path: pa.Table.from_pandas(acquire, preserve_index=False),
        artifacts.THIN_REGIONS.path: pa.Table.from_pandas(
            regions, preserve_index=False, schema=artifacts.THIN_REGIONS.schema),
        artifacts.DUPLICATES.path: pa.Table.from_pandas(duplicates, preserve_index=False),
    }
    tables, summary["shortcuts"] = shortcut_tables(store, view.classes, config.score)
    outputs.update(tables)
    # the training queue's words decided whether the words tell anything, on the same texts
    # and labels and under the same rule (lexical.words_vote): the eval audit follows it
    voted = "words_margin" in summary["signals"]
    evaluated, summary["eval_audit"] = eval_suspects_table(
        view, splits, config.score, noise_model, texts=eval_texts if voted else None,
        words_checked=voted)
    if evaluated is not None:
        outputs[artifacts.EVAL_SUSPECTS.path] = evaluated
    # which eval rows may have steered the picks: the report measures their gain without them
    summary["acquisition"] = {"targets": config.score.acquire_targets,
                              "eval_share": config.score.acquire_eval_share,
                              "by_eval": int((acquire["targets"] == "eval").sum()),
                              "pool_copies_left_out": len(copies)}
    summary.update(n_coverage=len(cov), n_undercovered=int(cov["is_undercovered"].sum()),
                   n_thin_regions=len(regions), n_acquire=len(acquire),
                   seconds=round(time.perf_counter() - started, 2))
    # the old scores stay until every new table is written; what this run does not make
    # (eval_suspects without labeled eval rows) goes with the old folder
    store.replace_folder(FOLDER, outputs, unmark=STAGE)
    store.write_json(artifacts.SUMMARY.path, summary)
    info = {**summary, "settings": scoring_settings(config.score)}
    store.mark_done(STAGE, info)
    log.info("score: %d suspects ranked, %d under-covered eval/pool samples, %d pool samples "
             "to acquire, in %.1f s", len(suspects), summary["n_undercovered"], len(acquire),
             summary["seconds"])
    return info
