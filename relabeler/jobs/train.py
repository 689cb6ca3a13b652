"""``relabeler train``: fine-tune the classifier, record training dynamics, out-of-fold probs.

Writes ``model/`` (``save_pretrained`` files + ``labels.json``), ``train/dynamics.parquet``,
``train/metrics.json`` and, with ``--folds K``, ``train/oof.parquet``. The K fold models train
as parallel Ray tasks, one GPU each where GPUs exist.

In ``head`` mode the frozen encoder runs once over the texts and every fold reuses those
pooled states (``model.pooling``), so K folds cost K head fits (seconds), not K encoder passes.

Long texts (``[model] long_text``, :mod:`relabeler.long_text`): in head mode the encoder runs
over every window; ``windows`` trains the head on the mean of a text's window states (the head
is linear on them, so these are the mean of the window logits); ``evidence`` first fits that
head, lets it pick each text's window with the most class evidence, and trains the final head
on the picked windows' states (folds included). The trained model records the settings, so
extract and attribute read the same windows.
"""

from __future__ import annotations

import io
import logging
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from relabeler import artifacts
from relabeler._version import __version__
from relabeler.config import RunConfig
from relabeler.data import read_split
from relabeler.errors import DataError, RelabelerError, StageError
from relabeler.jobs._ray import PoolPlan, check_driver_version
from relabeler.jobs.dataset import prepare_dataset, refuse_changes
from relabeler.jobs.folds import check_folds, stratified_folds
from relabeler.jobs.head_states import long_text_settings, pick_states, window_states
from relabeler.jobs.stage_settings import setting_changes
from relabeler.long_text import CONFIG_KEY as LONG_TEXT_KEY
from relabeler.long_text import record_long_text
from relabeler.model import (
    MAX_LENGTH_KEY,
    POOL_LAYERS_KEY,
    POOLING_KEY,
    load_tokenizer,
    pick_device,
    save_model,
)
from relabeler.redact import mask_url
from relabeler.store import RunStore
from relabeler.training import (
    DEFAULT_LR,
    FitOptions,
    classification_metrics,
    encoder_cls,
    fit_full,
    fit_head,
    head_probs,
    predict_probs,
    seeded,
)
from relabeler.vocabulary import UnknownTokens, unknown_tokens

log = logging.getLogger(__name__)

STAGE = "train"
ARTIFACTS = tuple(artifacts.stage_outputs(STAGE))

#: the share of the training texts' tokens read as unknown ([UNK]) above which train warns: a
#: few unknown symbols (emoji, rare letters) are usual in any corpus, while a twentieth of the
#: text unread means the vocabulary does not cover the script, and the model, its evidence
#: highlights and its shortcuts miss that text
UNKNOWN_WARN_SHARE = 0.05
#: the training texts the share is measured on, at most (a random sample: a second or so)
UNKNOWN_SAMPLE = 2000


def check_vocabulary(tokenizer, texts: list[str], model_name: str | None, *,
                     seed: int = 0) -> UnknownTokens:
    """The unknown-token share of (a sample of) the training texts under the model's
    tokenizer, with a warning when it is above :data:`UNKNOWN_WARN_SHARE` naming the share,
    the most frequent unknown words or characters and a model to use instead."""
    unknown = unknown_tokens(tokenizer, texts, sample=UNKNOWN_SAMPLE, seed=seed)
    if unknown.share > UNKNOWN_WARN_SHARE:
        examples = ", ".join(f"{word!r} ({count})" for word, count in unknown.top)
        log.warning(
            "train: the model (%s) reads %.0f%% of the training texts' tokens as unknown "
            "([UNK]: %d of %d tokens in %d texts), most often %s: it cannot tell that text "
            "apart, so its predictions, evidence highlights and shortcuts miss it. Set "
            "model.name to a model whose vocabulary covers the script (for Chinese or "
            "Japanese a Chinese or multilingual BERT-family checkpoint, e.g. "
            "--set model.name=bert-base-chinese or bert-base-multilingual-cased)",
            mask_url(model_name) if model_name else "the packaged MiniLM", 100 * unknown.share,
            round(unknown.share * unknown.n_tokens), unknown.n_tokens, unknown.n_texts,
            examples)
    return unknown


