"""Dagster's Helm chart with deploy/kubernetes/values.yaml, rendered by the real helm (conftest.py).

helm lint --strict passes and the chart's own values schema is enforced; every rendered object
is valid Kubernetes for each version under test and every pod meets the restricted Pod Security
Standard; every name the gateway, the NetworkPolicies, the workspace, the claims and the run
launcher use is one the chart renders (or a manifest here creates); and the instance config the
chart renders passes Dagster's validation and matches dagster.yaml, except where written below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from dagster._config import process_config
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.instance.config import (
    dagster_instance_config,
    get_default_tick_retention_settings,
    get_tick_retention_settings,
)
from tests.kubernetes.conftest import (
    KUBERNETES_DIR,
    VALUES,
    Rendering,
    documents,
    pod_spec,
    restricted_violations,
)

from instance_kit.k8s_launcher import PolicyK8sRunLauncher
from template_tools import kubernetes as generator
from template_tools.locations import ROOT, read_locations
from testkit.chart import OfflineChart

MANIFESTS = KUBERNETES_DIR / "manifests"
DAGSTER_YAML = ROOT / "dagster.yaml"
#: Where the chart's instance differs from dagster.yaml on purpose (docs/kubernetes.md says the same).
DIFFERENCES = {
    "storage": "compose: instance_kit's pooled Postgres storage; the chart renders dagster-postgres' run, "
    "event-log and schedule storages from its postgresql values and has no setting for another class",
    "run_storage": "the chart's (see storage)",
    "event_log_storage": "the chart's (see storage)",
    "schedule_storage": "the chart's (see storage)",
    "scheduler": "the chart names DagsterDaemonScheduler, Dagster's default, which dagster.yaml leaves implicit",
    "run_launcher": "PolicyK8sRunLauncher, the same launch policy as compose's PolicyDockerRunLauncher, for Jobs",
    "run_monitoring.start_timeout_seconds": "180 s, not 60: a run pod may wait for a node and pull its image first",
    "run_monitoring.free_slots_after_run_end_seconds": "the chart always writes it; its 0 leaves it off, as unset "
    "does (dagster/_daemon/monitoring/concurrency.py)",
}


def dotted(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists stay whole)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in DIFFERENCES:
            flat.update(dotted(value, f"{path}."))
        else:
            flat[path] = value
    return flat


# --- helm itself ------------------------------------------------------------------------------------
def test_helm_lint_strict_passes(charts_by_version: dict[str, OfflineChart], kubernetes_version: str) -> None:
    result = charts_by_version[kubernetes_version].lint([VALUES])

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overlay", "complaint"),
    [
        ({"dagsterDaemon": {"heartbeatTolerance": "300"}}, "/dagsterDaemon/heartbeatTolerance"),
        ({"dagsterWebserver": {"image": {"pullPolicy": "Sometimes"}}}, "/dagsterWebserver/image/pullPolicy"),
        ({"telemetry": {"enable": False}}, "additional properties 'enable' not allowed"),
        # A Kubernetes type inside the values, checked against the local definitions.
        ({"dagsterWebserver": {"resources": {"limits": "4Gi"}}}, "/dagsterWebserver/resources/limits"),
    ],
)
def test_the_charts_values_schema_is_enforced(
    charts_by_version: dict[str, OfflineChart], tmp_path: Path, overlay: dict[str, Any], complaint: str
) -> None:
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay), encoding="utf-8")
    result = charts_by_version["1.29.0"].lint([VALUES, tmp_path / "overlay.yaml"])

    assert result.returncode != 0
    assert complaint in result.stdout + result.stderr


def test_every_rendered_object_is_valid_kubernetes(renderings: dict[str, Rendering], kubernetes_version: str) -> None:
    rendered = renderings[kubernetes_version].objects
    assert len(rendered) > 10
    for resource in rendered:
        try:
            kubernetes_validate.validate(resource, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            name = f"{resource['kind']}/{resource['metadata']['name']}"
            pytest.fail(f"the chart's {name} is not valid for Kubernetes {kubernetes_version}: {error.message}")


def test_every_rendered_pod_is_restricted(rendering: Rendering) -> None:
    pods = {name: pod_spec(resource) for name, resource in rendering.by_kind["Deployment"].items()}
    assert len(pods) == 2 + len(read_locations())  # webserver, daemon, a code server per location
    for name, pod in pods.items():
        assert pod is not None
        assert restricted_violations(pod) == [], name


# --- names: what the gateway, policies, workspace, claims and launcher name, the chart renders ------------
def test_the_gateway_proxies_to_the_charts_webserver_service(rendering: Rendering, gateway_pod: dict[str, Any]) -> None:
    [gateway] = [c for c in gateway_pod["spec"]["containers"] if c["name"] == "gateway"]
    upstream = next(item["value"] for item in gateway["env"] if item["name"] == "GATEWAY_WEBSERVER")
    host, port = upstream.split(":")
    service_name, namespace = host.split(".")[:2]

    service = rendering.get("Service", service_name)
    assert namespace == "$(POD_NAMESPACE)" and host.endswith(".svc.cluster.local")
    assert [p["port"] for p in service["spec"]["ports"]] == [int(port)]
    webserver = rendering.get("Deployment", service_name)  # the chart names both alike
    labels = webserver["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    [target] = [p for p in rendering.container(service_name)["ports"] if p["name"] == "http"]
    assert service["spec"]["ports"][0].get("targetPort", int(port)) in ("http", target["containerPort"])


def test_each_location_is_the_chart_deployment_and_service_the_generator_names(rendering: Rendering) -> None:
    for location in read_locations():
        name = generator.k8s_name(location)
        service = rendering.get("Service", name)
        deployment = rendering.get("Deployment", generator.deployment_name(location))
        assert [p["port"] for p in service["spec"]["ports"]] == [location.port]
        assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        args = rendering.container(deployment["metadata"]["name"])["args"]
        assert args[args.index("--location-name") + 1] == location.name
        assert args[args.index("-p") + 1] == str(location.port)


def test_the_workspace_names_each_locations_service_and_the_webserver_and_daemon_mount_it(
    rendering: Rendering,
) -> None:
    [config_map] = documents(MANIFESTS / "workspace-config.yaml")
    workspace = yaml.safe_load(config_map["data"]["workspace.yaml"])
    servers = [entry["grpc_server"] for entry in workspace["load_from"]]

    assert [(s["location_name"], s["additional_metadata"]["team"]) for s in servers] == [
        (location.name, location.team) for location in read_locations()
    ]
    for server in servers:
        service = rendering.get("Service", server["host"])
        assert [p["port"] for p in service["spec"]["ports"]] == [server["port"]]
    for deployment in (generator.WEBSERVER_SERVICE, f"{generator.FULLNAME}-daemon"):
        pod = pod_spec(rendering.get("Deployment", deployment))
        assert pod is not None
        volumes = {v["name"]: v for v in pod["volumes"]}
        [mount] = [
            m for m in rendering.container(deployment)["volumeMounts"] if m["mountPath"] == "/dagster-workspace/"
        ]
        assert volumes[mount["name"]]["configMap"]["name"] == config_map["metadata"]["name"]
        assert "-w /dagster-workspace/workspace.yaml" in rendering.container(deployment)["command"][-1]
    assert generator.WORKSPACE_CONFIG_MAP not in rendering.names("ConfigMap")  # ours, not the chart's


def test_the_webserver_runs_the_stacks_entry_point_with_the_identity_key(
    rendering: Rendering, gateway_pod: dict[str, Any]
) -> None:
    """The chart's command names `dagster-webserver`: the instance image's is the stack's webserver."""
    container = rendering.container(generator.WEBSERVER_SERVICE)
    pod = pod_spec(rendering.get("Deployment", generator.WEBSERVER_SERVICE))
    assert pod is not None
    assert container["command"][-1].startswith("dagster-webserver ")
    key_file = rendering.env(generator.WEBSERVER_SERVICE)["IDENTITY_KEY_FILE"]
    [mount] = [m for m in container["volumeMounts"] if key_file.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    gateway_secrets = {v["secret"]["secretName"] for v in gateway_pod["spec"]["volumes"] if "secret" in v}
    assert volume["secret"]["secretName"] == "dagster-identity-key" and "dagster-identity-key" in gateway_secrets
    shim = (ROOT / "deploy" / "dagster" / "dagster-webserver").read_text(encoding="utf-8")
    assert "exec python -m platform_services.webserver" in shim


def test_the_network_policies_select_the_pods_the_chart_renders(rendering: Rendering) -> None:
    """Each policy's pods, and the peers it admits, are exactly the rendered pods they are meant to be."""
    pods = {
        name: deployment["spec"]["template"]["metadata"]["labels"]
        for name, deployment in rendering.by_kind["Deployment"].items()
    }

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    policies = {doc["metadata"]["name"]: doc["spec"] for doc in documents(MANIFESTS / "network-policies.yaml")}
    webserver, daemon = generator.WEBSERVER_SERVICE, f"{generator.FULLNAME}-daemon"
    assert selected(policies["dagster-webserver"]["podSelector"]["matchLabels"]) == {webserver}
    assert selected(dict(generator.WEBSERVER_PODS)) == {webserver}
    assert selected(dict(generator.DAEMON_PODS)) == {daemon}
    code_servers = {generator.deployment_name(location) for location in read_locations()}
    assert selected(dict(generator.CODE_SERVER_PODS)) == code_servers
    for location in read_locations():
        policy = policies[f"dagster-code-location-{generator.k8s_name(location)}"]
        assert selected(policy["podSelector"]["matchLabels"]) == {generator.deployment_name(location)}
        [rule] = policy["ingress"]
        assert [p["port"] for p in rule["ports"]] == [
            p["containerPort"] for p in rendering.container(generator.deployment_name(location)).get("ports", [])
        ] or [location.port]
        chart_peers = [selected(peer["podSelector"]["matchLabels"]) for peer in rule["from"]]
        assert chart_peers[:2] == [{webserver}, {daemon}]  # the third peer is the location's run pods
    [rule] = policies["dagster-webserver"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [p["containerPort"] for p in rendering.container(webserver)["ports"]]


def test_no_location_can_take_the_name_of_a_service_in_the_namespace(rendering: Rendering) -> None:
    """RESERVED_NAMES holds every Service the chart or the manifests make that is not a location's."""
    locations = {generator.k8s_name(location) for location in read_locations()}
    ours = {
        doc["metadata"]["name"]
        for path in [*MANIFESTS.glob("*.yaml"), *(KUBERNETES_DIR / "dev").glob("*.yaml")]
        for doc in documents(path)
        if doc["kind"] == "Service"
    }

    assert (rendering.names("Service") - locations) | ours <= generator.RESERVED_NAMES


def test_what_the_run_launcher_names_exists(rendering: Rendering, values: dict[str, Any]) -> None:
    config = rendering.instance()["run_launcher"]["config"]
    claims = {doc["metadata"]["name"] for doc in documents(MANIFESTS / "storage.yaml")}
    bound = {
        subject["name"]
        for binding in rendering.by_kind.get("RoleBinding", {}).values()
        for subject in binding.get("subjects", [])
    }

    assert config["instance_config_map"] in rendering.names("ConfigMap")
    assert config["postgres_password_secret"] == values["global"]["postgresqlSecretName"]
    assert config["service_account_name"] in rendering.names("ServiceAccount")
    assert config["service_account_name"] not in bound, "runs must not get an account with a Role"
    assert config["job_namespace"] == generator.RELEASE
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in config["volumes"] if "persistentVolumeClaim" in v}
    assert mounted <= claims
    assert set(config["locations"]) == {location.name for location in read_locations()}
    for location in read_locations():
        grant = config["locations"][location.name]
        deployment = generator.deployment_name(location)
        assert grant["image"] == rendering.container(deployment)["image"]
        assert set(grant["env_config_maps"]) <= rendering.names("ConfigMap")
        grant_claims = {
            v["persistentVolumeClaim"]["claimName"] for v in grant["volumes"] if "persistentVolumeClaim" in v
        }
        assert grant_claims == {generator.io_claim(location)} and grant_claims <= claims
        pod = pod_spec(rendering.get("Deployment", deployment))
        assert pod is not None
        assert grant["volumes"] == [v for v in pod["volumes"] if v["name"] in {g["name"] for g in grant["volumes"]}]


# --- the instance config ------------------------------------------------------------------------------
@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the {env: ...} settings of both configs read (values never used)."""
    for name in (
        "DAGSTER_PG_PASSWORD",
        "DAGSTER_PG_HOST",
        "DAGSTER_PG_USER",
        "DAGSTER_PG_DB",
        "DAGSTER_RUN_IMAGE_TEMPLATE",
    ):
        monkeypatch.setenv(name, "unused")
    for name in ("DAGSTER_PG_PORT", "DAGSTER_MAX_RUN_SECONDS", "DAGSTER_RUN_PIDS_LIMIT"):
        monkeypatch.setenv(name, "1")
    for name in ("DAGSTER_RUN_NETWORK", "DAGSTER_STORAGE_VOLUME", "DAGSTER_IO_VOLUME", "DAGSTER_EXPORTS_VOLUME"):
        monkeypatch.setenv(name, "unused")
    monkeypatch.setenv("DAGSTER_MAX_RUN_MEMORY", "1g")
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "unused")


def validated(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    folder.mkdir()
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    checked, instance_class = dagster_instance_config(str(folder))
    assert instance_class is None
    return dict(checked)


@pytest.mark.usefixtures("instance_env")
def test_the_instance_the_chart_renders_passes_dagsters_validation(rendering: Rendering, tmp_path: Path) -> None:
    config = validated(rendering.instance(), tmp_path / "chart")
    launcher = config["run_launcher"]

    assert (launcher["module"], launcher["class"]) == ("instance_kit.k8s_launcher", "PolicyK8sRunLauncher")
    checked = process_config(PolicyK8sRunLauncher.config_type(), launcher["config"])
    assert checked.success, checked.errors


@pytest.mark.usefixtures("instance_env")
def test_the_instance_matches_dagster_yaml_except_where_written_down(rendering: Rendering, tmp_path: Path) -> None:
    chart = validated(rendering.instance(), tmp_path / "chart")
    compose = validated(yaml.safe_load(DAGSTER_YAML.read_text(encoding="utf-8")), tmp_path / "compose")
    # Tick retention as Dagster applies it (its defaults filled in): the chart writes every status.
    for config in (chart, compose):
        retention = config.pop("retention", None) or {}
        config["retention"] = {
            kind.value: dict(get_tick_retention_settings(retention.get(key), get_default_tick_retention_settings(kind)))
            for key, kind in (
                ("schedule", InstigatorType.SCHEDULE),
                ("sensor", InstigatorType.SENSOR),
                ("auto_materialize", InstigatorType.AUTO_MATERIALIZE),
            )
        }
    flat_chart, flat_compose = dotted(chart), dotted(compose)

    differing = {
        path: (flat_chart.get(path), flat_compose.get(path))
        for path in flat_chart.keys() | flat_compose.keys()
        if flat_chart.get(path) != flat_compose.get(path)
    }
    assert set(differing) == set(DIFFERENCES), {p: v for p, v in differing.items() if p not in DIFFERENCES}
    assert differing["run_monitoring.start_timeout_seconds"] == (180, 60)
    assert differing["run_monitoring.free_slots_after_run_end_seconds"] == (0, None)
