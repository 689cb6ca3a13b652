"""``relabeler push``: the suspect queue into Label Studio, highest priority first.

* One review project (found by title, else created with Sequential sampling, which serves tasks
  in task-id order: import order is queue order) and, when the run proposes pool samples to
  label, a second "(acquisition)" project.
* With ``eval_audit_budget`` > 0 and a ranked eval split (``scores/eval_suspects.parquet``), a
  third "(eval audit)" project holds the top of the eval ranking (manifest source
  ``eval_audit``). Its tasks carry no evidence regions, all alike (eval rows are not
  attributed), so the evidence check covers the review and acquisition projects only.
* The project holds the top of the queue plus a random-control slice: ``control_share`` of the
  budget drawn uniformly from the training rows outside the flagged top and never sent
  before, placed at random positions of the queue and
  built exactly like the others, so annotators cannot tell them apart; only the manifest knows.
  The report measures the base error rate on them.
* Idempotent: ``studio/manifest.parquet`` is keyed by sample id. Rows are written as pending
  before their batch is sent and get their task id after; a push that died midway is reconciled
  against the server's tasks (by the ``sample_id`` in each task's data) on the next run, so
  pushing again adds only new samples and never duplicates one.
* With ``counterexamples`` > 0, training samples that break a shortcut of
  ``scores/shortcuts.parquet`` queue behind the pool samples of the acquisition project
  (manifest source ``counterexample``, :mod:`relabeler.plugin.counterexamples`).
* A re-ranked queue (a newer ``scores/suspects.parquet``) rewrites the ``priority`` of tasks
  already sent; the Data Manager tab "Priority queue" is sorted by it. Tasks sent before the
  run had attributions get their evidence on the first push after ``relabeler attribute``.
* Nothing is sent (and no project made) from a stale queue: a score or attribute stage made
  before ``train`` or ``data`` ran again, or an attribute run that did not finish
  (:func:`check_queue_current`).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from relabeler.plugin.client import (
    StudioClient,
    StudioNotFoundError,
    StudioUnavailableError,
)
from relabeler.plugin.evidence import RunEvidence
from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
from relabeler.plugin.priorities import minimal_priorities
from relabeler.plugin.projects import (
    GONE_ACQUISITION,
    GONE_EVAL_AUDIT,
    MANIFEST,
    TITLE_LIMIT,
    acquisition_title,
    default_title,
    ensure_priority_view,
    ensure_project,
    eval_audit_title,
    project_spec,
    reconcile,
    utc_now,
)
from relabeler.plugin.push_checks import (
    PushError,
    check_evidence,
    check_queue_current,
)
from relabeler.plugin.tasks import (
    NO_ATTRIBUTIONS_NOTE,
    SAMPLE_ID_FIELD,
    SampleInput,
    batch_tasks,
    build_task,
    same_prediction,
)
from relabeler.queue_plan import (
    ACQUIRED,
    CONTROL,
    COUNTEREXAMPLE,
    EVAL_AUDIT,
    FLAGGED,
    SOURCES,
    behind_the_live_order,
    holds_manifest,
    plan_round,
    plan_settings,
    read_manifest,
    reranked_since_scoring,
    write_manifest,
    write_plan,
)
from relabeler.store import RunStore

log = logging.getLogger(__name__)



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
    eval_project_id: int | None = None
    new_eval: int = 0
    new_counterexamples: int = 0


# ---------------------------------------------------------------------------------------------
# the push


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
        now = utc_now()
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


def update_priorities(client: StudioClient, manifest: pd.DataFrame, rows: Sequence[int],
                      build: Callable[[Sequence[str]], list[SampleInput]], spec: LabelingSpec,
                      *, top_spans: int, done: list[int] | None = None,
                      gone: list[int] | None = None,
                      stop: Callable[[], bool] | None = None,
                      predictions: dict[int, list[dict[str, Any]]] | None = None,
                      skip: Callable[[int], bool] | None = None) -> None:
    """Give the sent tasks at ``manifest`` index ``rows`` the manifest's priority: each task's
    data is built again as push built it, with the new ``priority`` (one update per task), and
    its prediction too where the scores changed it (the pre-filled answer and highlights must
    agree with the panel). ``done`` collects the indexes updated so far (what the server has
    if a later one fails). A task the server no longer has (deleted in Label Studio) is
    skipped with a warning and its index added to ``gone``; the tasks after it are still
    updated. ``stop`` is asked before each task: once it says True, no more are sent.
    ``predictions``: the tasks' predictions of relabeler's model version as Label Studio holds
    them (:meth:`~relabeler.plugin.client.StudioClient.project_predictions`); a task holding
    exactly the one built gets no prediction request (most moved tasks: a re-rank changes the
    order, not the suggestion), and the dict follows the ones replaced. Without it, each
    task's predictions are read before the decision. ``skip`` is asked with each task id
    before it is built: a True leaves that task as it is (nothing sent, not in ``done``)."""
    interface = spec.interface()
    ids = [manifest.at[i, "id"] for i in rows]
    rounds = "round" in manifest.columns
    for i, sample in zip(rows, build(ids), strict=True):
        if stop is not None and stop():
            return
        if skip is not None and skip(int(manifest.at[i, "task_id"])):
            continue
        task = build_task(sample, spec, priority=int(manifest.at[i, "priority"]),
                          top_spans=top_spans, interface=interface,
                          round_no=_round(manifest.at[i, "round"]) if rounds else None)
        task_id = int(manifest.at[i, "task_id"])
        try:
            client.update_task_data(task_id, task["data"])
            wanted = task["predictions"][0]
            held = None if predictions is None else predictions.get(task_id)
            if not (held is not None and len(held) == 1 and same_prediction(held[0], wanted)):
                client.replace_prediction(task_id, wanted)
                if predictions is not None:
                    predictions[task_id] = [dict(wanted)]
        except StudioNotFoundError:
            log.warning("task %d (sample %s) is not in Label Studio any more (deleted there?): "
                        "skipped; the other tasks still move", task_id, manifest.at[i, "id"])
            if gone is not None:
                gone.append(i)
            continue
        if done is not None:
            done.append(i)


def _sync_project(client: StudioClient, store: RunStore, manifest: pd.DataFrame,
                  project_id: int, priorities: dict[str, int], new_rows: pd.DataFrame,
                  build: Callable[[Sequence[str]], list[SampleInput]], spec: LabelingSpec, *,
                  top_spans: int, batch_size: int, progress: bool,
                  data_round: int | None = None,
                  refresh_bare: Collection[str] = ()) -> tuple[pd.DataFrame, int, list[str]]:
    """Record new rows as pending, re-prioritise sent tasks, import the rest in queue order,
    each built for the project's own labeling config (``spec`` is the one a new project gets).
    ``data_round``: the round the new tasks' data names (whose evidence the ML backend shows
    them with) where it is not their manifest round. ``refresh_bare``: manifest sources whose
    tasks sent while the run had no attributions (their panel says so) are built again and get
    their evidence, the run having attributions now, so that no task stays bare beside
    highlighted ones."""
    spec = project_spec(client, project_id)
    interface = spec.interface()
    rows = manifest["project_id"] == project_id
    moved = [i for i in manifest.index[rows]
             if priorities.get(manifest.at[i, "id"], manifest.at[i, "priority"])
             != manifest.at[i, "priority"]]
    if len(new_rows):
        manifest = pd.concat([manifest, new_rows], ignore_index=True)
    old = manifest["priority"].copy()
    for i in manifest.index[manifest["project_id"] == project_id]:
        manifest.at[i, "priority"] = priorities.get(manifest.at[i, "id"],
                                                    manifest.at[i, "priority"])
    sent = [i for i in moved if pd.notna(manifest.at[i, "task_id"])]
    # pending rows first (a crash after import is reconciled); a sent task's new place only
    # once the server has it, so the manifest never claims a place the server lacks
    write_manifest(store, manifest.assign(priority=old.where(manifest.index.isin(sent),
                                                             manifest["priority"])))
    if sent:
        done: list[int] = []
        gone: list[int] = []  # deleted in Label Studio: their slot stays theirs, unused
        try:
            update_priorities(client, manifest, sent, build, spec, top_spans=top_spans,
                              done=done, gone=gone)
        finally:
            write_manifest(store, manifest.assign(priority=old.where(
                manifest.index.isin(sorted(set(sent) - set(done) - set(gone))),
                manifest["priority"])))
        log.info("push: %d tasks already in project %d moved in the queue", len(sent),
                 project_id)
    if refresh_bare:
        _add_evidence(client, manifest, project_id, build, spec, top_spans=top_spans,
                      sources=refresh_bare, skip=set(sent))

    todo = manifest[(manifest["project_id"] == project_id) & manifest["task_id"].isna()]
    todo = todo.sort_values(["priority", "id"], kind="stable")
    imported = [str(x) for x in todo["id"]]
    if len(todo):
        samples = build(list(todo["id"]))
        tasks = [build_task(s, spec, priority=int(p), top_spans=top_spans, interface=interface,
                            round_no=_round(r) if data_round is None else data_round)
                 for s, p, r in zip(samples, todo["priority"], todo["round"], strict=True)]
        manifest = _import_batches(client, store, manifest, project_id, tasks,
                                   batch_size=batch_size, progress=progress)
    return manifest, len(sent), imported


def _add_evidence(client: StudioClient, manifest: pd.DataFrame, project_id: int,
                  build: Callable[[Sequence[str]], list[SampleInput]], spec: LabelingSpec, *,
                  top_spans: int, sources: Collection[str], skip: Collection[int]) -> None:
    """Build again, now with their evidence, the project's tasks of ``sources`` that were sent
    while the run had no attributions (their panel holds :data:`NO_ATTRIBUTIONS_NOTE`);
    ``skip``: manifest indexes already built again. One listing of the project's task data,
    and an update per bare task (once: the rebuilt panel no longer holds the note)."""
    if not spec.panel_field:
        return
    note = html.escape(NO_ATTRIBUTIONS_NOTE)
    bare = {task_id for task_id, data in client.task_data(project_id).items()
            if note in str(data.get(spec.panel_field) or "")}
    rows = [i for i in manifest.index[(manifest["project_id"] == project_id)
                                      & manifest["source"].isin(list(sources))
                                      & manifest["task_id"].notna()]
            if int(manifest.at[i, "task_id"]) in bare and i not in skip]
    if rows:
        update_priorities(client, manifest, rows, build, spec, top_spans=top_spans)
        log.info("push: %d tasks of project %d sent before the run had attributions got their "
                 "evidence", len(rows), project_id)


def _round(value: object) -> int:
    """A manifest row's round; rows added without one are round 1."""
    return 1 if pd.isna(value) else int(value)