def fit(model_name: str, classes: list[str], texts: list[str], label_ids: np.ndarray,
        ids: np.ndarray, opts: FitOptions, device: torch.device,
        cls_hidden: torch.Tensor | None = None, *, sample_weights: np.ndarray | None = None):
    """Load a fresh classifier and train it (``sample_weights``: per-sample loss weights);
    returns (model, tokenizer, dynamics)."""
    with seeded(opts.seed):
        model = opts.new_classifier(model_name, classes)
        tokenizer = load_tokenizer(model_name)
        if opts.mode == "head":
            model.to(device)
            if cls_hidden is None:
                cls_hidden = encoder_cls(model, tokenizer, texts, max_length=opts.max_length,
                                         batch_size=64, device=device, progress=opts.progress)
            dynamics = fit_head(model, cls_hidden, label_ids, ids, opts, device,
                                sample_weights=sample_weights)
        else:
            dynamics = fit_full(model, tokenizer, texts, label_ids, ids, opts, device,
                                sample_weights=sample_weights)
    return model, tokenizer, dynamics


def prior_only(pred: np.ndarray, labels: np.ndarray) -> int | None:
    """The one class a model predicts for every row where the labels hold several (a model
    that learned the class prior only); None when it predicts more than one class."""
    classes = np.unique(pred)
    return int(classes[0]) if len(classes) == 1 and len(np.unique(labels)) > 1 else None


def refuse_divergence(what: str, values: np.ndarray, ids: np.ndarray,
                      opts: FitOptions) -> None:
    """Raise a StageError when ``values`` ((N,) or (N, C), one row per id of ``ids``) hold NaN
    or inf: training diverged (a learning rate too high for the model), and its probabilities
    rank nothing. The message names ``what``, the rows and the settings to lower."""
    values = np.asarray(values, dtype=np.float64).reshape(len(ids), -1)
    bad = ~np.isfinite(values).all(axis=1)
    if not bad.any():
        return
    rates = f"train.learning_rate (now {opts.learning_rate:g})"
    if opts.mode == "full":
        rates += f" and train.head_learning_rate (now {opts.head_learning_rate:g})"
    lower = min(opts.learning_rate / 10, DEFAULT_LR[opts.mode])
    raise StageError(f"train: training diverged: {what} are not finite (NaN or inf) for "
                     f"{int(bad.sum())} of {len(bad)} rows (first id {ids[bad][0]!r}); nothing "
                     f"was saved. Lower {rates}, e.g. with --set train.learning_rate={lower:g}")


