"""Raw Label Studio webhook events in the run directory: ``studio/events/YYYY-MM-DD.jsonl``
(on an object store ``YYYY-MM-DDTHH.jsonl``, a file an hour, then ``YYYY-MM-DDTHH_0001.jsonl``
and on once a file passes :data:`SEGMENT_BYTES`).

Append-only: the ML backend appends each event the moment it arrives (one O_APPEND write and an
fsync through :meth:`RunStore.append_line`), before it answers Label Studio. Each file is 0600,
and an event's project record keeps its id, title and labeling config only (Label Studio sends
the project's API token and task-data password with it). Pull reads them to
find changed tasks and to keep annotations the server no longer shows.

An annotation event must have the shape Label Studio sends (:func:`event_problem`): the webhook
refuses another with 400, and :func:`read_events` skips one already recorded (a log written
before the check, or edited by hand) with a warning naming its file and line, so one bad event
never stops a pull or a re-rank.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from relabeler import artifacts
from relabeler.store import RunStore

log = logging.getLogger(__name__)

EVENTS_DIR = artifacts.EVENTS.path
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")
#: the largest id an event may give: pull keeps annotation, task and project ids in int64
#: columns, and a larger one would stop every later pull when it writes them
MAX_ID = 2**63 - 1
#: what an id is, for a message
ID_RANGE = "an integer from 0 to 2**63-1"


def as_id(value: Any) -> int | None:
    """``value`` where it is an id (:data:`ID_RANGE`), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID:
        return value
    return None


def json_kind(value: Any) -> str:
    """What a JSON value is, for a message: "an object", "an array", "a string"..."""
    if isinstance(value, Mapping):
        return "an object"
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), "null")


def event_problem(payload: Mapping[str, Any]) -> str | None:
    """What keeps pull and the re-rank from reading an annotation event, in one line; None
    when nothing does. ``ANNOTATION_CREATED``/``UPDATED``: ``annotation``, where given, is an
    object of :func:`annotation_problem`'s shape; ``ANNOTATIONS_DELETED``: ``annotations``,
    where given, is an array (an entry that is no object, or has no id, is skipped; an
    object's id is an id); ``project`` and ``task``, where given, are each an object or an
    id, ``project.label_config`` a string. Every id is :data:`ID_RANGE`. Other actions are
    not read."""
    action = payload.get("action")
    if action not in ANNOTATION_ACTIONS:
        return None
    project = payload.get("project")
    if isinstance(project, Mapping):
        config = project.get("label_config")
        if config is not None and not isinstance(config, str):
            return f"{action}: `project.label_config` is {json_kind(config)}, not a string"
    for name in ("project", "task"):
        problem = _reference_problem(name, payload.get(name))
        if problem:
            return f"{action}: `{problem}"
    if action == "ANNOTATIONS_DELETED":
        annotations = payload.get("annotations")
        if annotations is not None and not isinstance(annotations, list):
            return f"{action}: `annotations` is {json_kind(annotations)}, not an array"
        for n, entry in enumerate(annotations or []):
            if isinstance(entry, Mapping) and entry.get("id") is not None:
                problem = _id_problem(entry["id"])
                if problem:
                    return f"{action}: `annotations[{n}].id` is {problem}"
        return None
    annotation = payload.get("annotation")
    if annotation is None:
        return None  # nothing to replay
    if not isinstance(annotation, Mapping):
        return f"{action}: `annotation` is {json_kind(annotation)}, not an object"
    problem = annotation_problem(annotation)
    return f"{action}: `annotation.{problem}" if problem else None


def annotation_problem(annotation: Mapping[str, Any]) -> str | None:
    """What in an annotation's shape :func:`relabeler.plugin.votes.annotation_vote` cannot
    read (the message goes on after ``annotation.``), None when nothing: ``id`` an id
    (:data:`ID_RANGE`), ``task``, where given, an id or a task object, ``completed_by`` a user
    id, a user object or null, ``result`` an array of objects whose
    ``value`` is an object with ``choices`` an array and ``text`` a string or an array,
    ``created_at`` and ``updated_at`` timestamps."""
    problem = _id_problem(annotation.get("id"))
    if problem:
        return f"id` is {problem}"
    problem = _reference_problem("task", annotation.get("task"))
    if problem:
        return problem
    who = annotation.get("completed_by")
    who = who.get("id") if isinstance(who, Mapping) else who
    if who is not None and (isinstance(who, bool) or not _user_id(who)):
        return f"completed_by` is {json_kind(who)} that is not a user id"
    result = annotation.get("result")
    if result is not None and not isinstance(result, list):
        return f"result` is {json_kind(result)}, not an array"
    for n, region in enumerate(result or []):
        if not isinstance(region, Mapping):
            return f"result[{n}]` is {json_kind(region)}, not an object"
        value = region.get("value")
        if value is None:
            continue
        if not isinstance(value, Mapping):
            return f"result[{n}].value` is {json_kind(value)}, not an object"
        choices, text = value.get("choices"), value.get("text")
        if choices is not None and not isinstance(choices, list):
            return f"result[{n}].value.choices` is {json_kind(choices)}, not an array"
        if text is not None and not isinstance(text, (list, str)):
            return f"result[{n}].value.text` is {json_kind(text)}, not a string or an array"
    for key in ("created_at", "updated_at"):
        stamp = annotation.get(key)
        if stamp is not None and not _timestamp(stamp):
            return f"{key}` is {json_kind(stamp)} that is not a timestamp"
    return None


