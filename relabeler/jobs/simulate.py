"""``relabeler simulate``: inject known label noise, run the pipeline, measure detection.

On any labeled dataset: hold out a test split, flip training labels with a seed, train (with
out-of-fold models), extract, score, and measure how well relabeler's ranking finds the flipped
rows next to cleanlab (on the same out-of-fold probabilities), TrustAI's dirty score and a
random ranking. Writes ``DIR/simulation.json`` and ``DIR/simulation.md``.

With ``rounds`` (``--rounds R``) the largest budget is spent in R rounds that re-score the queue
between them, and ``simulation.json`` gains a ``"rounds"`` block next to the one-shot baseline
(:mod:`relabeler.jobs.simulate_rounds`).

With ``shortcut`` (``--shortcut TOKEN:CLASS:RATE``) a token is planted into one class's training
texts before training and ``simulation.json`` gains a ``"shortcut"`` block with its rank among
the shortcuts score found (:mod:`relabeler.jobs.simulate_shortcut`). With ``undercover``
(``--undercover SPEC``) a sub-population leaves the training data for the pool before training
and ``simulation.json``'s ``"coverage"`` gains a ``"subgroup"`` block: does acquisition find it
again (:mod:`relabeler.jobs.simulate_coverage`)?

``simulation.json`` is a contract others script against:
``{"dataset", "n_train", "n_test", "n_flipped", "classes", "detection": {method: {"auroc",
"auprc", "precision_at_k", "recall_at_k"}}, "seconds": {stage: s}}``; extra keys
(``signals``: the detection of every single signal, ``settings``) may follow.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from relabeler import artifacts
from relabeler.config import RunConfig, apply_overrides
from relabeler.errors import ConfigError, StageError
from relabeler.jobs.dataset import FOLDER as DATA_FOLDER
from relabeler.jobs.dataset import STAGE as DATA_STAGE
from relabeler.jobs.dataset import prepare_dataset
from relabeler.jobs.extract import run_extract
from relabeler.jobs.score import load_train_view, run_score
from relabeler.jobs.simulate_coverage import STAGE as UNDERCOVER_STAGE
from relabeler.jobs.simulate_coverage import (
    UndercoverSpec,
    check_held,
    coverage_measure,
    existing_coverage,
    has_labeled_pool,
    hold_out,
    subgroup_result,
)
from relabeler.jobs.simulate_eval_audit import eval_audit_result
from relabeler.jobs.simulate_markdown import markdown_table
from relabeler.jobs.simulate_shortcut import STAGE as SHORTCUT_STAGE
from relabeler.jobs.simulate_shortcut import (
    ShortcutSpec,
    check_model_reads,
    check_planted,
    plant_shortcut,
    shortcut_accuracy,
    shortcut_result,
)
from relabeler.jobs.train import run_train
from relabeler.redact import mask_url
from relabeler.report.metrics import detection_metrics
from relabeler.selectors import representer
from relabeler.selectors.confidence import cleanlab_scores
from relabeler.store import RunStore

log = logging.getLogger(__name__)

METHODS = ("relabeler", "cleanlab_self_confidence", "cleanlab_normalized_margin",
           "cleanlab_find_label_issues", "trustai", "random")


#: simulate's own settings where neither a flag nor ``--config`` gives one
SIMULATE_DEFAULTS = {"data.text_col": "text", "data.label_col": "label", "data.sample": 0,
                     "data.eval_fraction": 0.2, "data.pool_fraction": 0.0, "data.seed": 0,
                     "data.noise_kind": "uniform", "data.eval_noise_rate": 0.0,
                     "train.mode": "auto", "train.folds": 5, "train.seed": 0}


def simulation_config(*, data: str, out: str | Path, noise: float,
                      noise_kind: str | None = None, seed: int | None = None,
                      text_col: str | None = None, label_col: str | None = None,
                      id_col: str | None = None, sample: int | None = None,
                      mode: str | None = None, folds: int | None = None,
                      test_fraction: float | None = None, pool_fraction: float | None = None,
                      eval_noise: float | None = None, base: RunConfig | None = None,
                      defaults: dict | None = None) -> RunConfig:
    """The run configuration of one simulation (its run directory is ``out/run``); a value
    out of range is a ConfigError naming its key. A setting given here wins; one left None
    is the ``base`` file's where it sets it, else ``defaults``' (keys as in
    :data:`SIMULATE_DEFAULTS`), else :data:`SIMULATE_DEFAULTS`'."""
    fallback = {**SIMULATE_DEFAULTS, **(defaults or {})}
    given = {"data.text_col": text_col, "data.label_col": label_col, "data.id_col": id_col,
             "data.sample": sample, "data.eval_fraction": test_fraction,
             "data.pool_fraction": pool_fraction, "data.seed": seed,
             "data.noise_kind": noise_kind, "data.eval_noise_rate": eval_noise,
             "train.mode": mode, "train.folds": folds, "train.seed": seed}
    values = {}
    for key, value in given.items():
        section, name = key.split(".")
        if value is not None:
            values[key] = value
        elif key in fallback and (base is None
                                  or name not in getattr(base, section).model_fields_set):
            values[key] = fallback[key]
    config = apply_overrides(base or RunConfig(), {
        "run_dir": str(Path(out) / "run"), "data.source": data, "data.noise_rate": noise,
        **values})
    config.extract.splits = (["train", "eval", "pool"] if config.data.pool_fraction
                             else ["train", "eval"])
    return config


