"""The Docker socket proxy (deploy/socket_proxy) lets through only what Dagster's runs need.

Real Docker, no mocks: the image is built and run hardened (read-only root, no capabilities,
non-root user in the socket's group), and the real ``docker`` client talks to both grants:
:2375 (dagster-daemon: DockerRunLauncher and run monitoring), :2376 (webserver: terminate) and
:2377 (location_networks: join the shared services to the locations' networks).
Every container, network and volume it makes is named ``sockproxy-test-*`` / labelled
``sockproxy-test=1`` and removed through the raw socket afterwards.
"""

from __future__ import annotations

import http.client
import io
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "deploy" / "socket_proxy"
IMAGE = "sockproxy-test:latest"
SOCKET = "/var/run/docker.sock"
LOCAL_IMAGE = "python:3.11-slim-bookworm"
LABEL = {"sockproxy-test": "1"}
DAEMON_PORT, WEBSERVER_PORT, NETWORKS_PORT = "2375/tcp", "2376/tcp", "2377/tcp"
# What dagster.yaml's run_launcher passes as container_kwargs to every run container.
LAUNCHER_KWARGS: dict[str, Any] = {
    "auto_remove": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {"/tmp": "rw,noexec,nosuid,size=256m"},
}


pytestmark = pytest.mark.docker


def _name(kind: str) -> str:
    return f"sockproxy-test-{kind}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def raw() -> Iterator[Any]:
    """A client on the raw socket: sets up and cleans up, never what is under test."""
    if shutil.which("docker") is None or not Path(SOCKET).exists():
        pytest.fail(
            f"the proxy is built with the docker CLI and mounts the engine's socket: no docker CLI or no {SOCKET}"
        )
    try:
        client = docker.DockerClient(base_url=f"unix://{SOCKET}", timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"no Docker engine answers on {SOCKET}: {exc}")
    yield client
    for container in client.containers.list(all=True, filters={"label": "sockproxy-test=1"}):
        container.remove(force=True)
    for network in client.networks.list(filters={"label": "sockproxy-test=1"}):
        network.remove()
    client.close()


