"""The whole loop: ``relabeler run`` (up to the people) and ``relabeler demo`` (all of it).

``run``: train → extract → score → attribute → push, then stop: people answer in Label Studio.

``demo``: the loop on ``sms-spam`` with 10% of the training labels flipped on purpose. It starts
a local Label Studio, runs ``run``, answers the pushed tasks with SIMULATED annotators through
the real Label Studio API (an oracle that knows the flipped labels; printed clearly as a
simulation), pulls the answers, retrains, and writes the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from relabeler import artifacts
from relabeler.config import RunConfig
from relabeler.store import RunStore

log = logging.getLogger(__name__)


def run_pipeline(store: RunStore, config: RunConfig, *, force: bool = False,
                 progress: bool = True, push: bool = True,
                 say: Callable[[str], None] = log.info) -> dict:
    """train → extract → score → attribute → push; returns each stage's info."""
    from relabeler.jobs.attribute import run_attribute
    from relabeler.jobs.extract import run_extract
    from relabeler.jobs.score import run_score
    from relabeler.jobs.train import run_train

    steps: list[tuple[str, Callable[[], object]]] = [
        ("train", lambda: run_train(store, config, force=force, progress=progress)),
        ("extract", lambda: run_extract(store, config, force=force, progress=progress)),
        ("score", lambda: run_score(store, config, force=force)),
        ("attribute", lambda: run_attribute(store, config, force=force, progress=progress)),
    ]
    if push:
        from relabeler.plugin.push import run_push

        steps.append(("push", lambda: run_push(store, config, progress=progress)))
    out = {}
    for name, step in steps:
        started = time.perf_counter()
        say(f"[{name}] ...")
        out[name] = step()
        say(f"[{name}] done in {time.perf_counter() - started:.0f} s")
    return out


def oracle_answers(store: RunStore) -> dict[str, str]:
    """The true label of every training, eval and pool sample a simulation knows (the eval
    labels are the truth unless ``--eval-noise`` flipped some)."""
    truth: dict[str, str] = {}
    for artifact in (artifacts.EVAL, artifacts.TRAIN):
        split = store.read_table(artifact.path).to_pandas()
        column = "true_label" if "true_label" in split.columns else "label"
        truth.update(zip(split["id"], split[column], strict=True))
    pool = store.read_table(artifacts.POOL.path).to_pandas()
    if "true_label" in pool.columns:
        truth.update((i, t) for i, t in zip(pool["id"], pool["true_label"], strict=True)
                     if t is not None)
    return truth


def simulate_annotators(store: RunStore, client, *, truth: dict[str, str]) -> int:
    """Answer every pushed task, in queue order, through the Label Studio API, as an annotator
    who knows the true label. Returns the number of answers created."""
    from relabeler.plugin.labeling import LabelingSpec

    manifest = store.read_table(artifacts.MANIFEST.path).to_pandas()
    answered = 0
    for project_id, rows in manifest.groupby("project_id"):
        spec = LabelingSpec.from_config(client.get_project(int(project_id)).label_config)
        for row in rows.sort_values("task_id").itertuples():
            label = truth.get(row.id)
            if label is None:
                continue
            result = [{"from_name": spec.answer_name, "to_name": spec.text_name,
                       "type": "choices", "value": {"choices": [label]}}]
            client.create_annotation(int(row.task_id), result, lead_time=1.0)
            answered += 1
    return answered


def run_demo(store: RunStore, config: RunConfig, *, force: bool = False, progress: bool = True,
             say: Callable[[str], None] = print) -> dict:
    """The whole loop on the demo dataset; returns what the closing summary needs."""
    from relabeler.jobs.retrain import run_retrain
    from relabeler.plugin.connect import client_from_config
    from relabeler.plugin.pull import run_pull
    from relabeler.plugin.push import run_push
    from relabeler.plugin.server import start_server
    from relabeler.report.build import write_report

    started = time.perf_counter()
    say("[studio] starting Label Studio on 127.0.0.1 in the background (the first start "
        "initialises it: about 2 minutes)")
    # Label Studio comes up while the model trains; push is the first step that needs it
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="studio") as background:
        starting = background.submit(start_server, config.studio.data_dir,
                                     port=config.studio.port, venv=config.studio.venv or None)
        try:
            run_pipeline(store, config, force=force, progress=progress, push=False, say=say)
        except BaseException:
            _stop_when_started(starting, config)
            raise
        server = starting.result()
    say(f"[studio] up at {server.url}")
    config.studio.url = server.url
    say("[push] ...")
    pushed_at = time.perf_counter()
    run_push(store, config, progress=progress)
    say(f"[push] done in {time.perf_counter() - pushed_at:.0f} s")
    client = client_from_config(config.studio)
    say("[annotate] SIMULATION: oracle annotators who know the injected noise answer every "
        "task through the Label Studio API (in real use, people do this in the browser)")
    answered = simulate_annotators(store, client, truth=oracle_answers(store))
    say(f"[annotate] {answered} answers created")
    pull = run_pull(store, config, client=client)
    say(f"[pull] {pull.corrections} corrections -> {store.path(artifacts.CORRECTIONS.path)}")
    retrain = run_retrain(store, config, force=force, progress=progress)
    report = write_report(store, config)
    acc = report["eval"]["accuracy"]
    queue = report.get("queue") or {}
    manifest = store.read_table(artifacts.MANIFEST.path).to_pandas()
    return {
        "url": server.url, "username": server.credentials.username,
        "password": server.credentials.password, "report": store.path(artifacts.REPORT_HTML.path),
        "seconds": time.perf_counter() - started, "answered": answered,
        "before": acc["before"], "after": acc["after"], "ci95": acc["ci95"],
        "changed": retrain["changed"], "flagged_rate": (queue.get("flagged") or {}).get("rate"),
        "control_rate": (queue.get("random_control") or {}).get("rate"),
        "pushed": int(len(manifest)),
        "sources": pd.Series(manifest["source"]).value_counts().to_dict(),
    }


def _stop_when_started(starting: Future, config: RunConfig) -> None:
    """After a failed pipeline: stop the Label Studio that the background start brings up (a
    demo that failed leaves no server behind)."""
    from relabeler.plugin.server import stop_server

    try:
        starting.result()
    except Exception:  # noqa: BLE001 - its own failure is not the one to report
        return
    stop_server(config.studio.data_dir)
