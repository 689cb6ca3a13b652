"""The one module that talks to Label Studio: a small, strict wrapper of ``label-studio-sdk`` 2.x.

* Connection errors, timeouts and 5xx/429 answers are retried with exponential backoff (the
  SDK's own retries are turned off so the two do not multiply). A request that may have reached
  the server (a timeout, a 5xx) is retried only when it is safe to repeat; task imports are not
  (see :meth:`StudioClient.import_tasks`).
* 401 and 403 raise :class:`StudioAuthError` naming the token's source and the server's
  reason; 404 raises :class:`StudioNotFoundError` naming what is gone. An HTTPS certificate
  that is not trusted is not retried; the message says how to trust its CA.
* A personal access token (a JWT, what Label Studio 1.23 hands out by default) is exchanged
  for short-lived access tokens by the SDK; an expired one, or a failed exchange, is reported
  like any other answer (see :func:`relabeler.plugin.studio_errors.refresh_answer`).
* The token is never logged or shown in ``repr``; a URL is shown with its password masked
  (:func:`relabeler.redact.mask_url`).
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from relabeler.plugin.dm_filters import ANSWER_COLUMNS, task_filters
from relabeler.plugin.studio_errors import (
    CA_BUNDLE_ENV,
    RETRY_STATUS,
    TOKEN_HINT,
    RefreshError,
    StudioAuthError,
    StudioError,
    StudioNotFoundError,
    StudioUnavailableError,
    certificate_error,
    detail,
    refresh_answer,
    refusal,
    sentence,
    short,
    tls_verify,
)
from relabeler.plugin.tasks import same_prediction
from relabeler.redact import mask_url

log = logging.getLogger(__name__)

T = TypeVar("T")

URL_ENV = "LABEL_STUDIO_URL"
API_KEY_ENV = "LABEL_STUDIO_API_KEY"
SEQUENTIAL = "Sequential sampling"
@dataclass(frozen=True)
class ProjectInfo:
    id: int
    title: str
    label_config: str
    task_count: int
    sampling: str | None
    model_version: str | None


def _dump(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else obj.dict()


class StudioClient:
    """A Label Studio server at ``url``, used with ``api_key``.

    token_source: where the token came from, for error messages (an env var's name).
    retries: attempts after the first on connection errors and 5xx; backoff doubles from
    ``backoff`` seconds, capped at 30 s.
    ca_bundle: the CA certificates (a PEM file or a folder) an HTTPS server's certificate is
    checked against; empty = $REQUESTS_CA_BUNDLE, else httpx's default ($SSL_CERT_FILE, else
    $SSL_CERT_DIR, else certifi's bundle).
    transport: the httpx transport requests go through (tests give a mock one).
    """

    def __init__(self, url: str, api_key: str, *, token_source: str = API_KEY_ENV,
                 timeout: float = 120.0, retries: int = 5, backoff: float = 0.5,
                 ca_bundle: str = "", transport: httpx.BaseTransport | None = None):
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL of a Label Studio server, got "
                             f"{mask_url(url)!r}")
        if not api_key:
            raise StudioAuthError(f"no Label Studio API token: set {token_source}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.url = url.rstrip("/")
        self.shown_url = mask_url(self.url)  # what messages show
        self.token_source = token_source
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        # a plain-HTTP server has no certificate to check: a stale $REQUESTS_CA_BUNDLE in the
        # shell is not read for it (an explicit ca_bundle still is, and must be readable)
        verify = tls_verify(ca_bundle) if ca_bundle or self.url.startswith("https://") else True
        http = httpx.Client(timeout=self.timeout, follow_redirects=True, verify=verify,
                            transport=transport, event_hooks={"response": [refresh_answer]})
        try:
            # with the trailing slash: the SDK joins its token refresh URL with urljoin, which
            # drops the last segment of a path without one (a Label Studio at
            # https://host/labelstudio); its other URLs are joined as strings, one slash apart
            self.sdk = LabelStudio(base_url=self.url + "/", api_key=api_key,
                                   timeout=self.timeout, httpx_client=http)
        except ApiError as exc:  # the SDK refuses an expired personal access token here
            http.close()
            raise StudioAuthError(f"the Label Studio token in {token_source} cannot be used: "
                                  f"{sentence(detail(exc.body))} Create a new Personal "
                                  f"Access Token in Label Studio (Account & Settings)") from None

    def __repr__(self) -> str:
        return f"StudioClient(url={self.shown_url!r})"

    @classmethod
    def from_env(cls, url: str | None = None, api_key: str | None = None, *,
                 api_key_env: str = API_KEY_ENV, **kwargs: Any) -> StudioClient:
        """URL from ``url`` or $LABEL_STUDIO_URL; token from ``api_key`` or $``api_key_env``."""
        url = url or os.environ.get(URL_ENV, "")
        if not url:
            raise StudioError(f"no Label Studio URL: set {URL_ENV}, [studio] url, or start one "
                              "with `relabeler studio up`")
        key = api_key or os.environ.get(api_key_env, "")
        return cls(url, key, token_source=api_key_env, **kwargs)

    # ----------------------------------------------------------------------------------------
    # the one place requests are made and errors translated

    def _options(self) -> dict[str, Any]:
        return {"max_retries": 0, "timeout_in_seconds": self.timeout}

    def _call(self, what: str, fn: Callable[..., T], *args: Any, safe_to_repeat: bool = True,
              **kwargs: Any) -> T:
        """Run one SDK call; retry transient failures; translate errors into StudioError."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                return fn(*args, request_options=self._options(), **kwargs)
            except ApiError as exc:
                status = exc.status_code or 0
                said = detail(exc.body)
                if status == 401:
                    raise StudioAuthError(
                        f"Label Studio at {self.shown_url} rejected the API token "
                        f"({self.token_source}) while trying to {what}: "
                        f"{sentence(said or str(status))} {TOKEN_HINT}", status=401) from None
                if status == 403:
                    raise StudioAuthError(f"Label Studio at {self.shown_url} refused to {what}: "
                                          f"{refusal(said)}", status=403) from None
                if status == 404:
                    raise StudioNotFoundError(f"cannot {what}: not found on {self.shown_url} "
                                              f"(was it deleted?)") from None
                if status not in RETRY_STATUS:
                    raise StudioError(f"cannot {what}: Label Studio answered {status}: "
                                      f"{short(exc.body)}") from None
                # a failed token refresh: the request itself was not sent
                if last or not (safe_to_repeat or isinstance(exc, RefreshError)):
                    said = f": {short(exc.body)}" if exc.body not in (None, "", {}) else ""
                    raise StudioUnavailableError(
                        f"cannot {what}: Label Studio at {self.shown_url} answered {status} "
                        f"({attempt + 1} attempts){said}", maybe_applied=True,
                        status=status) from None
                log.warning("Label Studio answered %s to %s; retrying in %.1f s", status, what,
                            delay)
            except httpx.TransportError as exc:
                untrusted = certificate_error(exc)
                if untrusted is not None:
                    raise StudioError(
                        f"cannot {what}: the HTTPS certificate of {self.shown_url} is not "
                        f"trusted ({untrusted.verify_message or untrusted}): give the "
                        f"certificate of the CA that signed it with [studio] ca_bundle or "
                        f"${CA_BUNDLE_ENV} (a PEM file)") from None
                # a refused connection never reached the server; anything later may have
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if last or not (safe_to_repeat or unsent):
                    raise StudioUnavailableError(
                        f"cannot {what}: Label Studio at {self.shown_url} is unreachable "
                        f"({type(exc).__name__}: {exc}; {attempt + 1} attempts)",
                        maybe_applied=not unsent) from None
                log.warning("cannot reach Label Studio to %s (%s); retrying in %.1f s", what,
                            type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")  # pragma: no cover

    # ----------------------------------------------------------------------------------------
    # account and projects

    def whoami(self) -> dict[str, Any]:
        return _dump(self._call("read the current user", self.sdk.users.whoami))

    def user_emails(self) -> dict[int, str]:
        users = self._call("list users", self.sdk.users.list)
        return {int(u.id): str(u.email or u.username or u.id) for u in users}

    @staticmethod
    def _project(obj: Any) -> ProjectInfo:
        d = _dump(obj)
        return ProjectInfo(id=int(d["id"]), title=str(d.get("title") or ""),
                           label_config=str(d.get("label_config") or ""),
                           task_count=int(d.get("task_number") or 0),
                           sampling=d.get("sampling"), model_version=d.get("model_version"))

    def server_release(self) -> str | None:
        """The release the server says it runs (``/api/version``); None when it does not say
        (a proxy that hides or refuses the route: 404, 403, an error status, a page that is
        not the JSON asked for). A rejected token (401) and an unreachable server are errors,
        as for any call."""
        try:
            version = self._call("read the server's version", self.sdk.versions.get)
        except StudioNotFoundError:
            return None
        except StudioUnavailableError as exc:
            if exc.status is None:  # not reached at all: the next call could not be either
                raise
            return None
        except StudioAuthError as exc:
            if exc.status == 403:  # a proxy that refuses this route alone: not the token's fault
                return None
            raise
        except (StudioError, ValueError, TypeError):  # another status; a body of another shape
            return None
        release = getattr(version, "release", None)
        return release if isinstance(release, str) and release else None

    def get_project(self, project_id: int) -> ProjectInfo:
        return self._project(self._call(f"read project {project_id}", self.sdk.projects.get,
                                        project_id))

    def find_project(self, title: str) -> ProjectInfo | None:
        """The project titled exactly ``title``; None if there is none; an error if several."""
        matches = [p for p in self._pages(f"find project {title!r}", self.sdk.projects.list,
                                          title=title, page_size=100) if p.title == title]
        if len(matches) > 1:
            raise StudioError(f"{len(matches)} projects are titled {title!r} on "
                              f"{self.shown_url} (ids {sorted(p.id for p in matches)}); rename "
                              f"all but one")
        return self.get_project(int(matches[0].id)) if matches else None

    def create_project(self, title: str, label_config: str, *, overlap: int = 1,
                       model_version: str = "", description: str = "") -> ProjectInfo:
        """A project with Sequential sampling: tasks are served in task-id (= import) order."""
        project = self._call(
            f"create project {title!r}", self.sdk.projects.create, safe_to_repeat=False,
            title=title, label_config=label_config, sampling=SEQUENTIAL,
            maximum_annotations=overlap, show_skip_button=True, show_collab_predictions=True,
            model_version=model_version, description=description)
        log.info("created Label Studio project %d %r", project.id, title)
        return self.get_project(int(project.id))

    def update_project(self, project_id: int, **fields: Any) -> None:
        self._call(f"update project {project_id}", self.sdk.projects.update, project_id,
                   **fields)

    # ----------------------------------------------------------------------------------------
    # tasks

    def import_tasks(self, project_id: int, tasks: Sequence[Mapping[str, Any]]) -> list[int]:
        """Import one batch; returns the new task ids in the order of ``tasks``.

        Not repeated after a failure that may have reached the server (a timeout, a 5xx):
        that raises StudioUnavailableError(maybe_applied=True) so the caller can check which
        tasks arrived before sending the rest again (push does, by sample id).
        """
        response = self._call(f"import {len(tasks)} tasks into project {project_id}",
                              self.sdk.projects.import_tasks, project_id, safe_to_repeat=False,
                              request=list(tasks), return_task_ids=True)
        task_ids = [int(t) for t in (response.task_ids or [])]
        if len(task_ids) != len(tasks):
            raise StudioError(f"imported {len(tasks)} tasks into project {project_id} but the "
                              f"server returned {len(task_ids)} task ids")
        return task_ids

    def list_tasks(self, project_id: int, *, updated_after: str | None = None,
                   id_above: int | None = None, annotated_only: bool = False,
                   fields: str = "all", page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Tasks of a project as dicts (with annotations when ``fields="all"``), by task id.

        updated_after: ISO time; only tasks whose ``updated_at`` is later (a new, changed or
        deleted annotation updates it). id_above: only tasks with a larger id.
        annotated_only: only tasks with an annotation or a skip (with id_above, not with
        updated_after).

        Read by keyset, not by page number: each request asks for the first page of the
        tasks above the last id read. A task that leaves the listed set while it is read (its
        answers deleted, the task deleted) would move every later task one place back, and
        the one on the next page's boundary would never be read; here it moves none. A page
        shorter than ``page_size`` is not the end (the server caps the page size, Label
        Studio's ``TASK_API_PAGE_SIZE_MAX``): the listing ends at an empty page.
        """
        if annotated_only and updated_after:
            raise ValueError("annotated_only cannot be combined with updated_after")
        if not annotated_only:
            yield from self._keyset(project_id, id_above, fields, page_size,
                                    lambda last: task_filters(updated_after, last))
            return
        # answered, then skipped: two listings merged by id (a task with both is in each)
        listings = [self._keyset(project_id, id_above, fields, page_size,
                                 lambda last, c=column: task_filters(None, last, counted=c))
                    for column in ANSWER_COLUMNS]
        last_id = None
        for task in heapq.merge(*listings, key=lambda task: int(task["id"])):
            if int(task["id"]) != last_id:
                yield task
            last_id = int(task["id"])

    def _keyset(self, project_id: int, id_above: int | None, fields: str, page_size: int,
                filters: Callable[[int | None], dict[str, Any] | None]
                ) -> Iterator[dict[str, Any]]:
        """The tasks :meth:`list_tasks` reads by keyset: the first page of those that pass
        ``filters(last id read)``, again and again, until an empty page."""
        last = id_above
        while True:
            query: dict[str, Any] = {"ordering": ["tasks:id"]}
            chosen = filters(last)
            if chosen:
                query["filters"] = chosen
            pager = self._call(f"list tasks of project {project_id}", self.sdk.tasks.list,
                               project=project_id, fields=fields, page=1,
                               page_size=page_size, query=json.dumps(query))
            batch = [_dump(task) for task in pager.items or []]
            if not batch:
                return
            ids = [int(task["id"]) for task in batch]
            if ids != sorted(set(ids)) or (last is not None and ids[0] <= last):
                above = "" if last is None else f" above task {last}"
                raise StudioError(f"{self.shown_url} listed tasks {ids[:5]} of project "
                                  f"{project_id} when asked for those{above} in id order: it "
                                  f"ignores the Data Manager's id filter or ordering, so no "
                                  f"listing of it can be read safely")
            yield from batch
            last = max(ids)

    def _pages(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Iterator[Any]:
        """The items of a listing paged by page number (projects; tasks page by id, see
        :meth:`list_tasks`), page after page until an empty page or a page that does not exist
        (404). A page shorter than ``page_size`` is not the end: the server may cap the page
        size, so stopping there would lose every later page."""
        page = 1
        while True:
            try:
                pager = self._call(what, fn, page=page, **kwargs)
            except StudioNotFoundError:
                if page == 1:
                    raise
                return  # the page after the last one
            batch = list(pager.items or [])
            if not batch:
                return
            yield from batch
            page += 1

    def task_sample_ids(self, project_id: int, field: str, *, id_above: int | None = None
                        ) -> dict[int, str]:
        """``data[field]`` of every task (above ``id_above``), by task id."""
        out = {}
        for task in self.list_tasks(project_id, id_above=id_above, fields="task_only",
                                    page_size=1000):
            value = (task.get("data") or {}).get(field)
            if value is not None:
                out[int(task["id"])] = str(value)
        return out

    def task_data(self, project_id: int) -> dict[int, dict[str, Any]]:
        """The ``data`` of every task of the project, by task id (one listing, no
        annotations)."""
        return self.task_data_and_answered(project_id)[0]

    def task_data_and_answered(self, project_id: int
                               ) -> tuple[dict[int, dict[str, Any]], set[int]]:
        """The ``data`` of every task of the project, by task id, and the ids of the tasks
        with an answer or a skip, from one listing without annotations: Label Studio 1.23
        counts a task's answers in ``total_annotations`` and its skips in
        ``cancelled_annotations``."""
        data: dict[int, dict[str, Any]] = {}
        answered: set[int] = set()
        for task in self.list_tasks(project_id, fields="task_only", page_size=1000):
            data[int(task["id"])] = dict(task.get("data") or {})
            if (task.get("total_annotations") or 0) + (task.get("cancelled_annotations") or 0):
                answered.add(int(task["id"]))
        return data, answered

    def get_task(self, task_id: int) -> dict[str, Any] | None:
        """One task with its annotations; None when it is gone."""
        try:
            return _dump(self._call(f"read task {task_id}", self.sdk.tasks.get, str(task_id)))
        except StudioNotFoundError:
            return None

    def update_task_data(self, task_id: int, data: Mapping[str, Any]) -> None:
        self._call(f"update task {task_id}", self.sdk.tasks.update, str(task_id),
                   data=dict(data))

    def replace_prediction(self, task_id: int, prediction: Mapping[str, Any]) -> bool:
        """Make ``prediction`` the task's one prediction of its ``model_version`` (what the
        annotator sees pre-filled); False when the task already has exactly that one. Label
        Studio asks an ML backend only for tasks without a prediction of its version, so a
        re-scored task's new suggestion reaches the annotator only this way. The new one is
        made before the old ones go, so the task is never without one."""
        version = prediction.get("model_version")
        listed = self._call(f"read the predictions of task {task_id}", self.sdk.predictions.list,
                            task=task_id)
        mine = [_dump(p) for p in listed if getattr(p, "model_version", None) == version]
        if len(mine) == 1 and same_prediction(mine[0], prediction):
            return False
        kwargs: dict[str, Any] = {"result": list(prediction.get("result") or [])}
        if prediction.get("score") is not None:
            kwargs["score"] = float(prediction["score"])
        self._call(f"replace the prediction of task {task_id}", self.sdk.predictions.create,
                   safe_to_repeat=False, task=task_id, model_version=version, **kwargs)
        for old in mine:
            with contextlib.suppress(StudioNotFoundError):
                self._call(f"delete prediction {old['id']}", self.sdk.predictions.delete,
                           int(old["id"]))
        return True

    def project_predictions(self, project_id: int, model_version: str
                            ) -> dict[int, list[dict[str, Any]]]:
        """The project's predictions of ``model_version``, by task id, in one request (Label
        Studio lists them unpaginated): what a caller compares with before it replaces one,
        instead of reading each task's predictions."""
        listed = self._call(f"list the predictions of project {project_id}",
                            self.sdk.predictions.list, project=project_id)
        out: dict[int, list[dict[str, Any]]] = {}
        for item in listed:
            prediction = _dump(item)
            task = prediction.get("task")
            if prediction.get("model_version") == model_version and task is not None:
                out.setdefault(int(task), []).append(prediction)
        return out

    def create_annotation(self, task_id: int, result: list[dict[str, Any]], *,
                          was_cancelled: bool = False, lead_time: float | None = None
                          ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"result": result, "was_cancelled": was_cancelled}
        if lead_time is not None:
            kwargs["lead_time"] = lead_time
        return _dump(self._call(f"annotate task {task_id}", self.sdk.annotations.create,
                                task_id, safe_to_repeat=False, **kwargs))

    # ----------------------------------------------------------------------------------------
    # Data Manager views, ML backends, webhooks

    def ensure_view(self, project_id: int, title: str, ordering: Sequence[str], *,
                    numbers: Sequence[str] = ()) -> int:
        """A Data Manager tab titled ``title`` sorted by ``ordering``; created or updated.

        ``numbers``: the columns of ``ordering`` that hold numbers. Label Studio sorts a
        ``data`` column numerically only where the tab's ``columnsDisplayType`` calls it a
        Number; else it sorts the text, which on PostgreSQL puts 10 before 2 (SQLite compares
        JSON numbers as numbers either way)."""
        view = self._view(project_id, title)
        view_data = (_dump(view).get("data") or {}) if view is not None else {}
        shown = dict(view_data.get("columnsDisplayType") or {})
        data = {"title": title, "ordering": list(ordering),
                "columnsDisplayType": {**shown, **{column: "Number" for column in numbers}}}
        if view is not None:
            if (list(view_data.get("ordering") or []) != list(ordering)
                    or data["columnsDisplayType"] != shown):
                self._call(f"update view {view.id}", self.sdk.views.update, str(view.id),
                           project=project_id, data={**view_data, **data})
            return int(view.id)
        try:  # not repeated blindly: a create that timed out may have made the tab
            view = self._call(f"create a view in project {project_id}", self.sdk.views.create,
                              safe_to_repeat=False, project=project_id, data=data)
        except StudioUnavailableError as exc:
            view = self._view(project_id, title) if exc.maybe_applied else None
            if view is None:
                raise
        return int(view.id)

    def _view(self, project_id: int, title: str) -> Any:
        """The project's Data Manager tab titled ``title``; None if it has none."""
        views = self._call(f"list views of project {project_id}", self.sdk.views.list,
                           project=project_id)
        return next((v for v in views if (_dump(v).get("data") or {}).get("title") == title),
                    None)

    def ensure_ml_backend(self, project_id: int, url: str, *, title: str,
                          basic_auth: tuple[str, str] | None = None) -> int:
        """Connect the ML backend at ``url`` to the project (once). Label Studio calls its
        /health and /setup right away, so the backend must be up.

        basic_auth: (user, password) Label Studio sends as HTTP basic auth on every request to
        the backend (its ``auth_method = BASIC_AUTH``; the password is write-only in its API).
        A backend already connected at ``url`` gets these credentials: each ``serve`` may make
        fresh ones.
        """
        auth: dict[str, Any] = {}
        if basic_auth is not None:
            auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": basic_auth[0],
                    "basic_auth_pass": basic_auth[1]}
        shown = mask_url(url)
        backends = self._call(f"list ML backends of project {project_id}", self.sdk.ml.list,
                              project=project_id)
        # relabeler's own earlier backend at another address (a serve moved to another port or
        # host): Label Studio asks the first backend, and a dead one answers nothing; its
        # webhook would record every answer twice, or post into the void. The first is moved
        # to the new address (deleting it would take the predictions it made with it), any
        # other is disconnected, and their webhooks go
        stale = [b for b in backends if str(b.url).rstrip("/") != url.rstrip("/")
                 and getattr(b, "title", None) == title]
        here = any(str(b.url).rstrip("/") == url.rstrip("/") for b in backends)
        moved = None
        for backend in stale:
            old = str(backend.url)
            self._drop_webhooks(project_id, old)
            if not here and moved is None:
                self._call(f"move ML backend {mask_url(old)} of project "
                           f"{project_id} to {shown}", self.sdk.ml.update, int(backend.id),
                           url=url, project=project_id, title=title, **auth)
                log.warning("project %d: the %r backend at %s (an earlier serve on another "
                            "address) now points at %s", project_id, title, mask_url(old), shown)
                moved = int(backend.id)
                continue
            with contextlib.suppress(StudioNotFoundError):  # a repeated delete finds nothing
                self._call(f"disconnect ML backend {mask_url(old)} from project {project_id}",
                           self.sdk.ml.delete, int(backend.id))
            log.warning("project %d: disconnected the %r backend at %s (an earlier serve on "
                        "another address)", project_id, title, mask_url(old))
        if moved is not None:
            return moved
        for backend in backends:
            if str(backend.url).rstrip("/") == url.rstrip("/"):
                if auth:
                    self._call(f"update the credentials of ML backend {shown} in project "
                               f"{project_id}", self.sdk.ml.update, int(backend.id),
                               url=url, project=project_id, title=title, **auth)
                return int(backend.id)
        backend = self._call(f"connect ML backend {shown} to project {project_id}",
                             self.sdk.ml.create, safe_to_repeat=False, project=project_id,
                             url=url, title=title, is_interactive=False, **auth)
        return int(backend.id)

    def _drop_webhooks(self, project_id: int, backend_url: str) -> None:
        """Delete the project's webhooks to ``backend_url``'s ``/webhook``."""
        target = backend_url.rstrip("/") + "/webhook"
        hooks = self._call("list webhooks", self.sdk.webhooks.list, project=str(project_id))
        for hook in hooks:
            if (str(hook.url).rstrip("/") == target
                    and int(getattr(hook, "project", None) or -1) == project_id):
                with contextlib.suppress(StudioNotFoundError):  # already gone
                    self._call(f"delete webhook {hook.id}", self.sdk.webhooks.delete, hook.id)

    def ensure_webhook(self, project_id: int, url: str, *, headers: Mapping[str, str],
                       actions: Sequence[str]) -> int:
        """One webhook of the project posting ``actions`` to ``url`` with ``headers``.

        Label Studio adds a webhook to <backend>/webhook for every action when an ML backend is
        connected; it is updated in place, so each event is sent once, with the secret.
        """
        hooks = self._call("list webhooks", self.sdk.webhooks.list, project=str(project_id))
        mine = [h for h in hooks if str(h.url).rstrip("/") == url.rstrip("/")
                and int(getattr(h, "project", None) or -1) == project_id]
        fields = {"headers": dict(headers), "actions": list(actions),
                  "send_for_all_actions": False, "send_payload": True, "is_active": True}
        if mine:
            self._call(f"update webhook {mine[0].id}", self.sdk.webhooks.update, mine[0].id,
                       url=url, **fields)
            for extra in mine[1:]:
                # a repeated delete that the first, timed-out one already did finds nothing
                with contextlib.suppress(StudioNotFoundError):
                    self._call(f"delete duplicate webhook {extra.id}",
                               self.sdk.webhooks.delete, extra.id)
            return int(mine[0].id)
        hook = self._call(f"create a webhook for project {project_id}", self.sdk.webhooks.create,
                          safe_to_repeat=False, url=url, project=project_id, **fields)
        return int(hook.id)
