"""The whole loop: ``relabeler run`` (up to the people) and ``relabeler demo`` (all of it).

``run``: train → extract → score → attribute → push, then stop: people answer in Label Studio.

``demo``: the loop on ``sms-spam`` with 10% of the training labels flipped on purpose, in two
rounds. It starts a local Label Studio, runs ``run``, and has three SIMULATED annotators
(distinct Label Studio users of accuracies 0.95, 0.8 and 0.65, printed clearly as a
simulation) answer round 1 through the real API; ``relabeler next`` pulls, retrains, re-scores
and pushes round 2 into the same project; the annotators answer it; then pull, retrain and the
report, with both rounds in its burn-down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
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


#: the demo's simulated annotators and their accuracies (the issue's 0.95 / 0.8 / 0.65)
DEMO_ANNOTATORS = {"annotator95": 0.95, "annotator80": 0.80, "annotator65": 0.65}
#: the demo's rounds: round 1 from ``run``'s push, round 2 from ``relabeler next``
DEMO_ROUNDS = 2


def _last_round(store: RunStore) -> int:
    """The latest round the run's manifest records; 0 before the first push."""
    from relabeler.queue_plan import read_manifest

    manifest = read_manifest(store)
    return int(manifest["round"].fillna(1).max()) if len(manifest) else 0


def model_probabilities(store: RunStore) -> dict[str, np.ndarray]:
    """The baseline model's class probabilities of every extracted sample, by id (what a
    simulated annotator's mistakes follow)."""
    out: dict[str, np.ndarray] = {}
    for split in ("train", "eval", "pool"):
        if store.stage_done(f"extract.{split}"):
            table = store.read_table(artifacts.FEATURES(split=split), columns=["id", "probs"])
            out.update(zip(table.column("id").to_pylist(),
                           (np.asarray(p, dtype=np.float64)
                            for p in table.column("probs").to_pylist()), strict=True))
    return out


def simulate_annotators(store: RunStore, clients: Mapping[str, object],
                        accuracies: Mapping[str, float], *, truth: dict[str, str],
                        probs: dict[str, np.ndarray], round_no: int, seed: int = 0) -> int:
    """Every task of round ``round_no``, in queue order, answered through the Label Studio API
    by each simulated annotator (``clients``: name -> that user's StudioClient). Annotator
    ``name`` gives the true label with probability ``accuracies[name]``, else the wrong class
    the model finds most plausible (:func:`relabeler.jobs.simulate.tired_answers`). Tasks that
    already have answers are left alone, so a rerun adds none. Returns the answers created."""
    from relabeler.jobs.simulate import tired_answers
    from relabeler.plugin.labeling import LabelingSpec
    from relabeler.queue_plan import read_manifest

    names = list(clients)
    manifest = read_manifest(store)
    manifest = manifest[(manifest["round"] == round_no) & manifest["task_id"].notna()]
    admin = next(iter(clients.values()))
    rng = np.random.default_rng([seed, round_no])
    created = 0
    for project_id, rows in manifest.groupby("project_id"):
        spec = LabelingSpec.from_config(admin.get_project(int(project_id)).label_config)
        done = {int(t["id"]) for t in admin.list_tasks(int(project_id), annotated_only=True,
                                                      fields="task_only")}
        rows = rows[[row.id in truth and row.id in probs and int(row.task_id) not in done
                     for row in rows.itertuples()]].sort_values(["priority", "task_id"])
        if rows.empty:
            continue
        classes = spec.classes
        true = np.array([classes.index(truth[x]) for x in rows["id"]])
        answers = tired_answers(true, np.stack([probs[x] for x in rows["id"]]),
                                [accuracies[n] for n in names], rng)
        for i, task_id in enumerate(rows["task_id"]):
            for j, name in enumerate(names):
                result = [{"from_name": spec.answer_name, "to_name": spec.text_name,
                           "type": "choices", "value": {"choices": [classes[answers[i, j]]]}}]
                clients[name].create_annotation(int(task_id), result, lead_time=1.0)
                created += 1
    return created


