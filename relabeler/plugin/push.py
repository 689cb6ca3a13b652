"""``relabeler push``: the suspect queue into Label Studio, highest priority first.

* One review project (found by title, else created with Sequential sampling, which serves tasks
  in task-id order: import order is queue order) and, when the run proposes pool samples to
  label, a second "(acquisition)" project.
* The project holds the top of the queue plus a random-control slice: ``control_share`` of the
  budget drawn uniformly from all training samples, placed at random positions of the queue and
  built exactly like the others, so annotators cannot tell them apart; only the manifest knows.
  The report measures the base error rate on them.
* Idempotent: ``studio/manifest.parquet`` is keyed by sample id. Rows are written as pending
  before their batch is sent and get their task id after; a push that died midway is reconciled
  against the server's tasks (by the ``sample_id`` in each task's data) on the next run, so
  pushing again adds only new samples and never duplicates one.
* A re-ranked queue (a newer ``scores/suspects.parquet``) rewrites the ``priority`` of tasks
  already sent; the Data Manager tab "Priority queue" is sorted by it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from relabeler.plugin.client import StudioClient, StudioUnavailableError, batch_tasks
from relabeler.errors import PluginError
from relabeler.plugin.evidence import RunEvidence
from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
from relabeler.plugin.tasks import (
    MODEL_VERSION,
    PRIORITY_FIELD,
    SAMPLE_ID_FIELD,
    SampleInput,
    build_task,
)
from relabeler.store import RunStore

log = logging.getLogger(__name__)

MANIFEST = "studio/manifest.parquet"
FLAGGED, CONTROL, ACQUIRED = "flagged", "random_control", "acquired"
SOURCES = (FLAGGED, CONTROL, ACQUIRED)
PRIORITY_VIEW = "Priority queue"
TITLE_LIMIT = 50  # Label Studio refuses longer project titles
MANIFEST_SCHEMA = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("task_id", pa.int64()),                       # null while pending
    pa.field("project_id", pa.int64(), nullable=False),
    pa.field("rank", pa.int64()),                          # suspect (or acquire) rank
    pa.field("priority", pa.int64(), nullable=False),      # position in the labeling queue
    pa.field("source", pa.string(), nullable=False),
    pa.field("pushed_at", pa.timestamp("us", tz="UTC")),   # null while pending
])


class PushError(PluginError):
    """Push cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class PushResult:
    project_id: int
    acquire_project_id: int | None
    new_flagged: int
    new_controls: int
    new_acquired: int
    reprioritised: int
    total_tasks: int
    has_evidence: bool
    seconds: float


# ---------------------------------------------------------------------------------------------
# manifest


def empty_manifest() -> pd.DataFrame:
    return MANIFEST_SCHEMA.empty_table().to_pandas()


def read_manifest(store: RunStore) -> pd.DataFrame:
    if not store.exists(MANIFEST):
        return empty_manifest()
    frame = store.read_table(MANIFEST).to_pandas()
    for column in ("task_id", "rank"):
        frame[column] = frame[column].astype("Int64")
    return frame


def write_manifest(store: RunStore, manifest: pd.DataFrame) -> None:
    frame = manifest.sort_values(["project_id", "priority", "id"], kind="stable")
    table = pa.Table.from_pandas(frame[MANIFEST_SCHEMA.names], schema=MANIFEST_SCHEMA,
                                 preserve_index=False)
    store.write_table(MANIFEST, table)


# ---------------------------------------------------------------------------------------------
# planning: pure functions


