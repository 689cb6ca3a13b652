"""Push 20,000 tasks with predictions and pull 5,000 annotations against a local Label Studio.

Starts its own server (from the test template when present, else a cold init) on a free
loopback port, builds a synthetic scored run, and prints tasks/s for push and annotations/s for
pull, each beside a baseline: push against one request per task, pull against pulling again
with nothing changed (the incremental path).

    .venv/bin/python benchmarks/studio.py [--tasks 20000] [--annotations 5000]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relabeler.plugin import server as studio_server  # noqa: E402
from relabeler.plugin.client import StudioClient  # noqa: E402
from relabeler.plugin.evidence import RunEvidence  # noqa: E402
from relabeler.plugin.labeling import LabelingSpec  # noqa: E402
from relabeler.plugin.pull import pull  # noqa: E402
from relabeler.plugin.push import push, read_manifest  # noqa: E402
from relabeler.plugin.tasks import build_task  # noqa: E402
from tests.plugin.synthetic import make_run  # noqa: E402


def annotate(client: StudioClient, task_ids: list[int], workers: int = 4) -> float:
    """Answer tasks through the API (alternating classes, some skips); returns seconds."""
    def one(i_task: tuple[int, int]) -> None:
        i, task_id = i_task
        if i % 10 == 9:
            client.create_annotation(task_id, [], was_cancelled=True)
        else:
            client.create_annotation(task_id, [{
                "from_name": "answer", "to_name": "text", "type": "choices",
                "value": {"choices": ["pos" if i % 2 else "neg"]}}])

    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, enumerate(task_ids)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--annotations", type=int, default=5_000)
    parser.add_argument("--baseline-tasks", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    template = Path(os.environ.get("RELABELER_STUDIO_TEMPLATE", Path(
        tempfile.gettempdir(), f"relabeler-studio-template-{studio_server.LABEL_STUDIO_VERSION}")))
    with tempfile.TemporaryDirectory(prefix="relabeler-bench-") as tmp:
        data_dir = Path(tmp, "studio")
        if studio_server.is_initialised(template):
            studio_server.copy_data_dir(template, data_dir)
        server = studio_server.start_server(data_dir)
        try:
            client = StudioClient(server.url, server.credentials.token)
            started = time.perf_counter()
            store = make_run(str(Path(tmp, "run")), n_train=args.tasks, n_acquire=0)
            print(f"synthetic run of {args.tasks} training samples in "
                  f"{time.perf_counter() - started:.1f} s")

            # baseline: one request per task, on a slice
            evidence = RunEvidence.load(store)
            spec = LabelingSpec.for_classes(evidence.classes)
            ids = list(evidence.suspects["id"][: args.baseline_tasks])
            tasks = [build_task(s, spec, priority=i + 1)
                     for i, s in enumerate(evidence.train_samples(ids))]
            base = client.create_project("bench baseline", spec.xml)
            started = time.perf_counter()
            for task in tasks:
                client.import_tasks(base.id, [task])
            baseline_push = len(tasks) / (time.perf_counter() - started)

            started = time.perf_counter()
            result = push(store, client, project_title="bench push", budget=args.tasks,
                          batch_size=args.batch_size, progress=True)
            push_seconds = time.perf_counter() - started
            assert result.total_tasks == args.tasks, result
            push_rate = args.tasks / push_seconds
            print(f"push: {args.tasks} tasks with predictions in {push_seconds:.1f} s = "
                  f"{push_rate:.0f} tasks/s (baseline, one request per task: "
                  f"{baseline_push:.0f} tasks/s; ratio {push_rate / baseline_push:.1f}x)")

            manifest = read_manifest(store).sort_values("priority")
            task_ids = [int(t) for t in manifest["task_id"][: args.annotations]]
            seconds = annotate(client, task_ids)
            print(f"answered {len(task_ids)} tasks through the API in {seconds:.1f} s "
                  f"(setup, not timed below)")

            started = time.perf_counter()
            pulled = pull(store, client)
            pull_seconds = time.perf_counter() - started
            assert pulled.tasks_changed == len(task_ids), pulled
            started = time.perf_counter()
            again = pull(store, client)
            noop_seconds = time.perf_counter() - started
            assert again.tasks_changed == 0, again
            print(f"pull: {len(task_ids)} annotations in {pull_seconds:.1f} s = "
                  f"{len(task_ids) / pull_seconds:.0f} annotations/s; {pulled.corrections} "
                  f"corrections (pulling again with nothing new: {noop_seconds:.2f} s, "
                  f"{pull_seconds / max(noop_seconds, 1e-9):.0f}x faster)")
        finally:
            studio_server.stop_server(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
