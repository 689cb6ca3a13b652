"""Fine-tuning loops: ``full`` (all weights) and ``head`` (frozen encoder, cached pooled states).

Both record training dynamics for every training sample and epoch: the probability of the given
label and the margin ``p(given) - max p(other)``, plus the logit margin (area under the margin,
Pleiss et al. 2020, averages it over epochs). These are the cheap signals a mislabeled sample
leaves while the model learns. No Ray and no files here; ``jobs/train.py`` orchestrates.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from relabeler.long_text import TRUNCATE, LongText, pool_windows, text_windows
from relabeler.model import (
    autocast,
    check_max_length,
    encode,
    encoder_head_states,
    head_modules,
    head_parameters,
    head_spec,
    iter_text_batches,
    load_classifier,
    shuffled_length_batches,
    token_lengths,
)
from relabeler.selectors.threads import small_work_threads

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = {"full": 3, "head": 40}
DEFAULT_LR = {"full": 3e-5, "head": 1e-2}


@dataclass(frozen=True)
class FitOptions:
    """Training settings, resolved (no zeros meaning 'auto')."""

    mode: str
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    max_length: int
    seed: int
    progress: bool = True
    pooling: str = "cls"  # [model] pooling, for checkpoints not trained yet (model.POOLINGS)
    pool_layers: int | None = None  # [model] pool_layers, likewise (None: 1)
    long_text: LongText = TRUNCATE  # [model] long_text, window_stride, max_windows
    head_learning_rate: float = 0.0  # full mode: the classification head's (resolve: 1e-2)

    @classmethod
    def resolve(cls, *, mode: str, epochs: int, batch_size: int, learning_rate: float,
                weight_decay: float, warmup_ratio: float, max_length: int, seed: int,
                device: torch.device, progress: bool = True,
                pooling: str = "cls", long_text: LongText = TRUNCATE,
                head_learning_rate: float = 0.0, pool_layers: int | None = None) -> FitOptions:
        if mode == "auto":
            mode = "full" if device.type == "cuda" else "head"
        if mode not in ("full", "head"):
            raise ValueError(f"train mode must be auto, full or head, got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        return cls(mode=mode, epochs=epochs or DEFAULT_EPOCHS[mode], batch_size=batch_size,
                   learning_rate=learning_rate or DEFAULT_LR[mode], weight_decay=weight_decay,
                   warmup_ratio=warmup_ratio, max_length=max_length, seed=seed,
                   progress=progress, pooling=pooling, pool_layers=pool_layers,
                   long_text=long_text,
                   head_learning_rate=head_learning_rate or DEFAULT_LR["head"])

    def new_classifier(self, model_name: str, classes: list[str]):
        """``model_name`` loaded with a new head for ``classes``, pooled as ``[model] pooling``
        and ``pool_layers`` say (a checkpoint relabeler trained keeps its own)."""
        model = load_classifier(model_name, classes, pooling=self.pooling,
                                pool_layers=self.pool_layers)
        check_max_length(model, self.max_length, self.long_text.mode)
        return model


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators seeded with ``seed``, for good (the
    benchmarks' and tests' scripts; the product's paths use :func:`seeded`)."""
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Python's, numpy's and torch's global generators seeded with ``seed`` for the block (a
    model's initial head, dropout and shuffles), then put back as they were: the caller's own
    streams (a notebook's) go on as if relabeler had not run."""
    import random

    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            seed_everything(seed)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _dynamics_rows(ids: np.ndarray, epoch: int, logits: torch.Tensor,
                   labels: torch.Tensor) -> pd.DataFrame:
    logits = logits.float()
    probs = logits.softmax(-1)
    gold = labels[:, None]
    gold_prob = probs.gather(1, gold)[:, 0]
    other_probs = probs.scatter(1, gold, -1.0)
    other_logits = logits.scatter(1, gold, -math.inf)
    return pd.DataFrame({
        "id": ids,
        "epoch": np.full(len(ids), epoch, dtype=np.int32),
        "gold_prob": gold_prob.cpu().numpy().astype(np.float32),
        "margin": (gold_prob - other_probs.max(1).values).cpu().numpy().astype(np.float32),
        "logit_margin": (logits.gather(1, gold)[:, 0] - other_logits.max(1).values)
        .cpu().numpy().astype(np.float32),
    })


@torch.inference_mode()
def encoder_cls(model, tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int,
                device: torch.device, progress: bool = False) -> torch.Tensor:
    """What head mode trains on, (N, H) float32 in input order: the encoder's last hidden state
    at the first token, or the mean-pooled vector (:func:`relabeler.model.encoder_head_states`).
    """
    out = None
    batches = iter_text_batches(tokenizer, texts, max_length, batch_size, device)
    total = math.ceil(len(texts) / batch_size)
    for idx, enc in tqdm(batches, total=total, desc="encode", disable=not progress, leave=False):
        with autocast(device):
            hidden = encoder_head_states(model, enc)
        if out is None:
            out = torch.empty(len(texts), hidden.shape[-1], dtype=torch.float32)
        out[torch.as_tensor(idx)] = hidden.float().cpu()
    if out is None:
        raise ValueError("no texts to encode")
    return out


def _weighted_loss(logits: torch.Tensor, labels: torch.Tensor,
                   weights: torch.Tensor | None) -> torch.Tensor:
    """Cross-entropy, each sample's term times its weight (``relabeler.debias``) when given."""
    if weights is None:
        return nn.functional.cross_entropy(logits, labels)
    # the batch mean of the weighted terms (the weights have mean 1 over the training set), so
    # a batch of zero weights contributes nothing instead of 0 / 0
    losses = nn.functional.cross_entropy(logits, labels, reduction="none")
    return (losses * weights).mean()


def _weights_tensor(sample_weights: np.ndarray | None, n: int,
                    device: torch.device | None = None) -> torch.Tensor | None:
    if sample_weights is None:
        return None
    weights = np.asarray(sample_weights, dtype=np.float32)
    if weights.shape != (n,) or not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"sample_weights must be ({n},) finite and >= 0, got shape "
                         f"{weights.shape}")
    return torch.tensor(weights, device=device)


