"""``relabeler attribute``: word attributions for the review queue, as a Ray Data job.

The queue is the top ``[attribute] top`` rows (by rank; 0 = all) of ``scores/suspects.parquet``
and of ``scores/acquire.parquet``, and every task of the round's plan below them. Targets per
queued sample:

* a suspect gets two rows: its suggested label (``target_role`` "suggested") and its given
  label ("given"), so an annotator sees the words behind either reading;
* an acquired pool sample has no given label: one row, for the class the model predicts
  (``features/pool``'s ``pred``; ``target_role`` "predicted").

An :class:`AttributionWorker` actor (one per GPU, or one CPU actor that uses the CPUs it was
given) loads the model once and runs :class:`relabeler.attribution.TokenAttributor` over batches
of rows sorted by text length inside each shard.

Output: ``attributions/part-NNNNN.parquet``, one file per shard of ``shard_size`` rows in queue
order (the unit of resumption: a killed job recomputes only the missing parts), and, once every
part exists, their concatenation written atomically as ``attributions.parquet``, the artifact
readers use. ``attributions/_plan.json`` records what the parts were computed for (rows, method,
steps, length); parts from different settings are discarded, not mixed.

Columns of ``attributions.parquet``, one row per (sample, target), suspects by rank first, then
acquired samples by rank:

========== =========================================================================
id          sample id (string)
source      ``suspects`` or ``acquire``
rank        the sample's rank in its source table (int32)
target_role ``suggested``, ``given`` (suspects) or ``predicted`` (acquire)
target_label the class attributed (string)
method      ``ig`` or ``grad_x_input``
n_steps     IG's integration points (1 for grad_x_input) (int32)
spans       list<struct<start: int32, end: int32, text: string, score: float32>>: every word
            the model saw, in text order; ``text[start:end] == span.text`` in the original
            text; score > 0 pushes toward ``target_label`` (the log-probability's share)
delta       IG's convergence delta (float32; NaN for grad_x_input, 0 for empty text)
truncated   the model saw only a prefix of the text (bool)
n_tokens    tokens the model saw, special tokens included (int32)
window_start, window_end  the characters of the text attributed (int32): the whole text, or
            under ``[model] long_text`` windows / evidence the window the evidence is in
            (:func:`relabeler.long_text.attribution_choice`); spans lie inside it
========== =========================================================================
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import torch

from relabeler import artifacts
from relabeler._version import __version__
from relabeler.attribution import METHODS, Attribution, TokenAttributor
from relabeler.config import AttributeConfig, RunConfig
from relabeler.errors import StageError
from relabeler.jobs._parts import PartAssembler
from relabeler.jobs._ray import PoolPlan, check_driver_version
from relabeler.jobs.stage_settings import note_done, setting_changes
from relabeler.long_text import attribution_choice, long_text_of, text_windows
from relabeler.model import (
    autocast,
    encode,
    load_classifier,
    load_tokenizer,
    pick_device,
    trained_max_length,
)
from relabeler.queue_plan import plan_round, plan_settings, read_manifest, write_plan
from relabeler.stage_chain import run_first
from relabeler.store import RunStore

log = logging.getLogger(__name__)

STAGE = "attribute"
FOLDER = artifacts.ATTRIBUTION_PARTS.path
ARTIFACT = artifacts.ATTRIBUTIONS.path
PLAN = artifacts.ATTRIBUTION_PARTS_KEY.path

SPAN_TYPE = pa.list_(pa.struct([("start", pa.int32()), ("end", pa.int32()),
                                ("text", pa.string()), ("score", pa.float32())]))
SCHEMA = pa.schema([
    ("id", pa.string()), ("source", pa.string()), ("rank", pa.int32()),
    ("target_role", pa.string()), ("target_label", pa.string()), ("method", pa.string()),
    ("n_steps", pa.int32()), ("spans", SPAN_TYPE), ("delta", pa.float32()),
    ("truncated", pa.bool_()), ("n_tokens", pa.int32()),
    ("window_start", pa.int32()), ("window_end", pa.int32()),
])


def spans_array(results: Sequence[Attribution]) -> pa.Array:
    """The ``spans`` column of ``results``."""
    return pa.array([[{"start": s.start, "end": s.end, "text": s.text, "score": s.score}
                      for s in r.spans] for r in results], type=SPAN_TYPE)


class AttributionWorker:
    """Callable class for ``Dataset.map_batches``: (text, target) rows in, spans out.

    Parameters
    ----------
    model_dir:
        A local model folder, or an artifact of ``store_uri`` (downloaded once per actor).
    max_length, method, n_steps, internal_batch_size:
        As in :class:`~relabeler.attribution.TokenAttributor`; ``internal_batch_size`` 0 =
        chosen from memory.
    num_threads:
        ``torch.set_num_threads`` on CPU (Ray starts actors with ``OMP_NUM_THREADS=1``).
    device:
        ``auto``: CUDA when present (bf16 autocast, SDPA attention).
    driver_version:
        The driver's relabeler version, checked against this node's
        (:func:`~relabeler.jobs._ray.check_driver_version`); None: not checked.

    Unlike the other stages' actors, ``__call__`` does not run under ``torch.inference_mode``:
    attributions need gradients (with respect to the embeddings only; the weights are frozen).
    It returns a ``pyarrow.Table`` because ``spans`` is a nested column.
    """

    def __init__(self, model_dir: str, *, max_length: int = 128, method: str = "ig",
                 n_steps: int = 20, internal_batch_size: int = 0, num_threads: int = 0,
                 device: str = "auto", store_uri: str | None = None,
                 driver_version: str | None = None):
        check_driver_version(driver_version)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if store_uri is not None:  # the node's cached copy, shared by its actors
            model_dir = str(RunStore(store_uri).get_dir(model_dir))
        self.device = pick_device(device)
        if self.device.type == "cpu" and num_threads:
            torch.set_num_threads(num_threads)
        model = load_classifier(model_dir).to(self.device)
        self.classes = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
        self.tokenizer = load_tokenizer(model_dir)
        self.attributor = TokenAttributor(model, self.tokenizer, max_length=max_length,
                                          internal_batch_size=internal_batch_size or None)
        self.model, self.max_length = model, max_length
        self.long_text = long_text_of(model)
        self.method = method
        self.n_steps = n_steps

    def windows(self, texts: list[str], targets: list[int]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) start and end characters of the window each row's evidence is read from, and
        whether the model left windows of the text unread (``max_windows``)."""
        windows = text_windows(self.tokenizer, texts, max_length=self.max_length,
                               settings=self.long_text)
        cut = windows.cut if windows.cut is not None else np.zeros(len(texts), dtype=bool)
        if len(windows.sample) == len(texts):
            return windows.start, windows.end, cut
        window_texts = windows.texts(texts)
        logits = np.empty((len(window_texts), len(self.classes)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(window_texts), 64):
                enc = encode(self.tokenizer, window_texts[start:start + 64], self.max_length,
                             self.device)
                with autocast(self.device):
                    logits[start:start + 64] = self.model(**enc).logits.float().cpu().numpy()
        chosen = attribution_choice(logits, windows, np.asarray(targets), self.long_text.mode)
        return windows.start[chosen], windows.end[chosen], cut

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        """batch: ``text`` (N,) str, ``target_index`` (N,) int64; other columns pass through.
        Adds target_label, method, n_steps, spans, delta, truncated, n_tokens."""
        texts = [str(t) for t in batch["text"]]
        targets = np.asarray(batch["target_index"], dtype=np.int64).tolist()
        starts, ends, cut = self.windows(texts, targets)
        results = [shift_spans(r, int(a)) for r, a in zip(self.attributor.attribute(
            [t[a:b] for t, a, b in zip(texts, starts, ends, strict=True)], targets,
            n_steps=self.n_steps, method=self.method), starts, strict=True)]
        columns = {k: pa.array(v.tolist() if v.dtype.kind in "OUS" else v)
                   for k, v in ((k, np.asarray(v)) for k, v in batch.items())
                   if k not in ("text", "target_index")}
        columns.update(
            target_label=pa.array([self.classes[t] for t in targets], pa.string()),
            method=pa.array([self.method] * len(results), pa.string()),
            n_steps=pa.array([r.n_steps for r in results], pa.int32()),
            spans=spans_array(results),
            delta=pa.array([r.delta for r in results], pa.float32()),
            truncated=pa.array([r.truncated or bool(c) for r, c in zip(results, cut,
                                                                        strict=True)],
                               pa.bool_()),
            n_tokens=pa.array([len(r.tokens) for r in results], pa.int32()),
            window_start=pa.array(starts, pa.int32()),
            window_end=pa.array(ends, pa.int32()),
        )
        return pa.table(columns)


def shift_spans(result: Attribution, offset: int) -> Attribution:
    """``result`` of a window that starts at character ``offset`` of its text, with spans at
    offsets of the whole text."""
    if not offset:
        return result
    return replace(result, spans=[replace(s, start=s.start + offset, end=s.end + offset)
                                  for s in result.spans],
                   offsets=[(a + offset, b + offset) if b else (a, b)
                            for a, b in result.offsets])


def queue_rows(store: RunStore, top: int, plan: pd.DataFrame | None = None, *,
               explain: bool = True) -> dict[str, np.ndarray]:
    """The (sample, target) rows to attribute, in queue order: suspects by rank (suggested,
    then given label), then acquired pool samples by rank (predicted class).

    ``plan``: the round's plan (``queue/plan.parquet``); every task in it is attributed, even
    below ``top`` (a random control must look like the flagged tasks around it). ``explain``:
    log how many planned tasks lie below ``top`` (off where ``top`` is not the user's).

    Returns columns id, text, source, target_role (object arrays), rank and target_index
    (int64 arrays)."""
    classes = store.read_json(artifacts.LABELS.path)
    index = {c: i for i, c in enumerate(classes)}
    frames = []
    suspects = store.read_table(
        artifacts.SUSPECTS.path, columns=["id", "rank", "given_label", "suggested_label"]
    ).to_pandas().sort_values("rank", kind="stable")
    planned = set() if plan is None else set(plan["id"])
    if top:
        beyond = int((suspects["id"].isin(planned) & (suspects["rank"] > top)).sum())
        if beyond and explain:
            log.info("attribute: --top %d, and %d more planned tasks of queue/plan.parquet "
                     "(studio.budget, its random controls) below it: every task pushed needs "
                     "its evidence", top, beyond)
        suspects = suspects[(suspects["rank"] <= top) | suspects["id"].isin(planned)]
    texts = _texts(store, artifacts.TRAIN.path, suspects["id"])
    for role_no, (role, column) in enumerate((("suggested", "suggested_label"),
                                              ("given", "given_label"))):
        frames.append(pd.DataFrame({
            "id": suspects["id"].to_numpy(dtype=object), "text": texts, "source": "suspects",
            "rank": suspects["rank"].to_numpy(dtype=np.int64), "target_role": role,
            "target_label": suspects[column].to_numpy(dtype=object),
            "_order": 2 * np.arange(len(suspects)) + role_no}))
    acquire = store.read_table(artifacts.ACQUIRE.path, columns=["id", "rank"]).to_pandas()
    acquire = acquire.sort_values("rank", kind="stable")
    acquire = acquire[(acquire["rank"] <= top) | acquire["id"].isin(planned)] if top else acquire
    if len(acquire):
        pred = store.read_table(artifacts.FEATURES(split="pool"),
                                columns=["id", "pred"]).to_pandas()
        pred = pred.drop_duplicates("id").set_index("id")["pred"].reindex(acquire["id"])
        if pred.isna().any():
            raise StageError(f"features/pool lacks acquired ids {list(pred.index[pred.isna()][:5])}"
                             f"; rerun `relabeler extract --run {store.uri} --force`")
        frames.append(pd.DataFrame({
            "id": acquire["id"].to_numpy(dtype=object),
            "text": _texts(store, artifacts.POOL.path, acquire["id"]), "source": "acquire",
            "rank": acquire["rank"].to_numpy(dtype=np.int64), "target_role": "predicted",
            "target_label": pred.to_numpy(dtype=object),
            "_order": 2 * len(suspects) + np.arange(len(acquire))}))
    queue = pd.concat(frames, ignore_index=True).sort_values("_order", kind="stable")
    unknown = sorted({str(x) for x in queue["target_label"] if x not in index})
    if unknown:
        raise StageError(f"attribute: labels {unknown} are not classes of the model "
                         f"({classes}); rerun score after training")
    return {
        "id": queue["id"].to_numpy(dtype=object),
        "text": queue["text"].to_numpy(dtype=object),
        "source": queue["source"].to_numpy(dtype=object),
        "rank": queue["rank"].to_numpy(dtype=np.int64),
        "target_role": queue["target_role"].to_numpy(dtype=object),
        "target_index": np.array([index[x] for x in queue["target_label"]], dtype=np.int64),
    }


def _texts(store: RunStore, artifact: str, ids) -> np.ndarray:
    frame = store.read_table(artifact, columns=["id", "text"]).to_pandas().set_index("id")
    texts = frame["text"].reindex(list(ids))
    if texts.isna().any():
        raise StageError(f"{artifact} lacks the texts of queued ids "
                         f"{list(texts.index[texts.isna()][:5])}")
    return texts.to_numpy(dtype=object)


def plan_queue(store: RunStore, studio) -> pd.DataFrame:
    """The round's plan (:func:`relabeler.queue_plan.plan_round`) with ``[studio]``'s budget,
    control share and seed and what the manifest says was sent; written to ``queue/``."""
    ranking = store.read_table(artifacts.SUSPECTS.path, columns=["id", "rank"]).to_pandas()
    train_ids = store.read_table(artifacts.TRAIN.path, columns=["id"]).column("id").to_pylist()
    picks = store.read_table(artifacts.ACQUIRE.path, columns=["id", "rank"]).to_pandas()
    settings = plan_settings(studio.budget, studio.control_share, studio.seed)
    plan = plan_round(ranking, sorted(train_ids), read_manifest(store), pool_picks=picks,
                      **settings)
    write_plan(store, plan, settings)
    return plan


def _effective_steps(settings: AttributeConfig) -> int:
    return settings.n_steps if settings.method == "ig" else 1


def _plan_key(store: RunStore, rows: dict[str, np.ndarray], settings: AttributeConfig,
              max_length: int) -> dict:
    """What the parts are computed from: the rows (ids, texts, targets), the model's files
    and the settings."""
    digest = hashlib.sha256()
    for sample_id, text, target in zip(rows["id"], rows["text"], rows["target_index"],
                                       strict=True):
        digest.update(f"{sample_id}\x00{text}\x00{target}\n".encode())
    return {"rows": len(rows["id"]), "queue_sha256": digest.hexdigest(),
            "model": store.folder_version(artifacts.MODEL.path),
            "method": settings.method, "n_steps": _effective_steps(settings),
            "max_length": max_length, "shard_size": settings.shard_size,
            # parts written before a column was added are recomputed, not mixed in
            "columns": SCHEMA.names}


def attribute_queue(store: RunStore, rows: dict[str, np.ndarray], *, max_length: int = 128,
                    method: str = "ig", n_steps: int = 20, internal_batch_size: int = 0,
                    batch_size: int = 64, shard_size: int = 256, num_actors: int = 0,
                    gpus_per_actor: float = 1.0, num_threads: int = 0,
                    plan: PoolPlan | None = None, progress: bool = True) -> int:
    """Attribute ``rows`` (see :func:`queue_rows`) in one Ray Data pass, writing the parts of
    ``attributions/`` that are missing. Ray must be connected. Returns the rows written now.

    ``plan`` sets the actors, their requests and fault tolerance; without it they come from
    ``num_actors``, ``gpus_per_actor`` and ``num_threads``."""
    import ray
    from ray.data import DataContext
    from tqdm.auto import tqdm

    from relabeler.jobs._ray import plan_pool

    n = len(rows["id"])
    n_shards = max(1, -(-n // shard_size))
    done = store.finished_shards(FOLDER)
    pending = [i for i in range(n_shards) if i not in done]
    if n == 0:
        if 0 in pending:
            store.write_shard(FOLDER, 0, SCHEMA.empty_table())
        return 0
    shard = np.arange(n) // shard_size
    keep = np.isin(shard, pending)
    if not keep.any():
        return 0
    table = {k: v[keep] for k, v in rows.items()}
    table["_pos"] = np.arange(n)[keep]
    table["_shard"] = shard[keep]
    # inside each shard, longest first: consecutive rows form batches of similar length
    lengths = np.fromiter(map(len, table["text"]), np.int64, len(table["text"]))
    order = np.lexsort((-lengths, table["_shard"]))
    table = pa.table({k: (list(v[order]) if v.dtype == object else v[order])
                      for k, v in table.items()})
    expected = {int(s): int(np.sum(shard[keep] == s)) for s in pending}

    plan = plan or plan_pool(num_actors=num_actors, gpus_per_actor=gpus_per_actor,
                             num_threads=num_threads)
    log.info("attribute: %d rows (%s, %d steps) in %d part(s), %d actor(s) (%s GPU, %s CPU "
             "each)", len(table), method, n_steps, len(expected), plan.num_actors,
             plan.num_gpus, plan.num_cpus)
    DataContext.get_current().execution_options.preserve_order = True
    block_rows = batch_size * max(1, min(16, -(-len(table) // (batch_size * 8))))
    ds = ray.data.from_arrow([table.slice(i, block_rows)
                              for i in range(0, len(table), block_rows)])
    model_dir = store.get_dir(artifacts.MODEL.path)
    ds = plan.map_batches(
        ds, AttributionWorker,
        fn_constructor_args=(str(model_dir) if store.is_local else artifacts.MODEL.path,),
        fn_constructor_kwargs={"max_length": max_length, "method": method, "n_steps": n_steps,
                               "internal_batch_size": internal_batch_size,
                               "num_threads": plan.torch_threads,
                               "store_uri": None if store.is_local else store.uri,
                               "driver_version": __version__},
        batch_size=batch_size,
        batch_format="numpy",
    )
    written = 0

    def write(key: tuple[int, ...], pieces: list[pa.Table]) -> int:
        nonlocal written
        rows = _write_part(store, key[0], pieces)
        written += rows
        return rows

    assembler = PartAssembler("attribute", {(s,): n for s, n in expected.items()}, shard_size,
                              write)
    bar = tqdm(total=len(table), desc="attribute", unit="row", disable=not progress)
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            bar.update(assembler.add(batch.column("_shard").to_numpy(),
                                     batch.column("_pos").to_numpy(), batch,
                                     lambda table, rows: table.take(rows)))
    except Exception as err:
        raise StageError(assembler.failure_message(err, plan)) from err
    finally:
        bar.close()
    missing = [i for i in pending if i not in store.finished_shards(FOLDER)]
    if missing:
        raise StageError(f"attribute: parts {missing} of {FOLDER}/ did not complete; run "
                         "again to resume from the finished parts")
    return written


def _write_part(store: RunStore, shard: int, parts: list[pa.Table]) -> int:
    merged = pa.concat_tables(parts, promote_options="default")
    merged = merged.take(pc.sort_indices(merged, [("_pos", "ascending")]))
    table = pa.table({f.name: merged.column(f.name).cast(f.type) for f in SCHEMA},
                     schema=SCHEMA)
    store.write_shard(FOLDER, shard, table)
    log.debug("%s: part %d written (%d rows)", FOLDER, shard, table.num_rows)
    return table.num_rows


def _attribute_rows(store: RunStore, config: RunConfig, rows: dict[str, np.ndarray], *,
                    progress: bool) -> tuple[pa.Table, int]:
    """Attribute ``rows`` into ``attributions/`` (resuming from finished parts of the same
    rows and settings) and write ``attributions.parquet``; returns it and the rows computed
    now."""
    from relabeler.jobs._ray import connect, plan_from_config

    settings = config.attribute
    max_length = trained_max_length(store.read_json(f"{artifacts.MODEL.path}/config.json"),
                                    config.model, "attribute")
    key = _plan_key(store, rows, settings, max_length)
    if store.keep_shards_of(FOLDER, PLAN, key):
        log.warning("attribute: the queue, the model or the settings changed since the "
                    "unfinished run (or its parts have no record of them); starting over")
    written = 0
    n_shards = max(1, -(-len(rows["id"]) // settings.shard_size))
    if set(range(n_shards)) - store.finished_shards(FOLDER):
        connect(config.ray.address, num_cpus=config.ray.num_cpus, temp_dir=config.ray.temp_dir)
        pool = plan_from_config(config.ray, num_actors=settings.num_actors,
                                num_threads=settings.num_threads)
        written = attribute_queue(
            store, rows, max_length=max_length, method=settings.method,
            n_steps=settings.n_steps, internal_batch_size=settings.internal_batch_size,
            batch_size=settings.batch_size, shard_size=settings.shard_size,
            plan=pool, progress=progress)
    table = store.read_table(FOLDER)
    store.write_table(ARTIFACT, table)
    return table, written


def _check_scored(store: RunStore) -> None:
    """StageError when the score stage is unfinished or stale (the reason named)."""
    if not store.stage_done("score"):
        raise StageError(run_first(store, "score", "attribute needs the scored queue"))


def attribute_plan(store: RunStore, config: RunConfig, plan: pd.DataFrame, *,
                   progress: bool = True) -> dict:
    """Attributions for exactly the training tasks of ``plan`` (a round of ``relabeler next``:
    its flagged tasks and its controls alike, and nothing else, so a round computes only what
    it sends). Resumes from finished parts; returns counts and seconds."""
    _check_scored(store)
    started = time.perf_counter()
    wanted = set(plan["id"])
    rows = queue_rows(store, 1, plan, explain=False)  # the plan's rows; no --top to explain
    keep = np.array([i in wanted and s == "suspects"
                     for i, s in zip(rows["id"], rows["source"], strict=True)], dtype=bool)
    table, written = _attribute_rows(store, config, {k: v[keep] for k, v in rows.items()},
                                     progress=progress)
    info = {"rows": table.num_rows, "rows_this_run": written, "tasks": len(wanted),
            "method": config.attribute.method, "seconds": round(time.perf_counter() - started, 2)}
    store.mark_done(STAGE, info)
    return info


def run_attribute(store: RunStore, config: RunConfig, *, force: bool = False,
                  progress: bool = True) -> dict:
    """The attribute stage: ``attributions.parquet`` for the queue's top ``[attribute] top``.

    Skipped when done unless ``force`` (a warning names the settings asked for now that it
    was not made with: ``[attribute]`` top, method, n_steps and the ``[studio]`` budget,
    control_share and seed of its plan); resumes from the parts a killed run finished. A redo
    keeps the finished ``attributions.parquet`` until the new one is written whole.
    Reads ``config.attribute`` (top, method, n_steps, internal_batch_size, batch_size,
    shard_size, num_actors, num_threads), ``config.model``
    (max_length) and ``config.ray``. Returns the stage info.
    """
    _check_scored(store)
    settings = config.attribute
    planned = plan_settings(config.studio.budget, config.studio.control_share,
                            config.studio.seed)
    if store.redo(STAGE, force):
        # the finished attributions.parquet stays until the new one replaces it (push refuses
        # meanwhile: the record of the parts says a run started); the parts go, so that
        # nothing is resumed from them
        store.reset_stage(STAGE, [])
        for index in sorted(store.finished_shards(FOLDER)):
            store.remove(store.shard_name(FOLDER, index))
    elif store.stage_done(STAGE):
        info = (store.stage_info(STAGE) or {}).get("info", {})
        # the marker records what decides the attributions beside its counts, and the
        # [studio] settings of the plan it attributed
        now = {"method": settings.method, "n_steps": _effective_steps(settings),
               "top": settings.top}
        note_done(log, STAGE, store.uri, setting_changes(
            {"attribute": info, "studio": info.get("plan", {})},
            {"attribute": now, "studio": planned}))
        return info
    if not store.exists(PLAN):  # a run started: push waits for it to finish
        store.write_json(PLAN, {})
    started = time.perf_counter()
    plan = plan_queue(store, config.studio)
    table, written = _attribute_rows(store, config, queue_rows(store, settings.top, plan),
                                     progress=progress)
    seconds = time.perf_counter() - started
    sources = table.column("source").to_pylist()
    deltas = np.abs(table.column("delta").to_numpy(zero_copy_only=False))
    info = {"rows": table.num_rows, "rows_this_run": written,
            "suspects": len(set(i for i, s in zip(table.column("id").to_pylist(), sources,
                                                  strict=True) if s == "suspects")),
            "acquire": sources.count("acquire"), "method": settings.method,
            "n_steps": _effective_steps(settings), "top": settings.top, "plan": planned,
            "truncated": int(pc.sum(table.column("truncated")).as_py() or 0),
            "max_abs_delta": float(np.nanmax(deltas)) if np.isfinite(deltas).any() else None,
            "seconds": round(seconds, 2)}
    store.mark_done(STAGE, info)
    log.info("attribute: %d rows (%d computed now) in %.1f s", table.num_rows, written, seconds)
    return info
