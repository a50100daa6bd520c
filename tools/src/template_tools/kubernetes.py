"""The per-location parts of the Kubernetes deployment (deploy/kubernetes/), derived from workspace.yaml.

    make generate          # writes them (template_tools.generate)

On Kubernetes, a code location is four things besides its image: a user deployment of the
Helm chart (its gRPC code server, whose resources, env and volumes its runs get too), its
grant in the run launcher's policy (the same volumes, its image), a NetworkPolicy (who may
call that server) and a PersistentVolumeClaim (its runs' IO-manager storage, which no other
team's run mounts). All come from the one list of locations, workspace.yaml:

* ``deploy/kubernetes/values.yaml`` is written by hand except two regions: each location's
  launcher grant (whose volumes the user deployment names by YAML alias) and the user
  deployments. The locations' images follow ``dagsterWebserver.image`` (registry, tag);
* ``manifests/network-policies.yaml``, ``storage.yaml``, ``workspace-config.yaml`` (the
  workspace with each location's team), ``gateway-config.yaml`` (from the gateway's one nginx
  template, deploy/gateway/nginx.conf.template) and ``access-config.yaml`` (the access file)
  are generated whole; ``manifests/gateway.yaml`` all but the webserver's address.

Names: a Kubernetes object name cannot hold ``_``, so the user deployment's Service (the
server's host name) of ``simple_ops`` is ``simple-ops`` and its Deployment
``dagster-dagster-user-deployments-simple-ops``; the Dagster location keeps its name. The
chart's own names and labels (checked against its rendering in tests/kubernetes) are below;
docs/kubernetes.md explains what the NetworkPolicies allow. The values overlays for other
images and for shipping one location are template_tools.helm_overlays'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from template_tools.locations import WORKSPACE, CodeLocation, read_locations
from template_tools.regions import replace_region

KUBERNETES = "deploy/kubernetes"
VALUES = f"{KUBERNETES}/values.yaml"
NETWORK_POLICIES = f"{KUBERNETES}/manifests/network-policies.yaml"
STORAGE = f"{KUBERNETES}/manifests/storage.yaml"
GATEWAY_CONFIG = f"{KUBERNETES}/manifests/gateway-config.yaml"
GATEWAY = f"{KUBERNETES}/manifests/gateway.yaml"
WORKSPACE_CONFIG = f"{KUBERNETES}/manifests/workspace-config.yaml"
ACCESS_CONFIG = f"{KUBERNETES}/manifests/access-config.yaml"
#: Who may do what per team (the auth service reads it; `make ui-user` edits it).
ACCESS = "deploy/access/access.yaml"
#: The gateway's nginx config, the same file for compose (the gateway image) and Kubernetes.
GATEWAY_TEMPLATE = "deploy/gateway/nginx.conf.template"
#: The chart version that matches the pinned Dagster (the root pyproject.toml's constraints).
CHART_VERSION = "1.13.27"
GENERATE = "make generate"
#: The image names' defaults for --image-overlay: COMPOSE_PROJECT_NAME and DAGSTER_IMAGE_TAG (.env.example).
DEFAULT_PROJECT = "dagster"
DEFAULT_TAG = "local"

#: The Helm release name the labels below assume (docs/kubernetes.md: `helm upgrade --install dagster ...`).
RELEASE = "dagster"
#: The chart's names for that release (helpers/_helpers.tpl: `dagster.fullname` is the release name
#: when it contains `dagster`; the subchart's is `<release>-dagster-user-deployments`).
FULLNAME = RELEASE
USER_DEPLOYMENTS_FULLNAME = f"{RELEASE}-dagster-user-deployments"
#: The webserver's Service: `<release>-<dagsterWebserver.nameOverride>`, whose default is `dagster-webserver`.
WEBSERVER_SERVICE = f"{RELEASE}-dagster-webserver"
#: The instance config the chart renders (every Dagster pod mounts it) and the code servers' service
#: account, which their runs get too (no Role: rbacEnabled is false).
INSTANCE_CONFIG_MAP = f"{FULLNAME}-instance"
RUN_SERVICE_ACCOUNT = f"{USER_DEPLOYMENTS_FULLNAME}-user-deployments"
#: The ConfigMaps generated here: the workspace (the chart's dagsterWebserver.workspace.externalConfigmap)
#: and the access file.
WORKSPACE_CONFIG_MAP = "dagster-workspace"
ACCESS_CONFIG_MAP = "dagster-access"
#: Labels of the chart's pods, from dagster-io/dagster helm/dagster/templates: the webserver
#: (helpers/_deployment-webserver.tpl: selector labels + `component: dagster-webserver`), the
#: daemon (deployment-daemon.yaml: `component: dagster-daemon`) and the code servers
#: (charts/dagster-user-deployments/templates/deployment-user.yaml: `component: user-deployments`,
#: `deployment: <deployments[].name>`); `app.kubernetes.io/instance` is the release name.
WEBSERVER_PODS: Mapping[str, str] = {"app.kubernetes.io/instance": RELEASE, "component": "dagster-webserver"}
DAEMON_PODS: Mapping[str, str] = {"app.kubernetes.io/instance": RELEASE, "component": "dagster-daemon"}
CODE_SERVER_PODS: Mapping[str, str] = {"app.kubernetes.io/instance": RELEASE, "component": "user-deployments"}
#: Labels the K8sRunLauncher puts on every run pod (dagster_k8s/job.py, construct_dagster_k8s_job:
#: get_common_labels() in utils.py, whose instance is always "dagster", and
#: `app.kubernetes.io/component: run_worker` from launcher.py) ...
RUN_PODS: Mapping[str, str] = {"app.kubernetes.io/instance": "dagster", "app.kubernetes.io/component": "run_worker"}
#: ... and the one naming the run's code location (launcher.py, _launch_k8s_job_with_args).
RUN_LOCATION_LABEL = "dagster/code-location"
#: The gateway's pods (manifests/gateway.yaml) and, when it runs in the cluster, Postgres' pods
#: (dev/postgres.yaml labels its pods so; label yours the same, or edit POSTGRES_PODS).
GATEWAY_PODS: Mapping[str, str] = {"app.kubernetes.io/name": "dagster-gateway"}
POSTGRES_PODS: Mapping[str, str] = {"app.kubernetes.io/name": "postgresql"}
WEBSERVER_PORT = 3000
GATEWAY_PORT = 8080
POSTGRES_PORT = 5432

#: Where the volumes are mounted (the images' folders, as under compose).
STORAGE_DIR = "/opt/dagster/storage"  # compute logs (shared) and, in storage/, the location's IO volume
IO_DIR = f"{STORAGE_DIR}/storage"
#: The shared claims (manifests/storage.yaml), mounted by values.yaml's run launcher and webserver:
#: name -> (what it holds, the compose volume it stands for).
SHARED_CLAIMS: Mapping[str, tuple[str, str]] = {
    "dagster-storage": ("Compute logs of every run, which the webserver shows: Dagster's base_dir", "dagster_storage"),
    "dagster-exports": ("The CSV exports of every run, at /opt/dagster/exports", "exports"),
}
CLAIM_SIZE = "10Gi"
#: Services of the namespace that a location's deployment (its Service) must not be named like: the
#: chart's webserver, the gateway (manifests/) and the trial's Postgres and sample API (dev/).
RESERVED_NAMES = frozenset({WEBSERVER_SERVICE, "dagster-gateway", "postgres", "sample-api"})
#: The chart names an init container of the webserver and daemon `init-user-deployment-<name>` (63 at most).
MAX_NAME = 63 - len("init-user-deployment-")

INSTANCE_IMAGE_SUFFIX = "-dagster"


class KubernetesError(ValueError):
    """The files cannot be generated; the message says why and what to do."""


@dataclass(frozen=True)
class Images:
    """The image names: ``<registry>/<project>-<what>:<tag>`` (``make images REGISTRY=...``)."""

    prefix: str  # <registry>/<project>
    tag: str
    pull_policy: str = "IfNotPresent"

    def repository(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    def image(self, what: str) -> str:
        return f"{self.repository(what)}:{self.tag}"


def k8s_name(location: CodeLocation) -> str:
    """The chart's deployment name (and Service, host) of ``location``: its name with ``-`` for ``_``."""
    name = location.name.replace("_", "-")
    if len(name) > MAX_NAME:
        raise KubernetesError(
            f"location {location.name!r} is too long for Kubernetes: its deployment name {name!r} has "
            f"{len(name)} characters, at most {MAX_NAME} fit; choose a shorter name"
        )
    if name in RESERVED_NAMES:
        raise KubernetesError(
            f"location {location.name!r} would be named {name!r} in Kubernetes, the name of another Service "
            f"of the namespace ({', '.join(sorted(RESERVED_NAMES))}); choose another name"
        )
    return name