DEFAULT_BUDGETS = (0.01, 0.02, 0.05, 0.10, 0.20)
RANDOM_SEEDS = 3


def _refitter(store: RunStore, config: RunConfig, texts: list[str], classes: list[str],
              progress: bool, *, mode: str | None = None):
    """A head refitter on cached encoder states (head mode) or a full refitter; ``mode``
    defaults to the one the run's train stage used."""
    from relabeler.jobs.head_states import encoder_states
    from relabeler.jobs.train import fit_options
    from relabeler.model import load_classifier, pick_device
    from relabeler.training import FullRefitter, HeadRefitter, seeded

    device = pick_device()
    opts = fit_options(config, device, progress=False,
                       mode=mode or store.stage_info("train")["info"]["mode"])
    if opts.mode == "full":
        return FullRefitter(config.model.name, classes, texts, opts, device)
    with seeded(config.train.seed):
        model = opts.new_classifier(config.model.name, classes).to(device)
    # long_text = evidence: the run's trained model picks the windows, as in extract
    selector = load_classifier(store.get_dir(artifacts.MODEL.path)).to(device) \
        if config.model.long_text == "evidence" else None
    return HeadRefitter(model, encoder_states(config, model, texts, device, progress=progress,
                                              selector=selector), opts, device)


def true_labels(frame: pd.DataFrame) -> pd.Series:
    """The true labels of a split: ``true_label`` where the data stage flipped labels on
    purpose (``--noise`` in train, ``--eval-noise`` in eval; ``label`` holds the noisy ones),
    else ``label``. Accuracies are measured against these."""
    return frame["true_label"] if "true_label" in frame.columns else frame["label"]


def class_ids(labels: pd.Series, classes: list[str], *, what: str) -> np.ndarray:
    """(N,) int64 class ids of ``labels``; a label outside ``classes`` (the training classes)
    is a StageError naming it and ``what`` holds it, never an id cast from NaN."""
    ids = labels.map({c: i for i, c in enumerate(classes)})
    unknown = labels[ids.isna()]
    if len(unknown):
        raise StageError(f"simulate: {what} holds the label {unknown.iloc[0]!r} ({len(unknown)} "
                         f"rows), which is not one of the training classes "
                         f"({', '.join(map(str, classes))}): the training rows lack it")
    return ids.to_numpy(dtype=np.int64)


