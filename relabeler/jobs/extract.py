"""``relabeler extract``: per-sample features as a Ray Data job.

A :class:`FeatureExtractor` actor loads the model once and turns batches of texts into the
features every later stage reads: the embedding the classification head receives (the input of
its final linear layer), logits, probabilities, prediction, loss against the given label and the
token count. Rows reach the actors sorted by length inside each shard, so a batch pads little.

Output: ``features/{split}/part-NNNNN.parquet``, one file per shard of ``shard_size`` rows in the
split's row order. A killed job resumes from the shards it finished.

On a cluster the actors are restartable (``[ray] max_restarts``, ``max_task_retries``): when a
worker or a whole node dies, Ray starts the actor again where resources are free and retries
the batches it held, and the job goes on. Rows are assembled per shard by their position, so a
retried batch can neither duplicate nor drop a row.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch

from relabeler import artifacts
from relabeler._version import __version__
from relabeler.errors import StageError
from relabeler.jobs._parts import PartAssembler
from relabeler.jobs._ray import PoolPlan, check_driver_version
from relabeler.long_text import long_text_of, pool_windows, recorded_long_text, text_windows
from relabeler.model import (
    FeatureCapture,
    autocast,
    class_names,
    encode,
    final_linear,
    load_classifier,
    load_tokenizer,
    pick_device,
    trained_max_length,
)
from relabeler.stage_chain import run_first
from relabeler.store import RunStore

if TYPE_CHECKING:
    from relabeler.jobs.extract_cached import CachedStates

log = logging.getLogger(__name__)

SPLITS = ("train", "eval", "pool")


class FeatureExtractor:
    """Callable class for ``Dataset.map_batches``: texts in, features out.

    Parameters
    ----------
    model_dir:
        A local model folder, or an artifact of ``store_uri`` (downloaded once per actor when
        the run directory is remote).
    max_length:
        Tokens per text, or per window when the model was trained with ``[model] long_text``
        windows or evidence (read from the model: :func:`relabeler.long_text.long_text_of`).
    num_threads:
        ``torch.set_num_threads`` on CPU (Ray starts actors with ``OMP_NUM_THREADS=1``).
    device:
        ``auto``: CUDA when present. On CUDA the model runs in bf16 with SDPA attention.
    driver_version:
        The driver's relabeler version, checked against this node's
        (:func:`~relabeler.jobs._ray.check_driver_version`); None: not checked.
    """

    def __init__(self, model_dir: str, *, max_length: int = 128, num_threads: int = 0,
                 device: str = "auto", store_uri: str | None = None, batch_windows: int = 64,
                 driver_version: str | None = None):
        check_driver_version(driver_version)
        if store_uri is not None:  # the node's cached copy, shared by its actors
            model_dir = str(RunStore(store_uri).get_dir(model_dir))
        self.device = pick_device(device)
        if self.device.type == "cpu" and num_threads:
            torch.set_num_threads(num_threads)
        self.tokenizer = load_tokenizer(model_dir)
        self.model = load_classifier(model_dir)
        if self.device.type == "cuda":
            self.model.to(device=self.device, dtype=torch.bfloat16)
        self.model.eval()
        self.max_length = max_length
        self.long_text = long_text_of(self.model)
        # forward passes of at most this many windows (a batch of long texts has more windows)
        self.batch_windows = batch_windows
        self.capture = FeatureCapture(self.model)

    @torch.inference_mode()
    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """batch: ``text`` (N,) str (or ``input_ids``, ``token_type_ids``: one 1-D int array
        per row, from :func:`tokenize_batch`), ``label_index`` (N,) int64 with -1 for no
        label; other columns pass through. Adds embedding (N, D) float32, logits and probs
        (N, C) float32, pred (N,) int64, loss (N,) float32 (NaN without a label), n_tokens
        (N,) int32."""
        if "input_ids" in batch:  # tokenized by the CPU stage (tokenize_batch)
            enc = _pad_token_ids(batch, self.tokenizer.pad_token_id, self.device)
            with autocast(self.device):
                logits = self.model(**enc).logits.float()
            embedding = self.capture.pop().float()
            n_tokens = enc["attention_mask"].sum(1)
        else:
            logits, embedding, n_tokens = self._read_texts([str(t) for t in batch["text"]])
        return feature_columns(batch, logits, embedding, n_tokens)

    def _read_texts(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits (N, C), features (N, D) and tokens read (N,) of ``texts``, their windows
        pooled as the model was trained to (:mod:`relabeler.long_text`)."""
        windows = text_windows(self.tokenizer, texts, max_length=self.max_length,
                               settings=self.long_text)
        window_texts = windows.texts(texts)
        logits, features, tokens = [], [], []
        for start in range(0, len(window_texts), self.batch_windows):
            enc = encode(self.tokenizer, window_texts[start:start + self.batch_windows],
                         self.max_length, self.device)
            with autocast(self.device):
                logits.append(self.model(**enc).logits.float())
            features.append(self.capture.pop().float())
            tokens.append(enc["attention_mask"].sum(1))
        window_logits, window_features = torch.cat(logits), torch.cat(features)
        counts = torch.zeros(len(texts), dtype=torch.long, device=self.device)
        counts.index_add_(0, torch.as_tensor(windows.sample, device=self.device),
                          torch.cat(tokens))
        if len(window_texts) == len(texts):
            return window_logits, window_features, counts
        pooled = pool_windows(window_features.cpu().numpy(), window_logits.cpu().numpy(),
                              windows, self.long_text.mode)
        return (torch.from_numpy(pooled.logits).to(self.device),
                torch.from_numpy(pooled.features).to(self.device), counts)


