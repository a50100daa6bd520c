"""location_networks: the shared services join every location's network, and only they do.

Real Docker: containers labelled as a compose project's would be, and real networks, all named
``netsync-test-*`` and removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from platform_services import networks

IMAGE = "python:3.11-slim-bookworm"


def write_workspace(path: Path, hosts: dict[str, str]) -> Path:
    entries = [{"grpc_server": {"location_name": name, "host": host, "port": 4000}} for name, host in hosts.items()]
    path.write_text(yaml.safe_dump({"load_from": entries}))
    return path


def test_waiting_ends_once_every_location_host_resolves(tmp_path: Path) -> None:
    workspace = write_workspace(tmp_path / "workspace.yaml", {"here": "localhost"})

    assert networks.wait_until_joined(workspace, timeout=5) == 0


def test_waiting_gives_up_with_the_locations_it_cannot_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace = write_workspace(
        tmp_path / "workspace.yaml", {"here": "localhost", "far": "netsync-test-nowhere.invalid"}
    )

    assert networks.wait_until_joined(workspace, timeout=0.5) == 1
    err = capsys.readouterr().err
    assert "still not on the network of far" in err and "docker compose logs location_networks" in err


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[docker.DockerClient, str, Path]]:
    client = docker.from_env()
    name = f"netsync-test-{uuid.uuid4().hex[:8]}"
    created: list[Any] = []

    def container(service: str, oneoff: bool = False) -> Any:
        labels = {
            networks.PROJECT_LABEL: name,
            networks.SERVICE_LABEL: service,
            networks.ONEOFF_LABEL: str(oneoff),
        }
        made = client.containers.run(
            IMAGE, ["sleep", "300"], detach=True, labels=labels, name=f"{name}-{service}-{len(created)}"
        )
        created.append(made)
        return made

    for service in ("postgres", "webserver", "simple_ops"):
        container(service)
    container("daemon", oneoff=True)  # `docker compose run daemon ...`: not the service
    network = client.networks.create(f"{name}_simple_ops")
    workspace = write_workspace(tmp_path / "workspace.yaml", {"simple_ops": "simple_ops", "not_started": "x"})
    try:
        yield client, name, workspace
    finally:
        for made in created:
            made.remove(force=True)
        network.remove()
        client.close()


@pytest.mark.docker
def test_each_shared_service_joins_each_existing_location_network_once(
    project: tuple[docker.DockerClient, str, Path],
) -> None:
    client, name, workspace = project

    connected = networks.reconcile(client, name, workspace)

    assert sorted(connected) == [("postgres", f"{name}_simple_ops"), ("webserver", f"{name}_simple_ops")]
    attached = client.networks.get(f"{name}_simple_ops").attrs
    on_network = {client.containers.get(cid).labels[networks.SERVICE_LABEL] for cid in attached["Containers"]}
    assert on_network == {"postgres", "webserver"}  # not the code server's, nor a one-off
    postgres = client.containers.list(filters={"name": f"{name}-postgres"})[0]
    assert postgres.attrs["NetworkSettings"]["Networks"][f"{name}_simple_ops"]["Aliases"][:1] == ["postgres"]
    assert networks.reconcile(client, name, workspace) == []  # nothing left to do