def _pending_rows(plan_rows: pd.DataFrame, project_id: int, round_no: int = 1) -> pd.DataFrame:
    """Manifest rows for planned tasks of round ``round_no`` not sent yet (no task id, no push
    time)."""
    n = len(plan_rows)
    return pd.DataFrame({
        "id": list(plan_rows["id"]), "task_id": pd.array([None] * n, dtype="Int64"),
        "project_id": project_id, "rank": pd.array(plan_rows["rank"], dtype="Int64"),
        "priority": plan_rows["position"].to_numpy(dtype=np.int64),
        "source": list(plan_rows["source"]),
        "pushed_at": pd.Series([pd.NaT] * n, dtype="datetime64[us, UTC]"),
        "round": np.full(n, round_no, dtype=np.int64)})


def placed(review: pd.DataFrame, sent: pd.DataFrame) -> dict[str, int]:
    """The plan's review tasks (columns id, position) as priorities: a task already sent
    (``sent``: its manifest rows, with their priorities) keeps its value where it stands in the
    plan's order already, and the others take the plan's value or one between their new
    neighbours (:func:`~relabeler.plugin.priorities.minimal_priorities`, as serve's re-rank).
    So a push again sends nothing where the order holds, also to a project pushed with values
    1, 2, 3 before push left :data:`~relabeler.queue_plan.PRIORITY_STEP` between them."""
    held = dict(zip(sent["id"], sent["priority"].astype(int), strict=True))
    ordered = review.sort_values("position", kind="stable")
    current = [held.get(x, int(p)) for x, p in zip(ordered["id"], ordered["position"],
                                                   strict=True)]
    return dict(zip(ordered["id"], minimal_priorities(current), strict=True))


