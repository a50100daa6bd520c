"""instance_kit.launcher: the launch policy (pure) and the launcher against the real Docker engine."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import docker
import docker.errors
import pytest
from dagster._core.code_pointer import FileCodePointer, ModuleCodePointer
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.launcher import LaunchRunContext, ResumeRunContext
from dagster._core.origin import JobPythonOrigin
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.run_coordinator import QueuedRunCoordinatorDaemon
from dagster_docker.container_context import DockerContainerContext

from instance_kit import releases
from instance_kit.docker_policy import LaunchPolicy, VolumeGrant
from instance_kit.launcher import PolicyDockerRunLauncher
from instance_kit.workspace import read_locations
from testkit.stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
BASE_IMAGE = "python:3.11-slim-bookworm"
COMMAND = ["dagster", "api", "execute_run", "{}"]

POLICY = LaunchPolicy(
    image_template="proj-{location}:local",
    mem_limit="4g",
    pids_limit=512,
    locations=frozenset({"simple_ops", "modular_assets"}),
    networks=("proj_{location}",),
    volumes={"proj_storage": VolumeGrant(bind="/opt/dagster/storage", mode="rw")},
    labels={"com.example.role": "run"},
    env_vars=("DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"),
    container_kwargs={"auto_remove": True, "tmpfs": {"/tmp": "rw,noexec,nosuid,size=256m"}},
)
IMAGE = "proj-simple_ops:local"


def violations(**container_kwargs: Any) -> list[str]:
    return POLICY.check(DockerContainerContext(container_kwargs=container_kwargs), IMAGE, "simple_ops", COMMAND)


# --- the pure policy ----------------------------------------------------------------


def test_a_plain_run_gets_exactly_the_platform_settings() -> None:
    assert POLICY.check(DockerContainerContext(), IMAGE, "simple_ops", COMMAND) == []
    final = POLICY.apply(DockerContainerContext(), "simple_ops")
    assert final.registry is None
    assert list(final.env_vars) == ["DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"]
    assert list(final.networks) == ["proj_simple_ops"]
    assert dict(final.container_kwargs) == {
        "auto_remove": True,
        "tmpfs": {"/tmp": "rw,noexec,nosuid,size=256m"},
        "user": "10001:10001",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "read_only": True,
        "volumes": {"proj_storage": {"bind": "/opt/dagster/storage", "mode": "rw"}},
        "mem_limit": "4g",
        "pids_limit": 512,
        "labels": {"com.example.role": "run"},
    }
    assert POLICY.image_for("simple_ops") == IMAGE


def test_a_context_within_the_policy_launches_with_the_platform_settings_and_its_env_vars() -> None:
    # What docker-compose.yml's x-run-container-context asks for today.
    requested = DockerContainerContext(
        env_vars=["SOURCE_API_URL=http://sample_api:8080", "EXPORTS_DIR=/opt/dagster/exports"],
        networks=["proj_simple_ops"],
        container_kwargs={
            "volumes": {"proj_storage": {"bind": "/opt/dagster/storage", "mode": "ro"}},
            "mem_limit": "2g",
            "pids_limit": 100,
            "labels": {"com.example.role": "run"},
            "user": "10001:10001",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": True,
            "auto_remove": True,
            "privileged": False,
            "cap_add": [],
        },
    )
    assert POLICY.check(requested, IMAGE, "simple_ops", COMMAND) == []
    final = POLICY.apply(requested, "simple_ops")
    assert final.container_kwargs == POLICY.apply(DockerContainerContext(), "simple_ops").container_kwargs
    assert list(final.env_vars)[-2:] == list(requested.env_vars)


@pytest.mark.parametrize(
    ("container_kwargs", "named"),
    [
        ({"user": "0"}, "user='0'"),
        ({"user": "root"}, "user='root'"),
        ({"user": "0:0"}, "user='0:0'"),
        ({"user": 0}, "user=0"),
        ({"privileged": True}, "privileged=True"),
        ({"cap_add": ["SYS_ADMIN"]}, "cap_add=['SYS_ADMIN']"),
        ({"cap_drop": []}, "cap_drop=[]"),
        ({"devices": ["/dev/sda:/dev/sda:rwm"]}, "devices=['/dev/sda"),
        ({"network_mode": "host"}, "network_mode='host'"),
        ({"network_mode": "container:postgres"}, "network_mode='container:postgres'"),
        ({"pid_mode": "host"}, "pid_mode='host'"),
        ({"ipc_mode": "host"}, "ipc_mode='host'"),
        ({"userns_mode": "host"}, "userns_mode='host'"),
        ({"uts_mode": "host"}, "uts_mode='host'"),
        ({"volumes_from": ["postgres"]}, "volumes_from=['postgres']"),
        ({"sysctls": {"net.ipv4.ip_forward": "1"}}, "sysctls="),
        ({"security_opt": ["seccomp=unconfined"]}, "security_opt ['seccomp=unconfined']"),
        ({"read_only": False}, "read_only=False"),
        ({"mem_limit": "64g"}, "mem_limit='64g'"),
        ({"pids_limit": -1}, "pids_limit=-1"),
        ({"labels": {"traefik.enable": "true"}}, "labels {'traefik.enable': 'true'}"),
        ({"tmpfs": {"/tmp": "rw,exec"}}, "tmpfs="),
        ({"auto_remove": False}, "auto_remove=False"),
        ({"entrypoint": ["sh", "-c", "id"]}, "entrypoint="),
        (
            {"volumes": {"/etc": {"bind": "/host_etc", "mode": "rw"}}},
            "bind mount of host path '/etc' at '/host_etc'",
        ),
        (
            {"volumes": ["/var/run/docker.sock:/var/run/docker.sock"]},
            "bind mount of host path '/var/run/docker.sock'",
        ),
        ({"volumes": {"/": "/host"}}, "bind mount of host path '/'"),
        ({"volumes": ["other_team_data:/data:rw"]}, "volume 'other_team_data' at '/data'"),
        ({"volumes": ["proj_storage:/somewhere_else"]}, "volume 'proj_storage' at '/somewhere_else'"),
        (
            {"mounts": [{"Type": "bind", "Source": "/etc", "Target": "/host_etc"}]},
            "mounts=[{'Type': 'bind', 'Source': '/etc'",
        ),
    ],
)
def test_a_forbidden_container_kwarg_is_refused_by_name(container_kwargs: dict[str, Any], named: str) -> None:
    found = violations(**container_kwargs)
    assert len(found) == 1, found
    assert named in found[0]


def test_a_refusal_names_what_the_policy_allows() -> None:
    [user] = violations(user="0")
    assert "'10001:10001'" in user
    [mount] = violations(volumes={"/etc": {"bind": "/host_etc"}})
    assert "granted: proj_storage:/opt/dagster/storage:rw" in mount


@pytest.mark.parametrize(
    ("image", "location", "named"),
    [
        (
            "proj-modular_assets:local",
            "simple_ops",
            "image 'proj-modular_assets:local' (code location 'simple_ops' runs only 'proj-simple_ops:local')",
        ),
        ("attacker/tools:latest", "simple_ops", "image 'attacker/tools:latest'"),
        ("proj-billing:local", "billing", "code location 'billing' is not registered"),
        (IMAGE, None, "no code location is recorded on the run"),
    ],
)
def test_a_foreign_image_or_an_unregistered_location_is_refused(image: str, location: str | None, named: str) -> None:
    found = POLICY.check(DockerContainerContext(), image, location, COMMAND)
    assert len(found) == 1, found
    assert named in found[0]


@pytest.mark.parametrize(
    ("requested", "command", "named"),
    [
        (
            DockerContainerContext(networks=["proj_modular_assets"]),
            COMMAND,
            "network 'proj_modular_assets' (granted: proj_simple_ops)",
        ),
        (DockerContainerContext(networks=["host"]), COMMAND, "network 'host'"),
        (
            DockerContainerContext(env_vars=["DAGSTER_PG_HOST=evil.example"]),
            COMMAND,
            "env var 'DAGSTER_PG_HOST'",
        ),
        (DockerContainerContext(env_vars=["DAGSTER_HOME=/tmp"]), COMMAND, "env var 'DAGSTER_HOME'"),
        (
            DockerContainerContext(env_vars=["AWS_SECRET_ACCESS_KEY"]),
            COMMAND,
            "env var 'AWS_SECRET_ACCESS_KEY' without a value",
        ),
        (
            DockerContainerContext(registry={"url": "r.example", "username": "u", "password": "p"}),
            COMMAND,
            "registry settings",
        ),
        (DockerContainerContext(), ["sh", "-c", "id", "x"], "command ['sh', '-c', 'id']"),
    ],
)
def test_foreign_networks_env_vars_registries_and_commands_are_refused(
    requested: DockerContainerContext, command: list[str], named: str
) -> None:
    found = POLICY.check(requested, IMAGE, "simple_ops", command)
    assert len(found) == 1, found
    assert named in found[0]


def test_every_violation_is_reported_at_once() -> None:
    found = POLICY.check(
        DockerContainerContext(container_kwargs={"user": "0", "privileged": True}),
        "evil:latest",
        "simple_ops",
        COMMAND,
    )
    assert len(found) == 3


def test_the_policy_itself_cannot_be_configured_unsafely() -> None:
    with pytest.raises(ValueError, match="root"):
        LaunchPolicy(image_template="p-{location}", mem_limit="1g", pids_limit=1, user="0:0")
    with pytest.raises(ValueError, match="set by the launch policy"):
        LaunchPolicy(
            image_template="p-{location}",
            mem_limit="1g",
            pids_limit=1,
            container_kwargs={"user": "0"},
        )
    with pytest.raises(ValueError, match="location"):
        LaunchPolicy(image_template="p:latest", mem_limit="1g", pids_limit=1)


def test_a_location_volume_grant_is_each_runs_own_and_no_other_locations() -> None:
    grant = VolumeGrant(bind="/opt/dagster/io")
    policy = dataclasses.replace(POLICY, volumes={**POLICY.volumes, "proj_{location}_io": grant})
    assert dict(policy.apply(DockerContainerContext(), "simple_ops").container_kwargs)["volumes"] == {
        "proj_storage": {"bind": "/opt/dagster/storage", "mode": "rw"},
        "proj_simple_ops_io": {"bind": "/opt/dagster/io", "mode": "rw"},
    }
    own = DockerContainerContext(container_kwargs={"volumes": ["proj_simple_ops_io:/opt/dagster/io:ro"]})
    assert policy.check(own, IMAGE, "simple_ops", COMMAND) == []
    other = DockerContainerContext(container_kwargs={"volumes": ["proj_modular_assets_io:/opt/dagster/io"]})
    assert policy.check(other, IMAGE, "simple_ops", COMMAND) == [
        "volume 'proj_modular_assets_io' at '/opt/dagster/io' (granted: proj_storage:/opt/dagster/storage:rw, "
        "proj_simple_ops_io:/opt/dagster/io:rw)"
    ]
    assert policy.check(other, "proj-modular_assets:local", "modular_assets", COMMAND) == []


def test_registered_locations_are_the_workspace_location_names(tmp_path: Path) -> None:
    assert read_locations(str(REPO_ROOT / "workspace.yaml")) >= {"simple_ops", "modular_assets"}
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - grpc_server: {host: a, port: 4000, location_name: a}\n"
        "  - python_module: {module_name: b, location_name: b}\n"
        "  - python_module: nameless\n",
        encoding="utf-8",
    )
    assert read_locations(str(workspace)) == {"a", "b"}


# --- the launcher, with real code servers, a real instance and the real Docker engine ---

SIMPLE_OPS_DEFS = '''
import dagster as dg


@dg.op
def greet() -> None:
    """Does nothing: the launcher only needs the job to exist."""


@dg.job
def a_job() -> None:
    greet()


defs = dg.Definitions(jobs=[a_job])
'''
MODULAR_ASSETS_DEFS = '''
import dagster as dg


@dg.asset
def numbers() -> list[int]:
    """Ten numbers."""
    return list(range(10))


defs = dg.Definitions(assets=[numbers], jobs=[dg.define_asset_job("numbers_job")])
'''
REPOSITORY = "__repository__"  # the repository of a location's Definitions
DOWN = "billing_reports"  # registered in workspace.yaml, its server not running


class Grants(NamedTuple):
    """What the policy grants simple_ops' runs in these tests (launcher-test-*, removed afterwards)."""

    network: str
    volume: str
    io_volume: str  # the instance grants "launcher-test-{location}-io-<uid>"


