"""What the Kubernetes checks share: the files, the Kubernetes versions, and the chart as helm renders it.

The chart is Dagster's own, rendered by the real helm (``helm template``, and ``helm lint
--strict``) with deploy/kubernetes/values.yaml, once per Kubernetes version under test, its
values schema enforced offline against the Kubernetes definitions kubernetes_validate bundles
(testkit.chart). Where it comes from: ``DAGSTER_CHART`` (a chart folder or .tgz), else
``.charts/dagster`` (``make chart``); helm from PATH, else ``make helm``'s. Without either,
the tests that need the rendering are skipped, saying what is missing and how to get it.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from referencing import Registry, Resource

from template_tools import kubernetes as generator
from template_tools.locations import ROOT
from testkit import chart as charts

KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
VALUES = KUBERNETES_DIR / "values.yaml"
#: Every plain manifest shipped: what `kubectl apply -f manifests/` applies, and the trial extras.
MANIFEST_FILES = sorted((KUBERNETES_DIR / "manifests").glob("*.yaml")) + sorted((KUBERNETES_DIR / "dev").glob("*.yaml"))
#: The oldest Kubernetes the deployment targets, and the newest kubernetes_validate knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
RELEASE = NAMESPACE = generator.RELEASE
#: What the session rendered with, for the summary at its end.
_RAN_AGAINST: dict[str, str] = {}
#: Why the chart was not rendered, if it was not (for the same summary).
_NOT_RENDERED: list[str] = []


def _skip(reason: str) -> NoReturn:
    _NOT_RENDERED.append(reason)
    pytest.skip(reason)


def documents(path: Path) -> list[dict[str, Any]]:
    """The resources of a (multi-document) YAML file, empty documents left out."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def definitions_file(version: str, *, strict: bool) -> Path:
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    return base / f"v{version}-local{'-strict' if strict else ''}" / "_definitions.json"


def kubernetes_definitions(version: str) -> Registry:
    """A JSON Schema registry holding kubernetes_validate's strict OpenAPI definitions for ``version``."""
    contents = json.loads(definitions_file(version, strict=True).read_text(encoding="utf-8"))
    return Registry().with_resource(contents["$id"], Resource.from_contents(contents))


def pod_spec(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec of a Deployment, StatefulSet or Job (None for other kinds)."""
    spec = resource.get("spec", {})
    return spec["template"]["spec"] if "template" in spec else None


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What breaks the "restricted" Pod Security Standard (and the stack's read-only roots) in a pod spec.

    The standard's rules (kubernetes.io/docs/concepts/security/pod-security-standards): non-root,
    the RuntimeDefault seccomp profile, no privilege escalation, every capability dropped, only
    the volume types it allows, no host namespaces or ports; plus what the stack adds to it:
    read-only root filesystems and a memory limit on every container.
    """
    found = []
    pod_context = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key}: true")
    allowed = {
        "configMap",
        "secret",
        "emptyDir",
        "persistentVolumeClaim",
        "projected",
        "downwardAPI",
        "csi",
        "ephemeral",
    }
    for volume in pod.get("volumes") or []:
        if set(volume) - {"name"} - allowed:
            found.append(f"volume {volume['name']}: {sorted(set(volume) - {'name'})}")
    for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
        name, context = container["name"], container.get("securityContext") or {}
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        if run_as_non_root is not True or user == 0:
            found.append(f"{name}: runAsNonRoot {run_as_non_root}, runAsUser {user}")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile {seccomp}")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation {context.get('allowPrivilegeEscalation')}")
        if (context.get("capabilities") or {}).get("drop") != ["ALL"] or (context.get("capabilities") or {}).get("add"):
            found.append(f"{name}: capabilities {context.get('capabilities')}")
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: readOnlyRootFilesystem {context.get('readOnlyRootFilesystem')}")
        if not (container.get("resources") or {}).get("limits", {}).get("memory"):
            found.append(f"{name}: no memory limit")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"{name}: hostPort")
    return found


@dataclass
class Rendering:
    """The objects ``helm template`` rendered, with lookups by kind and name."""

    objects: list[dict[str, Any]]
    chart_version: str
    by_kind: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for resource in self.objects:
            self.by_kind.setdefault(resource["kind"], {})[resource["metadata"]["name"]] = resource

    def names(self, kind: str) -> set[str]:
        return set(self.by_kind.get(kind, {}))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = self.by_kind.get(kind, {}).get(name)
        assert found is not None, f"the chart renders no {kind} {name!r} (it renders {sorted(self.names(kind))})"
        return found

    def instance(self) -> dict[str, Any]:
        """The dagster.yaml every Dagster pod reads: the chart's instance ConfigMap."""
        config_map = self.get("ConfigMap", generator.INSTANCE_CONFIG_MAP)
        loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["dagster.yaml"])
        return loaded

    def container(self, deployment: str) -> dict[str, Any]:
        """The main container of a rendered Deployment."""
        containers: list[dict[str, Any]] = self.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
        return containers[0]

    def env(self, deployment: str) -> dict[str, str]:
        """The literal env vars of a rendered Deployment's main container."""
        return {item["name"]: item["value"] for item in self.container(deployment).get("env", []) if "value" in item}


@pytest.fixture(scope="session")
def helm() -> str:
    found = charts.find_helm()
    if found is None:
        _skip("no helm: put one on PATH, or run `make helm` (installs a pinned one into .venv/bin)")
    return found


