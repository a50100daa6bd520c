"""The plain manifests (deploy/kubernetes/manifests/, dev/): valid Kubernetes, and what they promise.

Validated offline against the Kubernetes OpenAPI schemas that kubernetes_validate bundles,
strict (an unknown field fails), for Kubernetes 1.29 and for the newest version it knows.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from tests.kubernetes.conftest import pod_spec, restricted_violations

from template_tools import generate, kubernetes
from template_tools.locations import ROOT, read_locations

if TYPE_CHECKING:
    from tests.kubernetes.conftest import Gateway, Manifest

MANIFESTS = ROOT / "deploy" / "kubernetes" / "manifests"
GATEWAY = MANIFESTS / "gateway.yaml"
COMPOSE_GATEWAY_CONF = ROOT / kubernetes.GATEWAY_TEMPLATE


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def test_the_manifests_are_shipped() -> None:
    assert sorted(path.name for path in MANIFESTS.glob("*.yaml")) == [
        "access-config.yaml",
        "gateway-config.yaml",
        "gateway.yaml",
        "network-policies.yaml",
        "storage.yaml",
        "workspace-config.yaml",
    ]


def test_every_resource_is_valid_kubernetes(manifest: Manifest, kubernetes_version: str) -> None:
    try:
        kubernetes_validate.validate(manifest.resource, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"{manifest.id} is not valid for Kubernetes {kubernetes_version}: {error.message}")


def test_no_resource_names_a_namespace(manifest: Manifest) -> None:
    """They are applied with `kubectl apply -n <namespace>`, into the release's namespace."""
    assert "namespace" not in manifest.resource["metadata"]


def test_every_pod_runs_restricted(manifest: Manifest) -> None:
    """The "restricted" Pod Security Standard's rules, as the chart's pods get them from values.yaml."""
    pod = pod_spec(manifest.resource)
    if pod is not None:
        assert pod["automountServiceAccountToken"] is False, manifest.id
        assert restricted_violations(pod) == [], manifest.id


def test_the_generated_manifests_are_current() -> None:
    files = kubernetes.generate(ROOT)

    assert generate.stale(ROOT, files) == [], f"run `{kubernetes.GENERATE}`"


def policies() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in load(MANIFESTS / "network-policies.yaml")}


def selectors(rule: dict[str, Any]) -> list[dict[str, str]]:
    return [peer["podSelector"]["matchLabels"] for peer in rule.get("from", [])]


def test_ingress_is_denied_unless_a_policy_allows_it() -> None:
    deny = policies()["dagster-default-deny-ingress"]["spec"]

    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_each_code_server_is_reached_only_by_the_webserver_the_daemon_and_its_own_runs() -> None:
    locations = read_locations()
    by_name = policies()
    for location in locations:
        policy = by_name[f"dagster-code-location-{kubernetes.k8s_name(location)}"]["spec"]
        assert policy["podSelector"]["matchLabels"] == {
            **kubernetes.CODE_SERVER_PODS,
            "deployment": kubernetes.k8s_name(location),
        }
        [rule] = policy["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": location.port}]
        assert selectors(rule) == [
            dict(kubernetes.WEBSERVER_PODS),
            dict(kubernetes.DAEMON_PODS),
            {**kubernetes.RUN_PODS, "dagster/code-location": location.name},
        ]
    code_location_policies = [name for name in by_name if name.startswith("dagster-code-location-")]
    assert len(code_location_policies) == len(locations)


def test_the_webserver_is_reached_only_from_the_gateway() -> None:
    policy = policies()["dagster-webserver"]["spec"]
    gateway_pods = next(doc for doc in load(GATEWAY) if doc["kind"] == "Deployment")["spec"]["template"]["metadata"]

    assert policy["podSelector"]["matchLabels"] == dict(kubernetes.WEBSERVER_PODS)
    [rule] = policy["ingress"]
    [gateway] = selectors(rule)
    assert gateway.items() <= gateway_pods["labels"].items()
    assert rule["ports"] == [{"protocol": "TCP", "port": kubernetes.WEBSERVER_PORT}]


def test_postgres_in_the_cluster_is_reached_only_from_dagsters_pods() -> None:
    policy = policies()["dagster-postgres"]["spec"]
    dev_postgres = next(
        doc for doc in load(ROOT / "deploy/kubernetes/dev/postgres.yaml") if doc["kind"] == "StatefulSet"
    )

    assert (
        policy["podSelector"]["matchLabels"].items() <= dev_postgres["spec"]["template"]["metadata"]["labels"].items()
    )
    [rule] = policy["ingress"]
    assert selectors(rule) == [
        dict(kubernetes.WEBSERVER_PODS),
        dict(kubernetes.DAEMON_PODS),
        dict(kubernetes.CODE_SERVER_PODS),
        dict(kubernetes.RUN_PODS),
    ]


