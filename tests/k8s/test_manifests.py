"""k8s/: the RayJobs validate against KubeRay's RayJob CRD and follow the house rules (a CPU
head, a GPU group, secrets from Secrets, a pinned image); the image, the kustomization, the run
config and the Label Studio values hang together.

What ``kubectl apply --dry-run=client --validate=strict`` would check without a cluster: every
document parses and names its apiVersion, kind and name; every RayJob is valid under the CRD's
``openAPIV3Schema`` (pod templates included) with no field the schema does not declare (the API
server would drop such a field silently); every file the kustomization names exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).parents[2]
K8S = ROOT / "k8s"
# KubeRay's RayJob CRD, shipped with the tests (source and licence: schemas/README.md)
RAYJOB_CRD = Path(__file__).parent / "schemas" / "ray.io_rayjobs.yaml"
RAYJOB_FILES = sorted([K8S / "rayjob-pipeline.yaml", *(K8S / "stages").glob("rayjob-*.yaml")])
STAGES = ("data", "train", "extract", "score", "attribute", "push", "pull", "next", "retrain",
          "report")
CONFIG_MOUNT = "/etc/relabeler"
GPU = "nvidia.com/gpu"
SECRETISH = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)


def _docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _rayjob(path: Path) -> dict:
    (doc,) = _docs(path)
    return doc


@pytest.fixture(scope="module")
def rayjob_schema() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser: 0.2 s, not 5 s
    crd = yaml.load(RAYJOB_CRD.read_text(encoding="utf-8"), Loader=loader)
    assert (crd["kind"], crd["metadata"]["name"]) == ("CustomResourceDefinition", "rayjobs.ray.io")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


def _undeclared_fields(value, schema: dict, path: str = "") -> list[str]:
    """Keys the structural schema does not declare (kubectl --validate=strict rejects them)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return []
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        found = []
        for key, item in value.items():
            if properties is not None and key in properties:
                found += _undeclared_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += _undeclared_fields(item, extra, f"{path}.{key}")
            elif properties is not None and extra is not True:
                found.append(f"{path}.{key}")
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [f for i, item in enumerate(value)
                for f in _undeclared_fields(item, schema["items"], f"{path}[{i}]")]
    return []


def _image_ray_version() -> str:
    match = re.search(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-py\d+-cu\d+\s*$",
                      (K8S / "Dockerfile").read_text(), re.MULTILINE)
    assert match, "k8s/Dockerfile must start FROM a pinned rayproject/ray:X.Y.Z-pyNNN-cuNNN"
    return match.group(1)


def _containers(job: dict) -> dict[str, list[dict]]:
    spec = job["spec"]["rayClusterSpec"]
    return {"head": spec["headGroupSpec"]["template"]["spec"]["containers"],
            **{g["groupName"]: g["template"]["spec"]["containers"]
               for g in spec.get("workerGroupSpecs", [])}}


def _commands(entrypoint: str) -> list[list[str]]:
    return [shlex.split(part) for part in entrypoint.split("&&")]


