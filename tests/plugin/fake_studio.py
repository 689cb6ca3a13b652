"""An in-memory Label Studio with the calls push and pull make, for fast tests of their pieces.

It keeps projects, tasks and annotations as Label Studio's API returns them (a task's
``updated_at`` moves with every annotation change) and, when given a run store, records each
annotation change as the ML backend would receive its webhook. ``notify=False`` makes a change
the event log never hears of (a missed webhook, a server restored from an older backup).
:func:`real_client` puts the real :class:`StudioClient` in front of it, its task listings read
through ``GET /api/tasks`` as Label Studio answers it (Data Manager filters, pages by number).
The live-server tests (``test_studio.py``) check the real thing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from label_studio_sdk.core.api_error import ApiError

from relabeler.plugin.client import ProjectInfo, StudioClient, StudioNotFoundError
from relabeler.plugin.events import append_event
from relabeler.plugin.labeling import build_labeling_config
from relabeler.store import RunStore


class FakeStudio:
    """Label Studio in memory: pull's ``user_emails``, ``get_project``, ``list_tasks``,
    ``get_task`` and push's ``find_project``, ``create_project``, ``update_project``,
    ``import_tasks``, ``task_sample_ids``, ``task_data`` (and with it the answered
    tasks), ``update_task_data``, ``ensure_view``."""

    url = shown_url = "http://fake-studio.invalid"

    def __init__(self, classes: Sequence[str], *, events_to: RunStore | None = None) -> None:
        self.label_config = build_labeling_config(classes)
        self.events_to = events_to
        self.projects: dict[int, ProjectInfo] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.users = {1: "alice@relabeler.local", 2: "bob@relabeler.local"}
        self.list_calls: list[dict[str, Any]] = []
        self.views: dict[int, dict[str, Any]] = {}  # project id -> its priority tab
        # the HTTP requests the real client would send for the task and prediction calls
        self.requests: Counter[str] = Counter()
        # real_client(): runs before each page of a task listing is answered, with the number of
        # pages answered so far (what a person does in the browser while a listing runs)
        self.before_page: Callable[[int], None] | None = None
        self.pages_served = 0
        self.page_size_max: int | None = None  # Label Studio's TASK_API_PAGE_SIZE_MAX
        self.child_filters = True  # False: a filter's child_filter is dropped, as in 1.20
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)
        self._next_id = 100

    # ----------------------------------------------------------------------------------------
    # what a test does to the server

    def _now(self) -> str:
        self._clock += timedelta(seconds=10)  # more than pull's watermark margin
        return self._clock.isoformat()

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add_project(self) -> int:
        project_id = self._new_id()
        self.projects[project_id] = ProjectInfo(id=project_id, title=f"p{project_id}",
                                                label_config=self.label_config, task_count=0,
                                                sampling=None, model_version=None)
        return project_id

    def add_task(self, project_id: int, sample_id: str, given_label: str | None, *,
                 prediction: dict[str, Any] | None = None) -> int:
        """A task; ``prediction`` gets an id, as the server gives it."""
        task_id = self._new_id()
        predictions = [] if prediction is None else [{**_copy(prediction),
                                                      "id": self._new_id()}]
        self.tasks[task_id] = {"id": task_id, "project": project_id, "annotations": [],
                               "data": {"sample_id": sample_id, "given_label": given_label},
                               "predictions": predictions, "updated_at": self._now()}
        return task_id

    def annotate(self, task_id: int, choice: str | None, *, user: int = 1,
                 notify: bool = True, regions: Sequence[dict[str, Any]] | None = None) -> int:
        """A new annotation answering ``choice`` (None: a skip); returns its id.

        regions: where given, the annotation is made from the task's prediction, as the page
        makes it (``parent_prediction``), holding these evidence regions."""
        now = self._now()
        annotation = {"id": self._new_id(), "task": task_id, "completed_by": user,
                      "result": _result(choice), "was_cancelled": choice is None,
                      "created_at": now, "updated_at": now}
        if regions is not None:
            annotation["result"] += _copy(list(regions))
            annotation["parent_prediction"] = self.tasks[task_id]["predictions"][0]["id"]
        self.tasks[task_id]["annotations"].append(annotation)
        self.tasks[task_id]["updated_at"] = now
        self._notify(notify, "ANNOTATION_CREATED", task_id, annotation=annotation)
        return annotation["id"]

    def update(self, annotation_id: int, choice: str, *, notify: bool = True) -> None:
        task, annotation = self._find(annotation_id)
        annotation["result"] = _result(choice)
        annotation["updated_at"] = task["updated_at"] = self._now()
        self._notify(notify, "ANNOTATION_UPDATED", task["id"], annotation=annotation)

    def delete_annotation(self, annotation_id: int, *, notify: bool = True) -> None:
        task, annotation = self._find(annotation_id)
        task["annotations"].remove(annotation)
        task["updated_at"] = self._now()
        self._notify(notify, "ANNOTATIONS_DELETED", task["id"],
                     annotations=[{"id": annotation_id}])

    def delete_task(self, task_id: int) -> None:
        task = self.tasks.pop(task_id)
        self._notify(True, "TASKS_DELETED", task_id, tasks=[{"id": task_id}],
                     project_id=task["project"])

    def _task(self, task_id: int, what: str) -> dict[str, Any]:
        """The task, or the client's error for one deleted on the server."""
        if task_id not in self.tasks:
            raise StudioNotFoundError(f"cannot {what} task {task_id}: not found on "
                                      f"{self.shown_url} (was it deleted?)")
        return self.tasks[task_id]

    def _find(self, annotation_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
        for task in self.tasks.values():
            for annotation in task["annotations"]:
                if annotation["id"] == annotation_id:
                    return task, annotation
        raise KeyError(annotation_id)

    def _notify(self, notify: bool, action: str, task_id: int, *, project_id: int | None = None,
                **body: Any) -> None:
        if not notify or self.events_to is None:
            return
        project_id = project_id or self.tasks[task_id]["project"]
        project = {"id": project_id, "label_config": self.label_config}
        append_event(self.events_to, {"action": action, "project": project,
                                      **{k: _copy(v) for k, v in body.items()}})

    # ----------------------------------------------------------------------------------------
    # the calls pull makes

    def user_emails(self) -> dict[int, str]:
        return dict(self.users)

    def get_project(self, project_id: int) -> ProjectInfo:
        if project_id not in self.projects:
            raise StudioNotFoundError(f"cannot read project {project_id}: not found")
        count = sum(t["project"] == project_id for t in self.tasks.values())
        return replace(self.projects[project_id], task_count=count)

    # ----------------------------------------------------------------------------------------
    # the calls push makes

    def find_project(self, title: str) -> ProjectInfo | None:
        found = [p for p in self.projects.values() if p.title == title]
        return self.get_project(found[0].id) if found else None

    def create_project(self, title: str, label_config: str, *, overlap: int = 1,
                       model_version: str = "", description: str = "") -> ProjectInfo:
        project_id = self._new_id()
        self.projects[project_id] = ProjectInfo(
            id=project_id, title=title, label_config=label_config, task_count=0,
            sampling="Sequential sampling", model_version=model_version)
        return self.projects[project_id]

    def update_project(self, project_id: int, **fields: Any) -> None:
        self.projects[project_id] = replace(self.projects[project_id], **fields)

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        ids = []
        for task in tasks:
            task_id = self._new_id()
            self.tasks[task_id] = {"id": task_id, "project": project_id, "annotations": [],
                                   "data": _copy(task["data"]),
                                   "predictions": _copy(task.get("predictions", [])),
                                   "updated_at": self._now()}
            ids.append(task_id)
        return ids

    def task_sample_ids(self, project_id: int, field: str, *, id_above: int | None = None
                        ) -> dict[int, str]:
        return {i: t["data"][field] for i, t in self.tasks.items()
                if t["project"] == project_id and (id_above is None or i > id_above)}

    def task_data(self, project_id: int) -> dict[int, dict[str, Any]]:
        return {i: _copy(t["data"]) for i, t in self.tasks.items() if t["project"] == project_id}

    def task_data_and_answered(self, project_id: int
                               ) -> tuple[dict[int, dict[str, Any]], set[int]]:
        return self.task_data(project_id), {i for i, t in self.tasks.items()
                                            if t["project"] == project_id and t["annotations"]}

    def update_task_data(self, task_id: int, data: dict[str, Any]) -> None:
        self.requests["PATCH task"] += 1
        self._task(task_id, "update")["data"] = _copy(data)

    def replace_prediction(self, task_id: int, prediction: dict[str, Any]) -> bool:
        self.requests["GET task predictions"] += 1
        task = self._task(task_id, "list predictions of")
        mine = [p for p in task["predictions"]
                if p.get("model_version") == prediction.get("model_version")]
        if mine == [prediction]:
            return False
        self.requests["POST prediction"] += 1
        self.requests["DELETE prediction"] += len(mine)
        task["predictions"] = [p for p in task["predictions"] if p not in mine] + \
            [_copy(prediction)]
        return True

    def project_predictions(self, project_id: int, model_version: str
                            ) -> dict[int, list[dict[str, Any]]]:
        self.requests["GET project predictions"] += 1
        out: dict[int, list[dict[str, Any]]] = {}
        for task_id, task in self.tasks.items():
            mine = [_copy(p) for p in task["predictions"]
                    if p.get("model_version") == model_version]
            if task["project"] == project_id and mine:
                out[task_id] = mine
        return out

    def ensure_view(self, project_id: int, title: str, ordering: Sequence[str], *,
                    numbers: Sequence[str] = ()) -> int:
        self.views[project_id] = {"title": title, "ordering": list(ordering),
                                  "numbers": list(numbers)}
        return project_id

    def list_tasks(self, project_id: int, *, updated_after: str | None = None,
                   annotated_only: bool = False, page_size: int = 500
                   ) -> Iterator[dict[str, Any]]:
        self.list_calls.append({"project_id": project_id, "updated_after": updated_after,
                                "annotated_only": annotated_only})
        for task_id in sorted(self.tasks):
            task = self.tasks[task_id]
            if task["project"] != project_id:
                continue
            if annotated_only and not task["annotations"]:
                continue
            if updated_after and datetime.fromisoformat(task["updated_at"]) <= \
                    datetime.fromisoformat(updated_after):
                continue
            yield _copy(task)

    def get_task(self, task_id: int) -> dict[str, Any] | None:
        return _copy(self.tasks[task_id]) if task_id in self.tasks else None


def _result(choice: str | None) -> list[dict[str, Any]]:
    if choice is None:
        return []
    return [{"from_name": "answer", "to_name": "text", "type": "choices",
             "value": {"choices": [choice]}}]


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# ----------------------------------------------------------------------------------------------
# the real client in front of the fake: GET /api/tasks as Label Studio 1.23 answers it


def real_client(studio: FakeStudio) -> StudioClient:
    """A :class:`StudioClient` whose requests ``studio`` answers: the task listing, one task,
    a project and the users (what pull asks for)."""

    def get_task(task_id: str, *, request_options: Any) -> dict[str, Any]:
        task = studio.get_task(int(task_id))
        if task is None:
            raise ApiError(status_code=404, body={"detail": "Not found."})
        return task

    def get_project(project_id: int, *, request_options: Any) -> dict[str, Any]:
        try:
            info = studio.get_project(project_id)
        except StudioNotFoundError:
            raise ApiError(status_code=404, body={"detail": "Not found."}) from None
        return {**asdict(info), "task_number": info.task_count}

    real = StudioClient(studio.url, "t0ken", retries=0)
    real.sdk = SimpleNamespace(
        tasks=SimpleNamespace(list=lambda **kwargs: _task_page(studio, **kwargs), get=get_task),
        projects=SimpleNamespace(get=get_project),
        users=SimpleNamespace(list=lambda *, request_options: [
            SimpleNamespace(id=i, email=email, username=None)
            for i, email in studio.users.items()]))
    return real


def _task_page(studio: FakeStudio, *, project: int, fields: str, page: int, page_size: int,
               query: str, request_options: Any) -> SimpleNamespace:
    """Page ``page`` of a project's tasks that pass the query's Data Manager filters (one
    conjunction over the filters, each joined by "and" to its ``child_filter``), by task id;
    404 past the last page, as Django REST's page-number pagination answers."""
    if studio.before_page:
        studio.before_page(studio.pages_served)
    studio.pages_served += 1
    query_ = json.loads(query)
    assert query_["ordering"] == ["tasks:id"], query_
    filters = query_.get("filters") or {"conjunction": "and", "items": []}
    join = any if filters["conjunction"] == "or" else all
    listed = [_as_listed(t) for _, t in sorted(studio.tasks.items()) if t["project"] == project]
    listed = [t for t in listed
              if join(_passes(t, f, studio.child_filters) for f in filters["items"])]
    page_size = min(page_size, studio.page_size_max or page_size)
    if page > 1 and (page - 1) * page_size >= len(listed):
        raise ApiError(status_code=404, body={"detail": "Invalid page."})
    items = listed[(page - 1) * page_size: page * page_size]
    if fields != "all":
        items = [{k: v for k, v in t.items() if k not in ("annotations", "predictions")}
                 for t in items]
    return SimpleNamespace(items=items)


def _as_listed(task: dict[str, Any]) -> dict[str, Any]:
    answers = task["annotations"]
    return {**_copy(task), "total_annotations": sum(not a["was_cancelled"] for a in answers),
            "cancelled_annotations": sum(a["was_cancelled"] for a in answers)}


def _passes(task: dict[str, Any], item: dict[str, Any], child_filters: bool = True) -> bool:
    assert item["operator"] == "greater", item
    column = item["filter"].removeprefix("filter:tasks:")
    if item["type"] == "Datetime":
        value = datetime.strptime(item["value"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        passes = datetime.fromisoformat(task[column]) > value
    else:
        passes = task[column] > item["value"]
    child = item.get("child_filter") if child_filters else None
    return passes and (child is None or _passes(task, child))