def io_claim(location: CodeLocation) -> str:
    """The location's own PersistentVolumeClaim (its runs' IO manager storage)."""
    return f"dagster-io-{k8s_name(location)}"


def deployment_name(location: CodeLocation) -> str:
    """The chart's Deployment of the location's code server (deployment-user.yaml)."""
    return f"{USER_DEPLOYMENTS_FULLNAME}-{k8s_name(location)}"


def env_config_map(location: CodeLocation) -> str:
    """The ConfigMap the chart makes for each user deployment, which its container context names."""
    return f"{USER_DEPLOYMENTS_FULLNAME}-{k8s_name(location)}-user-env"


def _quote(value: str) -> str:
    """``value`` as a YAML scalar (a JSON string is one)."""
    return json.dumps(value)


def _anchor(location: CodeLocation, what: str) -> str:
    return f"{k8s_name(location)}-{what}"


def launcher_grants(locations: Sequence[CodeLocation], images: Images) -> str:
    """The run launcher's ``locations``: each one's image and what its runs mount (PolicyK8sRunLauncher).

    The volumes are anchored here and named by alias in the location's user deployment
    below, so the code server and the grant of its runs are one list.
    """
    blocks = []
    for location in locations:
        blocks.append(
            f"{location.name}:\n"
            f"  image: {_quote(images.image(location.name))}\n"
            f"  volumes: &{_anchor(location, 'volumes')}\n"
            "    - *tmp-volume\n"
            "    - *instance-volume\n"
            "    - name: io\n"
            "      persistentVolumeClaim:\n"
            f"        claimName: {io_claim(location)}\n"
            f"  volume_mounts: &{_anchor(location, 'volume-mounts')}\n"
            "    - *tmp-mount\n"
            "    - *instance-mount\n"
            "    - name: io\n"
            f"      mountPath: {IO_DIR}\n"
            f"  env_config_maps: [{env_config_map(location)}]\n"
        )
    return "".join(blocks)


