"""Secure by default: only the gateway is published (on 127.0.0.1) and it requires a login
for the UI, GraphQL and the WebSocket; every container runs unprivileged; the Docker
socket is only where the run launcher needs it; no secret is baked into an image."""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin, Subprotocol

from template_tools.locations import location_names
from testkit.stack import Stack, wait_for

SOCKET_ALLOWED = {"socket_proxy"}
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
    assert not host["CapAdd"], f"{name} adds capabilities {host['CapAdd']}"
    _assert_hardened(name, host)


def _assert_hardened(name: str, host: dict) -> None:
    assert any(opt.startswith("no-new-privileges") for opt in host["SecurityOpt"] or []), name
    assert host["CapDrop"] and "ALL" in host["CapDrop"], f"{name} keeps default capabilities"
    assert not host["Privileged"], name


def _assert_process_unprivileged(name: str, status: dict[str, str]) -> None:
    """PID 1 of a running container, as the kernel sees it (the socket proxy starts as root and drops)."""
    assert "0" not in status["Uid"].split(), f"{name} runs as root"  # real, effective, saved, filesystem
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0, f"{name} has capabilities"
    assert status["NoNewPrivs"].strip() == "1", name


def test_every_container_is_unprivileged_and_the_socket_is_only_where_needed(stack: Stack) -> None:
    for service in stack.services():
        attrs = json.loads(stack.docker("inspect", service["ID"]).stdout)[0]
        name = service["Service"]
        _assert_hardened(name, attrs["HostConfig"])
        if name != "socket_proxy":
            _assert_least_privilege(name, attrs)
        out = stack.docker("exec", service["ID"], "cat", "/proc/1/status").stdout
        _assert_process_unprivileged(name, dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line))
        has_socket = any(m["Destination"] == "/var/run/docker.sock" for m in attrs["Mounts"])
        assert has_socket == (name in SOCKET_ALLOWED), f"{name}: docker socket mounted = {has_socket}"


def test_every_long_running_service_has_a_memory_and_a_pids_limit(stack: Stack) -> None:
    for service in stack.services():
        host = json.loads(stack.docker("inspect", service["ID"]).stdout)[0]["HostConfig"]
        assert host["Memory"] > 0, f"{service['Service']} has no memory limit"
        assert (host["PidsLimit"] or 0) > 0, f"{service['Service']} has no pids limit"


#: What a team's code can try against Postgres with the credentials its container has.
POSTGRES_PROBE = """
import json, os, psycopg2
conn = psycopg2.connect(host=os.environ["DAGSTER_PG_HOST"], user=os.environ["DAGSTER_PG_USER"],
                        password=os.environ["DAGSTER_PG_PASSWORD"], dbname=os.environ["DAGSTER_PG_DB"])
conn.autocommit = True
results = {}
for name, sql in [("program", "COPY (SELECT 1) TO PROGRAM 'id'"), ("read_file", "SELECT pg_read_file('/etc/passwd')"),
                  ("superuser", "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")]:
    try:
        cur = conn.cursor()
        cur.execute(sql)
        results[name] = repr(cur.fetchone()) if cur.description else "ran"
    except psycopg2.Error as error:
        results[name] = "denied: " + str(error).splitlines()[0]
print(json.dumps(results))
"""


@pytest.mark.parametrize("location", location_names())
def test_a_code_location_cannot_use_postgres_beyond_dagster_s_database(stack: Stack, location: str) -> None:
    out = stack.compose("exec", "-T", location, "python", "-c", POSTGRES_PROBE).stdout
    results = json.loads(out.strip().splitlines()[-1])

    assert results["superuser"] == "(False,)"
    assert results["program"].startswith("denied: "), results
    assert results["read_file"].startswith("denied: "), results


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
    assert seen["HostConfig"]["Memory"] > 0
    assert seen["HostConfig"]["PidsLimit"] > 0
    assert not any(m["Destination"] == "/var/run/docker.sock" for m in seen["Mounts"])
    env = {line.split("=", 1)[0] for line in seen["Config"]["Env"]}
    assert "DAGSTER_UI_PASSWORD" not in env
    # Only its location's network: Postgres, the source API and its own code server.
    assert set(seen["NetworkSettings"]["Networks"]) == {f"{stack.project}_simple_ops"}


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


