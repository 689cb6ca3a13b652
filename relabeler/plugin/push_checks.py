"""The checks ``push`` makes before anything is sent (or a project made): the queue was made
from the run as it is now, and every task of the plan has the evidence the attribute stage
computed. Also the check push, pull and ``next`` make that a project the manifest records is
this run's (:func:`check_tasks_owner`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from relabeler import artifacts
from relabeler.errors import PluginError
from relabeler.plugin.evidence import RunEvidence
from relabeler.plugin.tasks import SAMPLE_ID_FIELD
from relabeler.queue_plan import EVAL_AUDIT, read_plan
from relabeler.store import RunStore


class PushError(PluginError):
    """Push cannot go on; the message says why and what to do."""


def recorded_tasks(manifest: pd.DataFrame, project_id: int) -> dict[int, str]:
    """Task id -> sample id of the tasks the manifest records in the project (sent ones)."""
    rows = manifest[(manifest["project_id"] == project_id) & manifest["task_id"].notna()]
    return {int(t): str(s) for t, s in zip(rows["task_id"], rows["id"], strict=True)}


def check_tasks_owner(project_id: int, shown_url: str, recorded: Mapping[int, str],
                      on_server: Mapping[int, Mapping[str, Any]], *,
                      error: type[PluginError] = PushError,
                      nothing: str = "nothing was sent") -> None:
    """Stop when the project is not this run's: a task the manifest records (``recorded``: task
    id -> sample id) that the server has (``on_server``: task id -> the task's data) names
    another sample in its ``sample_id``, or none. Every task relabeler builds carries its
    sample id, so such a project is another run's: the server is not the one the run pushed
    to, or it lost its database and gave the ids again. A recorded task the server lacks is
    not checked (deleted there); tasks the manifest does not record are left alone."""
    for task_id in sorted(set(recorded) & set(on_server)):
        found = (on_server[task_id] or {}).get(SAMPLE_ID_FIELD)
        if found is not None and str(found) == recorded[task_id]:
            continue
        holds = (f"sample {str(found)!r}" if found is not None
                 else f"no {SAMPLE_ID_FIELD} (relabeler did not build it)")
        raise error(
            f"Label Studio project {project_id} at {shown_url} is not the one this run pushed "
            f"to: its task {task_id} holds {holds}, where {artifacts.MANIFEST.path} records "
            f"sample {recorded[task_id]!r} for task {task_id}. Check that studio.url "
            f"(LABEL_STUDIO_URL, --url) names the server this run pushed to and that the "
            f"server still has its data directory (a fresh or restored database gives these "
            f"ids to other projects and tasks), and that {artifacts.MANIFEST.path} is this "
            f"run's; {nothing}")


def check_project_owner(client: Any, project_id: int, manifest: pd.DataFrame, *,
                        error: type[PluginError] = PushError,
                        nothing: str = "nothing was sent") -> None:
    """:func:`check_tasks_owner` against every task of the project (one listing of their data,
    without annotations); a project whose tasks the manifest records none of is not read."""
    recorded = recorded_tasks(manifest, project_id)
    if recorded:
        check_tasks_owner(project_id, client.shown_url, recorded, client.task_data(project_id),
                          error=error, nothing=nothing)


#: the stages the queue is made by, in order, and the markers that say each is done
_QUEUE_STAGES = (("train", ("train",)),
                 ("extract", ("extract.train", "extract.eval", "extract.pool")),
                 ("score", ("score",)), ("attribute", ("attribute",)))


def check_queue_current(store: RunStore) -> None:
    """Stop before anything is sent (or a project made) when the queue push would send was
    not made from the run as it is now: the score or attribute stage gone stale (train or data
    finished again since: the ranking, suggested labels and evidence are another model's), or
    an attribute run that started (``attributions/_plan.json``) and did not finish (its
    ``attributions.parquet`` is the old one, or partial). The PushError names the stages to
    run again, in order."""
    attributed = store.stage_info("attribute") is not None
    last = "attribute" if attributed else "score"
    reason = store.stale(last)
    if reason is None and not attributed and store.exists(artifacts.ATTRIBUTION_PARTS_KEY.path):
        raise PushError(
            f"push: the attribute stage started in {store.uri} and did not finish "
            f"({artifacts.ATTRIBUTION_PARTS_KEY.path} is there, its marker is not): "
            f"{artifacts.ATTRIBUTIONS.path} is missing or the previous run's. Run `relabeler "
            f"attribute --run {store.uri}` (it resumes from the parts it finished), then push; "
            f"nothing was sent")
    if reason is None:
        return
    verbs = [verb for verb, _ in _QUEUE_STAGES if attributed or verb != "attribute"]
    first = next((i for i, (_, stages) in enumerate(_QUEUE_STAGES[:len(verbs)])
                  if not all(store.stage_done(s) for s in stages
                             if s == stages[0] or store.stage_info(s) is not None)),
                 verbs.index("score"))
    rerun = ", ".join(f"`relabeler {verb} --run {store.uri}`" for verb in verbs[first:])
    raise PushError(
        f"push: the queue the {last} stage made in {store.uri} is stale ({reason}): its "
        f"ranking, suggested labels and evidence are not the current model's. "
        f"Run {rerun} (or `relabeler run --run {store.uri}`, which pushes too); nothing was "
        f"sent")


def check_evidence(store: RunStore, plan: pd.DataFrame, evidence: RunEvidence,
                   settings: dict) -> None:
    """Stop before sending any task of the plan whose evidence the attribute stage did not
    compute: highlighted tasks beside bare ones would show the annotators which are controls.
    A run without attributions at all sends every task bare (and push says so)."""
    if not evidence.has_attributions:
        return
    attributed = {sample_id for sample_id, _ in evidence.attributions.spans}
    missing = [x for x in plan.loc[plan["source"] != EVAL_AUDIT, "id"] if x not in attributed]
    if not missing:
        return
    planned = read_plan(store)
    before = (f"the attribute stage planned with {planned[1]}" if planned and planned[1]
              else "the attribute stage planned another queue")
    raise PushError(
        f"push: {len(missing)} of the {len(plan)} planned tasks have no evidence in "
        f"{artifacts.ATTRIBUTIONS.path} (e.g. {missing[:5]}): {before}, this push asks for "
        f"{settings}. Run `relabeler attribute --run {store.uri} --force "
        f"{_as_sets(settings)}`, or push with the settings attribute used; no task was sent")


def _as_sets(settings: dict) -> str:
    """The plan's settings as the ``--set studio.KEY=VALUE`` options attribute takes."""
    return " ".join(f"--set studio.{key}={value}" for key, value in settings.items())