def _unit(seed: int, sample_id: str) -> float:
    """A stable uniform number in [0, 1) per (seed, id): a control's place in the queue."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_budget(budget: int, control_share: float) -> tuple[int, int]:
    """(flagged, controls) for a budget; controls = round(budget * share), at least 1 when the
    share is positive and the budget allows."""
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if not 0.0 <= control_share < 1.0:
        raise ValueError(f"control_share must be in [0, 1), got {control_share}")
    controls = int(round(budget * control_share))
    if control_share > 0 and controls == 0 and budget >= 2:
        controls = 1
    return budget - controls, controls


def plan_training_queue(ranked_ids: Sequence[str], train_ids: Sequence[str],
                        pushed: pd.DataFrame, *, budget: int, control_share: float,
                        seed: int = 0) -> tuple[list[str], list[str]]:
    """New flagged and new control sample ids to push.

    ranked_ids: the suspect queue, rank 1 first. train_ids: every training id (controls are
    drawn from here, uniformly, excluding the flagged target and anything pushed).
    pushed: manifest rows already in the project (id, source).

    The flagged target is the top ``budget - controls`` of the current queue; samples of it not
    yet pushed are new. Controls are topped up to their share of the budget.
    """
    n_flagged, n_controls = split_budget(budget, control_share)
    already = set(pushed["id"])
    target = list(ranked_ids[:n_flagged])
    new_flagged = [i for i in target if i not in already]
    have_controls = int((pushed["source"] == CONTROL).sum())
    need = max(0, n_controls - have_controls)
    new_controls: list[str] = []
    if need:
        excluded = already | set(target)
        order = np.random.default_rng(seed).permutation(len(train_ids))
        pool = sorted(train_ids)
        for k in order:
            candidate = pool[int(k)]
            if candidate not in excluded:
                new_controls.append(candidate)
                if len(new_controls) == need:
                    break
    return new_flagged, new_controls


def queue_priorities(flagged_ranked: Sequence[str], controls: Sequence[str], *, seed: int = 0
                     ) -> dict[str, int]:
    """Queue positions (1 = first) for flagged ids in rank order with controls spread among
    them at stable, uniformly random places."""
    n = max(len(flagged_ranked), 1)
    keys = [(float(i), 0, x) for i, x in enumerate(flagged_ranked)]
    keys += [(_unit(seed, x) * n, 1, x) for x in controls]
    return {x: position for position, (_, _, x) in enumerate(sorted(keys), start=1)}


# ---------------------------------------------------------------------------------------------
# the push


def _now() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(UTC))


def ensure_project(client: StudioClient, title: str, spec: LabelingSpec, *, overlap: int,
                   known_id: int | None) -> int:
    """The project: the manifest's (it must still exist), else by title, else a new one."""
    if known_id is not None:
        project = client.get_project(known_id)  # StudioNotFoundError if it was deleted
    else:
        project = client.find_project(title) or client.create_project(
            title, spec.xml, overlap=overlap, model_version=MODEL_VERSION,
            description="Suspect labels from relabeler, highest priority first.")
    LabelingSpec.from_config(project.label_config).check_classes(spec.classes)
    if project.sampling != "Sequential sampling" or project.model_version != MODEL_VERSION:
        client.update_project(project.id, sampling="Sequential sampling",
                              model_version=MODEL_VERSION)
    return project.id


def reconcile(client: StudioClient, manifest: pd.DataFrame, project_id: int) -> pd.DataFrame:
    """Fill task ids of pending rows from the server and warn about foreign tasks. Only asks the
    server when the manifest and the project's task count disagree."""
    rows = manifest["project_id"] == project_id
    pending = rows & manifest["task_id"].isna()
    server_count = client.get_project(project_id).task_count
    if not pending.any() and server_count == int(rows.sum()):
        return manifest
    known = manifest.loc[rows & manifest["task_id"].notna(), "task_id"]
    on_server = client.task_sample_ids(project_id, SAMPLE_ID_FIELD)
    by_sample = {}
    for task_id, sample_id in sorted(on_server.items()):
        by_sample.setdefault(sample_id, task_id)
    manifest = manifest.copy()
    filled = 0
    for idx in manifest.index[pending]:
        task_id = by_sample.get(manifest.at[idx, "id"])
        if task_id is not None:
            manifest.at[idx, "task_id"] = task_id
            manifest.at[idx, "pushed_at"] = _now()
            filled += 1
    mine = set(manifest.loc[rows, "id"])
    foreign = sorted(set(by_sample) - mine)
    if filled:
        log.warning("push: %d tasks of an interrupted push were found on the server and are "
                    "not sent again", filled)
    if foreign:
        log.warning("push: project %d holds %d tasks relabeler did not record (e.g. %s); they "
                    "are left alone", project_id, len(foreign), foreign[:3])
    missing = set(known) - set(on_server)
    if missing:
        log.warning("push: %d tasks in the manifest are gone from project %d", len(missing),
                    project_id)
    return manifest


