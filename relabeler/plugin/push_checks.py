"""The checks ``push`` makes before anything is sent (or a project made): the queue was made
from the run as it is now, and every task of the plan has the evidence the attribute stage
computed."""

from __future__ import annotations

import pandas as pd

from relabeler import artifacts
from relabeler.errors import PluginError
from relabeler.plugin.evidence import RunEvidence
from relabeler.queue_plan import EVAL_AUDIT, read_plan
from relabeler.store import RunStore


class PushError(PluginError):
    """Push cannot go on; the message says why and what to do."""


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
