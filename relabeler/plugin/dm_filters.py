"""The Data Manager filters a task listing sends to Label Studio (``query`` of ``/api/tasks``):
tasks changed since a time, above a task id, answered or skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: the task columns that count a task's answers and its skips: a task "answered or skipped"
#: has one of them above 0
ANSWER_COLUMNS = ("total_annotations", "cancelled_annotations")


def task_filters(updated_after: str | None, id_above: int | None, *,
                 counted: str | None = None) -> dict[str, Any] | None:
    """The Data Manager filters of a task listing
    (:meth:`relabeler.plugin.client.StudioClient.list_tasks`), all joined by "and": changed
    after ``updated_after``, above task ``id_above``, with ``counted`` (one of
    :data:`ANSWER_COLUMNS`) above 0.

    "Answered or skipped" is two listings, one per column, merged by task id: the one
    filter set that says it (two filters joined by "or", each carrying the id filter as its
    ``child_filter``) needs Label Studio 1.22; 1.20 drops ``child_filter`` without a word and
    lists every answered task from the first again."""
    items: list[dict[str, Any]] = []
    if updated_after:
        items.append({"filter": "filter:tasks:updated_at", "operator": "greater",
                      "type": "Datetime", "value": dm_time(updated_after)})
    if counted is not None:
        if counted not in ANSWER_COLUMNS:
            raise ValueError(f"counted must be one of {ANSWER_COLUMNS}, got {counted!r}")
        items.append({"filter": f"filter:tasks:{counted}", "operator": "greater",
                      "type": "Number", "value": 0})
    if id_above is not None:
        items.append({"filter": "filter:tasks:id", "operator": "greater", "type": "Number",
                      "value": int(id_above)})
    return {"conjunction": "and", "items": items} if items else None


def dm_time(value: str) -> str:
    """An ISO time as the Data Manager's filters take it: UTC, microseconds, a "Z"."""
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"time must carry a timezone, got {value!r}")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
