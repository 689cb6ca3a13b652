"""Frozen-encoder states, cached by text.

Head mode trains only the final layer on top of a frozen pretrained encoder, so the encoder's
state of a text ([CLS], or the mean-pooled vector under ``[model] pooling = mean``) is the same
number in ``train``, in every out-of-fold model, in ``retrain`` and in every ``simulate`` refit
and seed. :class:`EncoderCache` computes each once.

An entry is keyed by the SHA-256 of the text, inside a folder named by a fingerprint of
everything the state depends on: the encoder's weights (not the head's: a trained head-mode
model shares its encoder with the pretrained one), the tokenizer, ``max_length`` and the
pooling. A changed
model or tokenizer therefore never reads stale states. Under ``[model] long_text = windows`` or
``evidence`` the entries are window texts (:mod:`relabeler.long_text`) and the fingerprint
names the windowing, so a window's state never mixes with a whole text's. Parts are written
whole (temporary file, then rename), so a killed process leaves no half part behind; two
processes filling the same cache at once only duplicate work.

The folder is ``[model] cache_dir``, else ``$RELABELER_CACHE_DIR``, else
``~/.cache/relabeler``; ``cache_dir = "off"`` disables the cache. It is kept under
``[model] cache_max_gb``: after states are added, the parts of any encoder read or written
longest ago go first (:func:`prune`; a part's time is touched when a lookup uses it). A part
removed while another process looks it up is only a miss there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from relabeler.errors import ConfigError
from relabeler.model import pool_layers_of, pooling_of

log = logging.getLogger(__name__)

OFF = "off"
ENV = "RELABELER_CACHE_DIR"


def cache_root(cache_dir: str = "") -> Path | None:
    """The cache folder from ``[model] cache_dir``, the environment or the default; None when
    the cache is off."""
    chosen = cache_dir or os.environ.get(ENV, "")
    if chosen.strip().lower() == OFF:
        return None
    root = Path(chosen or Path.home() / ".cache" / "relabeler").expanduser()
    try:  # here, before any text is encoded, not when the first states are saved
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        source = ("model.cache_dir" if cache_dir else ENV if chosen
                  else "the default cache folder (model.cache_dir)")
        raise ConfigError(f"{source} = {str(root)!r}: the encoder cache cannot be a folder "
                          f"there ({exc.strerror or exc}); name a folder relabeler may write, "
                          f"or 'off' for no cache") from exc
    return root


def prune(root: Path, max_bytes: int, *, keep: Path | None = None) -> int:
    """Remove the parts under ``root/encoder`` read or written longest ago until the parts
    together take at most ``max_bytes`` (``keep``, the part just written, stays); folders left
    empty go too. Returns the bytes removed. A plain LRU over part files: nothing in the
    dependencies keeps a folder of Parquet files under a size."""
    parts = []
    for part in (Path(root) / "encoder").glob("*/part-*.parquet"):
        with contextlib.suppress(FileNotFoundError):  # pruned by another process meanwhile
            stat = part.stat()
            parts.append((stat.st_mtime, stat.st_size, part))
    total = sum(size for _, size, _ in parts)
    removed = count = 0
    for _, size, part in sorted(parts, key=lambda entry: (entry[0], str(entry[2]))):
        if total - removed <= max_bytes:
            break
        if part == keep:
            continue
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
            removed, count = removed + size, count + 1
        with contextlib.suppress(OSError):  # not empty, or gone already
            part.parent.rmdir()
    if removed:
        log.info("encoder cache: removed %d part(s), %.1f MB, of the states used longest ago, "
                 "to keep %s under model.cache_max_gb = %g", count, removed / 1e6, root,
                 max_bytes / 1e9)
    return removed


def encoder_fingerprint(model, tokenizer, max_length: int, windowing: str = "") -> str:
    """SHA-256 of the weights that produce the cached state, the tokenizer, max_length, the
    pooling (left out for ``cls``, so caches made before pooling existed stay valid), the
    layers it averages (left out for one, likewise) and the
    windowing (:meth:`relabeler.long_text.LongText.cache_tag`; empty for truncation, likewise)."""
    digest = hashlib.sha256()
    digest.update(f"{model.config.model_type}|{type(tokenizer).__name__}|{len(tokenizer)}|"
                  f"{int(max_length)}\n".encode())
    pooling = pooling_of(model)
    if pooling != "cls":  # cls keeps the fingerprints (and caches) made before
        digest.update(f"pooling={pooling}\n".encode())
    if pool_layers_of(model) != 1:  # likewise one layer
        digest.update(f"pool_layers={pool_layers_of(model)}\n".encode())
    if windowing:
        digest.update(f"long_text={windowing}\n".encode())
    if getattr(tokenizer, "truncation_side", "right") != "right":  # which tokens a cut keeps
        digest.update(f"truncation_side={tokenizer.truncation_side}\n".encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # without the truncation and padding a call switches on: the same tokenizer, used
        # once, would name another folder and miss every state it had written
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
        digest.update(json.dumps(spec, sort_keys=True).encode())
    else:
        digest.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    for name, tensor in sorted(model.base_model.state_dict().items()):
        if name.startswith("pooler."):  # after the [CLS] state: head mode's, not the encoder's
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def text_keys(texts: Sequence[str]) -> list[bytes]:
    return [hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest() for text in texts]


class EncoderCache:
    """Head-mode states of one encoder (see :func:`encoder_fingerprint`) under ``root``.

    Parameters
    ----------
    root : the cache folder (see :func:`cache_root`); None = no cache, every call encodes.
    model, tokenizer : the classifier and its tokenizer; only the encoder's weights matter.
    max_length : tokens per text, as the encoding uses.
    windowing : the long-text windowing the texts come from (``LongText.cache_tag()``).
    max_gb : the size :func:`prune` keeps ``root`` under after states are added; 0 = no limit.
    """

    def __init__(self, root: Path | None, model, tokenizer, max_length: int,
                 windowing: str = "", *, max_gb: float = 0.0):
        self.model, self.tokenizer, self.max_length = model, tokenizer, int(max_length)
        self.root, self.max_bytes = root, int(max_gb * 1e9)
        self.folder = None
        # (N,) which texts of the last ``states`` call the encoder ran on (the rest were cached)
        self.encoded_now = np.zeros(0, dtype=bool)
        if root is not None:
            self.folder = Path(root) / "encoder" / encoder_fingerprint(
                model, tokenizer, max_length, windowing)

    def _folder(self, device: torch.device) -> Path | None:
        """The states of ``device``'s precision: bf16 autocast on CUDA (``model.autocast``)
        computes other states than float32 on a CPU, so a cache shared between the two keeps
        them apart (the CPU's keep the folder caches had before)."""
        if self.folder is None or device.type != "cuda":
            return self.folder
        return self.folder.with_name(f"{self.folder.name}-cuda-bf16")

    def _load(self, folder: Path | None, wanted: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The states of the ``wanted`` keys that ``folder``'s parts hold. Only the key column
        of a part is read unless it holds a wanted key, and then only those rows' states: a
        cache grown over many data sets costs what a lookup needs, not the whole folder
        (2,000 states from 200,000 in 40 parts: 0.14 s against 2.6 s when every part was
        read whole; benchmarks/encoder_cache.py)."""
        found: dict[bytes, np.ndarray] = {}
        if folder is None or not folder.is_dir() or not len(wanted):
            return found
        value_set = pa.array(sorted(set(wanted)), pa.binary(32))
        for part in sorted(folder.glob("part-*.parquet")):
            try:
                file = pq.ParquetFile(part)
                keys = file.read(columns=["key"]).column("key")
                rows = np.flatnonzero(pc.is_in(keys, value_set=value_set.cast(keys.type))
                                      .to_numpy(zero_copy_only=False))
                if not len(rows):
                    continue
                states = file.read(columns=["state"]).column("state").take(rows)
                states = np.stack(states.to_numpy(zero_copy_only=False)).astype(np.float32)
                if not np.isfinite(states).all():
                    raise ValueError("states that are not finite")
            except FileNotFoundError:
                continue  # pruned meanwhile by another process: its texts are encoded again
            except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
                # unreadable, of another layout or damaged: recompute its texts
                log.warning("encoder cache: skipping unreadable %s (%s)", part, exc)
                continue
            found.update(zip(keys.take(rows).to_pylist(), states, strict=True))
            with contextlib.suppress(OSError):  # used now: the last part pruning takes
                os.utime(part)
        return found

    def _save(self, folder: Path | None, keys: list[bytes], states: np.ndarray) -> None:
        if folder is None or not keys:
            return
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({"key": pa.array(keys, pa.binary(32)),
                          "state": pa.array(list(states.astype(np.float32)),
                                            pa.list_(pa.float32(), states.shape[1]))})
        name = f"part-{uuid.uuid4().hex}.parquet"
        tmp = folder / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
        if self.max_bytes and self.root is not None:
            prune(self.root, self.max_bytes, keep=folder / name)

    def cached(self, texts: Sequence[str], *, device: torch.device) -> torch.Tensor | None:
        """(N, H) float32 states of ``texts`` in input order from the cache alone (nothing is
        encoded); None when the cache is off or lacks any of them."""
        states, found = self.lookup(texts, device=device)
        return states if len(found) and found.all() else None

    def lookup(self, texts: Sequence[str], *,
               device: torch.device) -> tuple[torch.Tensor, np.ndarray]:
        """(N, H) float32 states of ``texts`` in input order from the cache alone, zeros where
        it has none, and (N,) bool which it had (nothing is encoded)."""
        keys = text_keys(list(texts))
        known = self._load(self._folder(torch.device(device)), keys)
        found = np.fromiter((k in known for k in keys), dtype=bool, count=len(keys))
        if not found.any():
            return torch.zeros(len(keys), 0), found
        width = len(next(iter(known.values())))
        blank = np.zeros(width, dtype=np.float32)
        states = np.stack([known.get(k, blank) for k in keys]).astype(np.float32)
        return torch.from_numpy(states), found

    def states(self, texts: Sequence[str], *, batch_size: int, device: torch.device,
               progress: bool = False) -> torch.Tensor:
        """(N, H) float32 [CLS] states of ``texts`` in input order; only the texts the cache
        lacks run through the encoder (and are added to it)."""
        from relabeler.training import encoder_cls

        texts = list(texts)
        if not texts:
            raise ValueError("no texts to encode")
        keys = text_keys(texts)
        folder = self._folder(torch.device(device))
        known = self._load(folder, keys)
        missing = sorted({k: i for i, k in enumerate(keys) if k not in known}.values())
        self.encoded_now = np.fromiter((k not in known for k in keys), dtype=bool,
                                       count=len(keys))
        if missing:
            with torch.inference_mode():
                fresh = encoder_cls(self.model, self.tokenizer, [texts[i] for i in missing],
                                    max_length=self.max_length, batch_size=batch_size,
                                    device=device, progress=progress).numpy()
            new_keys = [keys[i] for i in missing]
            self._save(folder, new_keys, fresh)
            known.update(zip(new_keys, fresh, strict=True))
        if folder is not None:
            distinct = len(set(keys))  # copies of a text are encoded once, not found cached
            log.info("encoder cache: %d of %d distinct texts cached, %d encoded now%s",
                     distinct - len(missing), distinct, len(missing),
                     f" ({len(texts)} texts with copies)" if distinct < len(texts) else "")
        return torch.from_numpy(np.stack([known[k] for k in keys]).astype(np.float32))