def _import_batches(client: StudioClient, store: RunStore, manifest: pd.DataFrame,
                    project_id: int, tasks: list[dict[str, Any]], *, batch_size: int,
                    progress: bool) -> pd.DataFrame:
    """Send tasks (already in priority order) batch by batch, recording task ids after each."""
    index = {sid: i for i, sid in zip(manifest.index, manifest["id"], strict=True)
             if manifest.at[i, "project_id"] == project_id}
    batches = list(batch_tasks(tasks, batch_size=batch_size))
    bar = tqdm(total=len(tasks), desc=f"push to project {project_id}", unit="task",
               disable=not progress)
    for batch in batches:
        ids = [t["data"][SAMPLE_ID_FIELD] for t in batch]
        task_ids = _import_once(client, project_id, batch, ids)
        now = _now()
        for sid, task_id in zip(ids, task_ids, strict=True):
            manifest.at[index[sid], "task_id"] = task_id
            manifest.at[index[sid], "pushed_at"] = now
        write_manifest(store, manifest)
        bar.update(len(batch))
    bar.close()
    return manifest


def _import_once(client: StudioClient, project_id: int, batch: list[dict[str, Any]],
                 ids: list[str], attempts: int = 3) -> list[int]:
    """Import a batch; after a failure that may have reached the server, find which of its
    tasks arrived (by sample id) and send only the rest."""
    found: dict[str, int] = {}
    remaining = list(zip(ids, batch, strict=True))
    for attempt in range(attempts):
        try:
            task_ids = client.import_tasks(project_id, [t for _, t in remaining])
            found.update({sid: tid for (sid, _), tid in zip(remaining, task_ids, strict=True)})
            return [found[s] for s in ids]
        except StudioUnavailableError as exc:
            if not exc.maybe_applied or attempt == attempts - 1:
                raise
            log.warning("push: %s; checking which tasks arrived", exc)
            time.sleep(2.0 * (attempt + 1))
            on_server = client.task_sample_ids(project_id, SAMPLE_ID_FIELD)
            wanted = {s for s, _ in remaining}
            arrived = {}
            for tid, sid in sorted(on_server.items()):
                if sid in wanted:
                    arrived.setdefault(sid, tid)
            found.update(arrived)
            remaining = [(s, t) for s, t in remaining if s not in arrived]
            if not remaining:
                return [found[s] for s in ids]
    raise AssertionError("unreachable")  # pragma: no cover


def _sync_project(client: StudioClient, store: RunStore, manifest: pd.DataFrame,
                  project_id: int, priorities: dict[str, int], new_rows: pd.DataFrame,
                  build: Callable[[Sequence[str]], list[SampleInput]], spec: LabelingSpec, *,
                  top_spans: int, batch_size: int, progress: bool
                  ) -> tuple[pd.DataFrame, int, list[str]]:
    """Record new rows as pending, re-prioritise sent tasks, import the rest in queue order."""
    interface = spec.interface()
    rows = manifest["project_id"] == project_id
    moved = [i for i in manifest.index[rows]
             if priorities.get(manifest.at[i, "id"], manifest.at[i, "priority"])
             != manifest.at[i, "priority"]]
    if len(new_rows):
        manifest = pd.concat([manifest, new_rows], ignore_index=True)
    for i in manifest.index[manifest["project_id"] == project_id]:
        manifest.at[i, "priority"] = priorities.get(manifest.at[i, "id"],
                                                    manifest.at[i, "priority"])
    write_manifest(store, manifest)  # pending rows first: a crash after import is reconciled

    sent = [i for i in moved if pd.notna(manifest.at[i, "task_id"])]
    if sent:
        ids = [manifest.at[i, "id"] for i in sent]
        for i, sample in zip(sent, build(ids), strict=True):
            task = build_task(sample, spec, priority=int(manifest.at[i, "priority"]),
                              top_spans=top_spans, interface=interface)
            client.update_task_data(int(manifest.at[i, "task_id"]), task["data"])
        log.info("push: %d tasks already in project %d moved in the queue", len(sent),
                 project_id)

    todo = manifest[(manifest["project_id"] == project_id) & manifest["task_id"].isna()]
    todo = todo.sort_values(["priority", "id"], kind="stable")
    imported = [str(x) for x in todo["id"]]
    if len(todo):
        samples = build(list(todo["id"]))
        tasks = [build_task(s, spec, priority=int(p), top_spans=top_spans, interface=interface)
                 for s, p in zip(samples, todo["priority"], strict=True)]
        manifest = _import_batches(client, store, manifest, project_id, tasks,
                                   batch_size=batch_size, progress=progress)
    return manifest, len(sent), imported