def _push_side_project(client: StudioClient, store: RunStore, manifest: pd.DataFrame,
                       plan: pd.DataFrame, source: str, title: str,
                       build: Callable[[Sequence[str]], list[SampleInput]], *,
                       spec: LabelingSpec, overlap: int, top_spans: int, batch_size: int,
                       progress: bool, round_no: int = 1, refresh_bare: bool = False,
                       way_out: str) -> tuple[pd.DataFrame, int, int]:
    """The plan's ``source`` rows into their own project (found by the manifest, else by
    title), recorded as sent by round ``round_no``; their data names round 1 (they are built
    from the run itself, and the ML backend shows them with its evidence). Returns the
    manifest, the project id and how many tasks were new. ``way_out``: what to change when the
    project was deleted (:func:`ensure_project`). ``refresh_bare``: the run has attributions,
    tasks of ``source`` sent without them get theirs (:func:`_sync_project`)."""
    known = sorted(set(manifest.loc[manifest["source"] == source, "project_id"]))
    project_id = ensure_project(client, title, spec, overlap=overlap,
                                known_id=int(known[0]) if known else None, manifest=manifest,
                                mine={int(p) for p in manifest["project_id"]}, way_out=way_out)
    manifest = reconcile(client, manifest, project_id)
    done = set(manifest.loc[manifest["project_id"] == project_id, "id"])
    wanted = plan[plan["source"] == source]
    priorities = dict(zip(wanted["id"], wanted["position"].astype(int), strict=True))
    new_rows = _pending_rows(wanted[~wanted["id"].isin(done)], project_id, round_no)
    manifest, _, imported = _sync_project(
        client, store, manifest, project_id, priorities, new_rows, build, spec,
        top_spans=top_spans, batch_size=batch_size, progress=progress, data_round=1,
        refresh_bare=(source,) if refresh_bare else ())
    ensure_priority_view(client, project_id)
    return manifest, project_id, len(imported)