def run_demo(store: RunStore, config: RunConfig, *, force: bool = False, progress: bool = True,
             say: Callable[[str], None] = print) -> dict:
    """The whole loop on the demo dataset, two rounds with three simulated annotators; returns
    what the closing summary needs."""
    from relabeler.jobs.retrain import run_retrain
    from relabeler.jobs.rounds import read_rounds, run_next
    from relabeler.plugin.client import StudioClient
    from relabeler.plugin.connect import client_from_config
    from relabeler.plugin.pull import run_pull
    from relabeler.plugin.push import run_push
    from relabeler.plugin.server import start_server
    from relabeler.plugin.users import simulated_annotators
    from relabeler.queue_plan import read_manifest
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
    # a rerun resumes: round 1 is pushed again only while the run is in it (a push of a run in
    # round 2 would refuse), round 2 only where no earlier run finished it, and the simulated
    # annotators leave answered tasks alone
    last = _last_round(store)
    if last <= 1:
        say("[push] round 1 ...")
        pushed_at = time.perf_counter()
        run_push(store, config, progress=progress)
        say(f"[push] done in {time.perf_counter() - pushed_at:.0f} s")
    client = client_from_config(config.studio)
    tokens = simulated_annotators(server.url, config.studio.data_dir, list(DEMO_ANNOTATORS))
    clients = {name: StudioClient(server.url, token, retries=config.studio.retries)
               for name, token in tokens.items()}
    truth, probs = oracle_answers(store), model_probabilities(store)
    say(f"[annotate] SIMULATION: {len(clients)} Label Studio users of accuracies "
        f"{', '.join(f'{a:.2f}' for a in DEMO_ANNOTATORS.values())} answer every task through "
        "the API (a mistake picks the wrong class the model finds most plausible); in real use "
        "people do this in the browser")
    rounds = []
    answered = simulate_annotators(store, clients, DEMO_ANNOTATORS, truth=truth, probs=probs,
                                   round_no=1, seed=config.data.seed)
    say(f"[annotate] round 1: {answered} answers")
    rounds.append({"round": 1, "answers": answered})
    if last < DEMO_ROUNDS or DEMO_ROUNDS not in {int(r["round"]) for r in read_rounds(store)}:
        result = run_next(store, config, client=client, progress=progress, say=say)
        second = result.round
    else:
        say(f"[next] round {DEMO_ROUNDS} was pushed by an earlier run of the demo")
        second = DEMO_ROUNDS
    if second is not None:
        answered = simulate_annotators(store, clients, DEMO_ANNOTATORS, truth=truth,
                                       probs=probs, round_no=second, seed=config.data.seed)
        say(f"[annotate] round {second}: {answered} answers")
        rounds.append({"round": second, "answers": answered})
    pull = run_pull(store, config, client=client)
    say(f"[pull] {pull.corrections} corrections -> {store.path(artifacts.CORRECTIONS.path)}")
    retrain = run_retrain(store, config, force=force, progress=progress)
    report = write_report(store, config)
    acc = report["eval"]["accuracy"]
    queue = report.get("queue") or {}
    manifest = read_manifest(store)
    annotators = (store.read_table(artifacts.ANNOTATORS.path).to_pandas()
                  if store.exists(artifacts.ANNOTATORS.path) else None)
    return {
        "url": server.url, "username": server.credentials.username,
        "password": server.credentials.password, "report": store.path(artifacts.REPORT_HTML.path),
        "seconds": time.perf_counter() - started,
        "answered": (sum(int(a["answers"]) for a in annotators.to_dict("records"))
                     if annotators is not None else 0),
        "answered_now": sum(r["answers"] for r in rounds), "rounds": rounds,
        "burn_down": (report.get("rounds") or {}).get("rows") or [],
        "advice": (report.get("remaining") or {}).get("advice"),
        "annotators": [] if annotators is None else annotators.to_dict("records"),
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
