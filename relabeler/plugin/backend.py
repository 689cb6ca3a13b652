"""``relabeler serve``: a Label Studio ML backend for one run (FastAPI + uvicorn).

The HTTP protocol Label Studio speaks to ML backends:

* ``GET /health`` -> ``{"status": "UP", "model_version": ...}``
* ``POST /setup`` ``{project, schema, hostname, access_token, extra_params}`` ->
  ``{"model_version": ...}``
* ``POST /predict`` ``{tasks, project, label_config, params}`` -> ``{"results": [one prediction
  per task, in order], "model_version": ...}``: the suggested label and evidence regions of
  the sample named by each task's ``sample_id``, built and validated like pushed tasks; an
  unknown sample gets an empty prediction.
* ``POST /webhook``: Label Studio's webhook events (ANNOTATION_CREATED / UPDATED /
  ANNOTATIONS_DELETED). The request must carry the shared secret in the ``X-Relabeler-Secret``
  header (401 otherwise). Each event is appended to ``studio/events/`` and fsynced before the
  answer, so an event acknowledged is an event kept.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from relabeler.config import RunConfig
from relabeler.plugin.client import StudioClient
from relabeler.plugin.events import ANNOTATION_ACTIONS, append_event
from relabeler.plugin.evidence import SOURCES, RunEvidence
from relabeler.plugin.labeling import LabelingConfigError, LabelingSpec
from relabeler.plugin.tasks import (
    MODEL_VERSION,
    SAMPLE_ID_FIELD,
    PredictionError,
    build_prediction,
    validate_prediction,
)
from relabeler.store import RunStore

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Relabeler-Secret"
BACKEND_TITLE = "relabeler"


class EvidenceCache:
    """The run's :class:`RunEvidence`, read again when an artifact it is built from
    (:data:`evidence.SOURCES`: the scores and the attributions) has been rewritten since: a
    re-score or re-attribution reaches the next prediction without a restart. The check is one
    stat per artifact per request. A prediction holds the suggestion and the evidence spans
    only (the similar examples are in the task's panel, which push wrote), so none are built."""

    def __init__(self, store: RunStore):
        self._store = store
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
                self._evidence = RunEvidence.load(self._store, examples=0)
                self._versions = versions
            return self._evidence


async def _body(request: Request) -> bytes:
    """The raw request body (reading it is the only awaiting a handler needs)."""
    return await request.body()


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def create_app(store: RunStore, *, secret: str, top_spans: int = 3) -> FastAPI:
    """The ML backend app for the run in ``store``; webhooks must carry ``secret``.

    The handlers are plain functions: FastAPI runs them in its thread pool, so reading the
    run's Parquet files and fsyncing events never blocks the event loop.
    """
    if not secret:
        raise ValueError("secret must be a non-empty shared secret for webhook requests")
    app = FastAPI(title="relabeler ML backend", docs_url=None, redoc_url=None)
    evidence = EvidenceCache(store)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "relabeler", "model_version": MODEL_VERSION}

    @app.post("/setup")
    def setup() -> dict[str, Any]:  # the schema and token Label Studio sends are not needed
        return {"model_version": MODEL_VERSION}

    @app.post("/predict")
    def predict(body: bytes = Depends(_body)) -> dict[str, Any]:
        payload = _json_object(body)
        if payload is None:
            raise HTTPException(status_code=400, detail="the body is not a JSON object")
        try:
            spec = LabelingSpec.from_config(payload.get("label_config") or "")
        except LabelingConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        run = evidence.get()
        interface = spec.interface()
        results = []
        for task in payload.get("tasks") or []:
            sample_id = (task.get("data") or {}).get(SAMPLE_ID_FIELD)
            sample = run.sample(str(sample_id)) if sample_id is not None else None
            if sample is None:
                results.append({"result": [], "model_version": MODEL_VERSION})
                continue
            prediction = build_prediction(sample, spec, top_spans=top_spans)
            try:
                validate_prediction(prediction, spec, sample.text, interface=interface)
            except PredictionError as exc:
                log.error("predict: task %s (sample %s): %s", task.get("id"), sample_id, exc)
                results.append({"result": [], "model_version": MODEL_VERSION})
                continue
            results.append(prediction)
        return {"results": results, "model_version": MODEL_VERSION}

    @app.post("/webhook")
    def webhook(request: Request, body: bytes = Depends(_body)) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook: refused a request without the shared secret from %s",
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "missing or wrong webhook secret"}, status_code=401)
        payload = _json_object(body)
        if payload is None:
            return JSONResponse({"error": "the body is not a JSON object"}, status_code=400)
        artifact = append_event(store, payload)
        log.info("webhook: %s recorded in %s", payload.get("action"), artifact)
        return JSONResponse({"status": "ok"})

    return app


def connect_backend(client: StudioClient, project_ids: Sequence[int], backend_url: str, *,
                    secret: str) -> None:
    """Connect the backend to each project and point its webhook (with the secret) at it."""
    for project_id in project_ids:
        client.ensure_ml_backend(project_id, backend_url, title=BACKEND_TITLE)
        client.ensure_webhook(project_id, backend_url.rstrip("/") + "/webhook",
                              headers={SECRET_HEADER: secret}, actions=ANNOTATION_ACTIONS)
        log.info("serve: project %d uses the ML backend at %s", project_id, backend_url)


def serve(store: RunStore, *, host: str, port: int, secret: str, top_spans: int = 3,
          on_started: Callable[[], None] | None = None) -> None:
    """Run the backend until interrupted; ``on_started`` runs once it accepts requests (Label
    Studio calls /health and /setup while a backend is being connected)."""
    import uvicorn

    app = create_app(store, secret=secret, top_spans=top_spans)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))

    def after_start() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started and on_started is not None:
            try:
                on_started()
            except Exception:
                log.exception("serve: connecting the backend to Label Studio failed")
                server.should_exit = True

    threading.Thread(target=after_start, daemon=True).start()
    log.info("serve: ML backend for %s on http://%s:%d", store.uri, host, port)
    server.run()


def run_serve(store: RunStore, config: RunConfig, *, register: bool = True) -> None:
    """``relabeler serve``: its settings from ``config.studio``: the Label Studio to register
    with (``url``, ``api_key_env``, ``data_dir``), where to listen (``backend_host``,
    ``backend_port``), the URL Label Studio reaches it at (``backend_url``), the spans a
    prediction shows (``top_spans``); the webhook secret from $``webhook_secret_env``, or a
    fresh one for this process."""
    import os
    import secrets

    from relabeler.plugin.connect import client_from_config
    from relabeler.queue_plan import read_manifest

    studio = config.studio
    secret = os.environ.get(studio.webhook_secret_env, "")
    if not secret:
        secret = secrets.token_urlsafe(24)
        log.info("serve: %s is not set; using a fresh webhook secret for this process",
                 studio.webhook_secret_env)
    url = studio.backend_url or f"http://{studio.backend_host}:{studio.backend_port}"

    def on_started() -> None:
        if not register:
            return
        manifest = read_manifest(store)
        projects = sorted({int(p) for p in manifest["project_id"]})
        if not projects:
            log.warning("serve: nothing pushed yet; connect the backend after `relabeler push`")
            return
        connect_backend(client_from_config(studio), projects, url, secret=secret)

    serve(store, host=studio.backend_host, port=studio.backend_port, secret=secret,
          top_spans=studio.top_spans, on_started=on_started)
