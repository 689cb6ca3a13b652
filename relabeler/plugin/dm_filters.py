"""The Data Manager filters a task listing sends to Label Studio (``query`` of ``/api/tasks``):
tasks changed since a time, above a task id, answered or skipped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def task_filters(updated_after: str | None, id_above: int | None, annotated_only: bool
                 ) -> dict[str, Any] | None:
    """The Data Manager filters of a task listing
    (:meth:`relabeler.plugin.client.StudioClient.list_tasks`).

    The filters of one listing are joined by one conjunction; each filter may carry a
    ``child_filter`` that is joined to it by "and" (Label Studio 1.23's
    ``data_manager.managers.apply_filters``). So "answered or skipped" is two filters joined
    by "or", each carrying the id filter."""
    by_id = None if id_above is None else {
        "filter": "filter:tasks:id", "operator": "greater", "type": "Number",
        "value": int(id_above)}
    if annotated_only:
        items = [{"filter": f"filter:tasks:{column}", "operator": "greater", "type": "Number",
                  "value": 0} for column in ("total_annotations", "cancelled_annotations")]
        if by_id:
            items = [{**item, "child_filter": by_id} for item in items]
        return {"conjunction": "or", "items": items}
    items = [] if by_id is None else [by_id]
    if updated_after:
        items.insert(0, {"filter": "filter:tasks:updated_at", "operator": "greater",
                         "type": "Datetime", "value": dm_time(updated_after)})
    return {"conjunction": "and", "items": items} if items else None


def dm_time(value: str) -> str:
    """An ISO time as the Data Manager's filters take it: UTC, microseconds, a "Z"."""
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError(f"time must carry a timezone, got {value!r}")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