def test_each_location_has_its_own_io_claim_and_the_shared_ones_exist() -> None:
    claims = {doc["metadata"]["name"]: doc for doc in load(MANIFESTS / "storage.yaml")}
    expected = [*kubernetes.SHARED_CLAIMS, *(kubernetes.io_claim(location) for location in read_locations())]

    assert list(claims) == expected
    for claim in claims.values():
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


# --- the gateway ------------------------------------------------------------------------------
#: The directives that make the gateway's login, rate limit, headers and CSRF rules.
SECURITY_DIRECTIVE = re.compile(
    r"auth_basic|limit_req|add_header|\$csrf|\$cross_origin|\$origin_host|sec_fetch_site|"
    r"\$graphql|\$body_type|\$login_attempt|https\?://|error_page 401"
)


def security_directives(conf: str) -> list[str]:
    """Those directives of an nginx config, in order, whitespace normalized (comment lines left out)."""
    lines = (line.strip() for line in conf.splitlines())
    return [" ".join(line.split()) for line in lines if not line.startswith("#") and SECURITY_DIRECTIVE.search(line)]


def test_the_gateway_keeps_the_compose_gateways_login_and_csrf_rules(k8s_gateway: Gateway) -> None:
    compose = security_directives(COMPOSE_GATEWAY_CONF.read_text(encoding="utf-8"))
    kube = security_directives(k8s_gateway.template)

    assert kube == compose
    assert any("$cross_origin = 1" in line for line in kube) and any("^GET:.+" in line for line in kube)


def test_the_gateway_proxies_only_to_the_charts_webserver_service(k8s_gateway: Gateway, tmp_path: Path) -> None:
    conf = k8s_gateway.render(tmp_path)
    upstreams = set(re.findall(r"set \$\w+ http://(\S+);", conf))
    proxied = set(re.findall(r"proxy_pass (\S+);", conf))

    assert upstreams == {
        # test_chart.py checks that the chart renders this Service, with this port.
        f"{kubernetes.WEBSERVER_SERVICE}.{kubernetes.RELEASE}.svc.cluster.local:{kubernetes.WEBSERVER_PORT}",
        "127.0.0.1:8081",  # the auth service, in the gateway's pod
        "127.0.0.1:8081/verify",
    }
    assert proxied == {"$upstream", "$webserver", "$auth", "$auth_verify"}
    assert re.findall(r"resolver (\S+)", conf) == ["10.96.0.10"]  # the pod's DNS, not Docker's (127.0.0.11)
    assert "/viewer" not in conf.replace("(?<viewer>/viewer)?", "") and "/prometheus/" not in conf
    assert not re.findall(r"__[A-Z_]+__", conf)  # every placeholder rendered


def test_the_gateway_mounts_what_its_image_expects() -> None:
    deployment = next(doc for doc in load(GATEWAY) if doc["kind"] == "Deployment")
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    container = containers["gateway"]
    mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
    auth_mounts = {mount["mountPath"] for mount in containers["auth"]["volumeMounts"]}
    assert auth_mounts >= {"/run/ui-secrets", "/run/dagster-identity", "/etc/dagster/access", "/tmp"}
    entrypoint = (ROOT / "deploy/gateway/entrypoint.sh").read_text(encoding="utf-8")

    assert {"/etc/nginx/nginx.conf.template", "/tmp"} <= mounts
    assert "GATEWAY_TEMPLATE:-/etc/nginx/nginx.conf.template" in entrypoint
    assert container["ports"] == [{"name": "http", "containerPort": kubernetes.GATEWAY_PORT, "protocol": "TCP"}]


def test_the_gateway_reads_the_generated_config_maps_and_the_documented_secrets() -> None:
    """Each file the auth service reads is a key of a ConfigMap the manifests create, or of a Secret docs/kubernetes.md creates."""
    pod = next(doc for doc in load(GATEWAY) if doc["kind"] == "Deployment")["spec"]["template"]["spec"]
    [auth] = [c for c in pod["containers"] if c["name"] == "auth"]
    env = {item["name"]: item["value"] for item in auth["env"] if "value" in item}
    volumes = {v["name"]: v for v in pod["volumes"]}
    docs = (ROOT / "docs" / "kubernetes.md").read_text(encoding="utf-8")
    config_maps = {
        doc["metadata"]["name"]: doc["data"]
        for path in MANIFESTS.glob("*.yaml")
        for doc in load(path)
        if doc["kind"] == "ConfigMap"
    }

    for setting in ("ACCESS_FILE", "WORKSPACE_FILE", "IDENTITY_KEY_FILE"):
        path = env[setting]
        [mount] = [m for m in auth["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        volume, key = volumes[mount["name"]], path.removeprefix(mount["mountPath"] + "/")
        if "configMap" in volume:
            assert key in config_maps[volume["configMap"]["name"]], (setting, path)
        else:
            assert volume["secret"]["secretName"] == "dagster-identity-key"
            assert "create secret generic dagster-identity-key --from-file=key=" in docs
    assert volumes["users"]["secret"]["secretName"] == "dagster-gateway-users"
    assert "create secret generic dagster-gateway-users --from-file=.secrets/k8s/ui/htpasswd" in docs
