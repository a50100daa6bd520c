"""deploy/kubernetes/values.yaml: what it promises itself (test_chart.py checks what the chart makes of it).

The same security contexts and resources for every Dagster pod and run, the images' own
command under the chart's arguments, probes in place of compose's watchdog, and only the
claims manifests/storage.yaml creates.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from template_tools import kubernetes
from template_tools.locations import ROOT, read_locations

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DAGSTER_HOME = "/opt/dagster/dagster_home"


def run_launcher(values: dict[str, Any]) -> dict[str, Any]:
    """The run launcher's config (PolicyK8sRunLauncher, in dagster.yaml's terms)."""
    config: dict[str, Any] = values["runLauncher"]["config"]["customRunLauncher"]["config"]
    return config


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


# --- security contexts and resources --------------------------------------------------------------
def test_every_dagster_pod_gets_the_same_security_contexts(values: dict[str, Any]) -> None:
    shared = values["x-shared"]
    pod, container = shared["podSecurityContext"], shared["securityContext"]
    launcher = run_launcher(values)
    holders = [values["dagsterWebserver"], values["dagsterDaemon"], *values["dagster-user-deployments"]["deployments"]]

    for holder in holders:
        assert holder["podSecurityContext"] == pod
        assert holder["securityContext"] == container
    assert launcher["security_context"] == container
    assert launcher["run_k8s_config"]["pod_spec_config"]["securityContext"] == pod
    assert (
        pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001 and pod["seccompProfile"]["type"] == "RuntimeDefault"
    )
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_every_dagster_pod_has_resources_and_a_writable_tmp(values: dict[str, Any]) -> None:
    launcher = run_launcher(values)
    holders = [values["dagsterWebserver"], values["dagsterDaemon"], *values["dagster-user-deployments"]["deployments"]]

    for holder in [*holders, launcher]:
        assert holder["resources"]["limits"]["memory"] and holder["resources"]["requests"]["memory"]
        assert values["x-shared"]["tmpVolume"] in holder["volumes"]
    for holder in holders:
        assert values["x-shared"]["tmpMount"] in holder["volumeMounts"]
    assert values["x-shared"]["tmpMount"] in launcher["volume_mounts"]
    assert launcher["resources"] == values["x-shared"]["codeLocation"]["resources"]


def test_liveness_probes_replace_the_watchdog(values: dict[str, Any]) -> None:
    webserver, daemon = values["dagsterWebserver"], values["dagsterDaemon"]
    port = webserver["service"]["port"]

    assert port == kubernetes.WEBSERVER_PORT
    # The webserver answers only signed requests: the probe is the health check that signs its own
    # (with the identity key the webserver reads), on the port it asks by default.
    env = {item["name"]: item.get("value") for item in webserver["env"]}
    assert env["IDENTITY_KEY_FILE"] and port == 3000
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert webserver[probe]["exec"]["command"] == ["python", "-m", "platform_services.healthcheck", "webserver"]
        assert "httpGet" not in webserver[probe]
    assert daemon["livenessProbe"]["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    for deployment in values["dagster-user-deployments"]["deployments"]:
        # No exec: the chart probes with `dagster api grpc-health-check -p <port>`.
        assert "exec" not in deployment["livenessProbe"] and deployment["livenessProbe"]["periodSeconds"]
        assert deployment["startupProbe"]["enabled"] is True


def test_the_claims_values_mounts_are_the_ones_storage_yaml_creates(values: dict[str, Any]) -> None:
    claims = {doc["metadata"]["name"] for doc in yaml.safe_load_all((ROOT / kubernetes.STORAGE).read_text()) if doc}
    holders = [values["dagsterWebserver"], run_launcher(values), *values["dagster-user-deployments"]["deployments"]]

    mounted = {
        volume["persistentVolumeClaim"]["claimName"]
        for holder in holders
        for volume in holder["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert mounted == claims


def test_each_code_server_reads_the_instance_config_the_chart_makes(values: dict[str, Any]) -> None:
    """As under compose, a code server opens the instance in Postgres (the chart mounts it only elsewhere)."""
    for deployment in values["dagster-user-deployments"]["deployments"]:
        volumes = {volume["name"]: volume for volume in deployment["volumes"]}
        [mount] = [item for item in deployment["volumeMounts"] if item["mountPath"] == f"{DAGSTER_HOME}/dagster.yaml"]
        assert mount["subPath"] == "dagster.yaml" and mount["readOnly"] is True
        assert volumes[mount["name"]]["configMap"]["name"] == run_launcher(values)["instance_config_map"]
        assert run_launcher(values)["instance_config_map"] == kubernetes.INSTANCE_CONFIG_MAP


def test_each_location_s_runs_are_granted_what_its_code_server_mounts(values: dict[str, Any]) -> None:
    """One list for both (a YAML alias): the chart gives the server's volumes to its runs, the policy allows them."""
    grants = run_launcher(values)["locations"]
    for location in read_locations():
        [deployment] = [
            d for d in values["dagster-user-deployments"]["deployments"] if d["name"] == kubernetes.k8s_name(location)
        ]
        grant = grants[location.name]
        assert grant["volumes"] == deployment["volumes"] and grant["volume_mounts"] == deployment["volumeMounts"]
        image = deployment["image"]
        assert grant["image"] == f"{image['repository']}:{image['tag']}"