@pytest.fixture(scope="session")
def chart_source() -> Path:
    found = charts.find_chart()
    if found is None:
        _skip(
            f"no Dagster Helm chart: run `make chart` (fetches {generator.CHART_VERSION}), or set "
            f"{charts.CHART_SETTING}=<a chart folder or .tgz>"
        )
    return found


@pytest.fixture(scope="session")
def charts_by_version(
    helm: str, chart_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, charts.OfflineChart]:
    """The chart, prepared for each Kubernetes version (its schema's definitions that version's)."""
    prepared = {}
    for version in KUBERNETES_VERSIONS:
        definitions = json.loads(definitions_file(version, strict=False).read_text(encoding="utf-8"))
        workdir = tmp_path_factory.mktemp(f"chart-{version}")
        prepared[version] = charts.OfflineChart.prepare(helm, chart_source, workdir, version, definitions)
    some = next(iter(prepared.values()))
    _RAN_AGAINST.update(chart=f"dagster {some.version} ({chart_source})", helm=charts.helm_version(helm))
    return prepared


@pytest.fixture(scope="session")
def renderings(charts_by_version: dict[str, charts.OfflineChart]) -> dict[str, Rendering]:
    """``helm template`` of values.yaml, per Kubernetes version."""
    return {version: Rendering(chart.template([VALUES]), chart.version) for version, chart in charts_by_version.items()}


@pytest.fixture(scope="session")
def rendering(renderings: dict[str, Rendering]) -> Rendering:
    """The rendering for the newest Kubernetes version (names and settings do not depend on it)."""
    return renderings[KUBERNETES_VERSIONS[-1]]


@pytest.fixture(scope="session")
def values() -> dict[str, Any]:
    """deploy/kubernetes/values.yaml as Helm reads it (anchors and `<<` merges resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig for a cluster that is never contacted (dagster_k8s loads one when it starts)."""
    path = tmp_path_factory.mktemp("kube") / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "offline", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "offline", "user": {"token": "unused"}}],
                "contexts": [{"name": "offline", "context": {"cluster": "offline", "user": "offline"}}],
                "current-context": "offline",
            }
        ),
        encoding="utf-8",
    )
    return path


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Name the chart and helm the Kubernetes tests ran against (or that they did not)."""
    if _RAN_AGAINST:
        terminalreporter.write_line(
            f"tests/kubernetes rendered Dagster's Helm chart {_RAN_AGAINST['chart']} with helm {_RAN_AGAINST['helm']}"
        )
    elif _NOT_RENDERED:
        terminalreporter.write_line(f"tests/kubernetes did NOT render Dagster's Helm chart: {_NOT_RENDERED[0]}")


@dataclass(frozen=True)
class Manifest:
    """One resource of a shipped manifest file."""

    path: Path
    index: int
    resource: dict[str, Any]

    @property
    def id(self) -> str:
        name = self.resource.get("metadata", {}).get("name", "?")
        return f"{self.path.parent.name}/{self.path.name}#{self.index}:{self.resource.get('kind')}/{name}"


def manifests() -> list[Manifest]:
    return [Manifest(path, index, doc) for path in MANIFEST_FILES for index, doc in enumerate(documents(path))]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize by Kubernetes version (``kubernetes_version``) and by shipped resource (``manifest``)."""
    if "kubernetes_version" in metafunc.fixturenames:
        metafunc.parametrize("kubernetes_version", KUBERNETES_VERSIONS)
    if "manifest" in metafunc.fixturenames:
        shipped = manifests()
        metafunc.parametrize("manifest", shipped, ids=[item.id for item in shipped])


@dataclass(frozen=True)
class Gateway:
    """The gateway's Kubernetes config (manifests/gateway-config.yaml) and the pod's env (gateway.yaml)."""

    template: str
    env: dict[str, str]

    def render(self, folder: Path, **env: str) -> str:
        """The config as the image's entrypoint renders it in the pod (``env`` overrides the pod's)."""
        (folder / "nginx.conf.template").write_text(self.template, encoding="utf-8")
        (folder / "resolv.conf").write_text("search dagster.svc.cluster.local\nnameserver 10.96.0.10\n")
        variables = {
            **self.env,
            "PATH": "/usr/bin:/bin",
            "GATEWAY_TEMPLATE": str(folder / "nginx.conf.template"),
            "GATEWAY_RESOLV_CONF": str(folder / "resolv.conf"),
            **env,
        }
        entrypoint = ROOT / "deploy" / "gateway" / "entrypoint.sh"
        result = subprocess.run(["sh", str(entrypoint), "render"], env=variables, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout


@pytest.fixture(scope="session")
def k8s_gateway() -> Gateway:
    manifests = KUBERNETES_DIR / "manifests"
    config_map = next(doc for doc in documents(manifests / "gateway-config.yaml") if doc["kind"] == "ConfigMap")
    deployment = next(doc for doc in documents(manifests / "gateway.yaml") if doc["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway")
    env = {"POD_NAMESPACE": NAMESPACE}  # Kubernetes expands $(POD_NAMESPACE) in the values below
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m[1]], item["value"])
    return Gateway(template=config_map["data"]["nginx.conf.template"], env=env)


@pytest.fixture(scope="session")
def gateway_pod() -> dict[str, Any]:
    """The gateway Deployment's pod template (manifests/gateway.yaml)."""
    deployment = next(
        doc for doc in documents(KUBERNETES_DIR / "manifests" / "gateway.yaml") if doc["kind"] == "Deployment"
    )
    template: dict[str, Any] = deployment["spec"]["template"]
    return template
