"""Raw Label Studio webhook events in the run directory: ``studio/events/YYYY-MM-DD.jsonl``.

Append-only: the ML backend appends each event the moment it arrives (one O_APPEND write and an
fsync through :meth:`RunStore.append_line`), before it answers Label Studio. Pull reads them to
find changed tasks and to keep annotations the server no longer shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relabeler import artifacts
from relabeler.store import RunStore

log = logging.getLogger(__name__)

EVENTS_DIR = artifacts.EVENTS.path
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


def append_event(store: RunStore, payload: Mapping[str, Any], *,
                 received_at: datetime | None = None) -> str:
    """Append one event; returns the artifact it went to."""
    when = received_at or datetime.now(UTC)
    artifact = f"{EVENTS_DIR}/{when:%Y-%m-%d}.jsonl"
    event = {"received_at": when.isoformat(), "action": payload.get("action"),
             "payload": payload}
    line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        line.encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped, the event is still recorded
        line = json.dumps(event, separators=(",", ":"), default=str)
    store.append_line(artifact, line)
    return artifact


@dataclass(frozen=True)
class EventLog:
    events: list[dict[str, Any]]        # every complete event, oldest first
    offsets: dict[str, int]             # lines per file, to tell new events next time
    new_from: dict[str, int]            # lines per file that an earlier pull had seen

    def new_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["_line"] >= self.new_from.get(e["_file"], 0)]


def read_events(store: RunStore, *, seen: Mapping[str, int] | None = None) -> EventLog:
    """All events, with ``seen`` (lines per file from the last pull) marking the old ones.

    A last line without a newline or not valid JSON (a write cut short) is left for later; a
    broken line in the middle of a file is reported and skipped.
    """
    events: list[dict[str, Any]] = []
    offsets: dict[str, int] = {}
    for artifact in store.list(EVENTS_DIR):
        if not artifact.endswith(".jsonl"):
            continue
        raw = store.read_bytes(artifact).decode("utf-8", errors="replace")
        lines = raw.split("\n")
        complete = lines[:-1]  # the part after the last newline is unfinished
        for i, line in enumerate(complete):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                log.warning("skipping a broken line %d in %s", i + 1, artifact)
                continue
            event["_file"], event["_line"] = artifact, i
            events.append(event)
        offsets[artifact] = len(complete)
    return EventLog(events=events, offsets=offsets, new_from=dict(seen or {}))