LAUNCH_MUTATION = (
    'mutation { launchRun(executionParams: {selector: {repositoryLocationName: "simple_ops", '
    'repositoryName: "__repository__", jobName: "data_extraction_job"}}) { __typename } }'
)


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status"),
    [
        ("GET", f"/graphql?query={LAUNCH_MUTATION}", {}, None, 403),  # a link or <img> cannot launch
        ("POST", "/graphql", {"Content-Type": "text/plain"}, json.dumps({"query": LAUNCH_MUTATION}), 415),
        ("POST", "/graphql", {"Content-Type": "application/x-www-form-urlencoded"}, f"query={LAUNCH_MUTATION}", 415),
        (
            "POST",
            "/graphql",
            {"Content-Type": "application/json", "Origin": "http://evil.example"},
            json.dumps({"query": LAUNCH_MUTATION}),
            403,
        ),
        (
            "POST",
            "/graphql",
            {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
            json.dumps({"query": LAUNCH_MUTATION}),
            403,
        ),
        ("GET", "/", {"Origin": "http://evil.example"}, None, 403),
    ],
)
def test_cross_site_and_non_json_mutations_are_refused_even_with_the_login(
    stack: Stack, method: str, path: str, headers: dict[str, str], body: str | None, status: int
) -> None:
    before = len(stack.graphql("{ runsOrError { ... on Runs { results { runId } } } }")["runsOrError"]["results"])

    response = requests.request(method, stack.url + path, headers=headers, data=body, auth=stack.auth, timeout=10)

    assert response.status_code == status, response.text[:300]
    after = len(stack.graphql("{ runsOrError { ... on Runs { results { runId } } } }")["runsOrError"]["results"])
    assert after == before, "a refused request launched a run"


def test_a_same_origin_json_post_and_the_graphiql_page_still_work(stack: Stack) -> None:
    own_origin = {"Origin": stack.url, "Sec-Fetch-Site": "same-origin"}

    post = requests.post(
        stack.url + "/graphql", json={"query": "{ version }"}, headers=own_origin, auth=stack.auth, timeout=10
    )
    page = requests.get(stack.url + "/graphql", headers={"Accept": "text/html"}, auth=stack.auth, timeout=10)

    assert post.status_code == 200 and post.json()["data"]["version"]
    assert page.status_code == 200


def test_a_websocket_from_another_origin_is_refused(stack: Stack) -> None:
    auth = base64.b64encode(f"{stack.user}:{stack.password}".encode()).decode()
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"ws://127.0.0.1:{stack.port}/graphql",
            origin=Origin("http://evil.example"),
            additional_headers={"Authorization": f"Basic {auth}"},
            subprotocols=[Subprotocol("graphql-ws")],
            open_timeout=10,
        )
    assert refused.value.response.status_code == 403


def test_failed_logins_are_throttled_per_client_but_logged_in_bursts_are_not(stack: Stack) -> None:
    def burst(auth: tuple[str, str] | None) -> list[int]:
        def one(_: int) -> int:
            return requests.get(f"{stack.url}/server_info", auth=auth, timeout=30).status_code

        with ThreadPoolExecutor(max_workers=40) as pool:
            return list(pool.map(one, range(40)))

    guesses = burst((stack.user, "wrong-password"))
    # While throttled, no password is even checked (the auth service); a second later it is.
    wait_for(
        lambda: requests.get(f"{stack.url}/server_info", auth=stack.auth, timeout=30).ok,
        timeout=10,
        interval=0.2,
        what="the throttle to pass",
    )
    logged_in = burst(stack.auth)
    challenges = burst(None)

    assert set(guesses) == {401, 429}, guesses  # most of a burst of guesses is turned away at once
    assert guesses.count(429) > guesses.count(401)
    assert set(logged_in) == {200}, logged_in
    assert set(challenges) == {401}, "a browser's credential-less first requests must not be throttled"


def test_webserver_and_daemon_reach_docker_only_through_the_socket_proxy(stack: Stack) -> None:
    for service, port in (("webserver", 2376), ("daemon", 2375)):
        attrs = json.loads(stack.docker("inspect", stack.container_id(service)).stdout)[0]
        assert not attrs["HostConfig"]["GroupAdd"], f"{service} still joins the socket's group"
        assert f"DOCKER_HOST=tcp://socket_proxy:{port}" in attrs["Config"]["Env"]