def user_deployments(locations: Sequence[CodeLocation], images: Images) -> str:
    """``dagster-user-deployments.deployments``: one code server per location, merging ``*code-location``."""
    blocks = []
    for location in locations:
        args = ["--lazy-load-user-code", "-m", location.module, "--location-name", location.name]
        blocks.append(
            f"- name: {k8s_name(location)}\n"
            "  <<: *code-location\n"
            "  image:\n"
            f"    repository: {images.repository(location.name)}\n"
            f"    tag: {_quote(images.tag)}\n"
            f"    pullPolicy: {images.pull_policy}\n"
            f"  dagsterApiGrpcArgs: [{', '.join(_quote(arg) for arg in args)}]\n"
            f"  port: {location.port}\n"
            f"  volumes: *{_anchor(location, 'volumes')}\n"
            f"  volumeMounts: *{_anchor(location, 'volume-mounts')}\n"
        )
    return "".join(blocks)


def instance_images(values: Mapping[str, Any], *, path: str = VALUES) -> Images:
    """The images' registry/project prefix, tag and pull policy, from values.yaml's ``dagsterWebserver.image``."""
    image = (values.get("dagsterWebserver") or {}).get("image") or {}
    repository, tag = image.get("repository"), image.get("tag")
    if not isinstance(repository, str) or not repository.endswith(INSTANCE_IMAGE_SUFFIX) or tag is None:
        raise KubernetesError(
            f"{path}: dagsterWebserver.image must name the webserver/daemon image, "
            f"<registry>/<project>{INSTANCE_IMAGE_SUFFIX} with a tag (the locations' images are derived from it), "
            f"got repository={repository!r} tag={tag!r}"
        )
    return Images(repository.removesuffix(INSTANCE_IMAGE_SUFFIX), str(tag), image.get("pullPolicy", "IfNotPresent"))