def test_there_is_a_rayjob_per_stage_and_one_for_the_pipeline():
    names = {p.name for p in RAYJOB_FILES}
    assert names == {"rayjob-pipeline.yaml", *(f"rayjob-{s}.yaml" for s in STAGES)}


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.stem)
def test_rayjob_is_valid_under_the_kuberay_crd(path, rayjob_schema):
    job = _rayjob(path)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    # RayJob names feed the names of the RayCluster and its pods: a DNS-1123 label, short
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", job["metadata"]["name"])
    assert len(job["metadata"]["name"]) <= 47
    validator = jsonschema.Draft7Validator(rayjob_schema)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(job)]
    assert not errors, "\n".join(errors)
    assert not _undeclared_fields(job, rayjob_schema)


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.stem)
def test_rayjob_follows_the_house_rules(path):
    job = _rayjob(path)
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == _image_ray_version()

    head = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    for container in head:
        for kind in ("requests", "limits"):
            assert GPU not in container["resources"].get(kind, {}), "the head is a CPU pod"

    groups = cluster["workerGroupSpecs"]
    assert [g["groupName"] for g in groups] == ["gpu-group"]
    (group,) = groups
    pod = group["template"]["spec"]
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    for container in pod["containers"]:
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], "GPU pods: requests = limits"
        assert int(resources["limits"][GPU]) >= 1
    # every pod, the head too (the driver puts the kNN shards and the tables Ray Data reads),
    # has its object store in memory: without a /dev/shm volume Ray falls back to /tmp on disk
    for spec_ in (cluster["headGroupSpec"]["template"]["spec"], pod):
        shm = {v["name"] for v in spec_["volumes"]
               if v.get("emptyDir", {}).get("medium") == "Memory"}
        assert shm and all(any(m["name"] in shm and m["mountPath"] == "/dev/shm"
                               for m in c["volumeMounts"]) for c in spec_["containers"])


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.stem)
def test_every_pod_runs_the_pinned_relabeler_image(path):
    # the image the Dockerfile and README build (`docker build ... -t IMAGE`): the manifests are
    # created with `kubectl create -f`, which no kustomize image transform reaches
    built = re.search(r"docker build -f k8s/Dockerfile -t (\S+) \.",
                      (K8S / "Dockerfile").read_text()).group(1)
    readme = (K8S.parent / "README.md").read_text()
    assert f"docker build -f k8s/Dockerfile -t {built} ." in readme
    assert built.rpartition(":")[2] not in ("", "latest")
    for containers in _containers(_rayjob(path)).values():
        for container in containers:
            assert container["image"] == built


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.stem)
def test_secrets_come_from_secrets_never_inline(path):
    job = _rayjob(path)
    for containers in _containers(job).values():
        for container in containers:
            for env in container.get("env", []):
                if SECRETISH.search(env["name"]):
                    assert "value" not in env, f"{env['name']} is inline in {path.name}"
                    assert "secretKeyRef" in env["valueFrom"], env
            for source in container.get("envFrom", []):
                assert "secretRef" in source or "configMapRef" in source
    verbs = {command[1] for command in _commands(job["spec"]["entrypoint"])}
    if verbs & {"push", "pull", "next"}:
        (head,) = _containers(job)["head"]
        token = {e["name"]: e for e in head.get("env", [])}["LABEL_STUDIO_API_KEY"]
        assert token["valueFrom"]["secretKeyRef"] == {"name": "relabeler-label-studio",
                                                      "key": "api-key"}


@pytest.mark.parametrize("path", RAYJOB_FILES, ids=lambda p: p.stem)
def test_entrypoint_runs_relabeler_verbs_with_the_mounted_config(path):
    from relabeler.cli import build_parser

    job = _rayjob(path)
    parser = build_parser()
    verbs = set(parser._subparsers._group_actions[0].choices)
    (head,) = _containers(job)["head"]
    mounts = {m["name"]: m["mountPath"] for m in head["volumeMounts"]}
    volumes = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["volumes"]
    (config_volume,) = [v for v in volumes if v.get("configMap", {}).get("name")
                        == "relabeler-config"]
    assert mounts[config_volume["name"]] == CONFIG_MOUNT
    commands = _commands(job["spec"]["entrypoint"])
    for command in commands:
        assert command[0] == "relabeler"
        assert command[command.index("--config") + 1] == f"{CONFIG_MOUNT}/relabeler.toml"
    assert not [c[1] for c in commands if c[1] not in verbs], "a verb the CLI does not have"
    for command in commands:
        parser.parse_args(command[1:])  # exits (SystemExit) on an unknown flag


def test_the_run_config_loads():
    from relabeler.config import load_config

    config = load_config(K8S / "relabeler.toml")
    assert config.run_dir.startswith(("s3://", "gs://"))  # no shared disk on a cluster
    text = (K8S / "relabeler.toml").read_text()
    assert not re.search(r"(?im)^\s*\w*(key|token|secret|password)\w*\s*=", text)


def test_kustomization_resolves_like_kubectl_apply_k():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["namespace"] == "relabeler"
    for name in kustomization["resources"]:
        for doc in _docs(K8S / name):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
            assert doc["kind"] != "Secret", "secrets are created by the platform team"
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "relabeler-config"
    for name in generator["files"]:
        assert (K8S / name).is_file()
    # the RayJobs name the ConfigMap inside a CRD: the name must not get a hash suffix
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True
    # applying the configuration starts no job: a single stage created after it would run
    # beside the whole pipeline on the same run directory
    assert not any("rayjob" in name for name in kustomization["resources"])


