"""What the Kubernetes checks share: the files, the Kubernetes versions, and the chart's rendering, emulated.

No cluster, Helm or network here. Where a check needs what the Helm chart would make of
values.yaml (the instance's dagster.yaml, a code location's container context), `Chart`
renders it the way the chart's templates do, following these files of dagster-io/dagster
(helm/dagster): templates/configmap-instance.yaml (835892b45aaa0917bc97102968fe062155b64e19),
helpers/instance/_run-launcher.tpl and helpers/_helpers.tpl (a07d616f8ac33bf62c92e48cc36f9b58d829d12f),
helpers/instance/_run-coordinator.tpl (7b8754699eee13e80a713aec24fa1947d5fe2a14),
helpers/instance/_postgresql.tpl (3f2daa0de14f913d1ed2a78fd44d330ec8088272) and
charts/dagster-user-deployments/templates/helpers/_helpers.tpl (dba87afb26ae634e8074aab3bcb383ee56f254c2).
Only the parts that the values set are rendered; Dagster and dagster_k8s then check the result.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from referencing import Registry, Resource

from template_tools.locations import ROOT

KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
VALUES = KUBERNETES_DIR / "values.yaml"
#: Every plain manifest shipped: what `kubectl apply -f manifests/` applies, and the trial extras.
MANIFEST_FILES = sorted((KUBERNETES_DIR / "manifests").glob("*.yaml")) + sorted((KUBERNETES_DIR / "dev").glob("*.yaml"))
#: The oldest Kubernetes the deployment targets, and the newest kubernetes_validate knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
RELEASE = NAMESPACE = "dagster"


def documents(path: Path) -> list[dict[str, Any]]:
    """The resources of a (multi-document) YAML file, empty documents left out."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def kubernetes_definitions(version: str) -> Registry:
    """A JSON Schema registry holding kubernetes_validate's strict OpenAPI definitions for ``version``."""
    base = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    folder = base / f"v{version}-local-strict"
    contents = json.loads((folder / "_definitions.json").read_text(encoding="utf-8"))
    return Registry().with_resource(contents["$id"], Resource.from_contents(contents))


def snake(name: str) -> str:
    """``pullPolicy`` -> ``pull_policy``: the chart's value names as dagster.yaml keys."""
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


