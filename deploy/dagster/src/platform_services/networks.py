"""Keeps the shared services on every code location's network (python -m platform_services.networks).

    python -m platform_services.networks          # reconcile every few seconds (the compose service)
    python -m platform_services.networks once     # one pass, then exit
    python -m platform_services.networks wait     # until this container is on every location's network

Each code location has a network of its own (its code server and its runs), which the services
every location needs must join: Postgres and the sample API (by those names), and the webserver,
viewer, daemon and metrics exporter, which call every code server. Listed in docker-compose.yml,
those networks would be part of each shared service's configuration, and adding a team would
recreate Postgres, the webserver and the daemon. So compose gives the shared services only the
platform's networks, and this service connects them to the location networks of the workspace
(the mounted workspace.yaml, re-read on every pass) as soon as they run, after a restart or a
recreate too. A new location is joined within ``NETWORKS_INTERVAL_SECONDS``, and nothing restarts.

It reaches Docker only through the socket proxy's grant for it (list containers, inspect and
connect networks): it cannot create, start or stop anything. Disconnecting a removed location's
network is `make remove-location`'s, on the host.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors

from instance_kit.workspace import read_hosts, read_locations

#: The services that join every location's network, with the names they have there.
SHARED: Mapping[str, tuple[str, ...]] = {
    "postgres": ("postgres",),
    "sample_api": ("sample_api",),
    "webserver": (),
    "webserver_viewer": (),
    "daemon": (),
    "metrics": (),
}
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"


def event(name: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    time_ = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    print(json.dumps({"time": time_, "event": name, **fields}), flush=True)


def location_networks(project: str, workspace: Path) -> dict[str, str]:
    """Each location's network name (compose's ``<project>_<location>``), by location."""
    return {location: f"{project}_{location}" for location in sorted(read_locations(workspace))}


def missing(container: Any, networks: Mapping[str, str]) -> list[str]:
    """The location networks ``container`` is not on."""
    joined = set((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})
    return [name for name in networks.values() if name not in joined]


def reconcile(client: docker.DockerClient, project: str, workspace: Path) -> list[tuple[str, str]]:
    """One pass: every running shared service joins every location network it is not on yet.

    Returns the (service, network) pairs it connected. A network that does not exist yet (its
    location's code server was never started) is left for a later pass.
    """
    networks = location_networks(project, workspace)
    connected = []
    # Sparse: the listing itself has the labels and networks (an inspect per container is not granted).
    labels = [f"{PROJECT_LABEL}={project}", f"{ONEOFF_LABEL}=False"]
    for container in client.containers.list(sparse=True, filters={"label": labels}):
        service = (container.attrs.get("Labels") or {}).get(SERVICE_LABEL, "")
        if service not in SHARED:
            continue
        for name in missing(container, networks):
            try:
                client.networks.get(name).connect(container.id, aliases=list(SHARED[service]) or None)
            except docker.errors.NotFound:
                continue  # no such network yet, or the container just went away
            except docker.errors.APIError as error:
                if "already exists" in str(error):  # joined since the listing
                    continue
                raise
            connected.append((service, name))
            event("connected", service=service, network=name, aliases=list(SHARED[service]))
    return connected


def wait_until_joined(workspace: Path, timeout: float) -> int:
    """Exit status 0 once this container resolves every location's code server, else 1 with a message.

    The daemon waits for this before it starts: it would otherwise load its workspace while it
    cannot reach a code server, and try again only a minute later.
    """
    hosts = read_hosts(workspace)
    deadline = time.monotonic() + timeout
    while True:
        unresolved = []
        for location, host in hosts.items():
            try:
                socket.getaddrinfo(host, None)
            except OSError:
                unresolved.append(location)
        if not unresolved or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if unresolved:
        print(
            f"networks: after {timeout:.0f} s this container is still not on the network of {', '.join(unresolved)}: "
            "is the location_networks service running (docker compose logs location_networks)? Starting anyway.",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "run"
    workspace = Path(os.environ.get("WORKSPACE_FILE", "/opt/dagster/dagster_home/workspace.yaml"))
    if mode == "wait":
        wait_until_joined(workspace, float(os.environ.get("NETWORKS_WAIT_SECONDS", "30")))
        return 0  # never keep the service from starting: it retries on its own
    project = os.environ.get("COMPOSE_PROJECT_NAME", "")
    if not project:
        print("networks: COMPOSE_PROJECT_NAME is not set (compose sets it in docker-compose.yml)", file=sys.stderr)
        return 78
    interval = float(os.environ.get("NETWORKS_INTERVAL_SECONDS", "2"))
    heartbeat = os.environ.get("NETWORKS_HEALTH_FILE")
    client = docker.from_env(timeout=30)
    event("started", project=project, workspace=str(workspace), shared=sorted(SHARED))
    while True:
        try:
            reconcile(client, project, workspace)
            if heartbeat:
                Path(heartbeat).touch()
        except (docker.errors.DockerException, OSError, ValueError) as error:
            event("reconcile_failed", message=str(error))
        if mode == "once":
            return 0
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
