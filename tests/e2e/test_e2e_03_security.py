"""Secure by default: only the gateway is published (on 127.0.0.1) and it requires a login
for the UI, GraphQL and the WebSocket; every container runs unprivileged; the Docker
socket is only where the run launcher needs it; no secret is baked into an image."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import threading

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from template_tools.locations import location_names
from template_tools.stack import Stack, wait_for

SOCKET_ALLOWED = {"daemon", "webserver"}
#: Every image the stack builds, by the name part after "<project>-": one per location (workspace.yaml).
DAGSTER_IMAGES = ("dagster", "sample_api", "gateway", *location_names())


@pytest.mark.parametrize("path", ["/", "/graphql", "/server_info", "/runs"])
def test_every_path_needs_a_login(stack: Stack, path: str) -> None:
    assert requests.get(stack.url + path, timeout=10).status_code == 401
    assert requests.get(stack.url + path, auth=(stack.user, "wrong"), timeout=10).status_code == 401
    assert requests.get(stack.url + path, auth=("nobody", stack.password), timeout=10).status_code == 401


def test_the_right_login_opens_the_ui_and_graphql(stack: Stack) -> None:
    page = requests.get(stack.url + "/", auth=stack.auth, timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert stack.graphql("{ version }")["version"]


def _websocket(stack: Stack, auth: tuple[str, str] | None) -> ClientConnection:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    return connect(
        f"ws://127.0.0.1:{stack.port}/graphql",
        additional_headers=headers,
        subprotocols=[Subprotocol("graphql-ws")],
        open_timeout=10,
    )


def test_websocket_needs_a_login_and_works_with_one(stack: Stack) -> None:
    for auth in (None, (stack.user, "wrong")):
        with pytest.raises(InvalidStatus) as refused:
            _websocket(stack, auth)
        assert refused.value.response.status_code == 401
    with _websocket(stack, stack.auth) as ws:  # graphql-ws handshake through the proxy
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert json.loads(ws.recv(timeout=10))["type"] == "connection_ack"


def test_only_the_gateway_is_published_and_only_on_localhost(stack: Stack) -> None:
    published = {}
    for service in stack.services():
        ports = [p for p in service.get("Publishers") or [] if p.get("PublishedPort")]
        if ports:
            published[service["Service"]] = ports
    assert list(published) == ["gateway"], published
    assert {p["URL"] for p in published["gateway"]} == {"127.0.0.1"}, published
    for service in stack.services():
        bindings = (
            json.loads(stack.docker("inspect", "--format", "{{json .HostConfig.PortBindings}}", service["ID"]).stdout)
            or {}
        )
        hosts = {b["HostIp"] for spec in bindings.values() for b in spec or []}
        assert hosts <= {"127.0.0.1"}, (service["Service"], bindings)


def _assert_least_privilege(name: str, attrs: dict) -> None:
    user = attrs["Config"]["User"].split(":")[0]
    assert user not in ("", "0", "root"), f"{name} runs as root"
    host = attrs["HostConfig"]
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"] or []), name
    assert host["CapDrop"] and "ALL" in host["CapDrop"], f"{name} keeps default capabilities"
    assert not host["CapAdd"], f"{name} adds capabilities {host['CapAdd']}"
    assert not host["Privileged"], name


def test_every_container_is_unprivileged_and_the_socket_is_only_where_needed(stack: Stack) -> None:
    for service in stack.services():
        attrs = json.loads(stack.docker("inspect", service["ID"]).stdout)[0]
        name = service["Service"]
        _assert_least_privilege(name, attrs)
        has_socket = any(m["Destination"] == "/var/run/docker.sock" for m in attrs["Mounts"])
        assert has_socket == (name in SOCKET_ALLOWED), f"{name}: docker socket mounted = {has_socket}"


def test_a_run_container_is_unprivileged_and_has_no_socket(stack: Stack) -> None:
    """Inspect a run's container while it runs (the API is slowed so it lives long enough)."""
    stack.sample_api("POST", "/__admin/config", {"latency_ms": 3000})
    seen: dict = {}

    def catch_run_container() -> None:
        def inspect_one() -> bool:
            ids = stack.docker(
                "ps", "--quiet", "--filter", f"label=com.dagster-template.project={stack.project}"
            ).stdout.split()
            if ids:
                seen.update(json.loads(stack.docker("inspect", ids[0]).stdout)[0])
            return bool(seen)

        wait_for(inspect_one, timeout=90, interval=0.5, what="a run container")

    watcher = threading.Thread(target=catch_run_container)
    watcher.start()
    try:
        run_id = stack.launch("data_extraction_job", "simple_ops")
        watcher.join()
        assert stack.wait_for_run(run_id)["status"] == "SUCCESS"
    finally:
        stack.sample_api("POST", "/__admin/reset")
    assert seen, "no run container was seen"
    _assert_least_privilege("run container", seen)
    assert seen["HostConfig"]["ReadonlyRootfs"]
    assert not any(m["Destination"] == "/var/run/docker.sock" for m in seen["Mounts"])
    env = {line.split("=", 1)[0] for line in seen["Config"]["Env"]}
    assert "DAGSTER_UI_PASSWORD" not in env and "DOCKER_GID" not in env


def test_no_secret_is_baked_into_any_image(stack: Stack) -> None:
    secrets = [stack.password, stack.postgres_password]
    for image in DAGSTER_IMAGES:
        ref = f"{stack.project}-{image}:e2e"
        history = stack.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).stdout
        config = stack.docker("image", "inspect", ref).stdout
        for secret in secrets:
            assert secret not in history and secret not in config, f"a secret is in {ref}'s metadata"
        # Every byte of every layer.
        save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE)
        tail = b""
        layers = save.stdout
        assert layers is not None
        for chunk in iter(functools.partial(layers.read, 1 << 20), b""):
            window = tail + chunk
            assert not any(s.encode() in window for s in secrets), f"a secret is in a layer of {ref}"
            tail = window[-64:]
        assert save.wait() == 0


def test_read_only_viewer_behind_the_same_login(stack: Stack) -> None:
    stack.compose(
        "--profile", "viewer", "up", "--detach", "--wait", "--wait-timeout", "120", "--no-deps", "webserver_viewer"
    )
    try:
        assert requests.get(f"{stack.url}/viewer/server_info", timeout=10).status_code == 401
        info = requests.get(f"{stack.url}/viewer/server_info", auth=stack.auth, timeout=10)
        assert info.status_code == 200, info.text
        launch = requests.post(
            f"{stack.url}/viewer/graphql",
            auth=stack.auth,
            timeout=30,
            json={
                "query": "mutation { launchRun(executionParams: {selector: {repositoryLocationName: "
                '"simple_ops", repositoryName: "__repository__", jobName: "data_extraction_job"}}) '
                "{ __typename } }"
            },
        )
        assert launch.json()["data"]["launchRun"]["__typename"] == "UnauthorizedError", launch.text
    finally:
        stack.compose("--profile", "viewer", "rm", "--stop", "--force", "webserver_viewer", check=False)
