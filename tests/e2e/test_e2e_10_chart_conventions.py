"""The stack's images run unchanged under Dagster's Helm chart (deploy/kubernetes).

There is no cluster here, so the images are booted in Docker the way the chart's templates
run them (helm/dagster): its commands and arguments (the webserver's `dagster-webserver ...`,
which the instance image answers with the stack's webserver), the env vars it injects, its
DAGSTER_HOME with a chart-like instance config (dagster-postgres storage, the values' run
launcher and run queue) mounted there, the generated workspace at /dagster-workspace/, the
identity key the webserver checks, and the pod security context the values set (numeric
non-root user, read-only root with an emptyDir for /tmp, no capabilities). A throw-away
Postgres stands in for the external one. What only a cluster can show (pods launched by the
run launcher, NetworkPolicies) is in docs/kubernetes.md.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from platform_services.access import identity
from template_tools import kubernetes
from template_tools.locations import ROOT
from testkit.stack import LOCATIONS_QUERY, Stack, free_port, wait_for

#: What the chart gets: the webserver's port, each user deployment's port and arguments, the
#: run launcher and run queue; and the workspace it mounts (manifests/workspace-config.yaml).
VALUES = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "values.yaml").read_text())
WEBSERVER_PORT = VALUES["dagsterWebserver"]["service"]["port"]
DEPLOYMENTS = VALUES["dagster-user-deployments"]["deployments"]
WORKSPACE_YAML = yaml.safe_load((ROOT / kubernetes.WORKSPACE_CONFIG).read_text().split("---\n", 1)[1])["data"][
    "workspace.yaml"
]
SERVERS = [entry["grpc_server"] for entry in yaml.safe_load(WORKSPACE_YAML)["load_from"]]
NAMESPACE = "dagster"
#: The key the gateway's auth service signs identities with; the webserver answers no other request.
IDENTITY_KEY = identity.new_key()

#: The instance config the chart renders (templates/configmap-instance.yaml) for external
#: Postgres with postgresqlScheme: postgresql+psycopg2 and the K8sRunLauncher.
POSTGRES_DB = {
    "username": "dagster",
    "password": {"env": "DAGSTER_PG_PASSWORD"},
    "hostname": "postgresql",
    "db_name": "dagster",
    "port": 5432,
    "params": {},
    "scheme": "postgresql+psycopg2",
}
CHART_INSTANCE = {
    "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
    "schedule_storage": {
        "module": "dagster_postgres.schedule_storage",
        "class": "PostgresScheduleStorage",
        "config": {"postgres_db": POSTGRES_DB},
    },
    "run_storage": {
        "module": "dagster_postgres.run_storage",
        "class": "PostgresRunStorage",
        "config": {"postgres_db": POSTGRES_DB},
    },
    "event_log_storage": {
        "module": "dagster_postgres.event_log",
        "class": "PostgresEventLogStorage",
        "config": {"postgres_db": POSTGRES_DB},
    },
    # The chart's CustomRunLauncher and CustomRunCoordinator templates write these as they are.
    "run_launcher": {
        key: VALUES["runLauncher"]["config"]["customRunLauncher"][key] for key in ("module", "class", "config")
    },
    "run_coordinator": {
        key: VALUES["dagsterDaemon"]["runCoordinator"]["config"]["customRunCoordinator"][key]
        for key in ("module", "class", "config")
    },
    "compute_logs": {"module": "dagster.core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"},
    "run_monitoring": {"enabled": True, "start_timeout_seconds": 300, "poll_interval_seconds": 120},
    "run_retries": {"enabled": True, "max_retries": 2},
    "telemetry": {"enabled": False},
}

#: What the chart's templates put in every Dagster container's environment (shared_env,
#: the postgres secret's key, the run-launcher's env config map).
CHART_ENV = {
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_K8S_PIPELINE_RUN_NAMESPACE": NAMESPACE,
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "dagster-pipeline-env",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    # An in-cluster pod's API address (load_incluster_config reads it and the token below).
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
}

#: The pod and container security context deploy/kubernetes/values.yaml sets.
POD_SECURITY = [
    "--user",
    "10001:10001",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
]


class ChartLikeDeployment:
    """Containers of one "release" on their own Docker network; removed at the end."""

    def __init__(self, stack: Stack, config_dir: Path) -> None:
        self.stack = stack
        self.name = f"{stack.project}-chart"
        self.config_dir = config_dir
        self.password = secrets.token_urlsafe(16)
        self.webserver_port = free_port()
        self.containers: list[str] = []

    def image(self, name: str) -> str:
        return f"{self.stack.project}-{name}:{self.stack.image_tag}"

    def run(self, alias: str, image: str, *args: str, env: dict[str, str], options: tuple[str, ...] = ()) -> str:
        container = f"{self.name}-{alias}"
        env_args = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        self.stack.docker(
            "run", "--detach", "--name", container, "--network", self.name, "--network-alias", alias,
            "--memory", "1g", "--pids-limit", "512", *env_args, *options, image, *args,
        )  # fmt: skip
        self.containers.append(container)
        return container

    def dagster(
        self, alias: str, image: str, *args: str, env: dict[str, str] | None = None, options: tuple[str, ...] = ()
    ) -> str:
        """A Dagster container as the chart's pods get it: its env, config, security context."""
        mounts = (
            # As the chart mounts its ConfigMaps: dagster.yaml alone (subPath), the workspace's folder.
            "--volume", f"{self.config_dir / 'instance' / 'dagster.yaml'}:/opt/dagster/dagster_home/dagster.yaml:ro",
            "--volume", f"{self.config_dir / 'workspace'}:/dagster-workspace:ro",
            "--volume", f"{self.config_dir / 'serviceaccount'}:/var/run/secrets/kubernetes.io/serviceaccount:ro",
            # The dagster-identity-key Secret, where the values mount it (the webserver reads it).
            "--volume", f"{self.config_dir / 'identity'}:/run/dagster-identity:ro",
        )  # fmt: skip
        env = {**CHART_ENV, "DAGSTER_PG_PASSWORD": self.password, **(env or {})}
        return self.run(alias, image, *args, env=env, options=(*POD_SECURITY, *mounts, *options))

    def logs(self) -> str:
        return "\n".join(
            f"--- {c}\n{self.stack.docker('logs', '--tail', '60', c, check=False).stderr}" for c in self.containers
        )

    def remove(self) -> None:
        """Its containers (also an aborted run's, by name) and its network."""
        found = self.stack.docker("ps", "--all", "--quiet", "--filter", f"name=^/{self.name}-", check=False)
        if found.stdout.split():
            self.stack.docker("rm", "--force", *found.stdout.split(), check=False)
        self.stack.docker("network", "rm", self.name, check=False)


