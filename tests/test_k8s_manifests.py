"""The Kubernetes manifests under deploy/k8s: parsed and checked for what would break a rollout (no cluster is
needed): every file listed by kustomization.yaml, the HorizontalPodAutoscaler aiming at the gateway Deployment,
every container with an image and resources, HTTP probes on /healthz with a host Django accepts, and only
environment names that llmops/settings.py reads."""

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
IMAGES = {"llmops-portal", "llmops-portal-gpu"}
REQUIRED_ENV = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "ARTIFACT_ROOT", "ALLOWED_HOSTS"}
REQUIRED_DEPLOYMENTS = {"web", "gateway", "worker-cpu", "worker-gpu", "beat"}


@cache
def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    return found


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in documents() if doc["kind"] == kind}


def containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def settings_env_names() -> set[str]:
    source = (ROOT / "llmops" / "settings.py").read_text()
    return set(re.findall(r"""env\w*\(\s*["']([A-Z][A-Z0-9_]*)["']""", source)) | set(
        re.findall(r"""os\.environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""", source)
    )


def test_every_file_parses_and_the_kustomization_lists_each_one():
    assert documents(), "no manifests found"
    for name, doc in documents():
        assert {"apiVersion", "kind"} <= set(doc), f"{name}: a document without apiVersion/kind"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


def test_the_autoscaler_scales_the_gateway_deployment_on_cpu():
    [hpa] = of_kind("HorizontalPodAutoscaler").values()
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "gateway")
    assert "gateway" in of_kind("Deployment")
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
    gateway = containers(of_kind("Deployment")["gateway"])[0]
    assert "cpu" in gateway["resources"]["requests"], "a CPU utilisation target needs a CPU request"


def test_the_deployments_run_the_stack_of_docker_compose():
    deployments = of_kind("Deployment")
    assert set(deployments) >= REQUIRED_DEPLOYMENTS
    assert deployments["beat"]["spec"]["replicas"] == 1
    gpu = containers(deployments["worker-gpu"])[0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert " -Q gpu -c 1 " in " ".join(gpu["command"]) + " "
    assert " -Q cpu " in " ".join(containers(deployments["worker-cpu"])[0]["command"])
    assert "0.0.0.0:8001" in containers(deployments["gateway"])[0]["command"]


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_every_container_has_our_image_resources_and_the_shared_environment(kind):
    for name, workload in of_kind(kind).items():
        for container in containers(workload):
            assert container["image"] in IMAGES, f"{name}: unexpected image {container['image']}"
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"llmops-env", "llmops-secrets"}, name


def test_http_probes_ask_healthz_with_an_allowed_host():
    configmap = of_kind("ConfigMap")["llmops-env"]["data"]
    allowed = configmap["ALLOWED_HOSTS"].split(",")
    probed = set()
    for name, deployment in of_kind("Deployment").items():
        for container in containers(deployment):
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if not ports:
                continue
            for probe in ("readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                assert get["path"] == "/healthz" and get["port"] in ports, f"{name} {probe}"
                host = {h["name"]: h["value"] for h in get.get("httpHeaders", [])}.get("Host")
                assert host in allowed, f"{name} {probe}: Django answers 400 to a Host outside ALLOWED_HOSTS"
            probed.add(name)
    assert probed == {"web", "gateway"}


def test_the_environment_names_are_the_ones_the_settings_read():
    known = settings_env_names()
    configmap = of_kind("ConfigMap")["llmops-env"]["data"]
    secret = of_kind("Secret")["llmops-secrets"]["stringData"]
    names = set(configmap) | set(secret)
    assert names <= known, f"not read by llmops/settings.py: {sorted(names - known)}"
    assert names >= REQUIRED_ENV
    assert set(configmap).isdisjoint(secret)


def test_the_secret_is_a_template_without_real_values():
    secret = of_kind("Secret")["llmops-secrets"]["stringData"]
    assert "REPLACE-ME" in secret["SECRET_KEY"] and "REPLACE-ME" in secret["DATABASE_URL"]


def test_the_artifact_volume_is_shared_and_mounted_at_artifact_root():
    [claim] = of_kind("PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    root = of_kind("ConfigMap")["llmops-env"]["data"]["ARTIFACT_ROOT"]
    for name in ("web", "gateway", "worker-cpu", "worker-gpu"):
        deployment = of_kind("Deployment")[name]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in containers(deployment)[0]["volumeMounts"]}
        assert volumes[mounts[root]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"], name


def test_the_ingress_sends_v1_to_the_gateway_and_the_rest_to_web():
    [ingress] = of_kind("Ingress").values()
    [rule] = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {"/v1": "gateway", "/": "web"}
    services = of_kind("Service")
    for path in rule["http"]["paths"]:
        service = services[path["backend"]["service"]["name"]]
        assert path["backend"]["service"]["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    for name, service in services.items():
        selector = service["spec"]["selector"]
        pods = of_kind("Deployment")[name]["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pods.items(), f"Service {name} selects no pod of its Deployment"