@pytest.fixture(scope="module")
def proxy(raw: Any) -> Iterator[Any]:
    build = subprocess.run(
        ["docker", "build", "-q", "-t", IMAGE, str(CONTEXT)], capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stderr
    container = raw.containers.run(
        IMAGE,
        detach=True,
        name=_name("proxy"),
        labels=LABEL,
        # As docker-compose.yml runs it: root with two capabilities, dropped by the entrypoint.
        user="0",
        read_only=True,
        cap_drop=["ALL"],
        cap_add=["SETUID", "SETGID"],
        security_opt=["no-new-privileges"],
        volumes={SOCKET: {"bind": SOCKET, "mode": "ro"}},
        ports={port: ("127.0.0.1", None) for port in (DAEMON_PORT, WEBSERVER_PORT, NETWORKS_PORT)},
        # The image's own health command, checked every second instead of every 10 s.
        healthcheck={"interval": 1_000_000_000, "start_period": 1_000_000_000},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            container.reload()
            if container.attrs["State"].get("Health", {}).get("Status") == "healthy":
                break
            assert container.status == "running", container.logs().decode()
            assert time.monotonic() < deadline, f"proxy not healthy: {container.attrs['State']}"
            time.sleep(0.3)
        yield container
    finally:
        container.remove(force=True)


def _port(proxy: Any, port: str) -> int:
    return int(proxy.attrs["NetworkSettings"]["Ports"][port][0]["HostPort"])


@pytest.fixture(scope="module")
def daemon_client(proxy: Any) -> Iterator[Any]:
    """Made the way DockerRunLauncher._get_client makes it: from_env, version "auto"."""
    client = docker.client.from_env(environment={"DOCKER_HOST": f"tcp://127.0.0.1:{_port(proxy, DAEMON_PORT)}"})
    yield client
    client.close()


@pytest.fixture(scope="module")
def webserver_client(proxy: Any) -> Iterator[Any]:
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{_port(proxy, WEBSERVER_PORT)}", timeout=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def networks_client(proxy: Any) -> Iterator[Any]:
    """As platform_services.networks makes it: from_env."""
    client = docker.client.from_env(environment={"DOCKER_HOST": f"tcp://127.0.0.1:{_port(proxy, NETWORKS_PORT)}"})
    yield client
    client.close()


def _running(raw: Any) -> Any:
    """A running container made through the raw socket."""
    container = raw.containers.run(LOCAL_IMAGE, ["sleep", "300"], detach=True, name=_name("target"), labels=LABEL)
    return container


@pytest.fixture(scope="module")
def target(raw: Any) -> Any:
    """What the refused calls aim at; it survives them all (remove is refused too)."""
    return _running(raw)


def test_haproxy_runs_as_haproxy_with_the_socket_s_group_and_no_capabilities(proxy: Any) -> None:
    status = dict(
        line.split(":\t", 1) for line in proxy.exec_run(["cat", "/proc/1/status"]).output.decode().splitlines()
    )
    haproxy_uid = proxy.exec_run(["id", "-u", "haproxy"]).output.decode().strip()

    assert status["Name"].strip() == "haproxy"
    assert status["Uid"].split()[:2] == [haproxy_uid, haproxy_uid]
    assert status["Groups"].split() == [str(Path(SOCKET).stat().st_gid)]
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    host = proxy.attrs["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]


def test_without_the_socket_s_group_it_refuses_with_the_fix(raw: Any) -> None:
    container = raw.containers.run(
        IMAGE,
        detach=True,
        name=_name("nogroup"),
        labels=LABEL,
        user="haproxy",
        cap_drop=["ALL"],
        volumes={SOCKET: {"bind": SOCKET, "mode": "ro"}},
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 1
        log = container.logs().decode()
    finally:
        container.remove(force=True)

    assert f"cannot use {SOCKET}" in log and f"--group-add {Path(SOCKET).stat().st_gid}" in log


@pytest.mark.parametrize("port", [DAEMON_PORT, WEBSERVER_PORT])
def test_version_and_ping(proxy: Any, port: str) -> None:
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{_port(proxy, port)}", version="auto", timeout=30)
    assert client.ping() is True
    assert client.version(api_version=False)["ApiVersion"] == client.api._version


def test_daemon_grant_launches_monitors_and_stops_a_run_container(daemon_client: Any, raw: Any) -> None:
    """The calls of DockerRunLauncher._launch_container_with_command, check_run_worker_health
    and terminate, with dagster.yaml's container_kwargs and a two-network container context."""
    networks = [raw.networks.create(_name("net"), labels=LABEL).name for _ in range(2)]
    name = _name("run")
    container = daemon_client.containers.create(
        image=LOCAL_IMAGE,
        command=["sleep", "30"],
        detach=True,
        environment={"DAGSTER_RUN_JOB_NAME": "job"},
        network=networks[0],
        labels={**LABEL, "dagster/run_id": name},
        name=name,
        **LAUNCHER_KWARGS,
    )
    daemon_client.networks.get(networks[1]).connect(container)
    container.start()

    running = daemon_client.containers.get(container.id)  # run monitoring
    assert running.status == "running"
    assert set(running.attrs["NetworkSettings"]["Networks"]) == set(networks)
    listed = daemon_client.containers.list(filters={"label": f"dagster/run_id={name}"})
    assert [c.id for c in listed] == [container.id]

    daemon_client.containers.get(container.id).stop(timeout=1)  # terminate
    # auto_remove: Docker deletes it; run monitoring then sees NotFound (a 404 passes through).
    deadline = time.monotonic() + 20
    while True:
        try:
            daemon_client.containers.get(container.id)
        except docker.errors.NotFound:
            break
        assert time.monotonic() < deadline, "the stopped run container was not removed"
        time.sleep(0.2)


def test_daemon_grant_stop_and_kill_without_auto_remove(daemon_client: Any) -> None:
    stopped = daemon_client.containers.create(LOCAL_IMAGE, ["sleep", "30"], name=_name("run"), labels=LABEL)
    killed = daemon_client.containers.create(LOCAL_IMAGE, ["sleep", "30"], name=_name("run"), labels=LABEL)
    for container in (stopped, killed):
        container.start()
    stopped.stop(timeout=1)
    killed.kill()
    for container in (stopped, killed):
        container.reload()
        assert container.status == "exited" and not container.attrs["State"]["Running"]
    # Removed by the raw client's teardown: DELETE is refused here.


def test_a_missing_image_is_not_pulled(daemon_client: Any) -> None:
    """create answers 404 (ImageNotFound), the launcher then pulls: refused, images stay local."""
    with pytest.raises(docker.errors.ImageNotFound):
        daemon_client.containers.create("sockproxy-test-absent:latest", ["true"], labels=LABEL)
    with pytest.raises(docker.errors.APIError) as refused:
        daemon_client.images.pull("sockproxy-test-absent:latest")
    assert refused.value.status_code == 403


def test_webserver_grant_terminates_a_run(webserver_client: Any, raw: Any) -> None:
    """DockerRunLauncher.terminate from the UI: containers.get, then stop (or kill)."""
    stopped, killed = _running(raw), _running(raw)
    container = webserver_client.containers.get(stopped.id)
    assert container.status == "running"
    container.stop(timeout=1)
    webserver_client.containers.get(killed.id).kill()
    for c in (stopped, killed):
        c.reload()
        assert c.status == "exited"


def test_networks_grant_lists_containers_and_joins_one_to_a_network(networks_client: Any, raw: Any) -> None:
    """platform_services.networks: list the stack's containers, then connect one with an alias."""
    container = _running(raw)
    network = raw.networks.create(_name("net"), labels=LABEL)
    listed = networks_client.containers.list(sparse=True, filters={"label": "sockproxy-test=1"})
    assert container.id in {c.id for c in listed}

    networks_client.networks.get(network.id).connect(container.id, aliases=["shared"])

    container.reload()
    assert container.attrs["NetworkSettings"]["Networks"][network.name]["Aliases"][:1] == ["shared"]


def _raw_call(method: str, path: str, **kwargs: Any) -> Callable[[Any, str], object]:
    """An endpoint docker-py has no (non-streaming) helper for; raises APIError on 4xx."""

    def call(client: Any, container_id: str) -> object:
        api = client.api
        response = api._result(
            getattr(api, f"_{method}")(api._url(path.format(id=container_id)), stream=True, **kwargs)
        )
        return response

    return call


# Refused on both grants.
REFUSED_EVERYWHERE: dict[str, Callable[[Any, str], object]] = {
    "images.list": lambda c, _: c.images.list(),
    "images.pull": lambda c, _: c.images.pull(LOCAL_IMAGE),
    "images.inspect": lambda c, _: c.images.get(LOCAL_IMAGE),
    "images.remove": lambda c, _: c.images.remove("sockproxy-test-absent:latest"),
    "images.build": _raw_call("post", "/build", data=io.BytesIO(b"")),
    "distribution.inspect": lambda c, _: c.api.inspect_distribution(LOCAL_IMAGE),
    "containers.exec_create": lambda c, cid: c.api.exec_create(cid, ["true"]),
    "exec.start": lambda c, _: c.api.exec_start("0" * 64),
    "containers.attach": lambda c, cid: c.api.attach(cid, stream=False, logs=False),
    "containers.logs": lambda c, cid: c.api.logs(cid),
    "containers.top": lambda c, cid: c.api.top(cid),
    "containers.get_archive": lambda c, cid: c.api.get_archive(cid, "/etc/hostname"),
    "containers.put_archive": lambda c, cid: c.api.put_archive(cid, "/tmp", b""),
    "containers.wait": lambda c, cid: c.api.wait(cid, timeout=5),
    "containers.update": lambda c, cid: c.api.update_container(cid, cpu_shares=512),
    "containers.rename": lambda c, cid: c.api.rename(cid, _name("renamed")),
    "containers.commit": lambda c, cid: c.api.commit(cid, repository="sockproxy-test-commit"),
    "containers.remove": lambda c, cid: c.api.remove_container(cid, force=True),
    "containers.prune": lambda c, _: c.containers.prune(),
    "volumes.list": lambda c, _: c.volumes.list(),
    "volumes.create": lambda c, _: c.volumes.create(_name("vol")),
    "networks.list": lambda c, _: c.networks.list(),
    "networks.create": lambda c, _: c.networks.create(_name("net"), labels=LABEL),
    "networks.remove": lambda c, _: c.api.remove_network("sockproxy-test-absent"),
    "networks.disconnect": lambda c, cid: c.api.disconnect_container_from_network(cid, "bridge"),
    "system.df": lambda c, _: c.df(),
    "system.info": lambda c, _: c.info(),
    "system.events": _raw_call("get", "/events"),
    "auth": lambda c, _: c.api.login("user", "password", registry="127.0.0.1:1", reauth=True),
    "swarm.inspect": lambda c, _: c.api.inspect_swarm(),
    "secrets.list": lambda c, _: c.secrets.list(),
    "configs.list": lambda c, _: c.configs.list(),
    "services.list": lambda c, _: c.services.list(),
    "plugins.list": lambda c, _: c.plugins.list(),
    "unversioned /images/json": _raw_call("get", "/images/json"),
    "unversioned exec": _raw_call("post", "/containers/{id}/exec", data=b"{}"),
}
# Allowed on the daemon grant only.
DAEMON_ONLY: dict[str, Callable[[Any, str], object]] = {
    "containers.create": lambda c, _: c.api.create_container(LOCAL_IMAGE, ["true"], labels=LABEL),
    "containers.start": lambda c, cid: c.api.start(cid),
    "containers.list": lambda c, _: c.containers.list(filters={"label": "sockproxy-test=1"}),
    "networks.inspect": lambda c, _: c.networks.get("bridge"),
    "networks.connect": lambda c, cid: c.api.connect_container_to_network(cid, "bridge"),
}


def _assert_refused(client: Any, call: Callable[[Any, str], object], container_id: str) -> None:
    with pytest.raises(docker.errors.APIError) as refused:
        call(client, container_id)
    assert refused.value.status_code == 403, refused.value
    assert "socket-proxy:" in str(refused.value)


@pytest.mark.parametrize("case", sorted(REFUSED_EVERYWHERE))
def test_daemon_grant_refuses(daemon_client: Any, target: Any, case: str) -> None:
    _assert_refused(daemon_client, REFUSED_EVERYWHERE[case], target.id)


# Allowed on the daemon grant, refused on the networks grant: it creates, starts and stops nothing.
NOT_ON_NETWORKS = {
    "containers.inspect": lambda c, cid: c.api.inspect_container(cid),
    "containers.stop": lambda c, cid: c.api.stop(cid, timeout=1),
    **{
        name: call for name, call in DAEMON_ONLY.items() if name.startswith("containers.") and name != "containers.list"
    },
}


@pytest.mark.parametrize("case", sorted({**REFUSED_EVERYWHERE, **NOT_ON_NETWORKS}))
def test_networks_grant_refuses(networks_client: Any, target: Any, case: str) -> None:
    _assert_refused(networks_client, {**REFUSED_EVERYWHERE, **NOT_ON_NETWORKS}[case], target.id)


@pytest.mark.parametrize("case", sorted({**REFUSED_EVERYWHERE, **DAEMON_ONLY}))
def test_webserver_grant_refuses(webserver_client: Any, target: Any, case: str) -> None:
    _assert_refused(webserver_client, {**REFUSED_EVERYWHERE, **DAEMON_ONLY}[case], target.id)


@pytest.mark.parametrize(
    "path",
    [
        "/v1.41/containers/{id}/json/../../../images/json",
        "/v1.41/containers/{id}/../../images/json",
        "/containers/..%2F..%2Fimages/json",
        "/v1.41//containers/json",
        "/V1.41/images/json",
        "/v1.41/images/json?x=/containers/json",
    ],
)
def test_path_tricks_are_refused(proxy: Any, target: Any, path: str) -> None:
    """Sent verbatim (http.client does not normalise dot segments as requests does)."""
    connection = http.client.HTTPConnection("127.0.0.1", _port(proxy, DAEMON_PORT), timeout=10)
    try:
        connection.request("GET", path.format(id=target.id))
        assert connection.getresponse().status == 403
    finally:
        connection.close()


def test_refusals_are_logged(proxy: Any) -> None:
    """Each denied call leaves a line on the proxy's stdout: grant, 403, request line."""
    path = f"/v1.41/volumes/{_name('vol')}"
    connection = http.client.HTTPConnection("127.0.0.1", _port(proxy, DAEMON_PORT), timeout=10)
    try:
        connection.request("DELETE", path)
        assert connection.getresponse().status == 403
    finally:
        connection.close()
    deadline = time.monotonic() + 5
    while not (lines := [line for line in proxy.logs(tail=50).decode().splitlines() if path in line]):
        assert time.monotonic() < deadline, proxy.logs(tail=50).decode()
        time.sleep(0.2)
    assert " daemon daemon/<NOSRV> " in lines[0] and " 403 " in lines[0] and f'"DELETE {path} HTTP/1.1"' in lines[0]