#: Runs in a Dagster container, with the docker client dagster-docker uses, against DOCKER_HOST.
DOCKER_PROBE = """
import json, sys, docker
client = docker.from_env()
calls = {
    "ping": lambda: client.ping(),
    "create": lambda: client.containers.create("busybox", "true"),
    "images": lambda: client.images.list(),
    "exec": lambda: client.api.exec_create(sys.argv[1], "id"),
    "volumes": lambda: client.volumes.list(),
    "list": lambda: client.containers.list(),
}
results = {}
for name, call in calls.items():
    try:
        call()
        results[name] = "allowed"
    except docker.errors.APIError as error:
        results[name] = error.status_code
print(json.dumps(results))
"""


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("webserver", {"ping": "allowed", "create": 403, "images": 403, "exec": 403, "volumes": 403, "list": 403}),
        ("daemon", {"ping": "allowed", "images": 403, "exec": 403, "volumes": 403, "list": "allowed"}),
    ],
)
def test_the_socket_proxy_allows_each_service_only_its_grant(stack: Stack, service: str, expected: dict) -> None:
    target = stack.container_id("postgres")
    out = stack.compose("exec", "-T", service, "python", "-c", DOCKER_PROBE, target).stdout
    results = json.loads(out.strip().splitlines()[-1])

    assert {name: results[name] for name in expected} == expected
    if service == "daemon":  # create is in its grant: the image does not exist, so Docker says 404, not 403
        assert results["create"] == 404


@pytest.mark.parametrize("location", location_names())
def test_a_code_location_cannot_reach_the_docker_api(stack: Stack, location: str) -> None:
    probe = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection(('socket_proxy', 2375), timeout=3)\n"
        "    print('reached')\n"
        "except OSError as error:\n"
        "    print('unreachable', type(error).__name__)\n"
    )
    out = stack.compose("exec", "-T", location, "python", "-c", probe).stdout

    assert out.startswith("unreachable"), out


#: TCP connections from a container: argv holds host:port targets; prints {target: outcome}.
CONNECT_PROBE = """
import json, socket, sys
results = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        results[target] = "open"
    except socket.gaierror:
        results[target] = "unresolvable"
    except OSError as error:
        results[target] = type(error).__name__
print(json.dumps(results))
"""

#: Probe 3: the webserver's GraphQL without a login, from inside the deployment.
GRAPHQL_PROBE = """
import urllib.request
request = urllib.request.Request("http://webserver:3000/graphql", data=b'{"query": "{ version }"}',
                                 headers={"Content-Type": "application/json"})
try:
    print("answered", urllib.request.urlopen(request, timeout=5).status)
except OSError as error:
    print("unreachable", type(error).__name__, error)
"""


def _addresses(stack: Stack, service: str) -> dict[str, str]:
    """The service's IP address on each of its networks, by network name without the project prefix."""
    networks = json.loads(stack.docker("inspect", stack.container_id(service)).stdout)[0]["NetworkSettings"]["Networks"]
    return {name.removeprefix(f"{stack.project}_"): network["IPAddress"] for name, network in networks.items()}


def _connect(stack: Stack, service: str, *targets: str) -> dict[str, str]:
    out = stack.compose("exec", "-T", service, "python", "-c", CONNECT_PROBE, *targets).stdout
    results: dict[str, str] = json.loads(out.strip().splitlines()[-1])
    return results


@pytest.mark.parametrize("location", location_names())
def test_a_code_location_reaches_postgres_and_the_source_api_and_no_other_team_or_the_ui(
    stack: Stack, location: str
) -> None:
    """Probes 3 and 4: no GraphQL without the gateway's login, no other team's gRPC server."""
    others = [name for name in location_names() if name != location]
    webserver = _addresses(stack, "webserver")
    targets = {
        "postgres:5432": "open",
        "sample_api:8080": "open",
        f"{location}:4000": "open",
        # The webserver joins this network (it calls the code server) without a name on it, and
        # does not listen on it.
        "webserver:3000": "unresolvable",
        f"{webserver[location]}:3000": "ConnectionRefusedError",
        f"{webserver['ui']}:3000": "TimeoutError",  # its one listening address, on the ui network
        "gateway:8080": "unresolvable",
        "socket_proxy:2375": "unresolvable",
    }
    for other in others:
        targets[f"{other}:4000"] = "unresolvable"
        targets[f"{_addresses(stack, other)[other]}:4000"] = "TimeoutError"  # Docker drops it between networks

    assert _connect(stack, location, *targets) == targets
    out = stack.compose("exec", "-T", location, "python", "-c", GRAPHQL_PROBE).stdout
    assert out.startswith("unreachable"), out


