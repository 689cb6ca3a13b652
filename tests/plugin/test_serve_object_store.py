"""`relabeler serve` on a run directory in an object store, as k8s/serve.yaml runs it: the
webhook records answers, the live re-rank reads them and moves the waiting tasks, and pull
takes them, on S3 (moto) and GCS (an emulator), with the same results as on a local folder."""

from __future__ import annotations

import fsspec
import pytest
from fastapi.testclient import TestClient

from relabeler.corrections import CORRECTIONS
from relabeler.jobs.live_ranking import LiveRanking
from relabeler.plugin.backend import SECRET_HEADER, create_app
from relabeler.plugin.backend_auth import BasicAuth
from relabeler.plugin.events import read_events
from relabeler.plugin.pull import pull
from relabeler.plugin.push import push
from relabeler.plugin.rerank import Reranker, read_reranks
from relabeler.queue_plan import read_manifest
from relabeler.store import RunStore
from tests.plugin.fake_studio import FakeStudio
from tests.plugin.live_run import CLASSES, make_live_run


class PostingStudio(FakeStudio):
    """The in-memory server, sending each answer event to the backend's /webhook over HTTP."""

    webhook: TestClient

    def _notify(self, notify, action, task_id, *, project_id=None, **body):
        if not notify:
            return
        project = {"id": project_id or self.tasks[task_id]["project"],
                   "label_config": self.label_config}
        response = self.webhook.post("/webhook", json={"action": action, "project": project,
                                                       **body})
        assert response.status_code == 200, response.text


def _serve_a_while(store: RunStore, config, frame, fake: PostingStudio) -> dict:
    """24 answers through the webhook, one re-rank, an answer deleted, a pull: what each
    step left in the run directory."""
    fake.webhook = TestClient(create_app(store, secret="s", auth=BasicAuth("relabeler", "pw")),
                              headers={SECRET_HEADER: "s"})
    first = read_manifest(store).sort_values("priority").head(24)
    truth = frame.set_index("id")["true_label"]
    answers = [fake.annotate(int(task_id), truth[sample_id])
               for sample_id, task_id in zip(first["id"], first["task_id"], strict=True)]
    events = read_events(store).events
    result = Reranker(store, config, client=lambda: fake, ranking=LiveRanking.load)(
        answer_events=len(events))
    fake.delete_annotation(answers[0])
    pulled = pull(store, fake, consensus="majority")
    corrections = store.read_table(CORRECTIONS).to_pandas()
    return {"events": [(e["action"], (e["payload"].get("annotation") or {}).get("id"))
                       for e in read_events(store).events],
            "rerank": (result.answered, result.corrected, result.waiting,
                       result.reprioritised),
            "reranks": len(read_reranks(store)),
            "priorities": read_manifest(store).set_index("id")["priority"].to_dict(),
            "pulled": (pulled.corrections, pulled.deleted),
            "corrections": corrections.set_index("id")[["action", "new_label"]].sort_index()
            .to_dict("index")}


@pytest.mark.slow
def test_serve_on_an_object_store_records_re_ranks_and_pulls_as_on_a_local_folder(
        tmp_path, object_store):
    uri, options = object_store
    seen = {}
    for where in ("local", "remote"):
        local, config, frame = make_live_run(str(tmp_path / where))
        fake = PostingStudio(CLASSES)
        push(local, fake, project_title="live", budget=60, control_share=0.05, acquire=False)
        store = local
        if where == "remote":
            fsspec.filesystem(uri.split("://")[0], **options).put(
                f"{tmp_path / where}/", f"{uri}/", recursive=True)
            store = RunStore(uri, storage_options=options)
            config.run_dir = uri
        seen[where] = _serve_a_while(store, config, frame, fake)
    local, remote = seen["local"], seen["remote"]
    assert len(remote["events"]) == 25 and remote["events"][-1][0] == "ANNOTATIONS_DELETED"
    assert remote["rerank"][:3] == (24, local["rerank"][1], 36)
    assert remote["rerank"][3] > 10 and remote["reranks"] == 1
    assert remote["pulled"] == (23, 1) and len(remote["corrections"]) == 23
    assert remote == local