def push(store: RunStore, client: StudioClient, *, project_title: str, budget: int = 200,
         control_share: float = 0.05, batch_size: int = 500, seed: int = 0, top_spans: int = 3,
         examples: int = 3, overlap: int = 1, acquire: bool = True,
         progress: bool = False) -> PushResult:
    """Push the run's queue to Label Studio (see the module docstring)."""
    started = time.perf_counter()
    if not project_title or len(project_title) > TITLE_LIMIT:
        raise ValueError(f"project_title must be 1 to {TITLE_LIMIT} characters (Label Studio's "
                         f"limit), got {project_title!r}")
    evidence = RunEvidence.load(store, examples=examples)
    spec = LabelingSpec.from_config(build_labeling_config(evidence.classes))
    manifest = read_manifest(store)
    unknown = set(manifest["source"]) - set(SOURCES)
    if unknown:
        raise PushError(f"{MANIFEST} has unknown sources {sorted(unknown)}")

    # the review project: top of the queue + random controls
    train_rows = manifest[manifest["source"].isin([FLAGGED, CONTROL])]
    known = sorted(set(train_rows["project_id"]))
    if len(known) > 1:
        raise PushError(f"{MANIFEST} names several review projects {known}")
    project_id = ensure_project(client, project_title, spec, overlap=overlap,
                                known_id=int(known[0]) if known else None)
    manifest = reconcile(client, manifest, project_id)
    pushed = manifest[manifest["project_id"] == project_id]
    ranked = list(evidence.suspects["id"])
    new_flagged, new_controls = plan_training_queue(
        ranked, sorted(evidence.train_text), pushed, budget=budget,
        control_share=control_share, seed=seed)
    rank_of = dict(zip(evidence.suspects["id"], evidence.suspects["rank"], strict=True))
    flagged_all = [*pushed.loc[pushed["source"] == FLAGGED, "id"], *new_flagged]
    controls_all = [*pushed.loc[pushed["source"] == CONTROL, "id"], *new_controls]
    flagged_all.sort(key=lambda x: (rank_of.get(x, np.iinfo(np.int64).max), x))
    priorities = queue_priorities(flagged_all, controls_all, seed=seed)
    new_rows = pd.DataFrame({
        "id": new_flagged + new_controls, "task_id": pd.array([None] * (len(new_flagged) +
                                                                        len(new_controls)),
                                                              dtype="Int64"),
        "project_id": project_id,
        "rank": pd.array([rank_of.get(x) for x in new_flagged + new_controls], dtype="Int64"),
        "priority": [priorities[x] for x in new_flagged + new_controls],
        "source": [FLAGGED] * len(new_flagged) + [CONTROL] * len(new_controls),
        "pushed_at": pd.Series([pd.NaT] * (len(new_flagged) + len(new_controls)),
                               dtype="datetime64[us, UTC]"),
    })
    manifest.loc[manifest["project_id"] == project_id, "rank"] = pd.array(
        [rank_of.get(x) for x in manifest.loc[manifest["project_id"] == project_id, "id"]],
        dtype="Int64")
    manifest, moved, imported = _sync_project(
        client, store, manifest, project_id, priorities, new_rows, evidence.train_samples, spec,
        top_spans=top_spans, batch_size=batch_size, progress=progress)
    source_of = dict(zip(manifest["id"], manifest["source"], strict=True))
    n_flagged = sum(source_of[x] == FLAGGED for x in imported)
    n_controls = len(imported) - n_flagged
    client.ensure_view(project_id, PRIORITY_VIEW, [f"tasks:data.{PRIORITY_FIELD}"])

    # the acquisition project: pool samples near under-covered data
    acquire_project_id = None
    n_acquired = 0
    if acquire and len(evidence.acquire):
        rows = manifest[manifest["source"] == ACQUIRED]
        known = sorted(set(rows["project_id"]))
        acquire_project_id = ensure_project(client, acquisition_title(project_title), spec,
                                            overlap=overlap,
                                            known_id=int(known[0]) if known else None)
        manifest = reconcile(client, manifest, acquire_project_id)
        done = set(manifest.loc[manifest["project_id"] == acquire_project_id, "id"])
        ids = [str(x) for x in evidence.acquire["id"]]
        acq_rank = dict(zip(ids, evidence.acquire["rank"], strict=True))
        new_acquired = [x for x in ids if x not in done]
        priorities = {x: int(acq_rank[x]) for x in ids}
        new_rows = pd.DataFrame({
            "id": new_acquired, "task_id": pd.array([None] * len(new_acquired), dtype="Int64"),
            "project_id": acquire_project_id,
            "rank": pd.array([acq_rank[x] for x in new_acquired], dtype="Int64"),
            "priority": [priorities[x] for x in new_acquired], "source": ACQUIRED,
            "pushed_at": pd.Series([pd.NaT] * len(new_acquired), dtype="datetime64[us, UTC]")})
        manifest, _, imported = _sync_project(
            client, store, manifest, acquire_project_id, priorities, new_rows,
            evidence.pool_samples, spec, top_spans=top_spans, batch_size=batch_size,
            progress=progress)
        n_acquired = len(imported)
        client.ensure_view(acquire_project_id, PRIORITY_VIEW, [f"tasks:data.{PRIORITY_FIELD}"])

    total = int((manifest["project_id"] == project_id).sum())
    result = PushResult(project_id=project_id, acquire_project_id=acquire_project_id,
                        new_flagged=n_flagged, new_controls=n_controls,
                        new_acquired=n_acquired, reprioritised=moved, total_tasks=total,
                        has_evidence=evidence.has_attributions,
                        seconds=round(time.perf_counter() - started, 2))
    log.info("push: %d flagged + %d control tasks new in project %d (%d in all), %d acquired, "
             "in %.1f s%s", result.new_flagged, result.new_controls, project_id, total,
             result.new_acquired, result.seconds,
             "" if result.has_evidence else "; no evidence regions (no attributions.parquet)")
    return result


def acquisition_title(title: str) -> str:
    suffix = " (acquisition)"
    return title[: TITLE_LIMIT - len(suffix)] + suffix


def default_title(store: RunStore) -> str:
    name = store.uri.rstrip("/").rsplit("/", 1)[-1] or "run"
    return f"relabeler: {name}"[:TITLE_LIMIT]


def run_push(store: RunStore, config: Any, *, client: StudioClient | None = None,
             progress: bool = False) -> PushResult:
    """``relabeler push``: settings from ``config.studio``."""
    from relabeler.plugin.connect import client_from_config

    studio = config.studio
    client = client or client_from_config(studio)
    return push(store, client, project_title=studio.project_title or default_title(store),
                budget=studio.budget, control_share=studio.control_share,
                batch_size=studio.batch_size, seed=studio.seed, top_spans=studio.top_spans,
                examples=studio.examples, overlap=studio.overlap, progress=progress)
