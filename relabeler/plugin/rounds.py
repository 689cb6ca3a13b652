"""The push of a later round (``relabeler next``): a planned batch into the SAME review project.

Round 1 is :func:`relabeler.plugin.push.push`. A later round's plan
(:func:`relabeler.queue_plan.plan_next_round`) holds only new tasks, queued behind every task
still waiting; their evidence comes from the dataset version the round was scored on, while
the manifest stays the run's. The manifest rows are written as pending (with their round)
before any task is sent and reconciled against the server's tasks on a rerun, as push does, so
a round that died midway resumes without sending a task twice; tasks already in the project
keep their place.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import pandas as pd

from relabeler.plugin.client import StudioClient, StudioNotFoundError
from relabeler.plugin.evidence import RunEvidence
from relabeler.plugin.labeling import LabelingSpec, build_labeling_config
from relabeler.plugin.projects import NEW_RUN, ensure_priority_view, ensure_project, reconcile
from relabeler.plugin.push import _pending_rows, _sync_project
from relabeler.plugin.push_checks import PushError, check_evidence, check_project_owner
from relabeler.queue_plan import CONTROL, FLAGGED, holds_manifest, read_manifest
from relabeler.store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundPush:
    project_id: int
    round: int
    new_flagged: int
    new_controls: int
    waiting_before: int   # tasks of earlier rounds still unanswered, ahead of this round's
    total_tasks: int
    seconds: float


def review_project_id(manifest: pd.DataFrame) -> int:
    """The one review project of the manifest; PushError before round 1 or with several."""
    review = manifest[manifest["source"].isin([FLAGGED, CONTROL])]
    known = sorted({int(p) for p in review["project_id"]})
    if not known:
        raise PushError("no review project yet: push round 1 first (`relabeler push`)")
    if len(known) > 1:
        raise PushError(f"the manifest names several review projects {known}")
    return known[0]


def check_project(client: StudioClient, project_id: int, round_no: int,
                  manifest: pd.DataFrame) -> None:
    """A clear error when the review project was deleted between rounds, or is not this run's
    (its tasks that ``manifest`` records hold other samples: another server, or one that lost
    its database, :func:`~relabeler.plugin.push_checks.check_project_owner`). Nothing is
    pulled or pushed: the answers pulled so far stay in labels/corrections.parquet."""
    try:
        client.get_project(project_id)
    except StudioNotFoundError:
        raise PushError(
            f"the review project {project_id} is gone from {client.shown_url}: it was deleted "
            f"after round {round_no}. Nothing was pushed; the answers pulled before stay in "
            f"labels/corrections.parquet. {NEW_RUN}") from None
    check_project_owner(client, project_id, manifest,
                        nothing="nothing was pulled, retrained or pushed")


@holds_manifest
def push_round(store: RunStore, client: StudioClient, evidence: RunEvidence,
               plan: pd.DataFrame, *, round_no: int, waiting: int, top_spans: int = 3,
               batch_size: int = 500, progress: bool = False) -> RoundPush:
    """Send ``plan`` (new review tasks of round ``round_no``) behind the tasks in the project.

    store: the run (its manifest). evidence: what the tasks show, from the round's dataset
    version. waiting: how many earlier tasks are still unanswered (reported only). A planned
    sample already in the project under another round is refused: nothing is pushed twice.
    """
    started = time.perf_counter()
    spec = LabelingSpec.from_config(build_labeling_config(evidence.classes))
    manifest = read_manifest(store)
    project_id = review_project_id(manifest)
    project_id = ensure_project(client, "", spec, overlap=1, known_id=project_id,
                                manifest=manifest)
    manifest = reconcile(client, manifest, project_id)
    check_evidence(store, plan, evidence, {"round": round_no})
    rows = manifest[manifest["project_id"] == project_id]
    clash = rows[rows["id"].isin(set(plan["id"])) & (rows["round"] != round_no)]
    if len(clash):
        raise PushError(f"round {round_no} plans samples already sent in earlier rounds "
                        f"({sorted(clash['id'])[:5]}); nothing was pushed")
    new = plan[~plan["id"].isin(set(rows["id"]))]
    priorities = dict(zip(plan["id"], plan["position"].astype(int), strict=True))
    manifest, _, imported = _sync_project(
        client, store, manifest, project_id, priorities, _pending_rows(new, project_id, round_no),
        evidence.train_samples, spec, top_spans=top_spans, batch_size=batch_size,
        progress=progress)
    ensure_priority_view(client, project_id)
    source_of = dict(zip(plan["id"], plan["source"], strict=True))
    n_flagged = sum(source_of.get(x) == FLAGGED for x in imported)
    n_controls = sum(source_of.get(x) == CONTROL for x in imported)
    if len(imported) > n_flagged + n_controls:  # pending rows an earlier push left
        log.info("round %d: %d tasks an earlier push left unsent were sent too", round_no,
                 len(imported) - n_flagged - n_controls)
    result = RoundPush(project_id=project_id, round=round_no, new_flagged=n_flagged,
                       new_controls=n_controls, waiting_before=waiting,
                       total_tasks=int((manifest["project_id"] == project_id).sum()),
                       seconds=round(time.perf_counter() - started, 2))
    earlier = len(plan) - n_flagged - n_controls
    log.info("round %d: %d flagged + %d control tasks into project %d behind %d waiting, in "
             "%.1f s%s", round_no, result.new_flagged, result.new_controls, project_id, waiting,
             result.seconds, f" ({earlier} more sent by a run of this round that was stopped)"
             if earlier > 0 else "")
    return result