@holds_manifest
def push(store: RunStore, client: StudioClient, *, project_title: str, budget: int = 200,
         control_share: float = 0.05, batch_size: int = 500, seed: int = 0, top_spans: int = 3,
         examples: int = 3, overlap: int = 1, acquire: bool = True,
         eval_audit_budget: int = 0, counterexamples: int = 0,
         progress: bool = False) -> PushResult:
    """Push the run's queue to Label Studio (see the module docstring)."""
    started = time.perf_counter()
    if not project_title or len(project_title) > TITLE_LIMIT:
        raise ValueError(f"project_title must be 1 to {TITLE_LIMIT} characters (Label Studio's "
                         f"limit), got {project_title!r}")
    check_queue_current(store)
    evidence = RunEvidence.load(store, examples=examples)
    spec = LabelingSpec.from_config(build_labeling_config(evidence.classes))
    manifest = read_manifest(store)
    unknown = set(manifest["source"]) - set(SOURCES)
    if unknown:
        raise PushError(f"{MANIFEST} has unknown sources {sorted(unknown)}")
    if len(manifest) and int(manifest["round"].fillna(1).max()) > 1:
        # push plans round 1 from the baseline's ranking: it would reorder later rounds' tasks
        raise PushError(f"{store.uri} is in round {int(manifest['round'].max())}: later rounds "
                        f"are pushed by `relabeler next --run {store.uri}`; nothing was sent")

    # the review project: top of the queue + random controls
    train_rows = manifest[manifest["source"].isin([FLAGGED, CONTROL])]
    known = sorted(set(train_rows["project_id"]))
    if len(known) > 1:
        raise PushError(f"{MANIFEST} names several review projects {known}")
    project_id = ensure_project(client, project_title, spec, overlap=overlap,
                                known_id=int(known[0]) if known else None, manifest=manifest)
    manifest = reconcile(client, manifest, project_id)
    settings = plan_settings(budget, control_share, seed)
    picks = evidence.acquire[["id", "rank"]] if acquire else evidence.acquire.iloc[:0]
    eval_picks = eval_audit_picks(evidence, eval_audit_budget)
    sent = manifest[(manifest["project_id"] == project_id)
                    | manifest["source"].isin([ACQUIRED, EVAL_AUDIT])]
    plan = plan_round(evidence.suspects[["id", "rank"]].reset_index(drop=True),
                      sorted(evidence.train_text), sent, budget=budget,
                      control_share=control_share, seed=seed, pool_picks=picks,
                      eval_picks=eval_picks)
    check_evidence(store, plan, evidence, settings)
    write_plan(store, plan, settings)
    review = plan[plan["source"].isin([FLAGGED, CONTROL])]
    priorities = placed(review, manifest[manifest["project_id"] == project_id])
    if reranked_since_scoring(store):
        priorities = behind_the_live_order(manifest, project_id, review)
    rank_of = dict(zip(evidence.suspects["id"], evidence.suspects["rank"], strict=True))
    new = review[~review["id"].isin(set(manifest.loc[manifest["project_id"] == project_id,
                                                     "id"]))]
    new_rows = _pending_rows(new, project_id)
    manifest.loc[manifest["project_id"] == project_id, "rank"] = pd.array(
        [rank_of.get(x) for x in manifest.loc[manifest["project_id"] == project_id, "id"]],
        dtype="Int64")
    manifest, moved, imported = _sync_project(
        client, store, manifest, project_id, priorities, new_rows, evidence.train_samples, spec,
        top_spans=top_spans, batch_size=batch_size, progress=progress,
        refresh_bare=(FLAGGED, CONTROL) if evidence.has_attributions else ())
    source_of = dict(zip(manifest["id"], manifest["source"], strict=True))
    n_flagged = sum(source_of[x] == FLAGGED for x in imported)
    n_controls = len(imported) - n_flagged
    ensure_priority_view(client, project_id)

    # the acquisition project (pool samples near under-covered data) and the eval-audit
    # project (the eval labels most likely wrong), each when the plan has rows for it
    sync = {"spec": spec, "overlap": overlap, "top_spans": top_spans,
            "batch_size": batch_size, "progress": progress,
            "refresh_bare": evidence.has_attributions}
    acquire_project_id, n_acquired = None, 0
    if acquire and len(evidence.acquire):
        manifest, acquire_project_id, n_acquired = _push_side_project(
            client, store, manifest, plan, ACQUIRED, acquisition_title(project_title),
            evidence.pool_samples, way_out=GONE_ACQUISITION, **sync)
    eval_project_id, n_eval = None, 0
    if len(eval_picks):
        manifest, eval_project_id, n_eval = _push_side_project(
            client, store, manifest, plan, EVAL_AUDIT, eval_audit_title(project_title),
            evidence.eval_samples, way_out=GONE_EVAL_AUDIT, **sync)
    n_counter = 0
    if counterexamples:
        manifest, acquire_project_id, n_counter = _push_counterexamples(
            client, store, manifest, evidence, acquisition_title(project_title),
            counterexamples, acquire_project_id, sync)

    total = int((manifest["project_id"] == project_id).sum())
    result = PushResult(project_id=project_id, acquire_project_id=acquire_project_id,
                        new_flagged=n_flagged, new_controls=n_controls,
                        new_acquired=n_acquired, reprioritised=moved, total_tasks=total,
                        has_evidence=evidence.has_attributions,
                        seconds=round(time.perf_counter() - started, 2),
                        eval_project_id=eval_project_id, new_eval=n_eval,
                        new_counterexamples=n_counter)
    log.info("push: %d flagged + %d control tasks new in project %d (%d in all), %d acquired, "
             "%d counterexamples, %d eval rows to audit, in %.1f s%s", result.new_flagged,
             result.new_controls, project_id, total, result.new_acquired, n_counter,
             result.new_eval, result.seconds,
             "" if result.has_evidence else "; no evidence regions (no attributions.parquet)")
    return result