def render_values(text: str, locations: Sequence[CodeLocation]) -> str:
    """values.yaml's text with its two generated lists rewritten for ``locations``."""
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise KubernetesError(f"{VALUES} is not valid YAML ({error}); fix it first") from None
    images = instance_images(values if isinstance(values, dict) else {})
    text = replace_region(text, "run-launcher.locations", launcher_grants(locations, images), path=VALUES)
    return replace_region(text, "deployments", user_deployments(locations, images), path=VALUES)


def _documents(header: str, documents: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """A multi-document YAML file: ``header``, then each (comment, resource)."""
    parts = [header.rstrip("\n") + "\n"]
    for comment, resource in documents:
        comment_lines = "".join(f"# {line}".rstrip() + "\n" for line in comment.splitlines())
        body = yaml.safe_dump(dict(resource), sort_keys=False, default_flow_style=False, width=1000)
        parts.append("---\n" + comment_lines + body)
    return "".join(parts)


def _peers(*selectors: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"podSelector": {"matchLabels": dict(selector)}} for selector in selectors]


def _policy(name: str, comment: str, pods: Mapping[str, str], rules: list[dict[str, Any]]) -> tuple[str, dict]:
    return comment, {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "dagster"}},
        "spec": {"podSelector": {"matchLabels": dict(pods)}, "policyTypes": ["Ingress"], "ingress": rules},
    }


def _tcp(port: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port}]


def render_network_policies(locations: Sequence[CodeLocation]) -> str:
    """manifests/network-policies.yaml: compose's network isolation as NetworkPolicies (ingress)."""
    documents = [
        (
            "Nothing in the namespace accepts a connection unless a policy below allows it (compose: every\n"
            "service is only on the networks it needs).",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {
                    "name": "dagster-default-deny-ingress",
                    "labels": {"app.kubernetes.io/part-of": "dagster"},
                },
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
            },
        ),
        _policy(
            "dagster-gateway",
            "The gateway (manifests/gateway.yaml), the one entry point: from anywhere (an Ingress\n"
            "controller, a LoadBalancer, kubectl port-forward); it asks for a login.",
            GATEWAY_PODS,
            [{"ports": _tcp(GATEWAY_PORT)}],
        ),
        _policy(
            "dagster-webserver",
            "The webserver: only from the gateway (compose: it listens only on the ui network).",
            WEBSERVER_PODS,
            [{"from": _peers(GATEWAY_PODS), "ports": _tcp(WEBSERVER_PORT)}],
        ),
        _policy(
            "dagster-postgres",
            "Postgres, when it runs in this namespace (dev/postgres.yaml, or yours labelled so): only from\n"
            "Dagster's pods. A managed Postgres outside the cluster is not selected by this: restrict it\n"
            "with its own firewall to the cluster's egress addresses.",
            POSTGRES_PODS,
            [
                {
                    "from": _peers(WEBSERVER_PODS, DAEMON_PODS, CODE_SERVER_PODS, RUN_PODS),
                    "ports": _tcp(POSTGRES_PORT),
                }
            ],
        ),
    ]
    for location in locations:
        documents.append(
            _policy(
                f"dagster-code-location-{k8s_name(location)}",
                f"The code server of {location.name}: only from the webserver, the daemon and the runs of\n"
                f"{location.name} (the K8sRunLauncher labels each run pod {RUN_LOCATION_LABEL}: <location>). No\n"
                "other team's code server or run reaches it (compose: the location's own network).",
                {**CODE_SERVER_PODS, "deployment": k8s_name(location)},
                [
                    {
                        "from": _peers(WEBSERVER_PODS, DAEMON_PODS, {**RUN_PODS, RUN_LOCATION_LABEL: location.name}),
                        "ports": _tcp(location.port),
                    }
                ],
            )
        )
    header = (
        f"# Generated from workspace.yaml by `{GENERATE}`: edit that, or the generator, not this file.\n"
        "# The team isolation of the compose stack (its per-location networks) as NetworkPolicies, for\n"
        "# the chart's release `dagster` in its own namespace. They restrict ingress only; egress: see\n"
        "# docs/kubernetes.md. They take effect only with a network plugin that enforces NetworkPolicy.\n"
        "#   kubectl apply -n dagster -f deploy/kubernetes/manifests/\n"
    )
    return _documents(header, documents)


