"""``relabeler extract`` in head mode: the trained head run on the encoder states ``train``
cached, in the driver, instead of the Ray job running the frozen encoder again (about 9x less
time: docs/benchmarks.md, "extract from the encoder cache")."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from relabeler import artifacts
from relabeler.encoder_cache import EncoderCache, cache_root
from relabeler.errors import ConfigError
from relabeler.jobs.extract import feature_columns, take_rows, write_shard
from relabeler.long_text import long_text_of, pool_windows, text_windows
from relabeler.model import (
    FeatureCapture,
    head_spec,
    load_tokenizer,
    pick_device,
    token_lengths,
)
from relabeler.store import RunStore

log = logging.getLogger("relabeler.jobs.extract")  # the extract stage's lines, under its name

@dataclass(frozen=True)
class CachedStates:
    """Where a head-mode model's extract reads its encoder's states: the encoder cache folder
    (:func:`relabeler.encoder_cache.cache_root`), its ``[model] cache_max_gb``, and whether
    texts it lacks are encoded here and added (on one machine), or leave their rows to the
    Ray job (on a cluster, whose driver's disk holds the cache and whose GPUs are the
    actors')."""

    root: Path
    max_gb: float = 0.0
    encode_missing: bool = True


#: rows per lookup in the encoder cache: every lookup reads the key column of each of its
#: parts, so one per part of 4,096 rows would read them a hundred times over at 500k rows
CACHE_ROWS = 32768


def extract_cached(store: RunStore, splits: Sequence[str], table: pa.Table, frames: dict,
                    model, model_dir, classes: Sequence[str], use: CachedStates, *,
                    max_length: int, batch_size: int, written: dict[str, int],
                    progress: bool) -> set[tuple[int, int]]:
    """Features of the rows of ``table`` from the cached states of the frozen encoder, run
    through the trained head here, in the driver; returns the (split, shard) keys written.

    In head mode only the head trains, so the trained model's encoder is the one whose
    states train cached. The cache's folder is named by this model's fingerprint (encoder
    weights, tokenizer, max_length, pooling, windowing), so a state found there is this
    model's own. The windows, their pooling and every column are what :class:`FeatureExtractor`
    computes; only the encoder's forward pass is read back instead of run again. With
    ``use.encode_missing`` off, it stops at the first group of shards the cache lacks any
    state of."""
    from tqdm.auto import tqdm

    tokenizer = load_tokenizer(model_dir)
    settings = long_text_of(model)
    device = pick_device()
    model.to(device).eval()
    cache = EncoderCache(use.root, model, tokenizer, max_length, settings.cache_tag(),
                         max_gb=use.max_gb)
    spec, capture = head_spec(model), FeatureCapture(model)
    # one number per (split, shard); groups of whole shards in the order the Ray job takes
    code = (table.column("_split").to_numpy() << 32) + table.column("_shard").to_numpy()
    shards, first, sizes = np.unique(code, return_index=True, return_counts=True)
    order = np.argsort(first)
    shards, sizes = shards[order], sizes[order]
    columns = {name: table.column(name).to_numpy(zero_copy_only=False)
               for name in table.column_names}
    done: set[tuple[int, int]] = set()
    cached_rows = encoded = 0
    bar = tqdm(total=len(table), desc="extract", unit="text", disable=not progress)
    try:
        start = 0
        while start < len(shards):
            stop = start + 1
            while stop < len(shards) and sizes[start:stop + 1].sum() <= CACHE_ROWS:
                stop += 1
            group = shards[start:stop]
            start = stop
            mask = np.isin(code, group)
            rows = {name: values[mask] for name, values in columns.items()}
            texts = [str(t) for t in rows["text"]]
            windows = text_windows(tokenizer, texts, max_length=max_length, settings=settings)
            window_texts = windows.texts(texts)
            if use.encode_missing:
                states = cache.states(window_texts, batch_size=batch_size, device=device)
                fresh = np.zeros(len(texts), dtype=bool)
                fresh[windows.sample[cache.encoded_now]] = True
                whole = np.ones(len(texts), dtype=bool)
            else:  # a row is done here only when the cache holds each of its windows
                states, found = cache.lookup(window_texts, device=device)
                whole = np.bincount(windows.sample, weights=~found, minlength=len(texts)) == 0
                fresh = np.zeros(len(texts), dtype=bool)
                if not whole.any():
                    continue
            logits, features = [], []
            with torch.inference_mode():
                for i in range(0, len(states), 4096):
                    logits.append(spec.forward(model, states[i:i + 4096].to(device)).float())
                    features.append(capture.pop().float())
            pooled = pool_windows(torch.cat(features).cpu().numpy(),
                                  torch.cat(logits).cpu().numpy(), windows, settings.mode)
            n_tokens = np.bincount(windows.sample, minlength=len(texts),
                                   weights=token_lengths(tokenizer, window_texts, max_length))
            out = feature_columns(rows, torch.from_numpy(pooled.logits),
                                  torch.from_numpy(pooled.features),
                                  torch.from_numpy(n_tokens.astype(np.int64)))
            row_code = code[mask]
            for key in group.tolist():
                part = np.flatnonzero(row_code == key)
                if not whole[part].all():  # left whole to the Ray job
                    continue
                split_no, shard = key >> 32, key & 0xFFFFFFFF
                split = splits[split_no]
                written[split] += write_shard(store, artifacts.FEATURES(split=split), shard,
                                               [take_rows(out, part)], frames[split_no],
                                               classes)
                done.add((split_no, shard))
                cached_rows += int((~fresh[part]).sum())
                encoded += int(fresh[part].sum())
                bar.update(len(part))
    finally:
        bar.close()
        capture.remove()
    log.info("extract: %d of %d rows from the encoder cache%s", cached_rows, len(table),
             f" ({encoded} encoded here and cached)" if use.encode_missing else "")
    return done


def cached_states(store: RunStore, config, cluster: bool) -> CachedStates | None:
    """Where extract reads the encoder's states instead of running it: a model trained in
    head mode (its encoder frozen, so its states are the cached ones) with the encoder cache
    on; None otherwise (full mode's encoder was trained: the Ray job runs it)."""
    info = (store.stage_info("train") or {}).get("info") or {}
    if info.get("mode") != "head":
        return None
    try:
        root = cache_root(config.model.cache_dir)
    except ConfigError as exc:  # train may have run with another cache_dir: extract still can
        log.warning("extract: %s; the model's encoder runs again", exc)
        return None
    if root is None:
        return None
    return CachedStates(root, config.model.cache_max_gb, encode_missing=not cluster)