def _id_problem(value: Any) -> str | None:
    """Why ``value`` is not an id, to follow "is"; None when it is one."""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"{json_kind(value)}, not an integer"
    if as_id(value) is None:
        return f"a number outside the ids' range ({ID_RANGE})"
    return None


def _reference_problem(name: str, value: Any) -> str | None:
    """Why ``value``, a task or project given as an id or as an object with its id, is
    neither (the message goes on after a backquote); None when it is one, or not given."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        problem = None if value.get("id") is None else _id_problem(value["id"])
        return f"{name}.id` is {problem}" if problem else None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{name}` is {_id_problem(value)}" if as_id(value) is None else None
    return f"{name}` is {json_kind(value)}, not an object or an id"


def _user_id(value: Any) -> bool:
    """Whether ``value`` reads as a user id (as :mod:`relabeler.plugin.votes` reads it)."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 is JSON's inf
        return False
    return 0 <= number <= MAX_ID


def _timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        pd.Timestamp(value)
    except (ValueError, OverflowError):  # OutOfBoundsDatetime is a ValueError
        return False
    return True


#: what an event's ``project`` keeps: Label Studio sends the whole project record, with its
#: ``token`` and ``task_data_password``; pull reads its id and labeling config
PROJECT_FIELDS = ("id", "title", "label_config")
#: what an event's ``task`` keeps: pull reads its id (the task's data, the text and panel,
#: is read from the server, or from the run for a task gone there; it was a fifth of an
#: event, rewritten with every later one on an object store)
TASK_FIELDS = ("id", "project", "updated_at")


#: on an object store, the size from which an hour's events go on in a new file: each append
#: reads and rewrites its file whole there, so a file an hour alone grew to megabytes at a
#: busy team's pace, and every webhook moved it twice (``benchmarks/events.py``)
SEGMENT_BYTES = 256 * 1024
#: the most files an hour gets; past it the last one grows
MAX_SEGMENTS = 9999


def segment_artifact(hour: str, n: int) -> str:
    """The event file ``n`` (from 0) of ``hour`` (``YYYY-MM-DDTHH``) on an object store: the
    first is ``YYYY-MM-DDTHH.jsonl`` (as before segments), then ``YYYY-MM-DDTHH_0001.jsonl``
    and on; the names sort in time order ("." before "_", and both before the next hour)."""
    return f"{EVENTS_DIR}/{hour}.jsonl" if n == 0 else f"{EVENTS_DIR}/{hour}_{n:04d}.jsonl"


class EventWriter:
    """Appends webhook events to the run's log, one writer per run (serve holds its lease).

    Locally a file a day, each event one O_APPEND write. On an object store, where an append
    reads its file and writes it again whole, a file an hour that goes on in a new one once it
    passes ``segment_bytes`` (:func:`segment_artifact`): an append moves at most that much
    whatever the pace. The writer keeps the hour's last file and its size, so it lists the log
    once an hour (to go on where an earlier process stopped), not once an event. One append at
    a time: the backend holds a lock around it."""

    def __init__(self, store: RunStore, *, segment_bytes: int = SEGMENT_BYTES):
        if segment_bytes < 1:
            raise ValueError(f"segment_bytes must be at least 1, got {segment_bytes!r}")
        self.store = store
        self._segment_bytes = segment_bytes
        self._hour: str | None = None
        self._segment = 0  # the hour's file being written
        self._size = 0      # its size

    def append(self, payload: Mapping[str, Any], *, received_at: datetime | None = None) -> str:
        """Append one event; returns the artifact it went to. The event's ``project`` keeps
        :data:`PROJECT_FIELDS` only, its ``task`` :data:`TASK_FIELDS`, and a file is readable
        by its owner only (0600)."""
        when = received_at or datetime.now(UTC)
        line = event_line(payload, when)
        if self.store.is_local:  # a file a day: an append is one write whatever its size
            artifact = f"{EVENTS_DIR}/{when:%Y-%m-%d}.jsonl"
            self.store.append_line(artifact, line, private=True)
            return artifact
        hour = f"{when:%Y-%m-%dT%H}"
        if hour != self._hour:  # the hour is taken once its last file is known: a listing
            # that failed leaves the next append to list again, not to write to file 0
            segment, size = self._last_segment(hour)
            self._hour, self._segment, self._size = hour, segment, size
        if self._size >= self._segment_bytes and self._segment < MAX_SEGMENTS:
            self._segment, self._size = self._segment + 1, 0
        artifact = segment_artifact(hour, self._segment)
        self.store.append_line(artifact, line, private=True)
        self._size += len(line.encode()) + 1
        return artifact

    def _last_segment(self, hour: str) -> tuple[int, int]:
        """The last file of ``hour`` already in the log and its size; (0, 0) when none."""
        pattern = re.compile(re.escape(f"{EVENTS_DIR}/{hour}") + r"(?:_(\d{4}))?\.jsonl")
        found = [(int(m.group(1) or 0), size) for artifact, size
                 in self.store.sizes(EVENTS_DIR).items() if (m := pattern.fullmatch(artifact))]
        return max(found, default=(0, 0))


