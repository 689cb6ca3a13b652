"""What recording one webhook event costs `relabeler serve` when the run directory is on an
object store (S3 here: a moto server on loopback, through s3fs as a user's bucket is reached).

An object store has no append: each event reads its file and writes it again whole. The
baseline is one file an hour (the writer before segments); the measured writer goes on in a new
file of the hour once one passes ``SEGMENT_BYTES``. ``--events`` events of a realistic size
(an annotation with a choice, a comment and the prediction Label Studio echoes, trimmed as serve
trims them) are appended in one hour, then read back once as a pull does. Printed: the time of
an append (mean, and the mean of the last tenth, where the hour's file is largest), the bytes
an append moves (read + written), the files, the pull's read time, and each ratio, baseline
over segmented.

    python benchmarks/events.py --events 1250 2500
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relabeler.plugin.events import SEGMENT_BYTES, EventWriter, read_events  # noqa: E402
from relabeler.store import RunStore  # noqa: E402


def event(i: int) -> dict:
    """An ANNOTATION_CREATED as Label Studio 1.23 sends it for a review task, trimmed."""
    spans = [{"id": f"s{j}", "from_name": "evidence", "to_name": "text", "type": "labels",
              "value": {"start": 10 * j, "end": 10 * j + 7, "text": "evidence",
                        "labels": ["evidence"]}, "score": 0.1 * j} for j in range(3)]
    return {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 7, "title": "relabeler review", "label_config": "<View/>" * 40},
        "task": {"id": 1000 + i, "project": 7, "updated_at": "2026-12-07T10:00:00.000000Z"},
        "annotation": {
            "id": 5000 + i, "task": 1000 + i, "project": 7, "completed_by": 3,
            "result": [{"id": "c1", "from_name": "label", "to_name": "text", "type": "choices",
                        "origin": "prediction", "value": {"choices": ["spam"]}},
                       {"id": "n1", "from_name": "note", "to_name": "text", "type": "textarea",
                        "origin": "manual", "value": {"text": ["sender is a shop"]}}, *spans],
            "was_cancelled": False, "ground_truth": False, "lead_time": 12.5,
            "created_at": "2026-12-07T10:00:00.000000Z",
            "updated_at": "2026-12-07T10:00:00.000000Z", "draft_created_at": None,
            "parent_prediction": 9000 + i, "parent_annotation": None, "last_action": None,
            "prediction": {"id": 9000 + i, "model_version": "relabeler-2", "score": 0.93,
                           "result": spans}, "import_id": None, "unique_id": uuid.uuid4().hex,
            "created_username": "annotator@example.com, 3", "created_ago": "0 minutes",
            "bulk_created": False, "updated_by": 3}}


def run(store: RunStore, events: int, *, segment_bytes: int) -> dict[str, float]:
    writer = EventWriter(store, segment_bytes=segment_bytes)
    start = datetime(2026, 12, 7, 10, tzinfo=UTC)
    times, moved = [], 0
    for i in range(events):
        before = store.sizes("studio/events")
        began = time.perf_counter()
        artifact = writer.append(event(i), received_at=start + timedelta(seconds=i * 3600 / events))
        times.append(time.perf_counter() - began)
        size = store.sizes("studio/events")[artifact]
        moved += before.get(artifact, 0) + size  # read whole, written whole
    began = time.perf_counter()
    assert len(read_events(store).events) == events
    pull = time.perf_counter() - began
    tail = times[-max(1, events // 10):]
    return {"append_ms": 1e3 * sum(times) / events, "last_ms": 1e3 * sum(tail) / len(tail),
            "moved_kb": moved / events / 1024, "files": len(store.sizes("studio/events")),
            "pull_s": pull}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1250])
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "bench", "secret": "bench",
               "client_kwargs": {"region_name": "eu-west-1"}}
    try:
        import s3fs
        s3fs.S3FileSystem(**options).mkdir("relabeler-bench")
        print(f"segment {SEGMENT_BYTES // 1024} KiB; baseline: a file an hour")
        print("| events in the hour | writer | append (mean) | append (last tenth) "
              "| KiB moved an append | files | pull's read |")
        print("|---|---|---|---|---|---|---|")
        for n in args.events:
            rows = {}
            for name, segment in (("a file an hour", 1 << 62), ("segmented", SEGMENT_BYTES)):
                store = RunStore(f"s3://relabeler-bench/{uuid.uuid4().hex}",
                                 storage_options=options)
                rows[name] = r = run(store, n, segment_bytes=segment)
                print(f"| {n} | {name} | {r['append_ms']:.1f} ms | {r['last_ms']:.1f} ms "
                      f"| {r['moved_kb']:.0f} | {r['files']} | {r['pull_s']:.2f} s |")
            base, new = rows["a file an hour"], rows["segmented"]
            print(f"| {n} | ratio (baseline / segmented) "
                  f"| {base['append_ms'] / new['append_ms']:.2f}x "
                  f"| {base['last_ms'] / new['last_ms']:.2f}x "
                  f"| {base['moved_kb'] / new['moved_kb']:.1f}x | | "
                  f"{base['pull_s'] / new['pull_s']:.2f}x |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