def _claim(name: str, comment: str, labels: Mapping[str, str]) -> tuple[str, dict]:
    return comment, {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "dagster", **labels}},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": CLAIM_SIZE}}},
    }


def render_storage(locations: Sequence[CodeLocation]) -> str:
    """manifests/storage.yaml: the shared claims and one IO claim per location (compose's volumes)."""
    documents = [
        _claim(name, f"{description} (compose: the {volume} volume).", {"dagster/volume": name})
        for name, (description, volume) in SHARED_CLAIMS.items()
    ]
    for location in locations:
        documents.append(
            _claim(
                io_claim(location),
                f"The IO volume of {location.name}: the values its runs pickle (filesystem IO manager), mounted\n"
                f"at {IO_DIR} by its code server and its runs only (compose: the {location.name} volume).",
                {"dagster/volume": "io", RUN_LOCATION_LABEL: location.name},
            )
        )
    header = (
        f"# Generated from workspace.yaml by `{GENERATE}`: edit that, or the generator, not this file.\n"
        "# ReadWriteMany: a run pod and the code server (or the webserver) may run on different nodes.\n"
        "# No storageClassName: the cluster's default class must offer ReadWriteMany (NFS, CephFS, EFS,\n"
        "# Filestore, Azure Files...), or set one here. A single-node kind/k3s cluster: see docs/kubernetes.md.\n"
        "# Deleting a claim deletes its data (reclaim policy Delete, the usual default).\n"
    )
    return _documents(header, documents)


class _LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks (``|``), so a config file reads as itself."""


def _literal(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_LiteralDumper.add_representer(str, _literal)


def _config_map(name: str, data: Mapping[str, str], labels: Mapping[str, str], header: str, *, source: str) -> str:
    """A ConfigMap of whole files, each written as a literal block so that it reads as itself."""
    for key, text in data.items():
        if any(line != line.rstrip() for line in text.splitlines()):
            raise KubernetesError(
                f"{source} has trailing white space, which a ConfigMap cannot keep; remove it ({key})"
            )
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {**labels, "app.kubernetes.io/part-of": "dagster"}},
        "data": dict(data),
    }
    return header + "---\n" + yaml.dump(config_map, Dumper=_LiteralDumper, sort_keys=False, width=1000)


def render_gateway_config(template: str) -> str:
    """manifests/gateway-config.yaml: the gateway's nginx config (deploy/gateway/nginx.conf.template) as a ConfigMap."""
    header = (
        f"# Generated from {GATEWAY_TEMPLATE} by `{GENERATE}`: edit that file, which the compose gateway\n"
        "# uses too. manifests/gateway.yaml mounts it over the image's copy, so a change here needs no\n"
        "# new image: kubectl apply, then kubectl rollout restart -n dagster deployment/dagster-gateway.\n"
    )
    return _config_map(
        "dagster-gateway-nginx",
        {"nginx.conf.template": template},
        {"app.kubernetes.io/name": "dagster-gateway"},
        header,
        source=GATEWAY_TEMPLATE,
    )