def _push_counterexamples(client: StudioClient, store: RunStore, manifest: pd.DataFrame,
                          evidence: RunEvidence, title: str, count: int,
                          project_id: int | None, sync: dict[str, Any]
                          ) -> tuple[pd.DataFrame, int | None, int]:
    """Training samples against the shortcuts into the acquisition project, behind its pool
    samples (:mod:`relabeler.plugin.counterexamples`)."""
    from relabeler.plugin.counterexamples import plan_counterexamples

    known = manifest.loc[manifest["source"].isin([ACQUIRED, COUNTEREXAMPLE]), "project_id"]
    project_id = project_id if project_id is not None else (
        int(known.iloc[0]) if len(known) else None)
    picks = plan_counterexamples(store, manifest, count=count, project_id=project_id)
    if not len(picks):
        return manifest, project_id, 0
    return _push_side_project(client, store, manifest, picks, COUNTEREXAMPLE, title,
                              evidence.train_samples, way_out=GONE_ACQUISITION, **sync)


def eval_audit_picks(evidence: RunEvidence, budget: int) -> pd.DataFrame:
    """The top ``budget`` eval rows of ``scores/eval_suspects.parquet`` (id, rank); empty when
    the budget is 0 or the eval split was not ranked (push logs that and goes on)."""
    if budget < 0:
        raise ValueError(f"eval_audit_budget must be >= 0, got {budget}")
    empty = pd.DataFrame({"id": pd.Series([], dtype=object), "rank": pd.Series([], dtype="int64")})
    if budget == 0:
        return empty
    if evidence.eval_suspects is None or not len(evidence.eval_suspects):
        log.warning("push: no eval audit (scores/eval_suspects.parquet is missing or empty: the "
                    "run has no labeled eval split, or was scored before the eval audit)")
        return empty
    return evidence.eval_suspects[["id", "rank"]].head(budget).reset_index(drop=True)


def run_push(store: RunStore, config: Any, *, client: StudioClient | None = None,
             progress: bool = False) -> PushResult:
    """``relabeler push``: settings from ``config.studio``."""
    from relabeler.plugin.connect import client_from_config

    studio = config.studio
    client = client or client_from_config(studio)
    return push(store, client, project_title=studio.project_title or default_title(store),
                budget=studio.budget, control_share=studio.control_share,
                batch_size=studio.batch_size, seed=studio.seed, top_spans=studio.top_spans,
                examples=studio.examples, overlap=studio.overlap,
                eval_audit_budget=studio.eval_audit_budget,
                counterexamples=studio.counterexamples, progress=progress)