_TOKEN_COLUMNS = ("text", "input_ids", "token_type_ids")


def feature_columns(batch: dict[str, np.ndarray], logits: torch.Tensor, embedding: torch.Tensor,
                    n_tokens: torch.Tensor) -> dict[str, np.ndarray]:
    """``batch``'s columns (its text and token ids aside) and what extract adds from the
    model's logits (N, C), features (N, D) and tokens read (N,): embedding, logits, probs,
    pred, loss against ``label_index`` (NaN where it is -1) and n_tokens."""
    log_probs = logits.log_softmax(-1)
    labels = torch.as_tensor(np.asarray(batch["label_index"], dtype=np.int64),
                             device=logits.device)
    has_label = labels >= 0
    loss = -log_probs.gather(1, labels.clamp(min=0)[:, None])[:, 0]
    loss = torch.where(has_label, loss, torch.full_like(loss, float("nan")))
    out = {k: v for k, v in batch.items() if k not in _TOKEN_COLUMNS}
    out.update(
        embedding=embedding.cpu().numpy(),
        logits=logits.cpu().numpy(),
        probs=log_probs.exp().cpu().numpy(),
        pred=logits.argmax(-1).cpu().numpy().astype(np.int64),
        loss=loss.cpu().numpy().astype(np.float32),
        n_tokens=n_tokens.cpu().numpy().astype(np.int32),
    )
    return out


def tokenize_batch(batch: pa.Table, *, tokenizer, max_length: int) -> pa.Table:
    """The CPU stage before GPU actors: texts in, unpadded token ids out (list<int32> per row;
    the actor pads each batch to its longest row). Keeps tokenization off the GPU actors'
    single CPU thread, where it would cost more than the forward pass."""
    enc = tokenizer([str(t) for t in batch.column("text").to_pylist()], truncation=True,
                    max_length=max_length)
    batch = batch.drop_columns(["text"])
    for name in ("input_ids", "token_type_ids"):
        if name in enc:
            batch = batch.append_column(name, pa.array(enc[name], pa.list_(pa.int32())))
    return batch


