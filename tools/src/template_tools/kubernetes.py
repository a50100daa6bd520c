"""The per-location parts of the Kubernetes deployment (deploy/kubernetes/), derived from workspace.yaml.

    python -m template_tools.kubernetes            # rewrite the generated files from workspace.yaml
    python -m template_tools.kubernetes --check    # exit 1 (and say which) when they are not current
    python -m template_tools.kubernetes --image-overlay --registry REG [--project P] [--tag T]
                                                   # print a values overlay with other images

On Kubernetes, a code location is three things besides its image: a user deployment of
the Helm chart (its gRPC code server, whose resources, env and volumes, among them the
chart's instance config, its runs get too),
a NetworkPolicy (who may call that server) and a PersistentVolumeClaim (its runs'
IO-manager storage, which no other team's run mounts). All three come from the one list
of locations, workspace.yaml, so adding a location edits no file here by hand:

* ``deploy/kubernetes/values.yaml`` is written by hand except two lists, each between a
  ``# >>> generated: <list>`` and a ``# <<< generated: <list>`` line: the code servers
  the webserver and daemon load (``dagsterWebserver.workspace.servers``) and the user
  deployments (``dagster-user-deployments.deployments``). Only those lines are rewritten;
  the images of the locations follow ``dagsterWebserver.image`` (same registry, project
  and tag);
* ``deploy/kubernetes/manifests/network-policies.yaml`` and ``.../storage.yaml`` are
  generated whole.

Names: a Kubernetes object name cannot hold ``_``, so the chart's deployment (and its
Service, the server's host name) of ``simple_ops`` is ``simple-ops``; the Dagster location
keeps its name ``simple_ops`` (``workspace.servers[].name``), as under compose.

The labels the NetworkPolicies select come from the chart's templates and from
dagster_k8s (see the constants below); docs/kubernetes.md explains what they allow.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from template_tools.locations import ROOT, CodeLocation, WorkspaceError, read_locations

KUBERNETES = "deploy/kubernetes"
VALUES = f"{KUBERNETES}/values.yaml"
NETWORK_POLICIES = f"{KUBERNETES}/manifests/network-policies.yaml"
STORAGE = f"{KUBERNETES}/manifests/storage.yaml"
#: The chart version that matches the pinned Dagster (the root pyproject.toml's constraints).
CHART_VERSION = "1.13.27"
COMMAND = "python -m template_tools.kubernetes"
#: The image names' defaults for --image-overlay: COMPOSE_PROJECT_NAME and DAGSTER_IMAGE_TAG (.env.example).
DEFAULT_PROJECT = "dagster"
DEFAULT_TAG = "local"

#: The Helm release name the labels below assume (docs/kubernetes.md: `helm upgrade --install dagster ...`).
RELEASE = "dagster"
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
#: Services of the namespace that a location's deployment (its Service) must not be named like.
RESERVED_NAMES = frozenset({"dagster-webserver", "dagster-gateway", "postgres", "sample-api"})
#: The chart names an init container of the webserver and daemon `init-user-deployment-<name>` (63 at most).
MAX_NAME = 63 - len("init-user-deployment-")

BEGIN = re.compile(r"^(?P<indent> *)# >>> generated: (?P<region>[\w.-]+)\b.*$")
END = "# <<< generated: {region}"
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


def _quote(value: str) -> str:
    """``value`` as a YAML scalar (a JSON string is one)."""
    return json.dumps(value)


def workspace_servers(locations: Sequence[CodeLocation]) -> str:
    """``dagsterWebserver.workspace.servers``: where the webserver and daemon load each location from."""
    return "".join(
        f"- name: {location.name}\n  host: {k8s_name(location)}\n  port: {location.port}\n" for location in locations
    )


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
            "  volumes:\n"
            "    - *tmp-volume\n"
            "    - *instance-volume\n"
            "    - name: io\n"
            "      persistentVolumeClaim:\n"
            f"        claimName: {io_claim(location)}\n"
            "  volumeMounts:\n"
            "    - *tmp-mount\n"
            "    - *instance-mount\n"
            "    - name: io\n"
            f"      mountPath: {IO_DIR}\n"
        )
    return "".join(blocks)


def replace_region(text: str, region: str, body: str, *, path: str = VALUES) -> str:
    """``text`` with the lines between the ``region`` markers replaced by ``body`` (written at column 0)."""
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if (m := BEGIN.match(line.rstrip("\n"))) and m["region"] == region]
    if len(starts) != 1:
        raise KubernetesError(
            f"{path}: expected one `# >>> generated: {region}` line, found {len(starts)}; restore it from git"
        )
    start = starts[0]
    indent = BEGIN.match(lines[start].rstrip("\n"))["indent"]  # type: ignore[index]
    end_marker = indent + END.format(region=region)
    ends = [i for i in range(start + 1, len(lines)) if lines[i].rstrip() == end_marker]
    if not ends:
        raise KubernetesError(f"{path}: no `{end_marker.strip()}` line after line {start + 1}; restore it from git")
    new = "".join(indent + line if line.strip() else line for line in body.splitlines(keepends=True))
    return "".join([*lines[: start + 1], new, *lines[ends[0] :]])


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
    text = replace_region(text, "workspace.servers", workspace_servers(locations))
    return replace_region(text, "deployments", user_deployments(locations, images))


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
        f"# Generated from workspace.yaml by `{COMMAND}`: edit that, or the generator, not this file.\n"
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
        f"# Generated from workspace.yaml by `{COMMAND}`: edit that, or the generator, not this file.\n"
        "# ReadWriteMany: a run pod and the code server (or the webserver) may run on different nodes.\n"
        "# No storageClassName: the cluster's default class must offer ReadWriteMany (NFS, CephFS, EFS,\n"
        "# Filestore, Azure Files...), or set one here. A single-node kind/k3s cluster: see docs/kubernetes.md.\n"
        "# Deleting a claim deletes its data (reclaim policy Delete, the usual default).\n"
    )
    return _documents(header, documents)


def generate(root: Path, locations: Sequence[CodeLocation] | None = None) -> dict[str, str]:
    """Every generated file's path (relative to ``root``) and complete new text."""
    if locations is None:
        locations = read_locations(root)
    try:
        values_text = (root / VALUES).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KubernetesError(f"{root / VALUES} does not exist: is {root} the repository's root (--root)?") from None
    return {
        VALUES: render_values(values_text, locations),
        NETWORK_POLICIES: render_network_policies(locations),
        STORAGE: render_storage(locations),
    }