def _write_config(config_dir: Path) -> None:
    for folder in ("instance", "workspace", "serviceaccount", "identity"):
        (config_dir / folder).mkdir(parents=True)
    # JSON is YAML: the ConfigMaps' contents, as the chart renders them.
    (config_dir / "instance" / "dagster.yaml").write_text(json.dumps(CHART_INSTANCE))
    # The workspace ConfigMap (dagsterWebserver.workspace.externalConfigmap), with each location's team.
    (config_dir / "workspace" / "workspace.yaml").write_text(WORKSPACE_YAML)
    (config_dir / "identity" / "key").write_text(IDENTITY_KEY.hex())
    # A service account's projected token, as the kubelet mounts it (never sent anywhere here).
    account = config_dir / "serviceaccount"
    (account / "token").write_text("not-a-real-token")
    (account / "namespace").write_text(NAMESPACE)
    # Only read when a client connects to the API, which nothing here does.
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnot-a-real-certificate\n-----END CERTIFICATE-----\n")
    for path in config_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


@pytest.fixture(scope="module")
def chart(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartLikeDeployment]:
    config_dir = tmp_path_factory.mktemp("chart")
    _write_config(config_dir)
    deployment = ChartLikeDeployment(stack, config_dir)
    deployment.remove()  # leftovers of an aborted run
    stack.docker("network", "create", deployment.name)
    try:
        postgres = deployment.run(
            "postgresql",
            "postgres:15-bookworm",
            env={"POSTGRES_USER": "dagster", "POSTGRES_PASSWORD": deployment.password, "POSTGRES_DB": "dagster"},
        )
        wait_for(
            lambda: (
                stack.docker("exec", postgres, "pg_isready", "-h", "127.0.0.1", "-U", "dagster", check=False).returncode
                == 0
            ),
            timeout=60,
            what="Postgres ready",
        )
        # What the code locations read (deploy/kubernetes/dev/sample-api.yaml in a trial cluster).
        deployment.run(
            "sample-api",
            deployment.image("sample_api"),
            env={"SAMPLE_API_HOST": "0.0.0.0", "SAMPLE_API_PORT": "8080"},
            options=tuple(POD_SECURITY),
        )
        for user_deployment in DEPLOYMENTS:
            # Its location's image as this stack built it (the values name the registry's copy).
            location = {server["host"]: server["location_name"] for server in SERVERS}[user_deployment["name"]]
            image = deployment.image(location)
            # dagster-user-deployments: the image's entrypoint, the chart's args (dagsterApiGrpcArgs).
            port = str(user_deployment["port"])
            deployment.dagster(
                user_deployment["name"],
                image,
                *("dagster", "api", "grpc", "-h", "0.0.0.0", "-p", port, *user_deployment["dagsterApiGrpcArgs"]),
                env={
                    **{variable["name"]: variable["value"] for variable in user_deployment.get("env", [])},
                    "DAGSTER_CURRENT_IMAGE": image,
                    "DAGSTER_CLI_API_GRPC_CONTAINER_CONTEXT": json.dumps({"k8s": {"namespace": NAMESPACE}}),
                },
            )
        instance_image = deployment.image("dagster")
        webserver = f"dagster-webserver -h 0.0.0.0 -p {WEBSERVER_PORT} -w /dagster-workspace/workspace.yaml"
        deployment.dagster(
            "webserver",
            instance_image,
            "-c",
            webserver,
            env={item["name"]: item["value"] for item in VALUES["dagsterWebserver"]["env"] if "value" in item},
            options=(
                "--entrypoint",
                "/bin/bash",
                "--publish",
                f"127.0.0.1:{deployment.webserver_port}:{WEBSERVER_PORT}",
            ),
        )
        deployment.dagster(
            "daemon",
            instance_image,
            "-c",
            "dagster-daemon run -w /dagster-workspace/workspace.yaml",
            options=("--entrypoint", "/bin/bash"),
        )
        yield deployment
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.remove()


