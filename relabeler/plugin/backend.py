"""``relabeler serve``: a Label Studio ML backend for one run (FastAPI + uvicorn).

The HTTP protocol Label Studio speaks to ML backends:

* ``GET /health`` -> ``{"status": "UP", "model_version": ...}`` (the only open route)
* ``POST /setup`` ``{project, schema, hostname, access_token, extra_params}`` ->
  ``{"model_version": ...}``
* ``POST /predict`` ``{tasks, project, label_config, params}`` -> ``{"results": [one prediction
  per task, in order], "model_version": ...}``: the suggested label and evidence regions of
  the sample named by each task's ``sample_id``, built and validated like pushed tasks; an
  unknown sample gets an empty prediction.
* ``POST /webhook``: Label Studio's webhook events (ANNOTATION_CREATED / UPDATED /
  ANNOTATIONS_DELETED), which carry the shared secret in the ``X-Relabeler-Secret`` header.
  Each event is appended to ``studio/events/`` and fsynced before the answer, so an event
  acknowledged is an event kept. An annotation event of another shape than Label Studio's
  (:func:`relabeler.plugin.events.event_problem`) gets 400 naming what is wrong. Only the
  annotation events of a project the run's manifest records are kept: any other event gets
  200 and is not recorded (logged), so Label Studio does not send it again. Label
  Studio's own "Start Training" call (the backend's credentials, no secret) and ``POST
  /train`` get 200 and a line saying that relabeler retrains by command (``relabeler
  next``); nothing is recorded.

Every route but /health and /webhook needs HTTP basic auth (:class:`BasicAuth`; 401
otherwise): serve registers the backend with Label Studio's own mechanism (the ML backend's
``auth_method = BASIC_AUTH``), so Label Studio sends it on every /setup and /predict. The
webhook carries the secret only: Label Studio shows a webhook's headers to every user of the
organization, where the backend's password is write-only. A body over ``max_body_bytes``
(a /webhook body over :data:`WEBHOOK_MAX_BODY_BYTES`, 1 MiB) gets 413, one that is not a JSON
object 400 with the reason, before any handler runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, HTTPException, Request

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.errors import ConfigError, PluginError, RelabelerError
from relabeler.plugin.backend_auth import BasicAuth, check_secret
from relabeler.plugin.client import StudioClient, StudioNotFoundError
from relabeler.plugin.events import ANNOTATION_ACTIONS, EventWriter, event_problem, json_kind
from relabeler.plugin.evidence import SOURCES, RunEvidence, RunInputError
from relabeler.plugin.labeling import LabelingConfigError, LabelingSpec
from relabeler.plugin.reconcile import event_project
from relabeler.plugin.tasks import (
    MODEL_VERSION,
    ROUND_FIELD,
    SAMPLE_ID_FIELD,
    PredictionError,
    build_prediction,
    validate_prediction,
)
from relabeler.queue_plan import read_manifest
from relabeler.redact import mask_url
from relabeler.store import RunStore

if TYPE_CHECKING:
    from relabeler.plugin.rerank import RankingLoader, RerankWorker

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Relabeler-Secret"
BACKEND_TITLE = "relabeler"
MAX_BODY_BYTES = 10 * 1024 * 1024
#: the largest /webhook body: Label Studio's annotation events are a few KiB (the annotation,
#: its task's data and the project record), and each is kept in the run folder
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024


class EvidenceCache:
    """The run's :class:`RunEvidence`, read again when an artifact it is built from
    (:data:`evidence.SOURCES`: the scores and the attributions) has been rewritten since: a
    re-score or re-attribution reaches the next prediction without a restart. The check is one
    stat per artifact per request. A prediction holds the suggestion and the evidence spans
    only (the similar examples are in the task's panel, which push wrote), so none are built
    unless ``examples`` asks (the re-ranker rebuilds whole tasks, panel included)."""

    def __init__(self, store: RunStore, *, examples: int = 0):
        self._store = store
        self._examples = examples
        self._lock = threading.Lock()
        self._evidence: RunEvidence | None = None
        self._versions: tuple[str | None, ...] = ()

    def get(self) -> RunEvidence:
        # the versions are taken before the read: a rewrite during it is seen next time
        versions = tuple(self._store.version(artifact) for artifact in SOURCES)
        with self._lock:
            if self._evidence is None or versions != self._versions:
                if self._evidence is not None:
                    log.info("serve: the run's scores or attributions changed; reloading")
                self._evidence = RunEvidence.load(self._store, examples=self._examples,
                                                  needed_by="serve")
                self._versions = versions
            return self._evidence


def round_stores(store: RunStore) -> dict[int, RunStore]:
    """The run each round's tasks were built from: round 1 ``store``, each later round the
    dataset version ``relabeler next`` scored it on (``studio/rounds.json``)."""
    stores = {1: store}
    if store.exists(artifacts.ROUNDS.path):
        for record in store.read_json(artifacts.ROUNDS.path).get("rounds", []):
            stores[int(record["round"])] = RunStore(
                store.path(artifacts.RETRAIN(n=int(record["version"]))))
    return stores


class RoundEvidence:
    """:class:`EvidenceCache` per round: a task shows (and a re-rank rewrites it with) the
    suggestion and evidence of the scoring that picked it, not round 1's. A task whose round
    has no record (its round is being pushed) is read from the run itself."""

    def __init__(self, store: RunStore, *, examples: int = 0):
        self._store = store
        self._examples = examples
        self._lock = threading.Lock()
        self._caches: dict[str, EvidenceCache] = {}

    def latest(self) -> RunStore:
        """The run the latest round was scored on (the run itself before ``next``)."""
        stores = round_stores(self._store)
        return stores[max(stores)]

    def get(self, round_no: int | None = None) -> RunEvidence:
        target = round_stores(self._store).get(round_no or 1, self._store)
        with self._lock:
            cache = self._caches.setdefault(target.uri,
                                            EvidenceCache(target, examples=self._examples))
        return cache.get()


def _round_of(data: Any) -> int | None:
    value = data.get(ROUND_FIELD) if isinstance(data, dict) else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 is JSON's inf
        return None


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 whose detail says in one line what is wrong."""
    try:
        payload = json.loads(body or b"{}")
    except UnicodeDecodeError:
        raise HTTPException(status_code=400, detail="the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise HTTPException(status_code=400,
                            detail=f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise HTTPException(status_code=400,
                            detail="the body is JSON nested too deeply to read") from None
    except ValueError:  # Python reads an integer of at most 4300 digits (int_max_str_digits)
        raise HTTPException(status_code=400,
                            detail="the body holds a number too long to read") from None
    if not isinstance(payload, dict):
        raise HTTPException(status_code=400,
                            detail=f"the body is {json_kind(payload)}, not a JSON object")
    return payload


def create_app(store: RunStore, *, secret: str, auth: BasicAuth, top_spans: int = 3,
               max_body_bytes: int = MAX_BODY_BYTES,
               max_webhook_bytes: int = WEBHOOK_MAX_BODY_BYTES,
               on_event: Callable[[Mapping[str, Any]], None] | None = None,
               on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The ML backend app for the run in ``store``: every request but /health must carry
    ``auth``; webhooks also ``secret``; bodies over ``max_body_bytes`` are refused (413), and
    /webhook bodies over the smaller of it and ``max_webhook_bytes``.
    ``on_event`` sees each webhook event once it is recorded (the re-rank worker's
    :meth:`~relabeler.plugin.rerank.RerankWorker.notify`: it only counts); its failure is
    logged and the event still acknowledged. ``on_shutdown`` runs (in a worker thread) when
    the server shuts down, before uvicorn raises a caught SIGTERM or SIGINT again: the re-rank
    worker's :meth:`~relabeler.plugin.rerank.RerankWorker.stop`, so ``kill``, ``docker stop``
    and ``systemctl stop`` end a re-rank between two tasks, not in the middle of one.

    The run must be scored: its evidence is read here, so an unscored run is a
    :class:`~relabeler.plugin.evidence.RunInputError` naming the stage to run, not a failing
    request later. The handlers are plain functions: FastAPI runs them in its thread pool, so
    reading the run's Parquet files and fsyncing events never blocks the event loop.
    """
    if not secret:
        raise ValueError("secret must be a non-empty shared secret for webhook requests")
    if max_body_bytes < 1 or max_webhook_bytes < 1:
        raise ValueError(f"max_body_bytes and max_webhook_bytes must be >= 1, got "
                         f"{max_body_bytes} and {max_webhook_bytes}")
    webhook_bytes = min(max_body_bytes, max_webhook_bytes)
    evidence = RoundEvidence(store)
    evidence.get()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            await asyncio.to_thread(on_shutdown)

    app = FastAPI(title="relabeler ML backend", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)

    async def authorized(request: Request) -> None:
        if not auth.accepts(request.headers.get("authorization")):
            log.warning("refused %s %s without the backend's credentials from %s",
                        request.method, request.url.path,
                        request.client.host if request.client else "?")
            raise HTTPException(status_code=401, detail="missing or wrong credentials (HTTP "
                                "basic auth)", headers={"WWW-Authenticate": "Basic"})

    # (with postponed annotations FastAPI resolves names in module globals only, so the
    # dependencies defined here go in as default values)
    async def json_body(request: Request, _: None = Depends(authorized)) -> dict[str, Any]:
        return await read_json(request)

    async def read_json(request: Request, limit: int = max_body_bytes) -> dict[str, Any]:
        too_large = HTTPException(status_code=413, detail=f"the body is over the limit of "
                                  f"{limit} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():  # a body sent without a length is counted
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return _json_object(b"".join(chunks))

    async def webhook_body(request: Request) -> dict[str, Any] | None:
        """The event of a webhook that carries the shared secret; None for Label Studio's
        own "Start Training" call (it sends the backend's credentials, not the secret);
        anything else gets 401 before its body is read."""
        given = request.headers.get(SECRET_HEADER, "")
        if given and hmac.compare_digest(given.encode(), secret.encode()):
            return await read_json(request, webhook_bytes)
        if auth.accepts(request.headers.get("authorization")):
            try:
                payload = await read_json(request, webhook_bytes)
            except HTTPException:  # not Start Training: refused as below
                payload = {}
            if payload.get("action") == "START_TRAINING":
                _training_asked()
                return None
        log.warning("webhook: refused a request without the shared secret from %s",
                    request.client.host if request.client else "?")
        raise HTTPException(status_code=401, detail="missing or wrong webhook secret",
                            headers={"WWW-Authenticate": "Basic"})

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "relabeler", "model_version": MODEL_VERSION}

    @app.post("/setup")
    def setup(payload: Mapping[str, Any] = Depends(json_body)) -> dict[str, Any]:
        # the schema and the access token Label Studio sends are not needed (nor logged)
        return {"model_version": MODEL_VERSION}

    @app.post("/predict")
    def predict(payload: Mapping[str, Any] = Depends(json_body)) -> dict[str, Any]:
        tasks = payload.get("tasks") or []
        label_config = payload.get("label_config") or ""
        if not (isinstance(tasks, list) and all(isinstance(t, dict) for t in tasks)):
            raise HTTPException(status_code=400, detail="tasks must be a list of objects")
        if not isinstance(label_config, str):
            raise HTTPException(status_code=400, detail="label_config must be a string")
        try:
            spec = LabelingSpec.from_config(label_config)
        except LabelingConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        runs: dict[int | None, RunEvidence] = {}
        interface = spec.interface()
        results = []
        for task in tasks:
            data = task.get("data")
            sample_id = data.get(SAMPLE_ID_FIELD) if isinstance(data, dict) else None
            round_no = _round_of(data)
            try:
                run = runs.get(round_no) or runs.setdefault(round_no, evidence.get(round_no))
            except RunInputError as exc:  # e.g. a round's retrain/vN gone: nothing stored
                log.error("predict: task %s (round %s): %s", task.get("id"), round_no, exc)
                raise HTTPException(status_code=503, detail=str(exc)) from None
            sample = run.sample(str(sample_id)) if sample_id is not None else None
            shown = data.get(spec.text_field) if isinstance(data, dict) else None
            if sample is None:
                log.info("predict: task %s is no sample of this run (no %s relabeler knows): "
                         "an empty prediction", task.get("id"), SAMPLE_ID_FIELD)
            elif isinstance(shown, str) and shown != sample.text:
                log.warning("predict: task %s shows another text than sample %s of this run "
                            "(a project of another run on this backend?): no prediction",
                            task.get("id"), sample_id)
                sample = None
            if sample is None:
                results.append({"result": [], "model_version": MODEL_VERSION})
                continue
            results.append(_valid_regions(build_prediction(sample, spec, top_spans=top_spans),
                                          spec, sample.text, interface, task.get("id")))
        return {"results": results, "model_version": MODEL_VERSION}

    appending = threading.Lock()  # webhooks run in a thread pool; one append at a time
    events = EventWriter(store)
    projects = _ManifestProjects(store)

    @app.post("/train")
    def train(_: Mapping[str, Any] = Depends(json_body)) -> dict[str, str]:
        _training_asked()
        return {"status": "ok", "detail": TRAINING_DETAIL}

    @app.post("/webhook")
    def webhook(payload: Mapping[str, Any] | None = Depends(webhook_body)) -> dict[str, str]:
        if payload is None:
            return {"status": "ok", "detail": TRAINING_DETAIL}
        action = payload.get("action")
        if action not in ANNOTATION_ACTIONS:  # pull reads nothing else: nothing to keep
            log.debug("webhook: %s is not an annotation event: not recorded", _shown(action))
            return {"status": "ok", "detail": "not an annotation event: not recorded"}
        problem = event_problem(payload)
        if problem:  # recorded, it would be skipped by every pull and re-rank: say so now
            log.warning("webhook: refused an event pull could not read: %s", problem)
            raise HTTPException(status_code=400, detail=problem)
        project_id = event_project({"payload": payload})
        if project_id not in projects.ids():
            # 200, not an error: Label Studio would send it again, and pull reads the events
            # of the manifest's projects only
            log.info("webhook: %s of project %s, which %s does not record: not recorded",
                     action, project_id, MANIFEST)
            return {"status": "ok", "detail": f"project {project_id} is not one this run "
                                              f"pushed to: not recorded"}
        with appending:
            artifact = events.append(payload)
        log.info("webhook: %s recorded in %s", payload.get("action"), artifact)
        if on_event is not None:
            try:
                on_event(payload)
            except Exception:  # the event is kept; a re-rank is never worth a lost webhook
                log.exception("webhook: the re-rank trigger failed; the event is recorded")
        return {"status": "ok"}

    return app


MANIFEST = artifacts.MANIFEST.path


class _ManifestProjects:
    """The project ids of the run's manifest, read again whenever it is rewritten (a push or
    ``relabeler next`` adds a project while serve runs)."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._lock = threading.Lock()  # webhooks run in a thread pool
        self._version: str | None = None
        self._ids: frozenset[int] = frozenset()

    def ids(self) -> frozenset[int]:
        with self._lock:
            version = self._store.version(MANIFEST)
            if version != self._version:
                manifest = read_manifest(self._store)
                self._ids = frozenset(int(p) for p in manifest["project_id"].dropna())
                self._version = version
            return self._ids


def _shown(value: Any) -> str:
    """``value`` for a log line, cut short: a posted action can be any JSON."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


#: What Label Studio's "Start Training" gets: relabeler retrains between rounds, by command.
TRAINING_DETAIL = ("relabeler retrains between rounds: run `relabeler next` (or pull, retrain "
                   "and report); nothing was trained")


def _training_asked() -> None:
    log.warning("Label Studio asked the backend to train: %s", TRAINING_DETAIL)


def _valid_regions(prediction: dict[str, Any], spec: LabelingSpec, text: str,
                   interface: Any, task_id: Any) -> dict[str, Any]:
    """``prediction`` less the regions that do not fit the labeling config or ``text`` (an
    attribution span past the end of a rewritten text, say), each named in the log: one bad
    span must not cost the task its suggested label (Label Studio keeps what it gets)."""
    try:
        validate_prediction(prediction, spec, text, interface=interface)
        return prediction
    except PredictionError:
        pass
    kept = []
    for region in prediction["result"]:
        try:
            validate_prediction({**prediction, "result": [region]}, spec, text,
                                interface=interface)
        except PredictionError as exc:
            log.error("predict: task %s: a region left out: %s", task_id, exc)
            continue
        kept.append(region)
    out = {**prediction, "result": kept}
    try:
        validate_prediction(out, spec, text, interface=interface)
    except PredictionError as exc:  # the score itself: keep nothing rather than a bad one
        log.error("predict: task %s: %s", task_id, exc)
        return {"result": [], "model_version": prediction["model_version"]}
    return out


def connect_backend(client: StudioClient, project_ids: Sequence[int], backend_url: str, *,
                    secret: str, auth: BasicAuth,
                    optional: Mapping[int, str] | None = None) -> None:
    """Connect the backend to each project with ``auth`` (Label Studio's basic auth for ML
    backends) and point its webhook at it, carrying the secret as a header (not ``auth``:
    Label Studio shows a webhook's headers to every user of the organization). A project of
    ``optional`` (project id -> what it holds, for the message) that is gone from Label
    Studio is skipped with a warning; any other one gone is an error."""
    headers = {SECRET_HEADER: secret}
    for project_id in project_ids:
        try:
            client.ensure_ml_backend(project_id, backend_url, title=BACKEND_TITLE,
                                     basic_auth=(auth.username, auth.password))
            client.ensure_webhook(project_id, backend_url.rstrip("/") + "/webhook",
                                  headers=headers, actions=ANNOTATION_ACTIONS)
        except StudioNotFoundError:
            if project_id not in (optional or {}):
                raise
            log.warning("serve: project %d (%s) is gone from Label Studio; serving without it, "
                        "as pull and next go on without it", project_id, optional[project_id])
            continue
        log.info("serve: project %d uses the ML backend at %s", project_id,
                 mask_url(backend_url))


def serve(store: RunStore, *, host: str, port: int, secret: str, auth: BasicAuth,
          top_spans: int = 3, max_body_bytes: int = MAX_BODY_BYTES,
          on_started: Callable[[], None] | None = None,
          reranker: RerankWorker | None = None) -> None:
    """Run the backend until interrupted; ``on_started`` runs once it accepts requests (Label
    Studio calls /health and /setup while a backend is being connected). A failure of
    ``on_started`` stops the server and is raised here, so the command exits non-zero.
    ``reranker`` (started here, stopped as the server shuts down, also on SIGTERM) hears every
    recorded webhook event."""
    import uvicorn

    app = create_app(store, secret=secret, auth=auth, top_spans=top_spans,
                     max_body_bytes=max_body_bytes,
                     on_event=reranker.notify if reranker is not None else None,
                     on_shutdown=reranker.stop if reranker is not None else None)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    failures: list[BaseException] = []

    def after_start() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and on_started is not None:
            try:
                on_started()
            except Exception as exc:
                failures.append(exc)
                server.should_exit = True

    threading.Thread(target=after_start, daemon=True).start()
    log.info("serve: ML backend for %s on http://%s:%d", store.uri, host, port)
    if reranker is not None:
        reranker.start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind; it has logged why
        raise PluginError(f"serve: cannot listen on {host}:{port} (in use, or not an address "
                          f"of this machine); pick another with --host/--port") from None
    finally:
        if reranker is not None:
            reranker.stop()
    if failures:
        if isinstance(failures[0], RelabelerError):
            raise PluginError(f"serve: connecting the backend to Label Studio failed: "
                              f"{failures[0]}") from failures[0]
        raise failures[0]


def run_serve(store: RunStore, config: RunConfig, *, register: bool = True,
              ranking: RankingLoader | None = None) -> None:
    """``relabeler serve``: its settings from ``config.studio``: the Label Studio to register
    with (``url``, ``api_key_env``, ``data_dir``, ``retries``), where to listen
    (``backend_host``, ``backend_port``), the URL Label Studio reaches it at (``backend_url``),
    the spans a prediction shows (``top_spans``), the body limit (``backend_max_body_mb``).
    The webhook secret comes from $``webhook_secret_env`` and the basic-auth credentials from
    $``backend_credentials_env``, each fresh for this process when unset. With
    ``loop.rerank_every`` > 0 and a ``ranking`` loader (the entry point passes
    :meth:`relabeler.jobs.live_ranking.LiveRanking.load`) the waiting review tasks are
    re-ranked after every that many answers (:mod:`relabeler.plugin.rerank`)."""
    from relabeler.plugin.connect import client_from_config
    from relabeler.plugin.rerank import Reranker, RerankWorker
    from relabeler.plugin.serve_projects import ProjectConnector

    studio = config.studio
    url = studio.backend_url or f"http://{studio.backend_host}:{studio.backend_port}"
    if "@" in url.partition("://")[2].split("/", 1)[0]:
        raise ConfigError(f"[studio] backend_url {mask_url(url)!r} carries credentials; put "
                          f"`user:password` in ${studio.backend_credentials_env} instead (Label "
                          f"Studio keeps a URL readable, a basic-auth password write-only)")
    secret = os.environ.get(studio.webhook_secret_env, "")
    if secret:
        check_secret(secret, studio.webhook_secret_env)
    elif register:
        secret = secrets.token_urlsafe(24)
        log.info("serve: %s is not set; using a fresh webhook secret for this process",
                 studio.webhook_secret_env)
    else:
        secret = secrets.token_urlsafe(24)
        log.warning("serve: $%s is not set, so this process made a secret of its own that no "
                    "webhook set up by hand can carry: every webhook event will be refused "
                    "(401) and lost. Set it, and put the same value in the webhook's %s header",
                    studio.webhook_secret_env, SECRET_HEADER)
    auth = BasicAuth.from_env(studio.backend_credentials_env)
    if auth is None:
        auth = BasicAuth.generate()
        log.log(logging.WARNING if not register else logging.INFO,
                "serve: %s is not set; fresh credentials for this process (user %r)%s",
                studio.backend_credentials_env, auth.username,
                "" if register else ": without registration nothing can call /predict; set it")

    connector = ProjectConnector(store, lambda: client_from_config(studio), url, secret=secret,
                                 auth=auth, error=PluginError)

    def on_started() -> None:
        if not register:
            return
        if not connector.connect_new():
            log.warning("serve: nothing pushed yet; the backend connects itself to the "
                        "projects `relabeler push` makes (it looks every %.0f s)",
                        connector.every)
        connector.start()

    worker = None
    if config.loop.rerank_every > 0 and ranking is not None:
        rerank = Reranker(store, config, client=lambda: client_from_config(studio),
                          ranking=ranking)
        worker = RerankWorker(rerank, every=config.loop.rerank_every, counts=rerank.counts,
                              stopping=rerank.stopping)
        log.info("serve: the waiting review tasks are re-ranked after every %d answers",
                 config.loop.rerank_every)
    try:
        serve(store, host=studio.backend_host, port=studio.backend_port, secret=secret,
              auth=auth, top_spans=studio.top_spans,
              max_body_bytes=studio.backend_max_body_mb * 1024 * 1024, on_started=on_started,
              reranker=worker)
    finally:
        connector.stop()