class Chart:
    """values.yaml as the chart renders it, for the parts the checks need."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    @property
    def fullname(self) -> str:
        return RELEASE  # the release name contains the chart's name `dagster`

    def postgres_config(self) -> dict[str, Any]:
        """_postgresql.tpl: what every storage gets."""
        pg = self.values["postgresql"]
        config = {
            "postgres_db": {
                "username": pg["postgresqlUsername"],
                "password": {"env": "DAGSTER_PG_PASSWORD"},
                "hostname": pg["postgresqlHost"],
                "db_name": pg["postgresqlDatabase"],
                "port": pg["service"]["port"],
                "params": pg.get("postgresqlParams", {}),
            }
        }
        if pg.get("postgresqlScheme"):
            config["postgres_db"]["scheme"] = pg["postgresqlScheme"]
        return config

    def postgres_secret(self) -> str:
        return self.values["global"].get("postgresqlSecretName") or f"{self.fullname}-postgresql-secret"

    def run_launcher_config(self) -> dict[str, Any]:
        """_run-launcher.tpl, dagsterYaml.runLauncher.k8s: the K8sRunLauncher's config."""
        k8s = self.values["runLauncher"]["config"]["k8sRunLauncher"]
        config: dict[str, Any] = {
            "load_incluster_config": k8s.get("loadInclusterConfig", True),
            "job_namespace": k8s.get("jobNamespace") or NAMESPACE,
            "image_pull_policy": k8s["imagePullPolicy"],
            "service_account_name": self.fullname,
            "dagster_home": "/opt/dagster/dagster_home",
            "instance_config_map": f"{self.fullname}-instance",
            "postgres_password_secret": self.postgres_secret(),
        }
        for name in ("envVars", "volumeMounts", "volumes", "labels", "resources", "securityContext"):
            if k8s.get(name):
                config[snake(name)] = k8s[name]
        for name in ("envConfigMaps", "envSecrets"):
            if k8s.get(name):
                config[snake(name)] = [source["name"] for source in k8s[name] if "name" in source]
        if k8s.get("failPodOnRunFailure"):
            config["fail_pod_on_run_failure"] = True
        if k8s.get("runK8sConfig"):
            config["run_k8s_config"] = {snake(key): value for key, value in k8s["runK8sConfig"].items() if value}
        return config

    def dagster_yaml(self) -> dict[str, Any]:
        """configmap-instance.yaml: the instance config every Dagster pod reads (and runs get by reference)."""
        values, daemon = self.values, self.values["dagsterDaemon"]
        storage = {"config": self.postgres_config()}
        instance: dict[str, Any] = {
            "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
            "schedule_storage": {
                "module": "dagster_postgres.schedule_storage",
                "class": "PostgresScheduleStorage",
                **storage,
            },
            "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": self.run_launcher_config()},
            "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", **storage},
            "event_log_storage": {
                "module": "dagster_postgres.event_log",
                "class": "PostgresEventLogStorage",
                **storage,
            },
        }
        coordinator = daemon["runCoordinator"]
        if coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator":
            queued = coordinator["config"]["queuedRunCoordinator"]
            config = {"max_concurrent_runs": queued.get("maxConcurrentRuns", -1)}
            for name in ("tagConcurrencyLimits", "dequeueIntervalSeconds", "dequeueUseThreads", "dequeueNumWorkers"):
                if queued.get(name):
                    config[snake(name)] = queued[name]
            instance["run_coordinator"] = {
                "module": "dagster.core.run_coordinator",
                "class": "QueuedRunCoordinator",
                "config": config,
            }
        logs = values["computeLogManager"]
        if logs["type"] == "CustomComputeLogManager":
            instance["compute_logs"] = logs["config"]["customComputeLogManager"]
        monitoring = daemon["runMonitoring"]
        if monitoring["enabled"]:
            instance["run_monitoring"] = {snake(key): value for key, value in monitoring.items()}
        retries = daemon["runRetries"]
        if retries["enabled"]:
            instance["run_retries"] = {snake(key): value for key, value in retries.items()}
        for name in ("sensors", "schedules"):
            threads = daemon[name]
            if threads["useThreads"]:
                instance[name] = {snake(key): value for key, value in threads.items()}
        instance["telemetry"] = {"enabled": values["telemetry"]["enabled"]}
        retention = values["retention"]
        if retention["enabled"]:
            instance["retention"] = {
                kind: {"purge_after_days": retention[kind]["purgeAfterDays"]}
                for kind in ("sensor", "schedule")
                if retention.get(kind)
            }
        instance.update(values.get("additionalInstanceConfig") or {})
        return instance

    def container_context(self, deployment: Mapping[str, Any]) -> dict[str, Any]:
        """dagsterUserDeployments.k8sContainerContext: what a code server gives the runs it launches."""
        k8s: dict[str, Any] = {
            "image_pull_policy": deployment["image"]["pullPolicy"],
            "env_config_maps": [f"{self.fullname}-{deployment['name']}-user-env"]
            + [source["name"] for source in deployment.get("envConfigMaps", []) if "name" in source],
        }
        secrets = [source["name"] for source in deployment.get("envSecrets", []) if "name" in source]
        if secrets:
            k8s["env_secrets"] = secrets
        for name in ("volumeMounts", "volumes", "labels", "resources"):
            if deployment.get(name):
                k8s[snake(name)] = deployment[name]
        k8s["namespace"] = NAMESPACE
        k8s["service_account_name"] = f"{self.fullname}-dagster-user-deployments-user-deployments"
        if isinstance(deployment.get("env"), list):
            k8s["env"] = deployment["env"]
        k8s["run_k8s_config"] = {"pod_spec_config": {"automount_service_account_token": True}}
        return {"k8s": k8s}


@pytest.fixture(scope="session")
def values() -> dict[str, Any]:
    """deploy/kubernetes/values.yaml as Helm reads it (anchors and `<<` merges resolved)."""
    loaded: dict[str, Any] = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="session")
def chart(values: dict[str, Any]) -> Chart:
    return Chart(values)


@pytest.fixture(scope="session")
def definitions() -> Callable[[str], Registry]:
    """``definitions(version)``: the Kubernetes OpenAPI definitions for JSON Schema ``$ref``s."""
    return kubernetes_definitions


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
    env: Mapping[str, str]

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