def append_event(store: RunStore, payload: Mapping[str, Any], *,
                 received_at: datetime | None = None) -> str:
    """Append one event with a writer of its own (:class:`EventWriter`; a long-lived writer
    spares the listing an object store needs to find the hour's last file)."""
    return EventWriter(store).append(payload, received_at=received_at)


def event_line(payload: Mapping[str, Any], when: datetime) -> str:
    """An event's line in the log: when it was received, its action, and the payload with its
    ``project`` reduced to :data:`PROJECT_FIELDS` and its ``task`` to :data:`TASK_FIELDS`."""
    for key, fields in (("project", PROJECT_FIELDS), ("task", TASK_FIELDS)):
        record = payload.get(key)
        if isinstance(record, Mapping):
            payload = {**payload, key: {k: v for k, v in record.items() if k in fields}}
    event = {"received_at": when.isoformat(), "action": payload.get("action"),
             "payload": payload}
    line = json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        line.encode()
    except UnicodeEncodeError:  # a lone surrogate: escaped, the event is still recorded
        line = json.dumps(event, separators=(",", ":"), default=str)
    return line


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
    broken line in the middle of a file, and an event pull cannot read (not an object, or an
    annotation event of another shape: :func:`event_problem`), are reported and skipped.
    """
    tail = EventTail(store)
    events = tail.read_new()
    return EventLog(events=events, offsets=dict(tail.lines), new_from=dict(seen or {}))


class EventTail:
    """The event log read as it grows: each :meth:`read_new` parses only what was appended to
    each file since the last call (from its byte offset), as :func:`read_events` parses it,
    so a long-running reader (the live re-rank's answers) neither re-reads the whole log nor
    reports a broken line twice. ``skip``: lines per file that are counted as read but not
    parsed (those a pull has read already)."""

    def __init__(self, store: RunStore, *, skip: Mapping[str, int] | None = None):
        self.store = store
        self.lines: dict[str, int] = {}   # complete lines read per file
        self._bytes: dict[str, int] = {}  # where the next unread line of each file starts
        self._skip = dict(skip or {})

    def read_new(self) -> list[dict[str, Any]]:
        """The complete events appended since the last call, oldest first within a file."""
        events: list[dict[str, Any]] = []
        # one listing gives every file's size: a file that did not grow is not read (on an
        # object store a read is a request, and a log has a file an hour or more there), and
        # the files read from their start (all of them, for a pull) are read at once
        grew = [artifact for artifact, size in self.store.sizes(EVENTS_DIR).items()
                if artifact.endswith(".jsonl") and size > self._bytes.get(artifact, 0)]
        whole = self.store.read_many([a for a in grew if not self._bytes.get(a, 0)])
        for artifact in grew:
            start = self._bytes.get(artifact, 0)
            data = whole[artifact] if not start else self.store.read_bytes(artifact, start=start)
            end = data.rfind(b"\n") + 1  # the part after the last newline is unfinished
            if not end:
                continue
            first = self.lines.get(artifact, 0)
            complete = data[:end].decode("utf-8", errors="replace").split("\n")[:-1]
            for i, line in enumerate(complete, start=first):
                if i < self._skip.get(artifact, 0):
                    continue
                event = _parsed_event(self.store, artifact, i, line)
                if event is not None:
                    events.append(event)
            self._bytes[artifact] = start + end
            self.lines[artifact] = first + len(complete)
        return events


def _parsed_event(store: RunStore, artifact: str, i: int, line: str) -> dict[str, Any] | None:
    """Line ``i`` (from 0) of an event file as an event (``_file`` and ``_line`` added), or
    None for a blank line or one that is reported and skipped."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        log.warning("skipping a broken line %d in %s", i + 1, artifact)
        return None
    problem = _stored_event_problem(event)
    if problem:
        log.warning("skipping event on line %d of %s: %s", i + 1, store.path(artifact), problem)
        return None
    event["_file"], event["_line"] = artifact, i
    return event


def _stored_event_problem(event: Any) -> str | None:
    if not isinstance(event, dict):
        return f"the line is {json_kind(event)}, not an event object"
    payload = event.get("payload")
    if payload is None:
        return None  # no action: nothing is read from it
    if not isinstance(payload, Mapping):
        return f"`payload` is {json_kind(payload)}, not an object"
    return event_problem(payload)