def _accuracy_f1(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[float,
                                                                                     float]:
    from relabeler.training import classification_metrics

    m = classification_metrics(labels, probs, classes)
    return m["accuracy"], m["macro_f1"]


def gain_experiment(refit, *, noisy: np.ndarray, truth: np.ndarray, test_rows: np.ndarray,
                    test_labels: np.ndarray, rankings: dict[str, np.ndarray],
                    budgets: Sequence[float], classes: list[str], seed: int = 0) -> dict:
    """Oracle relabeling of each ranking's top K, and of K random samples, then retraining.

    Training rows are ``0..N-1`` of the refitter's cache. Returns the ``gain`` section of
    ``simulation.json``.
    """
    n = len(noisy)
    train_rows = np.arange(n)

    def score(labels: np.ndarray) -> tuple[float, float]:
        return _accuracy_f1(refit.fit_predict(train_rows, labels, test_rows), test_labels,
                            classes)

    clean_acc, clean_f1 = score(truth)
    noisy_acc, noisy_f1 = score(noisy)
    accuracy = {"clean": clean_acc, "noisy": noisy_acc}
    macro_f1 = {"clean": clean_f1, "noisy": noisy_f1}
    for name in (*rankings, "random"):
        accuracy[name], macro_f1[name] = [], []
    ks = [max(1, int(round(b * n))) for b in budgets]
    for k in ks:
        for name, suspect in rankings.items():
            fixed = noisy.copy()
            top = np.argsort(-suspect, kind="stable")[:k]
            fixed[top] = truth[top]
            acc, f1 = score(fixed)
            accuracy[name].append(acc)
            macro_f1[name].append(f1)
        runs = []
        for r in range(RANDOM_SEEDS):
            fixed = noisy.copy()
            pick = np.random.default_rng(seed + 1000 + r).choice(n, size=k, replace=False)
            fixed[pick] = truth[pick]
            runs.append(score(fixed))
        accuracy["random"].append(float(np.mean([a for a, _ in runs])))
        macro_f1["random"].append(float(np.mean([f for _, f in runs])))
        log.info("simulate: budget %d: %s", k, ", ".join(
            f"{name} {accuracy[name][-1]:.4f}" for name in (*rankings, "random")))
    gap = clean_acc - noisy_acc
    recovered = {name: [((a - noisy_acc) / gap) if gap > 0 else None for a in accuracy[name]]
                 for name in (*rankings, "random")}
    return {"budgets": list(budgets), "budget_samples": ks, "accuracy": accuracy,
            "macro_f1": macro_f1, "gap_recovered": recovered}


def coverage_experiment(refit, *, noisy: np.ndarray, pool_rows: np.ndarray,
                        pool_truth: np.ndarray, pool_features: np.ndarray,
                        eval_rows: np.ndarray, eval_labels: np.ndarray,
                        eval_features: np.ndarray, eval_coverage: np.ndarray, k: int,
                        classes: list[str], seed: int = 0, quantile: float = 0.2) -> dict:
    """k pool samples picked by coverage vs k random ones, measured on a held-out half of the
    under-covered eval samples that the picking never saw."""
    from relabeler.selectors.coverage import acquire, undercovered

    rng = np.random.default_rng(seed)
    under = np.flatnonzero(undercovered(eval_coverage, quantile=quantile))
    under = rng.permutation(under)
    pick_half, held_out = under[: len(under) // 2], under[len(under) // 2:]
    n = len(noisy)
    k = min(k, len(pool_rows))
    picks = acquire(pool_features, eval_features[pick_half], budget=k).pool_idx

    def accuracy(extra: np.ndarray) -> float:
        rows = np.concatenate([np.arange(n), pool_rows[extra]])
        labels = np.concatenate([noisy, pool_truth[extra]])
        probs = refit.fit_predict(rows, labels, eval_rows[held_out])
        return float(np.mean(probs.argmax(1) == eval_labels[held_out]))

    random_acc = [accuracy(np.random.default_rng(seed + 2000 + r).choice(
        len(pool_rows), size=len(picks), replace=False)) for r in range(RANDOM_SEEDS)]
    return {"selected": accuracy(picks), "random": float(np.mean(random_acc)),
            "base": accuracy(np.zeros(0, dtype=np.int64)), "k": int(len(picks)),
            "n_heldout": int(len(held_out)), "n_picking_targets": int(len(pick_half))}


def _data(store: RunStore, config: RunConfig, force: bool, redo: str, tested: dict) -> None:
    """The data stage, then the test rows the measures need; a dataset this call made for
    settings refused for want of test rows goes again, so the corrected command (another
    --test-fraction) runs without --force."""
    made_now = force or not store.stage_done(DATA_STAGE)
    n_eval = prepare_dataset(store, config, force=force, redo=redo).get("n_eval")
    try:
        _check_test_rows(config, n_eval, **tested)
    except ConfigError:
        if made_now:
            store.reset_stage(DATA_STAGE, [DATA_FOLDER])
        raise


def _train(store: RunStore, config: RunConfig, redo: bool, budgets: Sequence[float] | None,
           rounds: int | None, progress: bool) -> None:
    _check_rounds(store, budgets, rounds)  # on the final training split, before any training
    run_train(store, config, force=redo, progress=progress)


def _check_rounds(store: RunStore, budgets: Sequence[float] | None,
                  rounds: int | None) -> None:
    """Before any training: the largest budget, in training rows, gives every round a task."""
    if not rounds or not budgets:
        return
    n = store.read_table(artifacts.TRAIN.path, columns=["id"]).num_rows
    total = max(1, int(round(max(budgets) * n)))
    if total < rounds:
        raise ConfigError(f"--rounds {rounds}: the largest budget, {max(budgets):g} of {n} "
                          f"training rows, is {total} tasks, fewer than the rounds (each needs "
                          f"one); use fewer rounds or a larger --budgets")


def _check_test_rows(config: RunConfig, n_test: int | None, *,
                     budgets: Sequence[float] | None, shortcut: ShortcutSpec | None,
                     undercover: UndercoverSpec | None) -> None:
    """Refuse the measures that need test (eval) rows where there are none: before any stage
    (``n_test`` None) when ``--test-fraction 0`` and no eval file or split column gives them,
    and after the data stage when the split left none (``n_test`` 0)."""
    data = config.data
    if n_test is None and (data.eval_fraction > 0 or data.eval_source or data.split_col):
        return
    if n_test:
        return
    needs = [(what, drop) for given, what, drop in (
        (budgets, "the gain of relabeling (--budgets, and --rounds with it) is "
         "the retrained model's accuracy on them", "--budgets none"),
        (shortcut, "--shortcut measures the eval accuracy with and without the "
         "token on them", "no --shortcut"),
        (undercover, "--undercover measures the held-out group's eval "
         "accuracy on them", "no --undercover")) if given]
    if not needs:
        return
    if n_test is None:
        cause, fix = "--test-fraction 0 leaves no test rows", "a --test-fraction above 0"
    else:
        given = ("none in data.eval_source" if data.eval_source else
                 f"none marked eval in split column {data.split_col!r}" if data.split_col else
                 f"--test-fraction {data.eval_fraction:g}, too small a share of each class")
        cause, fix = f"the dataset has no test rows ({given})", "more test rows"
    raise ConfigError(f"{cause}, and {'; '.join(what for what, _ in needs)}: give "
                      f"{fix}, or {' and '.join(drop for _, drop in needs)}")


def run_simulation(config: RunConfig, out: str | Path, *, force: bool = False,
                   progress: bool = True, budgets: Sequence[float] | None = DEFAULT_BUDGETS,
                   shortcut: ShortcutSpec | None = None,
                   annotators: Sequence[float] | None = None,
                   undercover: UndercoverSpec | None = None, rounds: int | None = None,
                   rescore: str = "refit") -> dict:
    """Run one simulation and write ``simulation.json`` and ``simulation.md`` into ``out``;
    ``rounds`` plays the largest budget in that many rounds, re-scoring between them as
    ``rescore`` says (:mod:`relabeler.jobs.simulate_rounds`)."""
    if config.data.noise_rate <= 0:
        raise ConfigError(f"--noise {config.data.noise_rate:g} flips no training label: every "
                          "simulation measures how well the wrong labels are found, so it needs "
                          "a rate above 0 (for example 0.05 beside --undercover or --shortcut)")
    if rounds is not None and not budgets:
        raise ConfigError("--rounds needs --budgets: the largest budget is the rounds' total")
    if (undercover is not None and config.score.acquire_targets == "eval"
            and config.score.acquire_eval_share >= 1.0):
        raise ConfigError("--undercover measures the picks on the group's eval rows that did not "
                          "steer acquisition: score.acquire_eval_share=1 leaves none (use a "
                          "share below 1, or score.acquire_targets=undercovered)")
    tested = {"budgets": budgets, "shortcut": shortcut, "undercover": undercover}
    _check_test_rows(config, None, **tested)
    if shortcut is not None:  # before any stage: a token the model cannot see measures nothing
        check_model_reads(shortcut, config.model.name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = RunStore(config.run_dir)
    seconds: dict[str, float] = {}
    planted: dict = {}
    # a shortcut planted now (or one left by an earlier run) changes the training texts that
    # any finished later stage was computed on
    if force:  # the dataset is made again from the source: no earlier plant or hold-out
        for planted_by in (SHORTCUT_STAGE, UNDERCOVER_STAGE):
            store.reset_stage(planted_by, [])
    redo = force or check_planted(store, shortcut)
    redo = check_held(store, undercover) or redo
    if undercover is not None and "pool" not in config.extract.splits:
        config.extract.splits = [*config.extract.splits, "pool"]
    redo_data = f"Pass --force to simulate again in {out}, or choose another --out"
    stages = [("data", lambda: _data(store, config, force, redo_data, tested)),
              ("train", lambda: _train(store, config, redo, budgets, rounds, progress)),
              ("extract", lambda: run_extract(store, config, force=redo, progress=progress)),
              ("score", lambda: run_score(store, config, force=redo))]
    if shortcut is not None:
        stages.insert(1, ("shortcut", lambda: planted.update(plant_shortcut(
            store, shortcut, seed=config.data.seed, force=force))))
    if undercover is not None:
        stages.insert(1, ("undercover", lambda: hold_out(store, undercover,
                                                         seed=config.data.seed, force=force,
                                                         config=config)))
    for stage, fn in stages:
        started = time.perf_counter()
        fn()
        seconds[stage] = round(time.perf_counter() - started, 2)
        log.info("simulate: %s took %.1f s", stage, seconds[stage])

    view = load_train_view(store)
    train = store.read_table(artifacts.TRAIN.path).to_pandas().set_index("id")
    flipped = train["flipped"].reindex(view.ids).to_numpy(dtype=bool)
    suspects = store.read_table(artifacts.SUSPECTS.path).to_pandas().set_index("id")
    suspects = suspects.reindex(view.ids)

    probs = view.oof_probs if view.oof_probs is not None else view.probs
    scores = {"relabeler": suspects["suspect_score"].to_numpy(dtype=np.float64)}
    scores.update(cleanlab_scores(view.labels, probs))
    # a comparison baseline: scored as TrustAI would, however well its refit follows the model
    fit = representer.fit_trustai(view.features, view.probs,
                                  lam=config.score.representer_lambda, min_agreement=0.0)
    scores["trustai"] = representer.trustai_dirty_score(fit, view.features)
    scores["random"] = np.random.default_rng(config.data.seed).random(len(view.ids))
    detection = {name: detection_metrics(scores[name], flipped) for name in METHODS}
    signal_names = [c for c in suspects.columns if c not in (
        "rank", "suspect_score", "given_label", "suggested_label", "suggested_confidence",
        "wrong_probability", "reasons", "support_ids", "support_scores", "oppose_ids",
        "oppose_scores", "neighbor_ids", "neighbor_scores", "duplicate_ids")]
    signals = {name: detection_metrics(suspects[name].to_numpy(dtype=np.float64), flipped)
               for name in signal_names}
    # how often the suggestion is the true label, among the flipped rows
    truth = train["true_label"].reindex(view.ids).to_numpy(dtype=object)
    suggestion_accuracy = float(np.mean(
        suspects["suggested_label"].to_numpy(dtype=object)[flipped] == truth[flipped]))
    info = store.stage_info("data")["info"]
    gain, coverage_result, rounds_result = None, None, None
    if budgets:
        started = time.perf_counter()
        gain, coverage_result, rounds_result = _retraining_part(
            store, config, view, scores, list(budgets), progress, rounds=rounds,
            rescore=rescore)
        seconds["retrain"] = round(time.perf_counter() - started, 2)
    if undercover is not None:
        started = time.perf_counter()
        if coverage_result is None:
            coverage_result = existing_coverage(store, config, view, progress=progress)
        coverage_result = {**(coverage_result or {}), "subgroup": subgroup_result(
            store, config, view, undercover, progress=progress)}
        seconds["subgroup"] = round(time.perf_counter() - started, 2)
    shortcut_block = None
    if shortcut is not None:
        started = time.perf_counter()
        shortcut_block = {**shortcut_result(store, shortcut, planted),
                          **shortcut_accuracy(store, config, shortcut, progress=progress)}
        seconds["shortcut_accuracy"] = round(time.perf_counter() - started, 2)
    result = {
        # simulation.json and .md are shared as results: a source URL goes without its password
        "dataset": mask_url(config.data.source),
        "n_train": int(len(view.ids)),
        "n_test": int(info["n_eval"]),
        "n_flipped": int(flipped.sum()),
        "classes": view.classes,
        "detection": detection,
        "seconds": seconds,
        "signals": signals,
        "suggestion_accuracy_on_flipped": suggestion_accuracy,
        **({"gain": gain} if gain else {}),
        **({"coverage": coverage_result} if coverage_result else {}),
        **({"rounds": rounds_result} if rounds_result else {}),
        **({"shortcut": shortcut_block} if shortcut else {}),
        **({"eval_audit": eval_audit_result(
            store, configured_budget=config.studio.eval_audit_budget)}
           if config.data.eval_noise_rate else {}),
        **({"annotators": annotator_experiment(
            view, suspects, truth, list(annotators), budget=int(round(
                max(budgets) * len(view.ids))) if budgets else int(flipped.sum()),
            seed=config.data.seed)} if annotators else {}),
        "settings": {"noise": config.data.noise_rate, "noise_kind": config.data.noise_kind,
                     "seed": config.data.seed, "mode": store.stage_info("train")["info"]["mode"],
                     "folds": config.train.folds,
                     "sample": config.data.sample,
                     **({"rescore": rescore, "control_share": config.studio.control_share}
                        if rounds else {})},
    }
    (out / "simulation.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "simulation.md").write_text(markdown_table(result), encoding="utf-8")
    return result


def tired_answers(true: np.ndarray, probs: np.ndarray, accuracies: Sequence[float],
                  rng: np.random.Generator) -> np.ndarray:
    """Simulated answers: annotator j gives the true class with probability ``accuracies[j]``,
    else the wrong class the model finds most plausible, as tired people do.

    true: (N,) class ids. probs: (N, C) the model's probabilities. Returns (N, A) class ids.
    """
    plausible = np.asarray(probs, dtype=np.float64).copy()
    plausible[np.arange(len(true)), true] = -1.0
    wrong = plausible.argmax(axis=1)
    return np.stack([np.where(rng.random(len(true)) < a, true, wrong) for a in accuracies],
                    axis=1).reshape(len(true), len(accuracies))


def annotator_experiment(view, suspects: pd.DataFrame, truth: np.ndarray,
                         accuracies: list[float], *, budget: int, seed: int) -> dict:
    """Annotators of ``accuracies`` answer the top ``budget`` of the queue; a mistake picks the
    wrong class the model finds most plausible, as tired people do. Returns the label accuracy
    of majority vote (ties broken by the model, as cleanlab does), of relabeler's consensus
    (:func:`relabeler.plugin.consensus.resolve_with_model`) and of cleanlab's CROWDLAB run
    directly on the same answers."""
    from relabeler.plugin.consensus import resolve_with_model
    from relabeler.plugin.votes import Vote, resolve
    from relabeler.selectors.cleanlab_imports import (
        get_label_quality_multiannotator,
        get_majority_vote_label,
    )

    classes = view.classes
    probs = view.oof_probs if view.oof_probs is not None else view.probs
    top = np.argsort(suspects["rank"].to_numpy(), kind="stable")[:budget]
    index = {c: i for i, c in enumerate(classes)}
    true = np.array([index[t] for t in truth[top]])
    answers = tired_answers(true, probs[top], accuracies, np.random.default_rng(seed))
    names = [f"annotator{j + 1}" for j in range(len(accuracies))]
    rows = []
    for i, row in enumerate(top):
        given = classes[view.labels[row]]
        votes = [Vote(n, classes[answers[i, j]], j, "") for j, n in enumerate(names)]
        res = resolve(votes, given_label=given)
        rows.append({"id": view.ids[row], "old_label": given, "new_label": res.new_label,
                     "action": res.action, "agreement": res.agreement,
                     "needs_review": res.needs_review, "annotators": names,
                     "votes": [f"{v.annotator}: {v.answer}" for v in votes]})
    frame = pd.DataFrame(rows)
    resolved, _ = resolve_with_model(frame, dict(zip(view.ids[top], probs[top], strict=True)),
                                     classes)
    consensus = np.array([index.get(x, -1) for x in resolved["new_label"]])
    majority = get_majority_vote_label(answers, pred_probs=probs[top])
    crowdlab = get_label_quality_multiannotator(
        pd.DataFrame(answers, columns=names), probs[top],
        verbose=False)["label_quality"]["consensus_label"].to_numpy()
    return {"accuracies": accuracies, "tasks": int(len(top)),
            "majority_accuracy": float(np.mean(majority == true)),
            "consensus_accuracy": float(np.mean(consensus == true)),
            "crowdlab_accuracy": float(np.mean(crowdlab == true))}


def _retraining_part(store: RunStore, config: RunConfig, view, scores: dict,
                     budgets: list[float], progress: bool, *, rounds: int | None = None,
                     rescore: str = "refit") -> tuple[dict, dict | None, dict | None]:
    from relabeler.data import read_split

    classes = view.classes
    train = read_split(store.read_table(artifacts.TRAIN.path)).set_index("id").loc[view.ids]
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    pool = read_split(store.read_table(artifacts.POOL.path))
    texts = train["text"].tolist() + evaluation["text"].tolist() + pool["text"].tolist()
    refit = _refitter(store, config, texts, classes, progress)
    n, n_eval = len(train), len(evaluation)
    eval_rows = np.arange(n, n + n_eval)
    # the eval truth: with --eval-noise, ``label`` holds the flipped eval labels
    eval_labels = class_ids(true_labels(evaluation), classes, what="the eval split")
    truth = class_ids(train["true_label"], classes, what="the training split's true_label")
    gain = gain_experiment(
        refit, noisy=view.labels, truth=truth, test_rows=eval_rows, test_labels=eval_labels,
        rankings={"relabeler": scores["relabeler"],
                  "cleanlab": scores["cleanlab_self_confidence"]},
        budgets=budgets, classes=classes, seed=config.data.seed)
    coverage_result = (coverage_measure(store, config, view, refit, (train, evaluation, pool))
                       if has_labeled_pool(store, pool) else None)
    rounds_result = None
    if rounds:
        from relabeler.jobs.simulate_rounds import rounds_experiment
        from relabeler.report.remaining import stored_chances

        chances = stored_chances(store)
        share = (store.read_json(artifacts.SUMMARY.path).get("noise") or {}).get(
            "estimated_wrong_share")
        rounds_result = rounds_experiment(
            refit, view, truth=truth, suspect=scores["relabeler"], test_rows=eval_rows,
            test_labels=eval_labels, total=max(gain["budget_samples"]), rounds=rounds,
            clean=gain["accuracy"]["clean"], noisy=gain["accuracy"]["noisy"],
            score_cfg=config.score, control_share=config.studio.control_share,
            stop_rate=config.loop.stop_rate,
            model_wrong=None if share is None else share * n,
            wrong_probability=(None if chances is None
                               else chances.reindex(view.ids).to_numpy(np.float64)),
            rescore=rescore,
            folds=config.train.folds, seed=config.data.seed)
    return gain, coverage_result, rounds_result