def _graphql(chart: ChartLikeDeployment, query: str) -> dict | None:
    """A query as the gateway passes it on: with an identity the auth service signed (here, an admin's)."""
    signed = identity.sign(identity.Identity("e2e", "token", admin=True), IDENTITY_KEY)
    try:
        response = requests.post(
            f"http://127.0.0.1:{chart.webserver_port}/graphql",
            json={"query": query},
            headers={identity.HEADER: signed},
            timeout=10,
        )
        return response.json()["data"] if response.ok else None
    except (requests.RequestException, ValueError, KeyError):
        return None


def test_every_image_runs_as_a_numeric_non_root_user(stack: Stack) -> None:
    images = [f"{stack.project}-{name}:{stack.image_tag}" for name in ("dagster", *stack.location_names)]
    for image in images:
        user = stack.docker("image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
        assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user), f"{image}: USER {user!r} (runAsNonRoot needs a uid)"


def test_the_values_have_a_user_deployment_for_every_location(stack: Stack) -> None:
    assert sorted(server["location_name"] for server in SERVERS) == sorted(stack.location_names)
    assert sorted(d["name"] for d in DEPLOYMENTS) == sorted(s["host"] for s in SERVERS)


def test_code_servers_pass_the_charts_readiness_probe(chart: ChartLikeDeployment, stack: Stack) -> None:
    def ready(user_deployment: dict) -> bool:
        probe = ["dagster", "api", "grpc-health-check", "-p", str(user_deployment["port"])]
        return stack.docker("exec", f"{chart.name}-{user_deployment['name']}", *probe, check=False).returncode == 0

    for user_deployment in DEPLOYMENTS:
        wait_for(
            lambda: ready(user_deployment),  # noqa: B023
            timeout=120,
            interval=2,
            what=f"{user_deployment['name']}'s gRPC health check",
        )


def test_the_webserver_loads_every_location_against_postgres(chart: ChartLikeDeployment, stack: Stack) -> None:
    def loaded() -> dict[str, str] | None:
        data = _graphql(chart, LOCATIONS_QUERY)
        if not data:
            return None
        entries = data["workspaceOrError"]["locationEntries"]
        kinds = {e["name"]: e["locationOrLoadError"]["__typename"] for e in entries if e["locationOrLoadError"]}
        return kinds if kinds == dict.fromkeys(stack.location_names, "RepositoryLocation") else None

    wait_for(loaded, timeout=180, interval=3, what="both locations loaded by the chart-run webserver")


def test_the_webserver_is_the_stacks_and_refuses_a_request_without_an_identity(chart: ChartLikeDeployment) -> None:
    """The chart's `dagster-webserver` command starts platform_services.webserver in the instance image."""
    wait_for(lambda: _graphql(chart, "{ version }"), timeout=180, interval=3, what="the webserver answering")
    response = requests.post(
        f"http://127.0.0.1:{chart.webserver_port}/graphql", json={"query": "{ version }"}, timeout=10
    )

    assert response.status_code == 401 and "did not come through the gateway" in response.text


def test_the_daemon_runs_every_required_daemon_with_the_policy_run_launcher(chart: ChartLikeDeployment) -> None:
    query = "{ instance { runLauncher { name } daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"

    def healthy() -> dict | None:
        data = _graphql(chart, query)
        if not data:
            return None
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        required = [s for s in statuses if s["required"]]
        return data["instance"] if required and all(s["healthy"] for s in required) else None

    instance = wait_for(healthy, timeout=180, interval=3, what="every required daemon healthy")
    assert instance["runLauncher"]["name"] == "PolicyK8sRunLauncher"
