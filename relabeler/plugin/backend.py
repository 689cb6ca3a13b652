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
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from relabeler.plugin.client import StudioClient
from relabeler.plugin.events import ANNOTATION_ACTIONS, append_event
from relabeler.plugin.evidence import RunEvidence
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


def create_app(store: RunStore, *, secret: str, top_spans: int = 3, examples: int = 3
               ) -> FastAPI:
    """The ML backend app for the run in ``store``; webhooks must carry ``secret``."""
    if not secret:
        raise ValueError("secret must be a non-empty shared secret for webhook requests")
    app = FastAPI(title="relabeler ML backend", docs_url=None, redoc_url=None)
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def evidence() -> RunEvidence:
        with lock:
            if "evidence" not in cache:
                cache["evidence"] = RunEvidence.load(store, examples=examples)
            return cache["evidence"]

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": "relabeler", "model_version": MODEL_VERSION}

    @app.post("/setup")
    async def setup(request: Request) -> dict[str, Any]:
        await request.body()  # the schema and token Label Studio sends are not needed
        return {"model_version": MODEL_VERSION}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        body = await request.json()
        tasks = body.get("tasks") or []
        try:
            spec = LabelingSpec.from_config(body.get("label_config") or "")
        except LabelingConfigError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        run = evidence()
        interface = spec.interface()
        results = []
        for task in tasks:
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
    async def webhook(request: Request) -> JSONResponse:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook: refused a request without the shared secret from %s",
                        request.client.host if request.client else "?")
            return JSONResponse({"error": "missing or wrong webhook secret"}, status_code=401)
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body is not JSON"}, status_code=400)
        if not isinstance(payload, dict):
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


def run_serve(store: RunStore, config: Any, *, register: bool = True) -> None:
    """``relabeler serve``: settings from ``config.studio``; the secret from
    $``[studio] webhook_secret_env``, or a fresh one for this process."""
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
