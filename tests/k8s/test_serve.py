"""k8s/serve.yaml: `relabeler serve` in the cluster, as Label Studio must reach it: one pod
that listens where its Service sends, registers the URL the Service answers at, takes its
secrets from Secrets, and is probed on the backend's open route."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

K8S = Path(__file__).parents[2] / "k8s"
SERVE = K8S / "serve.yaml"
NAMESPACE = "relabeler"
SECRETISH = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    loaded = [d for d in yaml.safe_load_all(SERVE.read_text()) if d is not None]
    by_kind = {d["kind"]: d for d in loaded}
    assert len(by_kind) == len(loaded) == 3
    return by_kind


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def _container(docs) -> dict:
    (container,) = docs["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_one_pod_and_a_new_one_only_after_the_old_is_gone(docs):
    # the event log has one writer: two pods at once would each rewrite the day's file on an
    # object store and lose the other's events
    spec = docs["Deployment"]["spec"]
    assert docs["Deployment"]["apiVersion"] == "apps/v1"
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"].items() <= \
        spec["template"]["metadata"]["labels"].items()


def test_the_command_is_serve_with_the_mounted_config_on_every_interface(docs):
    from relabeler.cli import build_parser

    container = _container(docs)
    command = container["command"]
    assert command[:2] == ["relabeler", "serve"]
    args = build_parser().parse_args(command[1:])  # exits on a flag serve does not have
    assert vars(args)["studio.backend_host"] == "0.0.0.0"  # a pod's 127.0.0.1 is its own
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in docs["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    config_dir, _, file = _flag(command, "--config").rpartition("/")
    assert file == "relabeler.toml"
    assert volumes[mounts[config_dir]]["configMap"]["name"] == "relabeler-config"


def test_label_studio_is_sent_to_the_service_that_reaches_the_port_serve_listens_on(docs):
    container, service = _container(docs), docs["Service"]
    command = container["command"]
    port = int(_flag(command, "--port"))
    (named,) = [p for p in container["ports"] if p["containerPort"] == port]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (named["name"], port)
    assert service["spec"]["selector"].items() <= \
        docs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert _flag(command, "--backend-url") == (
        f"http://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:"
        f"{service_port['port']}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] in (named["name"], port)
    # Label Studio checks the backend's health through the Service while serve registers,
    # before the pod's readiness probe has passed: routed to Ready pods only, it failed
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_the_probes_ask_the_route_that_answers_without_credentials(docs, tmp_path):
    from relabeler.plugin.backend import create_app
    from relabeler.plugin.backend_auth import BasicAuth
    from tests.plugin.synthetic import make_run

    app = create_app(make_run(str(tmp_path / "run"), n_train=20, n_acquire=0), secret="s",
                     auth=BasicAuth("relabeler", "pw"))
    client = TestClient(app)
    container = _container(docs)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        response = client.get(container[probe]["httpGet"]["path"])
        assert response.status_code == 200 and response.json()["status"] == "UP"
    assert client.post("/predict", json={"tasks": []}).status_code == 401


def test_secrets_come_from_secrets_under_the_names_serve_reads(docs):
    from relabeler.config import StudioConfig

    studio = StudioConfig()
    env = {e["name"]: e for e in _container(docs)["env"]}
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items()
            if "valueFrom" in e}
    assert refs == {
        studio.api_key_env: {"name": "relabeler-label-studio", "key": "api-key"},
        studio.webhook_secret_env: {"name": "relabeler-serve", "key": "webhook-secret"},
        studio.backend_credentials_env: {"name": "relabeler-serve", "key": "credentials"}}
    assert not [name for name, e in env.items() if SECRETISH.search(name) and "value" in e]
    # the Label Studio the RayJobs talk to
    pull = yaml.safe_load((K8S / "stages" / "rayjob-pull.yaml").read_text())
    (head,) = pull["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert env["LABEL_STUDIO_URL"] == {e["name"]: e for e in head["env"]}["LABEL_STUDIO_URL"]
    readme = (K8S.parent / "README.md").read_text()
    assert "create secret generic relabeler-serve" in readme
    assert "--from-literal=webhook-secret=" in readme
    assert "--from-literal=credentials=" in readme
    assert "kubectl -n relabeler apply -f k8s/serve.yaml" in readme


def test_a_stopping_pod_has_time_to_end_a_re_rank_between_two_tasks(docs):
    from relabeler.plugin.rerank import RerankWorker

    waits = inspect.signature(RerankWorker.stop).parameters["timeout"].default
    grace = docs["Deployment"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= waits + 10


def test_the_pod_runs_as_a_numbered_user_that_is_not_root(docs):
    # runAsNonRoot with an image whose USER is a name fails to start ("image has non-numeric
    # user, cannot verify user is non-root") unless the pod names the uid
    context = docs["Deployment"]["spec"]["template"]["spec"]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0
    assert _container(docs)["securityContext"]["allowPrivilegeEscalation"] is False


def test_the_image_is_the_rayjobs_and_no_gpu_is_asked(docs):
    container = _container(docs)
    pull = (K8S / "stages" / "rayjob-pull.yaml").read_text()
    assert f"image: {container['image']}" in pull
    for kind in ("requests", "limits"):
        assert "nvidia.com/gpu" not in container["resources"][kind]
    assert container["resources"]["requests"] == container["resources"]["limits"]


def test_only_the_namespace_reaches_the_backend(docs):
    policy = docs["NetworkPolicy"]["spec"]
    labels = docs["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["from"] == [{"podSelector": {}}]
    assert rule["ports"] == [{"port": int(_flag(_container(docs)["command"], "--port")),
                              "protocol": "TCP"}]
    # applying the configuration does not start it: serve comes after the first push
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "serve.yaml" not in kustomization["resources"]