def workspace_yaml(locations: Sequence[CodeLocation]) -> str:
    """The workspace in the cluster: each location by its Dagster name, from its chart Service, with its team."""
    servers = []
    for location in locations:
        team = f"      additional_metadata:\n        team: {location.team}\n" if location.team else ""
        servers.append(
            "  - grpc_server:\n"
            f"      location_name: {location.name}\n"
            f"      host: {k8s_name(location)}\n"
            f"      port: {location.port}\n" + team
        )
    return "load_from:\n" + "".join(servers)


def render_workspace_config(locations: Sequence[CodeLocation]) -> str:
    """manifests/workspace-config.yaml: workspace.yaml for the webserver, the daemon and the auth service."""
    header = (
        f"# Generated from workspace.yaml by `{GENERATE}`: edit that, not this file.\n"
        "# The workspace the chart's webserver and daemon load (values.yaml:\n"
        f"# dagsterWebserver.workspace.externalConfigmap: {WORKSPACE_CONFIG_MAP}), each location from its user\n"
        "# deployment's Service, with its owning team, which the webserver's permissions and the auth\n"
        "# service's roles read (the chart's own workspace has no additional_metadata).\n"
    )
    return _config_map(
        WORKSPACE_CONFIG_MAP,
        {"workspace.yaml": workspace_yaml(locations)},
        {"app.kubernetes.io/name": "dagster-workspace"},
        header,
        source=WORKSPACE,
    )


def render_access_config(access: str) -> str:
    """manifests/access-config.yaml: the access file (deploy/access/access.yaml) as a ConfigMap."""
    header = (
        f"# Generated from {ACCESS} by `{GENERATE}` (and by make ui-user / ui-token, which edit it):\n"
        "# who may do what per team, read by the gateway's auth service, which applies a change within\n"
        "# seconds of the kubelet updating the mounted ConfigMap (about a minute): kubectl apply it.\n"
    )
    return _config_map(
        ACCESS_CONFIG_MAP,
        {"access.yaml": access},
        {"app.kubernetes.io/name": "dagster-access"},
        header,
        source=ACCESS,
    )


def gateway_upstream() -> str:
    """manifests/gateway.yaml's GATEWAY_WEBSERVER: the chart's webserver Service by its full name.

    nginx resolves it per request (so the gateway keeps running while the release is
    reinstalled) and applies no search domains, hence the namespace's domain.
    """
    return (
        f"- name: GATEWAY_WEBSERVER\n  value: {WEBSERVER_SERVICE}.$(POD_NAMESPACE).svc.cluster.local:{WEBSERVER_PORT}\n"
    )


def generate(root: Path, locations: Sequence[CodeLocation] | None = None) -> dict[str, str]:
    """Every generated file's path (relative to ``root``) and complete new text."""
    if locations is None:
        locations = read_locations(root)
    try:
        values_text = (root / VALUES).read_text(encoding="utf-8")
        template = (root / GATEWAY_TEMPLATE).read_text(encoding="utf-8")
        gateway = (root / GATEWAY).read_text(encoding="utf-8")
        access = (root / ACCESS).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise KubernetesError(f"{error.filename} does not exist: is {root} the repository's root (--root)?") from None
    return {
        VALUES: render_values(values_text, locations),
        NETWORK_POLICIES: render_network_policies(locations),
        STORAGE: render_storage(locations),
        WORKSPACE_CONFIG: render_workspace_config(locations),
        GATEWAY_CONFIG: render_gateway_config(template),
        ACCESS_CONFIG: render_access_config(access),
        GATEWAY: replace_region(gateway, "webserver", gateway_upstream(), path=GATEWAY),
    }
