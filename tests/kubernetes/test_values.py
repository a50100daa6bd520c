"""deploy/kubernetes/values.yaml: keys the chart accepts, and the compose stack's settings in them.

The chart's own schema cannot be fetched here (no network, no Helm): chart_values_schema.yaml
holds the excerpt of it for the keys values.yaml sets, with the source commits it was read
from. Then the chart's rendering of the instance (emulated in conftest.Chart) goes through
Dagster's own instance-config validation, and the settings are compared with dagster.yaml's.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from referencing import Registry

from template_tools import kubernetes
from template_tools.locations import ROOT, read_locations

if TYPE_CHECKING:
    from tests.kubernetes.conftest import Chart

SCHEMA = Path(__file__).parent / "chart_values_schema.yaml"
DAGSTER_YAML = ROOT / "dagster.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DAGSTER_HOME = "/opt/dagster/dagster_home"


def schema_errors(values: dict[str, Any], registry: Registry) -> list[str]:
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '<top>'}: {error.message}"
        for error in sorted(validator.iter_errors(values), key=lambda error: list(map(str, error.absolute_path)))
    ]


def test_the_schema_excerpt_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(yaml.safe_load(SCHEMA.read_text(encoding="utf-8")))


def test_every_key_is_one_the_chart_accepts_with_its_type(
    values: dict[str, Any], kubernetes_version: str, definitions: Callable[[str], Registry]
) -> None:
    assert schema_errors(values, definitions(kubernetes_version)) == []


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        (["dagsterDaemon", "runMonitoring", "startTimeoutSecond"], 60, "'startTimeoutSecond' was unexpected"),
        (["dagsterWebserver", "image", "pullPolicy"], "Sometimes", "is not one of"),
        (["dagsterDaemon", "heartbeatTolerance"], "300", "is not of type 'integer'"),
        (["dagster-user-deployments", "deployments", 0, "name"], "simple_ops", "does not match"),
        (["runLauncher", "config", "k8sRunLauncher", "securityContext", "readOnlyRootFileSystem"], True, "unexpected"),
        (["postgresql", "postgresqlPort"], 5432, "'postgresqlPort' was unexpected"),
        (["dagsterWebserver", "workspace", "servers", 0, "location"], "x", "'location' was unexpected"),
    ],
)
def test_an_unknown_key_or_a_wrong_type_fails(
    values: dict[str, Any], definitions: Callable[[str], Registry], path: list[Any], value: Any, complaint: str
) -> None:
    changed = yaml.safe_load(yaml.safe_dump(values))  # a copy, without the shared (aliased) objects
    target = changed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    errors = schema_errors(changed, definitions("1.29.0"))
    assert errors and all(complaint in error for error in errors), errors


# --- what the chart makes of it, checked by Dagster ---------------------------------------------
def test_the_instance_the_chart_renders_is_valid_dagster_config(
    chart: Chart, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(chart.dagster_yaml()), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")

    config, instance_class = dagster_instance_config(str(tmp_path))

    assert instance_class is None
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    assert config["local_artifact_storage"]["config"]["base_dir"] == "/opt/dagster/storage"


def compose_instance() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8"))
    return loaded


def test_the_run_queue_limits_are_dagster_yamls(chart: Chart) -> None:
    compose, kube = compose_instance(), chart.dagster_yaml()["run_coordinator"]["config"]

    assert kube["max_concurrent_runs"] == compose["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert kube["tag_concurrency_limits"] == compose["concurrency"]["runs"]["tag_concurrency_limits"]
    assert kube["tag_concurrency_limits"] == [
        {"key": "dagster/code_location", "value": {"applyLimitPerUniqueValue": True}, "limit": 2}
    ]
    assert kube["dequeue_interval_seconds"] == compose["run_coordinator"]["config"]["dequeue_interval_seconds"]


def test_run_monitoring_retries_daemons_and_retention_are_dagster_yamls(chart: Chart) -> None:
    compose, kube = compose_instance(), chart.dagster_yaml()

    assert kube["run_monitoring"]["enabled"] is compose["run_monitoring"]["enabled"] is True
    for key in ("poll_interval_seconds", "max_resume_run_attempts"):
        assert kube["run_monitoring"][key] == compose["run_monitoring"][key], key
    # Longer than compose's 60 s on purpose: a run pod may wait for a node and pull its image first.
    assert kube["run_monitoring"]["start_timeout_seconds"] >= compose["run_monitoring"]["start_timeout_seconds"]
    assert kube["run_retries"] == compose["run_retries"]
    assert kube["sensors"] == compose["sensors"] and kube["schedules"] == compose["schedules"]
    assert kube["retention"]["schedule"] == compose["retention"]["schedule"]
    sensor = kube["retention"]["sensor"]["purge_after_days"]
    assert {key: sensor[key] for key in compose["retention"]["sensor"]["purge_after_days"]} == compose["retention"][
        "sensor"
    ]["purge_after_days"]
    assert kube["telemetry"] == compose["telemetry"] == {"enabled": False}
    assert kube["nux"] == compose["nux"]


def test_postgres_is_external_with_the_password_from_a_secret_and_the_psycopg2_driver(
    values: dict[str, Any], chart: Chart
) -> None:
    compose_db = compose_instance()["storage"]["custom"]["config"]["postgres_db"]

    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == "dagster-postgresql"
    db = chart.postgres_config()["postgres_db"]
    assert db["scheme"] == compose_db["scheme"] == "postgresql+psycopg2"
    assert db["params"] == compose_db["params"]
    assert db["password"] == {"env": "DAGSTER_PG_PASSWORD"}  # the chart sets it from the Secret


def test_compute_logs_and_io_storage_are_where_compose_has_them(chart: Chart) -> None:
    compose, kube = compose_instance(), chart.dagster_yaml()

    assert kube["compute_logs"] == {
        "module": compose["compute_logs"]["module"],
        "class": compose["compute_logs"]["class"],
        "config": compose["compute_logs"]["config"],
    }
    assert kube["local_artifact_storage"] == compose["local_artifact_storage"]


# --- images and code servers ---------------------------------------------------------------------
def test_the_images_dagster_home_is_the_charts(values: dict[str, Any]) -> None:
    assert f"DAGSTER_HOME={DAGSTER_HOME}" in DOCKERFILE.read_text(encoding="utf-8")
    assert values["global"].get("dagsterHome", DAGSTER_HOME) == DAGSTER_HOME


def test_the_webserver_and_daemon_run_the_instance_image(values: dict[str, Any]) -> None:
    image = values["dagsterWebserver"]["image"]

    assert values["dagsterDaemon"]["image"] == image
    assert image["repository"].endswith("/dagster-dagster")  # <registry>/<project>-dagster, project `dagster`


def image_command(port: int, module: str, name: str) -> list[str]:
    """The code-location image's own command (deploy/Dockerfile's CMD), its variables filled in."""
    cmd_line = next(line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if line.startswith("CMD "))
    shell = yaml.safe_load(cmd_line.removeprefix("CMD "))[-1]  # ["sh", "-c", "exec dagster api grpc ..."]
    shell = shell.replace('"$DAGSTER_MODULE"', module).replace('"$DAGSTER_LOCATION_NAME"', name)
    return shlex.split(shell.removeprefix("exec ").replace("-p 4000", f"-p {port}"))


def options(argv: list[str]) -> dict[str, str | None]:
    """``--flag value`` pairs (``None`` for a flag without one), order aside."""
    result: dict[str, str | None] = {}
    i = 0
    while i < len(argv):
        if i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            result[argv[i]] = argv[i + 1]
            i += 2
        else:
            result[argv[i]] = None
            i += 1
    return result


def test_each_code_server_runs_the_images_own_command_under_the_chart(values: dict[str, Any]) -> None:
    deployments = {item["name"]: item for item in values["dagster-user-deployments"]["deployments"]}
    for location in read_locations():
        deployment = deployments[kubernetes.k8s_name(location)]
        # deployment-user.yaml: args: ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", <port>, <dagsterApiGrpcArgs>...]
        chart_args = ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(deployment["port"])]
        chart_args += deployment["dagsterApiGrpcArgs"]
        image_args = image_command(deployment["port"], location.module, location.name)
        assert chart_args[:3] == image_args[:3] == ["dagster", "api", "grpc"]
        assert options(chart_args[3:]) == options(image_args[3:])
        assert deployment["port"] == location.port


def test_each_location_is_loaded_by_its_name_from_its_own_service(values: dict[str, Any]) -> None:
    servers = values["dagsterWebserver"]["workspace"]["servers"]
    names = [item["name"] for item in values["dagster-user-deployments"]["deployments"]]

    assert values["dagsterWebserver"]["workspace"]["enabled"] is True
    assert [(server["name"], server["host"], server["port"]) for server in servers] == [
        (location.name, kubernetes.k8s_name(location), location.port) for location in read_locations()
    ]
    assert [server["host"] for server in servers] == names  # the chart's Service is named like the deployment


# --- security contexts and resources --------------------------------------------------------------
def test_every_dagster_pod_gets_the_same_security_contexts(values: dict[str, Any]) -> None:
    shared = values["x-shared"]
    pod, container = shared["podSecurityContext"], shared["securityContext"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    holders = [values["dagsterWebserver"], values["dagsterDaemon"], *values["dagster-user-deployments"]["deployments"]]

    for holder in holders:
        assert holder["podSecurityContext"] == pod
        assert holder["securityContext"] == container
    assert launcher["securityContext"] == container
    assert launcher["runK8sConfig"]["podSpecConfig"]["securityContext"] == pod
    assert (
        pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001 and pod["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_every_dagster_pod_has_resources_and_a_writable_tmp(values: dict[str, Any]) -> None:
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    holders = [values["dagsterWebserver"], values["dagsterDaemon"], launcher]
    holders += values["dagster-user-deployments"]["deployments"]

    for holder in holders:
        assert holder["resources"]["limits"]["memory"] and holder["resources"]["requests"]["memory"]
        assert values["x-shared"]["tmpVolume"] in holder["volumes"]
        assert values["x-shared"]["tmpMount"] in holder["volumeMounts"]


def test_liveness_probes_replace_the_watchdog(values: dict[str, Any]) -> None:
    webserver, daemon = values["dagsterWebserver"], values["dagsterDaemon"]
    port = webserver["service"]["port"]

    assert port == kubernetes.WEBSERVER_PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert webserver[probe]["httpGet"] == {"path": "/server_info", "port": port}
    assert daemon["livenessProbe"]["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    for deployment in values["dagster-user-deployments"]["deployments"]:
        # No exec: the chart probes with `dagster api grpc-health-check -p <port>`.
        assert "exec" not in deployment["livenessProbe"] and deployment["livenessProbe"]["periodSeconds"]
        assert deployment["startupProbe"]["enabled"] is True


def test_the_claims_values_mounts_are_the_ones_storage_yaml_creates(values: dict[str, Any]) -> None:
    claims = {doc["metadata"]["name"] for doc in yaml.safe_load_all((ROOT / kubernetes.STORAGE).read_text()) if doc}
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    holders = [values["dagsterWebserver"], launcher, *values["dagster-user-deployments"]["deployments"]]

    mounted = {
        volume["persistentVolumeClaim"]["claimName"]
        for holder in holders
        for volume in holder["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert mounted == claims


def test_each_code_server_reads_the_instance_config_the_chart_makes(values: dict[str, Any], chart: Chart) -> None:
    """As under compose, a code server opens the instance in Postgres (the chart mounts it only elsewhere)."""
    for deployment in values["dagster-user-deployments"]["deployments"]:
        volumes = {volume["name"]: volume for volume in deployment["volumes"]}
        [mount] = [item for item in deployment["volumeMounts"] if item["mountPath"] == f"{DAGSTER_HOME}/dagster.yaml"]
        assert mount["subPath"] == "dagster.yaml" and mount["readOnly"] is True
        assert volumes[mount["name"]]["configMap"]["name"] == chart.run_launcher_config()["instance_config_map"]
