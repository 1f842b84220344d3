"""deploy/kubernetes/: the manifests pass Kubernetes' own schemas (kubernetes-validate, strict, offline),
and say what the issue asks: replicas that share the work through mirror.engine.group.id, readiness on
/ready and liveness on /health of the port the engine listens on, the file from the ConfigMap and the
credentials from the Secret through a config provider, both mounted read-only, Prometheus's scrape
annotations, and a grace period that covers the engine's shutdown flush. The ConfigMap's mm2.properties,
with the Secret's keys written where the Deployment mounts them, passes `mirror-engine check-config`."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from engine.cli import parser
from engine.config.loading import load
from engine.coordinator.supervisor import STOP_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
CONTAINERFILE = ROOT / "deploy" / "container" / "Containerfile"
# the oldest and the newest Kubernetes the manifests are checked against
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")


def manifests() -> dict[str, dict]:
    """kind -> the manifest, of every file kustomization.yaml lists."""
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((MANIFESTS / name).read_text()):
            assert document["kind"] not in found, f"two {document['kind']}s"
            found[document["kind"]] = document
    return found


def pod_spec() -> dict:
    return manifests()["Deployment"]["spec"]["template"]["spec"]


def engine_container() -> dict:
    containers = pod_spec()["containers"]
    assert [c["name"] for c in containers] == ["mirror-engine"]
    return containers[0]


def mounts() -> dict[str, dict]:
    """volume kind (configMap, secret) -> {mountPath, readOnly, name of the object}."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    found = {}
    for mount in engine_container()["volumeMounts"]:
        volume = volumes[mount["name"]]
        kind = "configMap" if "configMap" in volume else "secret"
        name = volume[kind]["name"] if kind == "configMap" else volume[kind]["secretName"]
        found[kind] = {"path": mount["mountPath"], "read_only": mount.get("readOnly", False), "object": name}
    return found


def test_kustomization_lists_every_manifest():
    listed = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_kubernetes_schemas(version):
    for manifest in manifests().values():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_a_misspelt_field_fails_the_schema():
    """The schema check can fail: an unknown field is refused in strict mode."""
    deployment = copy.deepcopy(manifests()["Deployment"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="'readinessprobe' was unexpected"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_probes_and_scrape_annotations_ask_the_port_the_engine_listens_on():
    container = engine_container()
    args = parser().parse_args(container["args"])
    assert args.command == "run"
    listen_port = int(args.metrics_listen.rsplit(":", 1)[1])
    assert args.metrics_listen == f"0.0.0.0:{listen_port}"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": listen_port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    annotations = manifests()["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(listen_port),
                           "prometheus.io/path": "/metrics"}


def test_the_grace_period_covers_the_shutdown_flush():
    # the coordinator kills a worker still flushing after STOP_TIMEOUT_S; the kubelet kills the pod after this
    assert STOP_TIMEOUT_S == 90
    assert pod_spec()["terminationGracePeriodSeconds"] == 120


def test_the_file_and_the_credentials_are_mounted_read_only_from_the_configmap_and_the_secret():
    objects = manifests()
    found = mounts()
    assert found["configMap"] == {"path": "/etc/mirror-engine/config", "read_only": True,
                                  "object": objects["ConfigMap"]["metadata"]["name"]}
    assert found["secret"] == {"path": "/etc/mirror-engine/secrets", "read_only": True,
                               "object": objects["Secret"]["metadata"]["name"]}
    args = parser().parse_args(engine_container()["args"])
    assert args.config == f"{found['configMap']['path']}/mm2.properties"
    assert list(objects["ConfigMap"]["data"]) == ["mm2.properties"]
    # every key the file reads through its provider is a key of the Secret, and every key is read
    properties = objects["ConfigMap"]["data"]["mm2.properties"]
    read = set(re.findall(r"\$\{secrets:" + re.escape(found["secret"]["path"]) + r":([\w.-]+)\}", properties))
    assert read == set(objects["Secret"]["stringData"]) == {"primary-password", "backup-password"}


def test_the_pod_runs_unprivileged_as_the_image_user():
    pod, container = pod_spec(), engine_container()
    image_user = re.search(r"^USER (\d+):(\d+)$", CONTAINERFILE.read_text(), re.M)
    assert image_user
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(image_user.group(1)), int(image_user.group(2)))
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}


@pytest.fixture
def mounted_config(tmp_path) -> Path:
    """The ConfigMap's mm2.properties with the Secret's keys as files, as the pod sees them, here."""
    objects, found = manifests(), mounts()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for key, value in objects["Secret"]["stringData"].items():
        (secrets / key).write_text(value)
    config = tmp_path / "mm2.properties"
    config.write_text(objects["ConfigMap"]["data"]["mm2.properties"].replace(found["secret"]["path"], str(secrets)))
    return config


def test_the_replicas_share_the_work_through_one_group(mounted_config):
    assert manifests()["Deployment"]["spec"]["replicas"] >= 2
    loaded = load(str(mounted_config), quiet=True)
    assert loaded.group_id == "mirror-engine-primary-to-backup"
    assert [flow.name for flow in loaded.flows] == ["primary->backup"]


def test_the_configmaps_file_passes_check_config(mounted_config):
    checked = subprocess.run([sys.executable, "-m", "engine", "check-config", str(mounted_config)],
                             capture_output=True, text=True, timeout=60)
    assert (checked.returncode, checked.stderr) == (0, ""), checked.stdout + checked.stderr
    for password in manifests()["Secret"]["stringData"].values():
        assert password not in checked.stdout
    assert checked.stdout.count("sasl.password = [hidden]") == 2
