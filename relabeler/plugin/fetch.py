"""What a pull reads from Label Studio (step 1 of :mod:`relabeler.plugin.pull`): per project, the
tasks whose ``updated_at`` moved since the last pull's watermark, plus the tasks webhook events
named (one of another project is left out, with a warning), and the project's labeling spec
(from an event where the project is gone)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import pandas as pd

from relabeler.plugin.client import ProjectInfo, StudioNotFoundError
from relabeler.plugin.events import as_id
from relabeler.plugin.labeling import LabelingSpec
from relabeler.plugin.reconcile import event_project

log = logging.getLogger(__name__)

# tasks updated this long before the watermark are fetched again: commits can land out of order
_WATERMARK_MARGIN = timedelta(seconds=5)


class TaskSource(Protocol):
    """The calls pull makes to Label Studio (:class:`StudioClient` has them)."""

    url: str
    shown_url: str  # the url as messages show it (a password masked)

    def user_emails(self) -> dict[int, str]: ...

    def get_project(self, project_id: int) -> ProjectInfo: ...

    def list_tasks(self, project_id: int, *, updated_after: str | None = None,
                   annotated_only: bool = False, page_size: int = 500
                   ) -> Iterable[dict[str, Any]]: ...

    def get_task(self, task_id: int) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class FetchedProject:
    spec: LabelingSpec | None        # None: the project is gone and no event carries its config
    tasks: dict[int, dict[str, Any]]  # by task id; a gone task has no annotations and no data
    gone: set[int]                   # task ids named by events that the server no longer has
    listed: int                      # tasks the server listed as changed


def _list_changed(client: TaskSource, project_id: int, pstate: dict[str, Any],
                  page_size: int) -> dict[int, dict[str, Any]]:
    """Tasks updated since the watermark (the first pull: answered tasks); moves the
    watermark in ``pstate`` to the latest ``updated_at`` seen.

    A listing pages through the project while people answer: a task read on page 1 and
    answered before a later page's task was, moves the watermark past its own answer. So the
    next listing starts that much earlier again: the margin plus the seconds the listing that
    set the watermark took (``listing_seconds``); every answer given during it is later than
    its start, which is no earlier than the watermark less its duration."""
    watermark = pstate.get("watermark")
    started = time.monotonic()
    if watermark:
        lookback = _WATERMARK_MARGIN + timedelta(seconds=pstate.get("listing_seconds") or 0)
        since = (pd.Timestamp(watermark) - lookback).isoformat()
        listing = client.list_tasks(project_id, updated_after=since, page_size=page_size)
    else:
        listing = client.list_tasks(project_id, annotated_only=True, page_size=page_size)
    tasks = {int(task["id"]): task for task in listing}
    stamps = [pd.Timestamp(str(t["updated_at"])) for t in tasks.values() if t.get("updated_at")]
    if stamps and (not watermark or max(stamps) > pd.Timestamp(watermark)):
        pstate["watermark"] = max(stamps).isoformat()
        pstate["listing_seconds"] = round(time.monotonic() - started, 3)
    return tasks


def fetch_project(client: TaskSource, project_id: int, pstate: dict[str, Any], *,
                  named: set[int], events: Sequence[Mapping[str, Any]],
                  page_size: int = 500) -> FetchedProject:
    """The changed tasks of one project and the tasks ``named`` by new webhook events."""
    try:
        project = client.get_project(project_id)
    except StudioNotFoundError:
        log.error("pull: project %d is gone from %s; only webhook events can speak for it",
                  project_id, client.shown_url)
        project = None
    tasks: dict[int, dict[str, Any]] = {}
    if project is not None:
        spec = LabelingSpec.from_config(project.label_config)
        tasks = _list_changed(client, project_id, pstate, page_size)
    else:
        spec = _spec_from_events(events, project_id)
    listed = len(tasks)
    gone = set()
    for task_id in sorted(named - set(tasks)):
        found = client.get_task(task_id) if project is not None else None
        if found is not None and _project_of(found) != project_id:
            # anyone who reads the webhook's secret can post an event naming any task on the
            # server: one of another project is not this run's to read
            log.warning("pull: project %d: a webhook event named task %d, which is in project "
                        "%s of %s: not read", project_id, task_id, _project_of(found),
                        client.shown_url)
            continue
        if found is None:
            gone.add(task_id)
            found = {"id": task_id, "annotations": [], "data": {}}
        tasks[task_id] = found
    return FetchedProject(spec=spec, tasks=tasks, gone=gone, listed=listed)


def _project_of(task: Mapping[str, Any]) -> int | None:
    """The project a task fetched from the server is in (an id or a project object)."""
    project = task.get("project")
    return as_id(project.get("id") if isinstance(project, Mapping) else project)


def _spec_from_events(events: Sequence[Mapping[str, Any]], project_id: int
                      ) -> LabelingSpec | None:
    for event in reversed(events):
        project = (event.get("payload") or {}).get("project")
        if isinstance(project, Mapping) and event_project(event) == project_id \
                and project.get("label_config"):
            return LabelingSpec.from_config(project["label_config"])
    return None