def check_dynamics(dynamics: pd.DataFrame, opts: FitOptions) -> None:
    """:func:`refuse_divergence` on the training dynamics, naming the first epoch whose
    probabilities are not finite (a diverged model stays so)."""
    probs = dynamics[["gold_prob", "margin"]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        epoch = int(dynamics["epoch"].to_numpy()[bad].min())
        at = (dynamics["epoch"] == epoch).to_numpy()
        refuse_divergence(f"the training probabilities of epoch {epoch + 1} of {opts.epochs}",
                          probs[at], dynamics["id"].to_numpy(dtype=object)[at], opts)


def fit_options(config: RunConfig, device: torch.device, *, mode: str | None = None,
                progress: bool = True) -> FitOptions:
    """The training options of ``[train]`` and ``[model]`` (``mode`` overrides the config's)."""
    tc = config.train
    return FitOptions.resolve(mode=mode or tc.mode, epochs=tc.epochs, batch_size=tc.batch_size,
                              learning_rate=tc.learning_rate, weight_decay=tc.weight_decay,
                              warmup_ratio=tc.warmup_ratio, max_length=config.model.max_length,
                              seed=tc.seed, device=device, progress=progress,
                              pooling=config.model.pooling, long_text=long_text_settings(config),
                              head_learning_rate=tc.head_learning_rate,
                              pool_layers=config.model.pool_layers)


def _train_fold(model_name: str, classes: list[str], texts: list[str], label_ids: np.ndarray,
                ids: np.ndarray, fold: np.ndarray, k: int, opts: FitOptions,
                cls_hidden: torch.Tensor | None, num_threads: int,
                sample_weights: np.ndarray | None = None,
                held_out: tuple[list[str], torch.Tensor | None] | None = None,
                driver_version: str | None = None) -> dict:
    """One fold: train on the other folds, predict the held-out one. Runs as a Ray task.
    ``held_out``: the texts (and head mode's states) to predict where they differ from the
    training ones (the unmasked texts under ``debias = mask``). ``driver_version``: the
    driver's relabeler, checked first (:func:`~relabeler.jobs._ray.check_driver_version`)."""
    check_driver_version(driver_version)
    if num_threads:
        torch.set_num_threads(num_threads)
    device = pick_device()
    train_idx = np.flatnonzero(fold != k)
    held_idx = np.flatnonzero(fold == k)
    fold_opts = replace(opts, progress=False)
    model, tokenizer, _ = fit(
        model_name, classes, [texts[i] for i in train_idx], label_ids[train_idx],
        ids[train_idx], fold_opts, device,
        None if cls_hidden is None else cls_hidden[train_idx],
        sample_weights=None if sample_weights is None else sample_weights[train_idx])
    predict_texts, predict_hidden = held_out or (texts, cls_hidden)
    if predict_hidden is not None:
        probs = head_probs(model, predict_hidden[held_idx], device)
    else:
        probs = predict_probs(model, tokenizer, [predict_texts[i] for i in held_idx],
                              max_length=opts.max_length, batch_size=64, device=device,
                              long_text=opts.long_text)
    return {"held_idx": held_idx, "probs": probs}


def out_of_fold(model_name: str, classes: list[str], texts: list[str], label_ids: np.ndarray,
                ids: np.ndarray, opts: FitOptions, k: int, config: RunConfig,
                cls_hidden: torch.Tensor | None,
                sample_weights: np.ndarray | None = None,
                held_out: tuple[list[str], torch.Tensor | None] | None = None) -> pd.DataFrame:
    """Out-of-fold probabilities of every training sample from K models trained as Ray tasks
    (each with the main model's loss weights on its rows, when there are any). ``held_out``:
    what the fold models predict when it is not what they train on (:func:`_train_fold`).
    Copies of a text share a fold (:func:`stratified_folds`)."""
    import ray

    from relabeler.jobs._ray import connect, plan_from_config

    connect(config.ray.address, num_cpus=config.ray.num_cpus, temp_dir=config.ray.temp_dir)
    plan = plan_from_config(config.ray, num_actors=k, num_threads=config.extract.num_threads,
                            max_actors=k)
    # copies of a text share a fold (the texts as given, before debias = mask)
    fold = stratified_folds(label_ids, k, opts.seed, held_out[0] if held_out else texts, classes)
    task = ray.remote(_train_fold).options(**plan.task_kwargs())
    shared = [ray.put(x) for x in (texts, label_ids, ids, fold, cls_hidden, sample_weights,
                                   held_out)]
    log.info("train: %d folds as Ray tasks (%s GPU, %s CPU each)", k, plan.num_gpus,
             plan.num_cpus)
    refs = [task.remote(model_name, classes, shared[0], shared[1], shared[2], shared[3], f,
                        replace(opts, seed=opts.seed + 1000 * (f + 1)),
                        shared[4], plan.torch_threads, shared[5], shared[6],
                        driver_version=__version__)
            for f in range(k)]
    probs = np.zeros((len(ids), len(classes)), dtype=np.float32)
    try:
        results = ray.get(refs)
    except ray.exceptions.RayError as exc:
        raise _task_failure(exc, plan, k) from exc
    for result in results:
        probs[result["held_idx"]] = result["probs"]
    return pd.DataFrame({"id": ids, "fold": fold, "probs": list(probs)})


def _task_failure(exc: BaseException, plan: PoolPlan, k: int = 0, *,
                  what: str = "") -> RelabelerError:
    """What a failed training task says to the user (``what`` it trained; default the ``k``
    out-of-fold models): the task's own error when it was one of relabeler's (bad input), else
    a StageError saying whether Ray lost the worker."""
    what = what or f"the {k} out-of-fold models"
    from relabeler.jobs._ray import lost_worker

    cause = getattr(exc, "cause", None)
    if isinstance(cause, RelabelerError):
        return cause
    why = (f"Ray lost a worker more often than [ray] max_restarts={plan.max_restarts} allows"
           if lost_worker(exc) else "a fold failed" if k else "the task failed")
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return StageError(f"train: {what} could not finish: {why} "
                      f"({type(exc).__name__}: {first}); the main model was not saved, run "
                      f"the same command again")


def mitigate(config: RunConfig, texts: list[str], label_ids: np.ndarray, classes: list[str],
             shortcuts: pd.DataFrame | None) -> tuple[list[str], np.ndarray | None, dict]:
    """``[train] debias`` and ``class_weights`` applied to the training set: the texts (masked
    with ``debias = mask``), the loss weights (or None) and what was done, for metrics.json."""
    from relabeler.debias import mask_tokens, tokens_to_mitigate, training_weights

    tc = config.train
    tokens: list[str] = []
    if tc.debias != "none":
        if shortcuts is None:
            raise StageError(f"train.debias = {tc.debias} needs {artifacts.SHORTCUTS.path}: run "
                             f"`relabeler score` first")
        tokens = tokens_to_mitigate(shortcuts, top=tc.debias_top, debias=tc.debias)
    if tc.debias == "mask":
        mask = load_tokenizer(config.model.name).mask_token or ""
        texts = mask_tokens(texts, tokens, rate=tc.debias_mask_rate, mask=mask, seed=tc.seed)
    weights = training_weights(texts, label_ids, num_classes=len(classes), debias=tc.debias,
                               tokens=tokens, class_balance=tc.class_weights,
                               class_names=classes)
    info = {"debias": tc.debias, "tokens": tokens, "class_weights": tc.class_weights}
    if tc.debias == "mask":
        info["mask_rate"] = tc.debias_mask_rate
    if weights is not None:
        info["weight_range"] = [float(weights.min()), float(weights.max())]
    return texts, weights, info


@dataclass
class MainFit:
    """The main model, fitted (:func:`fit_main`): the model and tokenizer (None where it ran
    as a Ray task: ``files`` holds them, saved and packed), its training dynamics, the options
    it resolved, head mode's training states (the fold models reuse them), its eval
    probabilities (None without eval rows) and the device it ran on. ``held_out``: the
    unmasked training texts and their states, where ``debias = mask`` changed any (the fold
    models predict those: :func:`_train_fold`)."""

    model: Any
    tokenizer: Any
    dynamics: pd.DataFrame
    opts: FitOptions
    cls_hidden: torch.Tensor | None
    eval_probs: np.ndarray | None
    device: str
    files: bytes = b""
    held_out: tuple[list[str], torch.Tensor | None] | None = None

    def save(self, out_dir: str, classes: list[str]) -> None:
        """The model's folder in ``out_dir``: saved here, or unpacked as the task saved it
        (the driver never loads a model it only stores)."""
        if not self.files:
            save_model(self.model.cpu(), self.tokenizer, out_dir, classes)
            return
        with tarfile.open(fileobj=io.BytesIO(self.files)) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                tar.extractall(out_dir, filter="data")
            else:  # our own task's files
                tar.extractall(out_dir)  # noqa: S202


def fit_main(config: RunConfig, classes: list[str], texts: list[str], label_ids: np.ndarray,
             ids: np.ndarray, eval_texts: list[str], sample_weights: np.ndarray | None, *,
             progress: bool, num_threads: int = 0,
             given: list[str] | None = None) -> MainFit:
    """Train the main model on this process's device and predict the eval texts.
    ``given``: the training texts before ``debias = mask`` changed ``texts`` (the fold models
    predict those: ``held_out``)."""
    if num_threads:
        torch.set_num_threads(num_threads)
    device = pick_device()
    opts = fit_options(config, device, progress=progress)
    changed = ([i for i, (g, t) in enumerate(zip(given, texts, strict=True)) if g != t]
               if given is not None else [])
    unmasked = [given[i] for i in changed]

    cls_hidden = None
    eval_cls = None
    held_hidden = None
    if opts.mode == "head":
        encoder = opts.new_classifier(config.model.name, classes).to(device)
        opts = replace(opts, long_text=long_text_settings(config, encoder))
        states, windows = window_states(config, encoder, texts + unmasked + list(eval_texts),
                                        device, progress=progress)
        both = pick_states(states, windows, "windows")
        del encoder
        if opts.long_text.mode == "evidence":  # a head on the windows' mean picks the windows
            selector, _, _ = fit(config.model.name, classes, texts, label_ids, ids,
                                 replace(opts, progress=False), device,
                                 both[:len(texts)], sample_weights=sample_weights)
            both = pick_states(states, windows, "evidence", selector, device)
            del selector
        first_eval = len(texts) + len(unmasked)
        cls_hidden, eval_cls = both[:len(texts)], (both[first_eval:] if eval_texts else None)
        if changed:
            held_hidden = cls_hidden.clone()
            held_hidden[changed] = both[len(texts):first_eval]

    model, tokenizer, dynamics = fit(config.model.name, classes, texts, label_ids, ids, opts,
                                     device, cls_hidden, sample_weights=sample_weights)
    record_long_text(model, opts.long_text)
    setattr(model.config, MAX_LENGTH_KEY, int(opts.max_length))
    if eval_cls is not None and opts.long_text.mode == "evidence":
        # the eval windows as extract will pick them: by the final model
        eval_cls = pick_states(states, windows, "evidence", model, device)[first_eval:]
    eval_probs = None
    if eval_texts:
        if eval_cls is not None:
            eval_probs = head_probs(model, eval_cls, device)
        else:
            eval_probs = predict_probs(model, tokenizer, eval_texts, max_length=opts.max_length,
                                       batch_size=64, device=device, long_text=opts.long_text)
    held_out = None
    if changed:
        held_out = (list(given), None if held_hidden is None else held_hidden.cpu())
    return MainFit(model.cpu(), tokenizer, dynamics, opts,
                   None if cls_hidden is None else cls_hidden.cpu(), eval_probs, str(device),
                   held_out=held_out)


def _fit_main_packed(config: RunConfig, classes: list[str], *args,
                     driver_version: str | None = None, **kwargs) -> MainFit:
    """:func:`fit_main` as a Ray task: the model and tokenizer come back saved and packed
    (a model with relabeler's pooling installed does not pickle); the node's relabeler must be
    the driver's ``driver_version``."""
    check_driver_version(driver_version)
    main = fit_main(config, classes, *args, **kwargs)
    with tempfile.TemporaryDirectory(prefix="relabeler-main-") as tmp:
        main.save(tmp, classes)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(tmp, arcname=".")
    return replace(main, model=None, tokenizer=None, files=buffer.getvalue())


def main_fit(config: RunConfig, classes: list[str], texts: list[str], label_ids: np.ndarray,
             ids: np.ndarray, eval_texts: list[str], sample_weights: np.ndarray | None, *,
             progress: bool, given: list[str] | None = None) -> MainFit:
    """:func:`fit_main` here, or, when the run joins a Ray cluster (``[ray] address`` or
    ``$RAY_ADDRESS``, as ``ray job submit`` sets it), as one Ray task with ``[ray]``'s requests
    (a GPU per actor): the job's driver runs on the head node, which has none."""
    import os

    address = config.ray.address or os.environ.get("RAY_ADDRESS", "")
    if not address:
        return fit_main(config, classes, texts, label_ids, ids, eval_texts, sample_weights,
                        progress=progress, given=given)
    import ray

    from relabeler.jobs._ray import connect, plan_from_config

    # the setting as given: connect reads RAY_ADDRESS itself, and names it in its errors
    connect(config.ray.address, num_cpus=config.ray.num_cpus, temp_dir=config.ray.temp_dir)
    plan = plan_from_config(config.ray, num_actors=1, num_threads=config.extract.num_threads,
                            max_actors=1)
    log.info("train: the main model as a Ray task on the cluster (%s GPU, %s CPU)",
             plan.num_gpus, plan.num_cpus)
    task = ray.remote(_fit_main_packed).options(**plan.task_kwargs())
    try:
        main = ray.get(task.remote(config, classes, texts, label_ids, ids, eval_texts,
                                   sample_weights, progress=False,
                                   num_threads=plan.torch_threads, given=given,
                                   driver_version=__version__))
    except ray.exceptions.RayError as exc:
        raise _task_failure(exc, plan, what="the main model") from exc
    return main


#: [model] keys that never change what is trained: where the encoder cache lies and how large
#: it may grow on disk
CACHE_KEYS = ("cache_dir", "cache_max_gb")


def training_settings(config: RunConfig) -> dict:
    """The [train] and [model] keys a model is made with (the encoder cache's aside), as the
    train marker records them: a ``model.name`` that is a URL with a password without it (the
    marker is a plain file of the run folder; retrain takes ``model.name`` from the config
    now, never from the marker)."""
    model = {k: v for k, v in config.model.model_dump().items() if k not in CACHE_KEYS}
    if isinstance(model.get("name"), str):
        model["name"] = mask_url(model["name"])
    return {"train": config.train.model_dump(), "model": model}


def trained_model_settings(store: RunStore) -> dict[str, object]:
    """What the trained model's ``auto`` settings came to, from its ``config.json``: pooling,
    pool_layers, long_text and window_stride (``{"model.pooling": "mean", "model.pool_layers":
    4, "model.long_text": "windows", "model.window_stride": 32}``; a key the model saved before
    it was recorded is left out)."""
    path = f"{artifacts.MODEL.path}/config.json"
    saved = store.read_json(path) if store.exists(path) else {}
    out = {f"model.{key}": saved[name] for key, name in (("pooling", POOLING_KEY),
                                                         ("pool_layers", POOL_LAYERS_KEY))
           if saved.get(name) is not None}
    long_text = saved.get(LONG_TEXT_KEY)  # relabeler.long_text.record_long_text wrote it
    if isinstance(long_text, dict):
        out.update({f"model.{key}": long_text[name] for key, name in (("long_text", "mode"),
                                                                      ("window_stride", "stride"))
                    if long_text.get(name) is not None})
    return out


def run_train(store: RunStore, config: RunConfig, *, force: bool = False,
              progress: bool = True, classes: list[str] | None = None,
              shortcuts: pd.DataFrame | None = None) -> dict:
    """The train stage; skipped when done unless ``force``. Returns the stage info.

    ``classes`` fixes the class order (a retrain keeps the baseline's); default: the sorted
    training labels. ``dataset/`` is prepared from ``config.data`` unless already there.
    ``shortcuts``: the ``scores/shortcuts.parquet`` frame ``[train] debias`` mitigates (default:
    this run's, when there). The fold models of ``folds`` train on the masked texts with the
    weights, and predict their held-out rows unmasked, as extract reads them.
    """
    # prepares dataset/, or checks that the finished one was made from these inputs (also
    # before a finished model is kept: a changed source is an error, not a stale model)
    prepare_dataset(store, config, asked=False)  # made, or made now
    if not store.redo(STAGE, force) and store.stage_done(STAGE):
        info = (store.stage_info(STAGE) or {}).get("info", {})
        refuse_changes(setting_changes(info.get("settings"), training_settings(config),
                                       resolved_mode=info.get("mode"),
                                       resolved=trained_model_settings(store)),
                       f"the model in {store.uri} was trained with other settings",
                       "Give the settings it was trained with (each value after \"was\": "
                       "its flag or --set section.key=value) to keep it, or pass --force to "
                       "train again (the old model stays until the new one is written)")
        log.info("train: already done in %s (use --force to retrain)", store.uri)
        return info
    started = time.perf_counter()
    train = read_split(store.read_table(artifacts.TRAIN.path))
    evaluation = read_split(store.read_table(artifacts.EVAL.path))
    classes = list(classes) if classes else sorted(train["label"].unique().tolist())
    unknown = sorted(set(train["label"]) - set(classes))
    if unknown:
        raise DataError(f"dataset/train.parquet: labels {unknown} are not among the classes "
                        f"{classes}")
    check_folds(train["label"], config.train.folds)  # before any training
    index = {c: i for i, c in enumerate(classes)}
    texts = train["text"].tolist()
    ids = train["id"].to_numpy(dtype=object)
    label_ids = train["label"].map(index).to_numpy(dtype=np.int64)
    if shortcuts is None and store.exists(artifacts.SHORTCUTS.path):
        shortcuts = store.read_table(artifacts.SHORTCUTS.path).to_pandas()
    # once per training run, before any training: the texts as given (masking adds no unknown)
    unknown = check_vocabulary(load_tokenizer(config.model.name), texts, config.model.name,
                               seed=config.train.seed)
    given = texts
    texts, sample_weights, mitigation = mitigate(config, texts, label_ids, classes, shortcuts)
    main = main_fit(config, classes, texts, label_ids, ids, evaluation["text"].tolist(),
                    sample_weights, progress=progress, given=given)
    opts, cls_hidden = main.opts, main.cls_hidden
    log.info("train: %s mode, %d epochs, lr %g%s, %d samples, %d classes, on %s", opts.mode,
             opts.epochs, opts.learning_rate, f" (head {opts.head_learning_rate:g})"
             if opts.mode == "full" else "", len(texts), len(classes), main.device)
    # a diverged model is no model: refused before the folds train and anything is written
    check_dynamics(main.dynamics, opts)
    metrics: dict = {"mode": opts.mode, "epochs": opts.epochs,
                     "learning_rate": opts.learning_rate, "mitigation": mitigation,
                     "unknown_share": round(unknown.share, 4),
                     **({"head_learning_rate": opts.head_learning_rate}
                        if opts.mode == "full" else {})}
    # written only once everything is computed: a failed --force keeps the old model, its
    # tables and its marker
    outputs: dict[str, pa.Table] = {}
    if len(evaluation):
        eval_ids = evaluation["label"].map(index).to_numpy(dtype=np.int64)
        eval_probs = main.eval_probs
        refuse_divergence("the model's eval probabilities", eval_probs,
                          evaluation["id"].to_numpy(dtype=object), opts)
        metrics["eval"] = classification_metrics(eval_ids, eval_probs, classes)
        outputs[artifacts.EVAL_PREDICTIONS.path] = pa.table({
            "id": pa.array(evaluation["id"].tolist(), pa.string()),
            "label": pa.array(evaluation["label"].tolist(), pa.string()),
            "pred": pa.array([classes[i] for i in eval_probs.argmax(1)], pa.string()),
            "probs": pa.array(list(eval_probs.astype(np.float32)),
                              pa.list_(pa.float32(), len(classes))),
        })
        log.info("train: eval accuracy %.4f, macro-F1 %.4f on %d samples",
                 metrics["eval"]["accuracy"], metrics["eval"]["macro_f1"], len(evaluation))
        only = prior_only(eval_probs.argmax(1), eval_ids)
        if only is not None:
            metrics["eval"]["predicts_one_class"] = classes[only]
            log.warning("train: the model predicts %r for all %d eval rows, which hold %d "
                        "classes: it learned the class prior, not the texts, and its scores "
                        "will rank little. Too few steps or too low a learning rate do this "
                        "(train.epochs, train.learning_rate, and train.head_learning_rate in "
                        "full mode: docs/benchmarks.md, 'Eval audit on drug-review with full "
                        "fine-tuning')", classes[only], len(evaluation),
                        len(np.unique(eval_ids)))

    folds = config.train.folds
    if folds:
        oof = out_of_fold(config.model.name, classes, texts, label_ids, ids, opts, folds,
                          config, cls_hidden, sample_weights, main.held_out)
        oof_probs = np.stack(oof["probs"].to_numpy())
        diverged = sorted(set(oof["fold"][~np.isfinite(oof_probs).all(axis=1)].tolist()))
        refuse_divergence(f"the out-of-fold probabilities of fold model "
                          f"{', '.join(map(str, diverged))}", oof_probs,
                          oof["id"].to_numpy(dtype=object), opts)
        oof_pred = oof_probs.argmax(1)
        metrics["oof_accuracy"] = float(np.mean(oof_pred == label_ids))
        outputs[artifacts.OOF.path] = pa.Table.from_pandas(oof, preserve_index=False)
        log.info("train: out-of-fold accuracy against the given labels %.4f",
                 metrics["oof_accuracy"])

    outputs[artifacts.DYNAMICS.path] = pa.Table.from_pandas(main.dynamics,
                                                            preserve_index=False)
    # the marker first (unfinished from here), then each output replaced whole, the old one
    # kept until its replacement is written; last, what this run does not make (oof without
    # folds) goes
    store.reset_stage(STAGE, [])
    for artifact, table in outputs.items():
        store.write_table(artifact, table)
    with tempfile.TemporaryDirectory(prefix="relabeler-model-") as tmp:
        main.save(tmp, classes)
        store.put_dir(tmp, artifacts.MODEL.path)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    store.write_json(artifacts.METRICS.path, metrics)
    written = {*outputs, artifacts.MODEL.path, artifacts.LABELS.path, artifacts.METRICS.path}
    for artifact in set(ARTIFACTS) - written:
        store.remove(artifact)
    info = {"mode": opts.mode, "classes": classes, "n_train": len(texts),
            "folds": folds, "seconds": metrics["seconds"],
            "eval_accuracy": metrics.get("eval", {}).get("accuracy"),
            "unknown_share": metrics["unknown_share"],
            "settings": training_settings(config)}
    store.mark_done(STAGE, info)
    return info