def test_the_gateway_reaches_the_webserver_and_no_code_location(stack: Stack) -> None:
    targets = {"webserver:3000": "open", **{f"{name}:4000": "unresolvable" for name in location_names()}}

    assert _connect_from_gateway(stack, *targets) == targets


def _connect_from_gateway(stack: Stack, *targets: str) -> dict[str, str]:
    """The gateway image has no Python: bash's /dev/tcp, with timeout(1)."""
    results = {}
    for target in targets:
        host, port = target.rsplit(":", 1)
        if stack.compose("exec", "-T", "gateway", "getent", "hosts", host, check=False).returncode != 0:
            results[target] = "unresolvable"
            continue
        probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{host}/{port}'"
        results[target] = (
            "open"
            if stack.compose("exec", "-T", "gateway", "sh", "-c", probe, check=False).returncode == 0
            else "closed"
        )
    return results


def test_the_sample_api_reaches_no_platform_service(stack: Stack) -> None:
    targets = {
        "webserver:3000": "unresolvable",
        "socket_proxy:2375": "unresolvable",
        "gateway:8080": "unresolvable",
    }

    assert _connect(stack, "sample_api", *targets) == targets


#: What a compromised code location can do with its own credentials: copy a run (its own, or
#: another team's: every run is readable in the shared storage), change one field of its code
#: origin (argv[2]) and queue it for the daemon.
FORGED_RUN = """
import sys, uuid
import dagster as dg
from dagster._core.code_pointer import FileCodePointer
instance = dg.DagsterInstance.get()
template = instance.get_run_by_id(sys.argv[1])
origin = template.job_code_origin
forgeries = {
    # Root, privileged, and the host's /etc.
    "container_context": {"docker": {"container_kwargs": {
        "user": "0", "privileged": True, "volumes": {"/etc": {"bind": "/host_etc", "mode": "ro"}}}}},
    # A file of the attacker's, to run in the template's image and network.
    "code_pointer": FileCodePointer(python_file="/opt/dagster/storage/payload.py", fn_name="defs",
                                    working_directory="/tmp"),
}
tags = {k: v for k, v in template.tags.items() if k != "docker/container_id"}  # set again if one starts
forged = template._replace(
    run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.QUEUED, tags={**tags, "forged": "1"},
    job_code_origin=origin._replace(
        repository_origin=origin.repository_origin._replace(**{sys.argv[2]: forgeries[sys.argv[2]]})),
)
instance.add_run(forged)
print(forged.run_id)
"""


def _refused_forgery(stack: Stack, template: dict[str, Any], field: str) -> str:
    """Forge a copy of ``template`` from inside simple_ops; the refusal's text once checked it was one."""
    assert template["status"] == "SUCCESS"
    out = stack.compose("exec", "-T", "simple_ops", "python", "-c", FORGED_RUN, template["runId"], field).stdout
    forged = stack.wait_for_run(out.strip().splitlines()[-1], timeout=120)

    assert forged["status"] == "FAILURE"
    text = stack.failure_text(forged)
    assert "Run launch refused by PolicyDockerRunLauncher" in text, text[-2000:]
    assert "docker/container_id" not in {tag["key"] for tag in forged["tags"]}  # no container was created
    return text


def test_a_run_forged_by_a_code_location_is_refused_by_the_daemon(stack: Stack) -> None:
    own = stack.wait_for_run(stack.launch("data_extraction_job", "simple_ops"))

    text = _refused_forgery(stack, own, "container_context")

    assert "user='0'" in text and "/etc" in text
    containers = stack.docker(
        "ps",
        "--all",
        "--quiet",
        "--filter",
        "label=com.dagster-template.role=run",
        "--filter",
        f"label=com.dagster-template.project={stack.project}",
    ).stdout
    for container in containers.split():
        user = stack.docker("inspect", "--format", "{{.Config.User}}", container).stdout.strip()
        assert user == "10001:10001", "a run container started as another user"


def test_a_run_forged_for_another_team_s_location_is_refused(stack: Stack) -> None:
    theirs = stack.wait_for_run(stack.launch("sources_job", "modular_assets"))

    text = _refused_forgery(stack, theirs, "code_pointer")

    assert "/opt/dagster/storage/payload.py" in text and "code location 'modular_assets' serves" in text