def stale(root: Path, files: Mapping[str, str]) -> list[str]:
    """The generated files whose committed text differs from ``files``."""
    differing = []
    for path, text in files.items():
        try:
            current = (root / path).read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            differing.append(path)
    return differing


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared values out in full: an overlay is its own file, without the anchors of values.yaml."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def image_overlay(root: Path, images: Images, locations: Sequence[CodeLocation] | None = None) -> str:
    """A values overlay setting every image to ``images``: the instance image and the whole deployments list.

    Helm replaces a list as a whole, so the overlay repeats each deployment (as values.yaml
    resolves it), with only its image changed.
    """
    if locations is None:
        locations = read_locations(root)
    values = yaml.safe_load(generate(root, locations)[VALUES])
    by_name = {k8s_name(location): location for location in locations}
    deployments = []
    for deployment in values["dagster-user-deployments"]["deployments"]:
        location = by_name[deployment["name"]]
        image = {"repository": images.repository(location.name), "tag": images.tag, "pullPolicy": images.pull_policy}
        deployments.append({**deployment, "image": image})
    instance = {"repository": images.repository("dagster"), "tag": images.tag, "pullPolicy": images.pull_policy}
    overlay = {
        "dagsterWebserver": {"image": instance},
        "dagsterDaemon": {"image": instance},
        "dagster-user-deployments": {"deployments": deployments},
    }
    header = (
        f"# Images {images.prefix}-<dagster|location>:{images.tag}, by `{COMMAND} --image-overlay`.\n"
        f"#   helm upgrade --install dagster dagster/dagster --version {CHART_VERSION} -n dagster \\\n"
        "#     -f deploy/kubernetes/values.yaml -f <this file>\n"
        "# Regenerate it after adding a location: it repeats the whole deployments list.\n"
    )
    return header + yaml.dump(overlay, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=1000)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Derive deploy/kubernetes' per-location parts from workspace.yaml."
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's root (default: this checkout)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated file is stale")
    parser.add_argument(
        "--image-overlay", action="store_true", help="print a values overlay with the images of --registry/--tag"
    )
    parser.add_argument("--registry", help="with --image-overlay: the registry (and path) the images were pushed to")
    parser.add_argument(
        "--project",
        default=DEFAULT_PROJECT,
        help=f"with --image-overlay: the compose project (default: {DEFAULT_PROJECT})",
    )
    parser.add_argument(
        "--tag", default=DEFAULT_TAG, help=f"with --image-overlay: the images' tag (default: {DEFAULT_TAG})"
    )
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    try:
        if args.image_overlay:
            if not args.registry:
                parser.error("--image-overlay needs --registry (e.g. registry.example.com/team)")
            images = Images(f"{args.registry.rstrip('/')}/{args.project}", args.tag)
            sys.stdout.write(image_overlay(root, images))
            return 0
        files = generate(root)
    except (WorkspaceError, KubernetesError) as error:
        print(f"kubernetes: {error}", file=sys.stderr)
        return 1
    differing = stale(root, files)
    if args.check:
        if differing:
            print(
                f"kubernetes: {', '.join(differing)} do(es) not match workspace.yaml; run `{COMMAND}`", file=sys.stderr
            )
            return 1
        print(f"kubernetes: {', '.join(files)} match workspace.yaml")
        return 0
    for path in differing:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(files[path], encoding="utf-8")
        print(f"kubernetes: wrote {path}")
    if not differing:
        print("kubernetes: every generated file is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