def _pad_token_ids(batch: dict[str, np.ndarray], pad_id: int,
                   device: torch.device) -> dict[str, torch.Tensor]:
    """Rows of token ids (ragged) to padded tensors, as ``encode`` pads: right, to the longest."""
    rows = [np.asarray(r) for r in batch["input_ids"]]
    lengths = np.fromiter(map(len, rows), np.int64, len(rows))
    width = int(lengths.max()) if len(rows) else 0
    mask = np.arange(width)[None, :] < lengths[:, None]
    enc = {"input_ids": np.full((len(rows), width), pad_id, dtype=np.int64)}
    enc["input_ids"][mask] = np.concatenate(rows) if rows else []
    if "token_type_ids" in batch:
        enc["token_type_ids"] = np.zeros((len(rows), width), dtype=np.int64)
        enc["token_type_ids"][mask] = np.concatenate([np.asarray(r) for r in
                                                      batch["token_type_ids"]])
    enc["attention_mask"] = mask.astype(np.int64)
    return {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in enc.items()}


def _fixed_list(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def features_table(ids: Sequence[str], labels: Sequence[str | None], out: dict[str, np.ndarray],
                   classes: Sequence[str]) -> pa.Table:
    """The ``features/{split}`` schema from a FeatureExtractor output."""
    names = np.asarray(classes, dtype=object)
    return pa.table({
        "id": pa.array(list(ids), pa.string()),
        "label": pa.array(list(labels), pa.string()),
        "embedding": _fixed_list(out["embedding"]),
        "logits": _fixed_list(out["logits"]),
        "probs": _fixed_list(out["probs"]),
        "pred": pa.array(names[out["pred"]].tolist(), pa.string()),
        "loss": pa.array(out["loss"], pa.float32()),
        "n_tokens": pa.array(out["n_tokens"], pa.int32()),
    })


def empty_features(dim: int, num_classes: int) -> pa.Table:
    out = {
        "embedding": np.zeros((0, dim), np.float32),
        "logits": np.zeros((0, num_classes), np.float32),
        "probs": np.zeros((0, num_classes), np.float32),
        "pred": np.zeros(0, np.int64),
        "loss": np.zeros(0, np.float32),
        "n_tokens": np.zeros(0, np.int32),
    }
    return features_table([], [], out, [""] * num_classes)


def _stack(values: np.ndarray) -> np.ndarray:
    """Ray may hand back a 2-D column as an array of 1-D arrays."""
    values = np.asarray(values)
    return np.stack(list(values)) if values.dtype == object else values


def _pending_rows(store: RunStore, split: str, split_no: int, shard_size: int,
                  classes: Sequence[str]) -> tuple[dict[str, np.ndarray], dict, object]:
    """Rows of the unfinished shards of ``split``, longest text first inside each shard."""
    from relabeler.data import read_split

    frame = read_split(store.read_table(artifacts.SPLIT(split=split)))
    folder = artifacts.FEATURES(split=split)
    n_shards = max(1, -(-len(frame) // shard_size))
    done = store.finished_shards(folder)
    pending = [i for i in range(n_shards) if i not in done]
    index = {c: i for i, c in enumerate(classes)}
    label_index = np.array([index.get(x, -1) if isinstance(x, str) else -1
                            for x in frame["label"].tolist()], dtype=np.int64)
    shard = np.arange(len(frame)) // shard_size
    keep = np.isin(shard, pending)
    rows = {
        "id": frame["id"].to_numpy(dtype=object)[keep],
        "text": frame["text"].to_numpy(dtype=object)[keep],
        "label_index": label_index[keep],
        "_pos": np.arange(len(frame))[keep],
        "_shard": shard[keep],
        "_split": np.full(int(keep.sum()), split_no, dtype=np.int64),
    }
    # inside each shard, longest first: consecutive rows form batches of similar length
    lengths = np.fromiter(map(len, rows["text"]), np.int64, len(rows["text"]))
    order = np.lexsort((-lengths, rows["_shard"]))
    rows = {k: v[order] for k, v in rows.items()}
    expected = {int(s): int(np.sum(rows["_shard"] == s)) for s in pending}
    return rows, expected, frame


def _parts_key(store: RunStore, split: str, model_artifact: str, max_length: int,
               shard_size: int) -> dict:
    """What a split's parts are computed from: the model's files (its long-text reading
    included), the split's table, ``max_length`` and the rows per part."""
    return {"model": store.folder_version(model_artifact),
            "dataset": store.version(artifacts.SPLIT(split=split)),
            "max_length": int(max_length), "shard_size": int(shard_size)}


def extract_splits(store: RunStore, splits: Sequence[str], *,
                   model_artifact: str = artifacts.MODEL.path,
                   max_length: int = 128, batch_size: int = 64, shard_size: int = 4096,
                   num_actors: int = 0, gpus_per_actor: float = 1.0, num_threads: int = 0,
                   plan: PoolPlan | None = None, cpu_tokenize: bool | None = None,
                   cached: CachedStates | None = None, progress: bool = True) -> dict[str, int]:
    """Extract features for ``splits`` in one Ray Data pass (the actors start once).

    Shards already in ``features/{split}/`` are kept (resume). Ray must be connected, unless
    ``cached`` does every row. ``cached`` (a head-mode model only): the rows whose encoder
    states the cache holds are read from it here, before any actor starts
    (:func:`relabeler.jobs.extract_cached.extract_cached`); the Ray job does what it leaves.
    ``plan`` sets the actors, their requests and fault tolerance; without it they come from
    ``num_actors``, ``gpus_per_actor`` and ``num_threads``. ``cpu_tokenize`` tokenizes in Ray
    tasks on the CPUs the actors leave free (streaming into the actors) instead of inside the
    actors; default: on GPU actors, when CPUs are left. Returns the rows written now, per
    split.

    Raises
    ------
    StageError
        When the pass cannot finish (workers lost more often than the plan allows, or a
        failing batch); the shards written so far stay, and a rerun resumes from them.
    """
    model_dir = store.get_dir(model_artifact)
    model = load_classifier(model_dir)
    classes = class_names(model)
    windowed = long_text_of(model).windowed
    written = {split: 0 for split in splits}
    parts, expected, frames = [], {}, {}
    for split_no, split in enumerate(splits):
        key = _parts_key(store, split, model_artifact, max_length, shard_size)
        if store.keep_shards_of(artifacts.FEATURES(split=split),
                                artifacts.FEATURE_PARTS_KEY(split=split), key):
            log.warning("extract: the parts of %s were computed from another model, dataset or "
                        "setting; starting that split over", split)
        rows, split_expected, frame = _pending_rows(store, split, split_no, shard_size, classes)
        frames[split_no] = frame
        if len(frame) == 0 and split_expected:
            # an empty split still gets one (empty) part, so readers find its schema
            store.write_shard(artifacts.FEATURES(split=split), 0,
                              empty_features(final_linear(model).in_features, len(classes)))
            continue
        expected.update({(split_no, s): n for s, n in split_expected.items()})
        if len(rows["id"]):
            parts.append(pa.table(rows))
    if not parts:
        log.info("extract: every shard of %s is already done", ", ".join(splits))
        return written

    table = pa.concat_tables(parts)
    if cached is not None:
        from relabeler.jobs.extract_cached import extract_cached

        done = extract_cached(store, splits, table, frames, model, model_dir, classes, cached,
                               max_length=max_length, batch_size=batch_size, written=written,
                               progress=progress)
        left = [(int(a), int(b)) not in done for a, b in zip(
            table.column("_split").to_numpy(), table.column("_shard").to_numpy(), strict=True)]
        table = table.filter(pa.array(left, pa.bool_()))
        expected = {k: n for k, n in expected.items() if k not in done}
        if not len(table):
            return written
        log.info("extract: the encoder cache lacks states of %d rows: the Ray job reads them",
                 len(table))
    del model
    import ray
    from ray.data import DataContext
    from tqdm.auto import tqdm

    from relabeler.jobs._ray import cluster_resources, plan_pool

    plan = plan or plan_pool(num_actors=num_actors, gpus_per_actor=gpus_per_actor,
                             num_threads=num_threads)
    log.info("extract: %d rows of %s in %d shards, %d actor(s) (%s GPU, %s CPU each)",
             len(table), ", ".join(splits), len(expected), plan.num_actors, plan.num_gpus,
             plan.num_cpus)
    DataContext.get_current().execution_options.preserve_order = True
    # blocks of whole batches, made here: no Ray task has to split them (all CPUs may belong
    # to the model actors)
    block_rows = batch_size * max(1, min(16, -(-len(table) // (batch_size * 8))))
    ds = ray.data.from_arrow([table.slice(i, block_rows)
                              for i in range(0, len(table), block_rows)])
    if cpu_tokenize is None:
        cpus, _ = cluster_resources()
        cpu_tokenize = plan.on_gpu and cpus - plan.num_actors * plan.num_cpus >= 1
    # the actors cut windows out of the texts themselves (long_text windows or evidence)
    cpu_tokenize = cpu_tokenize and not windowed
    if cpu_tokenize:
        ds = ds.map_batches(tokenize_batch, batch_size=None, batch_format="pyarrow",
                            fn_kwargs={"tokenizer": load_tokenizer(model_dir),
                                       "max_length": max_length}, num_cpus=1)
    ds = plan.map_batches(
        ds, FeatureExtractor,
        fn_constructor_args=(str(model_dir) if store.is_local else model_artifact,),
        fn_constructor_kwargs={"max_length": max_length, "num_threads": plan.torch_threads,
                               "store_uri": None if store.is_local else store.uri,
                               "device": "auto" if plan.on_gpu else "cpu",
                               "driver_version": __version__},
        batch_size=batch_size,
        batch_format="numpy",
    )

    def write(key: tuple[int, ...], pieces: list[dict]) -> int:
        split = splits[key[0]]
        rows = write_shard(store, artifacts.FEATURES(split=split), key[1], pieces,
                            frames[key[0]], classes)
        written[split] += rows
        return rows

    assembler = PartAssembler("extract", expected, shard_size, write)
    bar = tqdm(total=len(table), desc="extract", unit="text", disable=not progress)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            bar.update(assembler.add(np.stack([batch["_split"], batch["_shard"]], axis=1),
                                     batch["_pos"], batch, take_rows))
    except Exception as err:
        raise StageError(assembler.failure_message(err, plan)) from err
    finally:
        bar.close()
    missing = [f"features/{splits[k[0]]}/part {k[1]}" for k in expected
               if k[1] not in store.finished_shards(f"features/{splits[k[0]]}")]
    if missing:
        raise StageError(f"extract: {', '.join(missing)} did not complete; run again to "
                         "resume from the finished parts")
    return written


def take_rows(batch: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in batch.items()}


def write_shard(store: RunStore, folder: str, shard: int, parts: list[dict], frame,
                 classes: Sequence[str]) -> int:
    merged = {k: np.concatenate([_stack(p[k]) for p in parts]) for k in parts[0]}
    order = np.argsort(merged["_pos"])
    merged = {k: v[order] for k, v in merged.items()}
    labels = frame["label"].to_numpy(dtype=object)[merged["_pos"]]
    table = features_table(merged["id"].tolist(), [x if isinstance(x, str) else None
                                                   for x in labels], merged, classes)
    store.write_shard(folder, shard, table)
    log.debug("%s: part %d written (%d rows)", folder, shard, table.num_rows)
    return table.num_rows


def _windows_left(store: RunStore, split: str, read, max_length: int) -> int:
    """Texts of ``split`` with windows past ``read.max_windows`` that the model leaves unread
    (0 when every window is read)."""
    if not read.max_windows:
        return 0
    texts = store.read_table(artifacts.SPLIT(split=split), columns=["text"]).column(
        "text").to_pylist()
    tokenizer = load_tokenizer(store.get_dir(artifacts.MODEL.path))
    windows = text_windows(tokenizer, [str(t) for t in texts], max_length=max_length,
                           settings=read)
    return int(windows.cut.sum()) if windows.cut is not None else 0


def count_truncated(n_tokens: np.ndarray, max_length: int) -> int:
    """Texts whose tokens fill ``max_length`` (n_tokens: (N,) after truncation): cut there,
    or, rarely, exactly that long."""
    return int(np.sum(np.asarray(n_tokens) >= max_length))


def run_extract(store: RunStore, config, *, force: bool = False,
                splits: Sequence[str] | None = None, progress: bool = True) -> dict:
    """The extract stage over ``splits`` (default ``[extract] splits``); per-split markers
    ``extract.{split}`` make a finished split a no-op unless ``force``."""
    from relabeler.jobs._ray import connect, plan_from_config

    if not store.stage_done("train"):
        raise StageError(run_first(store, "train", "extract needs a trained model"))
    splits = list(splits or config.extract.splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise ValueError(f"splits: unknown split(s) {unknown}; choose from {', '.join(SPLITS)}")
    todo, redo = [], []
    for split in splits:
        stage = f"extract.{split}"
        if store.redo(stage, force):  # parts of another model are never resumed from
            redo.append(split)
        elif store.stage_done(stage):
            if store.exists(artifacts.FEATURES(split=split)):
                log.info("%s: already done (use --force to redo)", stage)
                continue
            log.warning("%s: its marker is there but %s is gone: extracted again", stage,
                        artifacts.FEATURES(split=split))
            redo.append(split)
        todo.append(split)
    if todo:
        saved = store.read_json(f"{artifacts.MODEL.path}/config.json")
        max_length = trained_max_length(saved, config.model, "extract")
        read = recorded_long_text(saved)
        cluster = bool(config.ray.address or os.environ.get("RAY_ADDRESS", ""))
        from relabeler.jobs.extract_cached import cached_states

        cached = cached_states(store, config, cluster)
        if cached is None or cluster:  # on one machine the cache does every row: no Ray
            # joined before a redo removes anything: a cluster that cannot be reached (a
            # wrong address) leaves the finished features as they were
            connect(config.ray.address, num_cpus=config.ray.num_cpus,
                    temp_dir=config.ray.temp_dir)
        for split in redo:
            store.reset_stage(f"extract.{split}", [artifacts.FEATURES(split=split)])
        started = time.perf_counter()
        ec = config.extract
        # no Ray to plan for where the cache does every row
        plan = (plan_from_config(config.ray, num_actors=ec.num_actors,
                                 num_threads=ec.num_threads)
                if cached is None or cluster else None)
        written = extract_splits(store, todo, max_length=max_length,
                                 batch_size=ec.batch_size, shard_size=ec.shard_size,
                                 plan=plan, cached=cached, progress=progress)
        seconds = time.perf_counter() - started
        for split in todo:
            tokens = store.read_table(artifacts.FEATURES(split=split), columns=["n_tokens"])
            total = tokens.num_rows
            expected = store.read_table(artifacts.SPLIT(split=split), columns=["id"]).num_rows
            if total != expected:
                raise StageError(f"features/{split} holds {total} rows where "
                                 f"dataset/{split}.parquet has {expected}: rerun `relabeler "
                                 f"extract --force --run {store.uri}`")
            if read.windowed:  # n_tokens sums a text's windows: cut only past max_windows
                truncated = _windows_left(store, split, read, max_length)
                if truncated:
                    log.warning("extract: %d of %d %s texts have more than model.max_windows = "
                                "%d windows; the model reads their first %d", truncated, total,
                                split, read.max_windows, read.max_windows)
            else:
                truncated = count_truncated(tokens.column("n_tokens").to_numpy(), max_length)
                if truncated:
                    log.warning("extract: %d of %d %s texts reach model.max_length = %d tokens "
                                "and are cut there (the model sees only their start); raise "
                                "model.max_length (train it again) to see more", truncated,
                                total, split, max_length)
            store.mark_done(f"extract.{split}", {
                "rows": total, "rows_this_run": written[split], "seconds": round(seconds, 2),
                "max_length": max_length, "n_truncated": truncated})
        log.info("extract: %d rows in %.1f s (%.0f texts/s%s)", sum(written.values()), seconds,
                 sum(written.values()) / seconds,
                 ", actor start included" if plan is not None else ", no Ray")
    return {split: store.stage_info(f"extract.{split}")["info"] for split in splits}