@pytest.fixture(scope="module")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        client.ping()
        client.images.get(BASE_IMAGE)
    except (docker.errors.DockerException, docker.errors.ImageNotFound) as error:
        pytest.fail(f"these tests need the Docker engine and the image {BASE_IMAGE}: {error}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def uid() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="module")
def run_image(docker_client: docker.DockerClient, uid: str) -> Iterator[str]:
    """The location's image: the base image with a `dagster` that only waits."""
    tag = f"launcher-test-simple_ops:{uid}"
    dockerfile = (
        f"FROM {BASE_IMAGE}\n"
        "RUN printf '#!/bin/sh\\nexec sleep 120\\n' > /usr/local/bin/dagster"
        " && chmod +x /usr/local/bin/dagster\n"
    )
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def grants(docker_client: docker.DockerClient, uid: str) -> Iterator[Grants]:
    network = docker_client.networks.create(f"launcher-test-simple_ops-{uid}")
    volumes = [docker_client.volumes.create(f"launcher-test-{name}-{uid}") for name in ("storage", "simple_ops-io")]
    yield Grants(network.name, volumes[0].name, volumes[1].name)
    network.remove()
    for volume in volumes:
        volume.remove(force=True)


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the code server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("localhost", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no code server on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def code_servers(
    tmp_path_factory: pytest.TempPathFactory, run_image: str, grants: Grants, uid: str
) -> Iterator[dict[str, int]]:
    """Two locations' real gRPC code servers (started as deploy/Dockerfile starts them), by port.

    DOWN's port has no server: a registered location whose server is down.
    """
    # What simple_ops' server reports as its runs' container context (compose sets it the same way).
    context = {
        "docker": {
            "networks": [grants.network],
            "env_vars": ["SOURCE_API_URL=http://sample_api:8080"],
            "container_kwargs": {
                "volumes": {
                    grants.volume: {"bind": "/opt/dagster/storage", "mode": "rw"},
                    grants.io_volume: {"bind": "/opt/dagster/io", "mode": "ro"},
                },
                "mem_limit": "128m",
            },
        }
    }
    servers = {
        "simple_ops": (SIMPLE_OPS_DEFS, run_image, context),
        "modular_assets": (MODULAR_ASSETS_DEFS, f"launcher-test-modular_assets:{uid}", {"docker": {}}),
    }
    ports, processes = {DOWN: free_port()}, []
    for location, (source, image, container_context) in servers.items():
        root = tmp_path_factory.mktemp(location)
        (root / "defs.py").write_text(source, encoding="utf-8")
        ports[location] = free_port()
        env = {**os.environ, "DAGSTER_CURRENT_IMAGE": image, "DAGSTER_CONTAINER_CONTEXT": json.dumps(container_context)}
        command = [sys.executable, "-m", "dagster", "api", "grpc", "--lazy-load-user-code"]
        command += ["-p", str(ports[location]), "-f", "defs.py", "--location-name", location]
        with (root / "server.log").open("wb") as log:
            processes.append(subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        for location, process in zip(servers, processes, strict=True):
            wait_for_port(ports[location], process)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def instance(
    tmp_path: Path, uid: str, grants: Grants, code_servers: dict[str, int], docker_client: docker.DockerClient
) -> Iterator[dg.DagsterInstance]:
    """A sqlite instance whose run launcher is configured as dagster.yaml configures it."""
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n"
        + "".join(
            f"  - grpc_server: {{host: localhost, port: {port}, location_name: {location}}}\n"
            for location, port in code_servers.items()
        ),
        encoding="utf-8",
    )
    config = {
        "env_vars": ["DAGSTER_PG_HOST=postgres"],
        "image_template": f"launcher-test-{{location}}:{uid}",
        "locations_file": str(tmp_path / "workspace.yaml"),
        "releases_dir": str(tmp_path / "releases"),
        "networks": [f"launcher-test-{{location}}-{uid}"],
        "volumes": [
            {"name": grants.volume, "bind": "/opt/dagster/storage"},
            {"name": f"launcher-test-{{location}}-io-{uid}", "bind": "/opt/dagster/io"},
        ],
        "mem_limit": "256m",
        "pids_limit": 64,
        "labels": {"launcher-test.id": uid},
        "max_runtime_seconds": 3600,
        "container_kwargs": {"tmpfs": {"/tmp": "rw,noexec,nosuid,size=16m"}},
    }
    overrides = {
        "run_retries": {"enabled": True, "max_retries": 2},
        # A run queue that retries runs whose code server cannot be reached.
        "run_queue": {"max_user_code_failure_retries": 3, "user_code_failure_retry_delay": 0},
        "run_launcher": {
            "module": "instance_kit.launcher",
            "class": "PolicyDockerRunLauncher",
            "config": config,
        },
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        yield instance
    for container in containers_of(docker_client, uid):
        container.remove(force=True)


@pytest.fixture
def workspace_context(instance: dg.DagsterInstance, tmp_path: Path) -> Iterator[WorkspaceProcessContext]:
    """The workspace as the daemon loads it: workspace.yaml, each location from its own server."""
    target = WorkspaceFileTarget(paths=[str(tmp_path / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target) as context:
        yield context


@pytest.fixture
def workspace(workspace_context: WorkspaceProcessContext) -> BaseWorkspaceRequestContext:
    return workspace_context.create_request_context()


def genuine_origins(
    workspace: BaseWorkspaceRequestContext, location: str, job: str
) -> tuple[RemoteJobOrigin, JobPythonOrigin]:
    """A job's origins as the webserver records them on a run it creates."""
    remote_job = workspace.get_code_location(location).get_repository(REPOSITORY).get_full_job(job)
    return remote_job.get_remote_origin(), remote_job.get_python_origin()


def forged(origin: JobPythonOrigin, **repository_origin: Any) -> JobPythonOrigin:
    return origin._replace(repository_origin=origin.repository_origin._replace(**repository_origin))


def stored_run(
    instance: dg.DagsterInstance,
    remote_origin: RemoteJobOrigin,
    code_origin: JobPythonOrigin,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTING,
) -> dg.DagsterRun:
    """A run written straight into run storage, as a compromised code location could write it."""
    run = dg.DagsterRun(
        job_name=remote_origin.job_name,
        run_id=str(uuid.uuid4()),
        status=status,
        remote_job_origin=remote_origin,
        job_code_origin=code_origin,
    )
    instance.add_run(run)
    return reload(instance, run.run_id)


def reload(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def launcher(instance: dg.DagsterInstance) -> PolicyDockerRunLauncher:
    assert isinstance(instance.run_launcher, PolicyDockerRunLauncher)
    return instance.run_launcher


def launch(instance: dg.DagsterInstance, run: dg.DagsterRun, workspace: BaseWorkspaceRequestContext | None) -> None:
    launcher(instance).launch_run(LaunchRunContext(dagster_run=run, workspace=workspace))


def containers_of(client: docker.DockerClient, uid: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"launcher-test.id={uid}"})


def refusal(instance: dg.DagsterInstance, client: docker.DockerClient, uid: str, run: dg.DagsterRun) -> str:
    """The engine event of a refused run, once checked that it was refused as every refusal is."""
    assert containers_of(client, uid) == []
    after = reload(instance, run.run_id)
    assert after.status == dg.DagsterRunStatus.FAILURE
    assert after.tags["dagster/will_retry"] == "false"  # despite run_retries
    [message] = [r.message for r in instance.all_logs(run.run_id) if r.message.startswith("Run launch refused")]
    assert message.endswith("No container was created.")
    return message


@pytest.mark.docker
def test_a_run_asking_for_root_and_a_host_mount_is_refused_without_a_container(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, docker_client: docker.DockerClient, uid: str
) -> None:
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    container_context = {
        "docker": {
            "container_kwargs": {
                "user": "0",
                "volumes": {"/etc": {"bind": "/host_etc", "mode": "rw"}},
                "labels": {"launcher-test.id": uid},
            }
        }
    }
    run = stored_run(instance, remote, forged(code, container_context=container_context))
    launch(instance, run, workspace)

    message = refusal(instance, docker_client, uid, run)
    assert "code location 'simple_ops'" in message
    assert "user='0' (runs run as '10001:10001')" in message
    assert "bind mount of host path '/etc' at '/host_etc'" in message


@pytest.mark.docker
def test_a_run_with_a_foreign_image_is_refused(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    docker_client: docker.DockerClient,
    run_image: str,
    uid: str,
) -> None:
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    run = stored_run(instance, remote, forged(code, container_image=BASE_IMAGE))
    launch(instance, run, workspace)

    message = refusal(instance, docker_client, uid, run)
    assert f"image '{BASE_IMAGE}' (code location 'simple_ops' runs only '{run_image}')" in message
    assert f"container_image '{BASE_IMAGE}' (code location 'simple_ops' serves '{run_image}')" in message


@pytest.mark.docker
def test_a_run_queued_before_a_deploy_starts_from_the_release_it_was_planned_with(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    docker_client: docker.DockerClient,
    run_image: str,
    uid: str,
    tmp_path: Path,
) -> None:
    # Planned by the previous release's server; the location now serves run_image.
    previous = f"launcher-test-simple_ops:previous-{uid}"
    docker_client.images.get(run_image).tag(previous)
    record = releases.LocationReleases("simple_ops", [releases.Release(f"previous-{uid}", "2026-12-01T00:00:00Z")])
    releases.write(tmp_path / "releases", record)
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    try:
        run = stored_run(instance, remote, forged(code, container_image=previous))
        launch(instance, run, workspace)

        [container] = containers_of(docker_client, uid)
        assert container.attrs["Config"]["Image"] == previous
    finally:
        docker_client.images.remove(previous)


@pytest.mark.docker
def test_another_locations_release_is_refused(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    docker_client: docker.DockerClient,
    uid: str,
    tmp_path: Path,
) -> None:
    record = releases.LocationReleases("modular_assets", [releases.Release(f"theirs-{uid}", "2026-12-01T00:00:00Z")])
    releases.write(tmp_path / "releases", record)
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    theirs = f"launcher-test-modular_assets:theirs-{uid}"
    run = stored_run(instance, remote, forged(code, container_image=theirs))
    launch(instance, run, workspace)

    message = refusal(instance, docker_client, uid, run)
    assert f"image '{theirs}' (code location 'simple_ops' runs only" in message


@pytest.mark.docker
def test_a_run_within_the_policy_starts_with_the_platform_settings(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    docker_client: docker.DockerClient,
    run_image: str,
    uid: str,
    grants: Grants,
) -> None:
    # A genuine run: its origins are what simple_ops' server reports; its context is within the policy.
    run = stored_run(instance, *genuine_origins(workspace, "simple_ops", "a_job"))
    launch(instance, run, workspace)

    [container] = containers_of(docker_client, uid)
    attrs = container.attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["Image"] == run_image
    assert attrs["Config"]["User"] == "10001:10001"
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert host["Privileged"] is False
    assert not host.get("CapAdd")
    assert host["PidsLimit"] == 64
    assert host["Memory"] == 256 * 1024 * 1024
    # The "launcher-test-{location}-io-<uid>" grant is simple_ops' own volume.
    assert sorted(host["Binds"]) == [
        f"{grants.io_volume}:/opt/dagster/io:rw",
        f"{grants.volume}:/opt/dagster/storage:rw",
    ]
    assert sorted((m["Type"], m["Name"]) for m in attrs["Mounts"]) == [
        ("volume", grants.io_volume),
        ("volume", grants.volume),
    ]
    assert set(attrs["NetworkSettings"]["Networks"]) == {grants.network}
    assert "SOURCE_API_URL=http://sample_api:8080" in attrs["Config"]["Env"]
    assert "DAGSTER_PG_HOST=postgres" in attrs["Config"]["Env"]
    assert attrs["Config"]["Labels"]["dagster/run_id"] == run.run_id
    after = reload(instance, run.run_id)
    assert after.tags["docker/container_id"] == container.id
    assert after.tags["dagster/max_runtime"] == "3600"  # the platform's limit, for run monitoring


@pytest.mark.docker
def test_a_job_s_own_time_limit_is_kept(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, docker_client: docker.DockerClient, uid: str
) -> None:
    run = stored_run(instance, *genuine_origins(workspace, "simple_ops", "a_job"))
    instance.add_run_tags(run.run_id, {"dagster/max_runtime": "60"})

    launch(instance, reload(instance, run.run_id), workspace)

    assert len(containers_of(docker_client, uid)) == 1
    assert reload(instance, run.run_id).tags["dagster/max_runtime"] == "60"


@pytest.mark.docker
def test_a_run_claiming_another_location_with_its_own_code_is_refused_naming_both(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, docker_client: docker.DockerClient, uid: str
) -> None:
    # simple_ops writes a run of its own code that claims to be modular_assets', for that image and network.
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    modular_remote, _ = genuine_origins(workspace, "modular_assets", "numbers_job")
    claimed = RemoteJobOrigin(repository_origin=modular_remote.repository_origin, job_name=remote.job_name)
    run = stored_run(instance, claimed, code)
    launch(instance, run, workspace)

    message = refusal(instance, docker_client, uid, run)
    assert "for code location 'modular_assets'" in message
    assert "job 'a_job' (not in code location 'modular_assets')" in message
    assert "code_pointer FileCodePointer(python_file='defs.py'" in message
    assert "(code location 'modular_assets' serves FileCodePointer(python_file='defs.py'" in message
    assert "the job code origin of code location 'simple_ops', not of 'modular_assets'" in message
    # The policy refuses simple_ops' own grants to a modular_assets run as well.
    assert f"volume 'launcher-test-simple_ops-io-{uid}' at '/opt/dagster/io'" in message


def evil_pointer(code: JobPythonOrigin) -> JobPythonOrigin:
    return forged(code, code_pointer=FileCodePointer(python_file="/tmp/evil.py", fn_name="defs"))


def same_fields_other_kind(code: JobPythonOrigin) -> JobPythonOrigin:
    # Code pointers compare as tuples: this ModuleCodePointer == the genuine FileCodePointer.
    pointer = code.repository_origin.code_pointer
    assert isinstance(pointer, FileCodePointer)
    return forged(code, code_pointer=ModuleCodePointer(pointer.python_file, pointer.fn_name, pointer.working_directory))


@pytest.mark.docker
@pytest.mark.parametrize(
    ("forge", "named"),
    [
        pytest.param(
            evil_pointer,
            "code_pointer FileCodePointer(python_file='/tmp/evil.py', fn_name='defs', working_directory=None) "
            "(code location 'simple_ops' serves FileCodePointer(python_file='defs.py', fn_name='defs', ",
            id="python_file in /tmp",
        ),
        pytest.param(same_fields_other_kind, "code_pointer ModuleCodePointer(module='defs.py'", id="pointer kind"),
        pytest.param(
            lambda code: forged(code, executable_path="/opt/dagster/storage/python"),
            f"executable_path '/opt/dagster/storage/python' (code location 'simple_ops' serves '{sys.executable}')",
            id="executable",
        ),
        pytest.param(
            lambda code: forged(code, entry_point=["/opt/dagster/storage/dagster"]),
            "entry_point ['/opt/dagster/storage/dagster'] (code location 'simple_ops' serves ['dagster'])",
            id="entry point",
        ),
        pytest.param(
            lambda code: code._replace(job_name="numbers_job"),
            "job name 'numbers_job' (the run's remote job origin names 'a_job')",
            id="job name",
        ),
    ],
)
def test_a_forged_code_origin_is_refused(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    docker_client: docker.DockerClient,
    uid: str,
    forge: Callable[[JobPythonOrigin], JobPythonOrigin],
    named: str,
) -> None:
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    run = stored_run(instance, remote, forge(code))
    launch(instance, run, workspace)

    assert named in refusal(instance, docker_client, uid, run)


@pytest.mark.docker
def test_a_forged_env_var_in_the_container_context_is_refused_though_the_policy_allows_it(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, docker_client: docker.DockerClient, uid: str
) -> None:
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    container_context = copy.deepcopy(dict(code.repository_origin.container_context or {}))
    container_context["docker"]["env_vars"].append("PYTHONPATH=/opt/dagster/storage/evil")
    # Env vars with literal values are within the policy: only the location's own context tells.
    assert POLICY.check(DockerContainerContext(env_vars=["PYTHONPATH=/x"]), IMAGE, "simple_ops", COMMAND) == []
    run = stored_run(instance, remote, forged(code, container_context=container_context))
    launch(instance, run, workspace)

    message = refusal(instance, docker_client, uid, run)
    assert "container_context {'docker': {" in message
    assert "'PYTHONPATH=/opt/dagster/storage/evil']" in message
    assert "(code location 'simple_ops' serves {'docker': {" in message


@pytest.mark.docker
def test_a_resumed_run_is_verified_too(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, docker_client: docker.DockerClient, uid: str
) -> None:
    remote, code = genuine_origins(workspace, "simple_ops", "a_job")
    run = stored_run(instance, remote, evil_pointer(code))
    launcher(instance).resume_run(ResumeRunContext(dagster_run=run, workspace=workspace))

    assert "code_pointer FileCodePointer(python_file='/tmp/evil.py'" in refusal(instance, docker_client, uid, run)


@pytest.mark.docker
def test_a_run_is_refused_when_there_is_no_workspace_to_verify_it_against(
    instance: dg.DagsterInstance, workspace: BaseWorkspaceRequestContext, docker_client: docker.DockerClient, uid: str
) -> None:
    run = stored_run(instance, *genuine_origins(workspace, "simple_ops", "a_job"))
    launch(instance, run, None)

    assert "no workspace to verify the run's code against" in refusal(instance, docker_client, uid, run)


def down_location_run(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    uid: str,
    port: int,
    status: dg.DagsterRunStatus,
) -> dg.DagsterRun:
    """A run of DOWN within the policy: only DOWN's code server could tell whether it is genuine."""
    _, code = genuine_origins(workspace, "simple_ops", "a_job")
    origin = GrpcServerCodeLocationOrigin(host="localhost", port=port, location_name=DOWN)
    remote = RemoteJobOrigin(RemoteRepositoryOrigin(origin, REPOSITORY), job_name="a_job")
    code = forged(code, container_image=f"launcher-test-{DOWN}:{uid}", container_context={})
    return stored_run(instance, remote, code, status)


@pytest.mark.docker
def test_a_run_of_a_registered_location_that_is_not_loaded_is_not_failed(
    instance: dg.DagsterInstance,
    workspace: BaseWorkspaceRequestContext,
    docker_client: docker.DockerClient,
    uid: str,
    code_servers: dict[str, int],
) -> None:
    assert not workspace.has_code_location(DOWN)
    run = down_location_run(instance, workspace, uid, code_servers[DOWN], dg.DagsterRunStatus.STARTING)
    with pytest.raises(DagsterUserCodeUnreachableError, match=f"'{DOWN}' is not loaded"):
        launch(instance, run, workspace)

    assert containers_of(docker_client, uid) == []
    assert reload(instance, run.run_id).status == dg.DagsterRunStatus.STARTING
    assert not [r for r in instance.all_logs(run.run_id) if r.message.startswith("Run launch refused")]


@pytest.mark.docker
def test_the_run_queue_requeues_a_run_whose_location_is_not_loaded(
    instance: dg.DagsterInstance,
    workspace_context: WorkspaceProcessContext,
    docker_client: docker.DockerClient,
    uid: str,
    code_servers: dict[str, int],
) -> None:
    workspace = workspace_context.create_request_context()
    run = down_location_run(instance, workspace, uid, code_servers[DOWN], dg.DagsterRunStatus.NOT_STARTED)
    instance.submit_run(run.run_id, workspace)
    list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace_context))

    assert containers_of(docker_client, uid) == []
    assert reload(instance, run.run_id).status == dg.DagsterRunStatus.QUEUED
    messages = [r.message for r in instance.all_logs(run.run_id)]
    assert any("re-submitting the run into the queue (3 retries remaining)" in m for m in messages), messages
