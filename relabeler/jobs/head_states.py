"""Head mode's input: the frozen encoder's states of the texts, through the encoder cache,
one row per text as ``[model] long_text`` pools its windows. Train, retrain and simulate read
them; the training itself is :mod:`relabeler.jobs.train`'s."""

from __future__ import annotations

import logging

import numpy as np
import torch

from relabeler.config import RunConfig
from relabeler.encoder_cache import EncoderCache, cache_root
from relabeler.errors import ConfigError
from relabeler.long_text import LongText, TextWindows, evidence_choice, mean_by_text, text_windows
from relabeler.model import head_is_linear, head_spec, load_tokenizer

log = logging.getLogger("relabeler.jobs.train")  # the train stage says it ("train: ...")


def long_text_settings(config: RunConfig, head_model=None) -> LongText:
    """``[model] long_text``, ``window_stride`` and ``max_windows`` as one value, ``auto``
    resolved.

    ``head_model``: the classifier whose head head mode trains. Head mode pools windows through
    a head that is linear in the cached states (where the mean of the states gives the mean of
    the logits): the mean-pooled BERT family's. With another head ``auto`` reads truncated
    texts (logged) and ``windows`` or ``evidence`` is a ConfigError."""
    mc = config.model
    linear = head_model is None or head_is_linear(head_model)
    mode = mc.long_text
    if mode == "auto":
        mode = "windows" if linear else "truncate"
        if not linear:
            log.warning("model.long_text = auto: head mode with a %s head that is not linear in "
                        "the cached states reads truncated texts (model.pooling = mean reads "
                        "windows)", head_model.config.model_type)
    elif mode != "truncate" and not linear:
        raise ConfigError(f"model.long_text = {mode} in head mode needs a head linear in the "
                          f"cached states (model.pooling = mean on a BERT-family model); use "
                          f"model.pooling = mean, train.mode = full, or model.long_text = "
                          f"truncate")
    return LongText(mode, mc.effective_stride(), mc.max_windows)


def window_states(config: RunConfig, model, texts: list[str], device: torch.device, *,
                  progress: bool = True) -> tuple[torch.Tensor, TextWindows]:
    """The frozen encoder's states of every window of ``texts`` ((M, H), in window order)
    through the ``[model] cache_dir`` cache, and the windows (head mode)."""
    settings = long_text_settings(config, model)
    tokenizer = load_tokenizer(config.model.name)
    windows = text_windows(tokenizer, texts, max_length=config.model.max_length,
                           settings=settings)
    cache = EncoderCache(cache_root(config.model.cache_dir), model, tokenizer,
                         config.model.max_length, settings.cache_tag(),
                         max_gb=config.model.cache_max_gb)
    states = cache.states(windows.texts(texts), batch_size=64, device=device,
                          progress=progress)
    return states, windows


def head_window_logits(model, states: torch.Tensor, device: torch.device) -> np.ndarray:
    """(M, C) the head's logits on each window state."""
    spec = head_spec(model)
    with torch.inference_mode():
        return torch.cat([spec.forward(model, states[i:i + 4096].to(device)).float().cpu()
                          for i in range(0, len(states), 4096)]).numpy()


def pick_states(states: torch.Tensor, windows: TextWindows, mode: str,
                selector=None, device: torch.device | None = None) -> torch.Tensor:
    """(N, H) the head's input per text: the window state (one window), the mean of the window
    states (``windows``), or the state of the window ``selector`` (a classifier with a trained
    head) finds the most class evidence in (``evidence``)."""
    if len(states) == windows.n_texts:
        return states
    if mode == "windows":
        return torch.from_numpy(mean_by_text(states.numpy(), windows))
    if selector is None:
        raise ValueError("long_text = evidence needs a trained model to pick the windows")
    return states[evidence_choice(head_window_logits(selector, states, device), windows)]


def encoder_states(config: RunConfig, model, texts: list[str], device: torch.device, *,
                   progress: bool = True, selector=None) -> torch.Tensor:
    """The frozen encoder's states of ``texts`` through the ``[model] cache_dir`` cache (head
    mode), one row per text as ``[model] long_text`` pools them (:func:`pick_states`;
    ``selector`` picks the evidence windows)."""
    states, windows = window_states(config, model, texts, device, progress=progress)
    return pick_states(states, windows, long_text_settings(config, model).mode, selector,
                       device)
