"""k8s/: who can reach the Ray pods and which pod holds which secret."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

K8S = Path(__file__).parents[2] / "k8s"
RAYJOB_FILES = sorted([K8S / "rayjob-pipeline.yaml", *(K8S / "stages").glob("rayjob-*.yaml")])
# the RayJobs whose driver talks to Label Studio
NEEDS_STUDIO = {"rayjob-pipeline.yaml", "rayjob-push.yaml", "rayjob-pull.yaml",
                "rayjob-next.yaml"}


def _load(path: Path) -> dict:
    (doc,) = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return doc


def _secret_refs(container: dict) -> set[str]:
    names = {e["valueFrom"]["secretKeyRef"]["name"] for e in container.get("env", [])
             if "secretKeyRef" in e.get("valueFrom", {})}
    names |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
    return names


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.name)
def test_every_rayjob_turns_on_ray_token_authentication(path):
    cluster = _load(path)["spec"]["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.name)
def test_the_label_studio_key_reaches_only_the_heads_that_need_it(path):
    cluster = _load(path)["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    workers = [c for group in cluster.get("workerGroupSpecs", [])
               for c in group["template"]["spec"]["containers"]]
    head_secrets = set().union(*(_secret_refs(c) for c in head))
    assert ("relabeler-label-studio" in head_secrets) == (path.name in NEEDS_STUDIO)
    for container in workers:
        assert "relabeler-label-studio" not in _secret_refs(container)


def test_only_the_namespace_reaches_the_ray_pods():
    policy = _load(K8S / "networkpolicy.yaml")
    assert policy["kind"] == "NetworkPolicy"
    spec = policy["spec"]
    assert spec["podSelector"] == {"matchLabels": {"ray.io/is-ray-node": "yes"}}
    assert spec["policyTypes"] == ["Ingress"]
    namespace, operator = spec["ingress"]
    # a bare podSelector (no namespaceSelector, no ipBlock) admits this namespace's pods only
    assert namespace == {"from": [{"podSelector": {}}]}
    # and from outside, the KubeRay operator alone, on the dashboard port alone: it reads the
    # RayJob's status there (blocked, a finished job was never seen to finish)
    assert operator == {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "kuberay-operator"}}}], "ports": [{"port": 8265,
                                                                      "protocol": "TCP"}]}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "networkpolicy.yaml" in kustomization["resources"]