def test_the_image_pins_ray_to_the_rayjobs_version_and_the_tested_one():
    import ray

    dockerfile = (K8S / "Dockerfile").read_text()
    constraints = (K8S / "constraints.txt").read_text()
    version = _image_ray_version()
    assert f"ray=={version}" in constraints.split()
    assert version == ray.__version__, "the image ships the Ray the tests ran with"
    pins = [line for line in constraints.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", pin) for pin in pins), pins
    # every pin of a package the suite has is the version it ran with (transformers was pinned
    # a release behind; gcsfs was pinned to a release that does not exist); faiss-gpu is not
    # installed here
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    drift = {}
    for name, pinned in (pin.split("==") for pin in pins):
        try:
            if installed(name) != pinned:
                drift[name] = (pinned, installed(name))
        except PackageNotFoundError:
            continue
    assert drift == {}, f"k8s/constraints.txt pins (pinned, tested): {drift}"
    assert "-c k8s/constraints.txt" in dockerfile
    assert re.search(r"^COPY .*relabeler \./relabeler$", dockerfile, re.MULTILINE)
    assert ":latest" not in dockerfile


def test_label_studio_values_use_postgresql_and_secrets():
    from relabeler.plugin.server import LABEL_STUDIO_VERSION

    path = K8S / "label-studio" / "values.yaml"
    values = yaml.safe_load(path.read_text())
    assert values["postgresql"]["enabled"] is True
    assert values["postgresql"]["auth"]["existingSecret"]
    assert "password" not in values["postgresql"]["auth"]
    pg = values["global"]["pgConfig"]
    assert pg["host"] and pg["password"]["secretName"] and pg["password"]["secretKey"]
    assert "sqlite" not in path.read_text().lower().replace("never sqlite", "")
    assert values["global"]["image"]["tag"] == LABEL_STUDIO_VERSION
    secrets = values["global"]["extraEnvironmentSecrets"]
    assert secrets["LABEL_STUDIO_USER_TOKEN"] == {"secretName": "relabeler-label-studio",
                                                  "secretKey": "api-key"}
    inline = values["global"].get("extraEnvironmentVars", {})
    # (a switch named like a secret, LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN, is not one)
    assert not [name for name, value in inline.items()
                if SECRETISH.search(name) and value not in ("true", "false")]
    # a token given by LABEL_STUDIO_USER_TOKEN is a legacy token: without this an organization
    # that Label Studio 1.23 creates refuses it, as `relabeler studio up`'s server would
    assert server_env_value("LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN") == "true"
    assert inline["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"


def server_env_value(name: str) -> str:
    import tempfile

    from relabeler.plugin.server import server_env

    with tempfile.TemporaryDirectory() as folder:
        return server_env(Path(folder))[name]


def _label_studio_banned_subnets() -> list[str]:
    """The SSRF protection's default banned list of the Label Studio the tests run."""
    from relabeler.plugin.server import studio_venv

    (io,) = studio_venv().glob("lib/python*/site-packages/label_studio/core/utils/io.py")
    text = io.read_text()
    block = text[text.index("default_banned_subnets = ["):]
    return re.findall(r"'([^']+)'", block[:block.index("]")])


def test_label_studio_reaches_serve_and_bans_every_other_default_subnet():
    """serve's Service has a cluster-internal address, which Label Studio's SSRF protection
    bans: the values take one private range off its own list and keep the protection."""
    values = yaml.safe_load((K8S / "label-studio" / "values.yaml").read_text())
    env = values["global"]["extraEnvironmentVars"]
    assert "SSRF_PROTECTION_ENABLED" not in env and "LABEL_STUDIO_SSRF_PROTECTION_ENABLED" \
        not in env and "ML_BLOCK_LOCAL_IP" not in env
    assert env["USE_DEFAULT_BANNED_SUBNETS"] == "false"
    banned = env["USER_ADDITIONAL_BANNED_SUBNETS"].split(",")
    defaults = _label_studio_banned_subnets()
    assert len(defaults) > 20 and "127.0.0.0/8" in banned
    assert [s for s in defaults if s not in banned] == ["10.0.0.0/8"]
    assert set(banned) <= set(defaults) and len(banned) == len(set(banned))


def _pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return {name.lower(): version for name, version in
            (line.split("==") for line in lines if line and not line.startswith("#"))}


def test_the_images_pins_are_the_versions_make_setup_installs():
    # make setup installs constraints.txt: an image built from other versions than the ones
    # the suite passed with would run untested code
    root = _pins(K8S.parent / "constraints.txt")
    image = _pins(K8S / "constraints.txt")
    assert "transformers" in root and "ray" in root
    differ = {name: (pinned, root[name]) for name, pinned in image.items()
              if name in root and root[name] != pinned}
    assert differ == {}, f"k8s/constraints.txt against constraints.txt: {differ}"
    # only the image's own package (GPU FAISS) is not in the suite's environment
    assert set(image) - set(root) <= {"faiss-gpu-cu12"}