def fit_head(model, cls_hidden: torch.Tensor, label_ids: np.ndarray, ids: np.ndarray,
             opts: FitOptions, device: torch.device, *,
             sample_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Train only the head on cached [CLS] states; returns the per-epoch dynamics.
    ``sample_weights``: (N,) loss weights (shortcut or class reweighting), default all 1."""
    spec = head_spec(model)
    for p in model.parameters():
        p.requires_grad_(False)
    params = head_parameters(model, spec.modules)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=opts.learning_rate, weight_decay=opts.weight_decay)
    rng = np.random.default_rng(opts.seed)
    features = cls_hidden.to(device)
    labels = torch.tensor(label_ids, dtype=torch.long, device=device)
    n = len(labels)
    weights = _weights_tensor(sample_weights, n, device)
    steps_per_epoch = math.ceil(n / opts.batch_size)
    total_steps = steps_per_epoch * opts.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(total_steps * opts.warmup_ratio),
                                               total_steps)
    frames = []
    work = opts.batch_size * sum(p.numel() for p in params)
    with small_work_threads(work, device):
        for epoch in tqdm(range(opts.epochs), desc="train head", disable=not opts.progress):
            frames.append(_head_epoch(model, spec, features, labels, ids, epoch, rng, optimizer,
                                      schedule, weights, opts.batch_size))
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return pd.concat(frames, ignore_index=True)


def _head_epoch(model, spec, features, labels, ids, epoch, rng, optimizer, schedule, weights,
                batch_size) -> pd.DataFrame:
    n = len(labels)
    model.train()
    order = torch.as_tensor(rng.permutation(n), device=features.device)
    for start in range(0, n, batch_size):
        batch = order[start:start + batch_size]
        loss = _weighted_loss(spec.forward(model, features[batch]), labels[batch],
                              None if weights is None else weights[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([spec.forward(model, features[i:i + 4096])
                            for i in range(0, n, 4096)])
    return _dynamics_rows(ids, epoch, logits, labels)


def full_param_groups(model, opts: FitOptions) -> list[dict]:
    """AdamW groups for full mode: no weight decay on biases and norms, and the classification
    head (:func:`relabeler.model.head_modules`) at ``opts.head_learning_rate``, the rest at
    ``opts.learning_rate``. A family whose head is not known trains at one rate (logged)."""
    modules = head_modules(model)
    if modules is None:
        log.warning("train: the head of model type %r is not known; it trains at "
                    "learning_rate %g", model.config.model_type, opts.learning_rate)
    head = {id(p) for p in head_parameters(model, modules or ())}
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    groups = []
    for in_head in (False, True):
        for decay in (True, False):
            params = [p for n, p in model.named_parameters()
                      if (id(p) in head) == in_head and n.endswith(no_decay) != decay]
            if params:
                groups.append({"params": params,
                               "weight_decay": opts.weight_decay if decay else 0.0,
                               **({"lr": opts.head_learning_rate} if in_head else {})})
    return groups


def fit_full(model, tokenizer, texts: Sequence[str], label_ids: np.ndarray, ids: np.ndarray,
             opts: FitOptions, device: torch.device, *,
             sample_weights: np.ndarray | None = None) -> pd.DataFrame:
    """Fine-tune every weight; dynamics are recorded on the fly from each training batch.
    ``sample_weights``: (N,) loss weights (shortcut or class reweighting), default all 1.

    Under ``opts.long_text`` windows or evidence every window of a text is a training example
    with the text's label and weight (which window holds the evidence is not known before the
    model is); a text's dynamics are the mean over its windows."""
    if opts.long_text.windowed:
        windows = text_windows(tokenizer, texts, max_length=opts.max_length,
                               settings=opts.long_text)
        if len(windows.sample) > len(texts):
            window_weights = None if sample_weights is None else \
                np.asarray(sample_weights)[windows.sample]
            dynamics = fit_full(model, tokenizer, windows.texts(texts),
                                np.asarray(label_ids)[windows.sample], ids[windows.sample],
                                FitOptions(**{**opts.__dict__, "long_text": TRUNCATE}),
                                device, sample_weights=window_weights)
            # the mean upcasts float32 to float64; train/dynamics.parquet's schema is float32
            return dynamics.groupby(["epoch", "id"], as_index=False, sort=True).mean()[
                dynamics.columns].astype(dynamics.dtypes.to_dict())
    model.to(device)
    optimizer = torch.optim.AdamW(full_param_groups(model, opts), lr=opts.learning_rate)
    rng = np.random.default_rng(opts.seed)
    lengths = token_lengths(tokenizer, texts, opts.max_length)
    steps_per_epoch = math.ceil(len(texts) / opts.batch_size)
    total_steps = steps_per_epoch * opts.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(total_steps * opts.warmup_ratio),
                                               total_steps)
    labels_all = torch.tensor(np.asarray(label_ids), dtype=torch.long)  # a copy: may be read-only
    weights_all = _weights_tensor(sample_weights, len(labels_all))
    frames = []
    for epoch in range(opts.epochs):
        model.train()
        batches = shuffled_length_batches(lengths, opts.batch_size, rng)
        bar = tqdm(batches, desc=f"train epoch {epoch + 1}/{opts.epochs}",
                   disable=not opts.progress)
        for idx in bar:
            enc = encode(tokenizer, [texts[i] for i in idx], opts.max_length, device)
            labels = labels_all[idx].to(device)
            with autocast(device):
                logits = model(**enc).logits
            loss = _weighted_loss(logits.float(), labels, None if weights_all is None
                                  else weights_all[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            frames.append(_dynamics_rows(ids[idx], epoch, logits.detach(), labels))
            bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return pd.concat(frames, ignore_index=True).sort_values(["epoch", "id"], ignore_index=True)


@torch.inference_mode()
def head_probs(model, cls_hidden: torch.Tensor, device: torch.device) -> np.ndarray:
    """Class probabilities from cached [CLS] states through the head, (N, C)."""
    spec = head_spec(model)
    model.eval()
    features = cls_hidden.to(device)
    logits = torch.cat([spec.forward(model, features[i:i + 4096])
                        for i in range(0, len(features), 4096)])
    return logits.float().softmax(-1).cpu().numpy()


@torch.inference_mode()
def predict_probs(model, tokenizer, texts: Sequence[str], *, max_length: int, batch_size: int,
                  device: torch.device, long_text: LongText = TRUNCATE) -> np.ndarray:
    """Class probabilities for ``texts``, (N, C), in input order; long texts read as
    ``long_text`` says (:func:`relabeler.long_text.pool_windows` of the window logits)."""
    model.to(device).eval()
    windows = text_windows(tokenizer, texts, max_length=max_length, settings=long_text)
    window_texts = windows.texts(texts)
    logits = np.empty((len(window_texts), model.config.num_labels), dtype=np.float32)
    for idx, enc in iter_text_batches(tokenizer, window_texts, max_length, batch_size, device):
        with autocast(device):
            logits[idx] = model(**enc).logits.float().cpu().numpy()
    pooled = pool_windows(logits, logits, windows, long_text.mode).logits
    return torch.from_numpy(pooled).softmax(-1).numpy()


def classification_metrics(label_ids: np.ndarray, probs: np.ndarray,
                           classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support (scikit-learn's, with
    ``zero_division=0``). Macro-F1 averages the classes present in ``label_ids`` (support > 0):
    a class with no row here (a rare class whose rows all went to training) is listed with
    support 0, recall and F1 None (not measured, not 0), and does not pull the mean down; its
    precision is None too unless the model predicted it (then 0: each such prediction wrong).
    Accuracy and macro-F1 are NaN on no samples."""
    from sklearn.metrics import precision_recall_fscore_support

    label_ids = np.asarray(label_ids)
    pred = probs.argmax(1)
    precision = recall = f1 = support = np.zeros(len(classes))   # scikit-learn refuses none
    if len(pred):
        precision, recall, f1, support = precision_recall_fscore_support(
            label_ids, pred, labels=np.arange(len(classes)), zero_division=0.0)
    def measured(values: np.ndarray, c: int, rows: int) -> float | None:
        return float(values[c]) if rows > 0 else None

    predicted = np.bincount(np.asarray(pred, dtype=np.int64), minlength=len(classes)) \
        if len(pred) else np.zeros(len(classes), dtype=np.int64)
    per_class = {name: {"precision": measured(precision, c, predicted[c]),
                        "recall": measured(recall, c, support[c]),
                        "f1": measured(f1, c, support[c]), "support": int(support[c])}
                 for c, name in enumerate(classes)}
    present = np.asarray(support) > 0
    return {"accuracy": float(np.mean(pred == label_ids)) if len(pred) else float("nan"),
            "macro_f1": float(np.mean(f1[present])) if present.any() else float("nan"),
            "n": int(len(pred)), "per_class": per_class}


class HeadRefitter:
    """Refit a model's head again and again on cached encoder states (head mode), each time
    from the same initial head: what simulations need to retrain after every correction.

    Parameters
    ----------
    model : a freshly loaded classifier (its head as initialised).
    cls_hidden : (N, H) cached [CLS] states of the samples the fits may use.
    """

    def __init__(self, model, cls_hidden: torch.Tensor, opts: FitOptions,
                 device: torch.device):
        spec = head_spec(model)
        self.model, self.cls_hidden, self.opts, self.device = model, cls_hidden, opts, device
        self._initial = {name: model.get_submodule(name).state_dict() for name in spec.modules}
        self._initial = {name: {k: v.clone() for k, v in state.items()}
                         for name, state in self._initial.items()}

    def fit_predict(self, rows: np.ndarray, label_ids: np.ndarray, predict_rows: np.ndarray,
                    *, sample_weights: np.ndarray | None = None) -> np.ndarray:
        """Train on ``rows`` (indices into the cache) with ``label_ids`` (and loss weights
        ``sample_weights``, one per row); return the probabilities of ``predict_rows``,
        (len(predict_rows), C)."""
        for name, state in self._initial.items():
            self.model.get_submodule(name).load_state_dict(state)
        opts = FitOptions(**{**self.opts.__dict__, "progress": False})
        with seeded(self.opts.seed):
            fit_head(self.model, self.cls_hidden[rows], np.asarray(label_ids),
                     np.arange(len(rows)).astype(str), opts, self.device,
                     sample_weights=sample_weights)
        return head_probs(self.model, self.cls_hidden[predict_rows], self.device)


class FullRefitter:
    """:class:`HeadRefitter`'s counterpart for full fine-tuning: every fit starts from the
    pretrained checkpoint and trains all weights (expensive: meant for GPUs)."""

    def __init__(self, model_name: str, classes: list[str], texts: list[str], opts: FitOptions,
                 device: torch.device):
        self.model_name, self.classes, self.texts = model_name, classes, texts
        self.opts, self.device = opts, device

    def fit_predict(self, rows: np.ndarray, label_ids: np.ndarray, predict_rows: np.ndarray,
                    *, sample_weights: np.ndarray | None = None) -> np.ndarray:
        from relabeler.model import load_tokenizer

        opts = FitOptions(**{**self.opts.__dict__, "progress": False})
        with seeded(self.opts.seed):
            model = self.opts.new_classifier(self.model_name, self.classes)
            tokenizer = load_tokenizer(self.model_name)
            fit_full(model, tokenizer, [self.texts[i] for i in rows], np.asarray(label_ids),
                     np.arange(len(rows)).astype(str), opts, self.device,
                     sample_weights=sample_weights)
        return predict_probs(model, tokenizer, [self.texts[i] for i in predict_rows],
                             max_length=self.opts.max_length, batch_size=64,
                             device=self.device, long_text=self.opts.long_text)
