"""instance_kit.launcher: the launch policy (pure) and the launcher against the real Docker engine."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import docker
import docker.errors
import pytest
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster_docker.container_context import DockerContainerContext

from instance_kit.launcher import (
    LaunchPolicy,
    PolicyDockerRunLauncher,
    VolumeGrant,
    read_locations,
)

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


# --- the launcher, with a real instance and the real Docker engine -------------------


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


@pytest.fixture
def grants(docker_client: docker.DockerClient, uid: str) -> Iterator[tuple[str, str]]:
    """A network and a named volume the policy grants (launcher-test-*, removed afterwards)."""
    network = docker_client.networks.create(f"launcher-test-simple_ops-{uid}")
    volume = docker_client.volumes.create(f"launcher-test-storage-{uid}")
    yield network.name, volume.name
    for container in docker_client.containers.list(all=True, filters={"label": f"launcher-test.id={uid}"}):
        container.remove(force=True)
    network.remove()
    volume.remove(force=True)


@pytest.fixture
def instance(tmp_path: Path, uid: str, grants: tuple[str, str]) -> Iterator[dg.DagsterInstance]:
    """A sqlite instance whose run launcher is configured as dagster.yaml configures it."""
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - grpc_server: {host: simple_ops, port: 4000, location_name: simple_ops}\n",
        encoding="utf-8",
    )
    _, volume = grants
    config = {
        "env_vars": ["DAGSTER_PG_HOST=postgres"],
        "image_template": f"launcher-test-{{location}}:{uid}",
        "locations_file": str(tmp_path / "workspace.yaml"),
        "networks": [f"launcher-test-{{location}}-{uid}"],
        "volumes": [{"name": volume, "bind": "/opt/dagster/storage"}],
        "mem_limit": "256m",
        "pids_limit": 64,
        "labels": {"launcher-test.id": uid},
        "container_kwargs": {"tmpfs": {"/tmp": "rw,noexec,nosuid,size=16m"}},
    }
    overrides = {
        "run_retries": {"enabled": True, "max_retries": 2},
        "run_launcher": {
            "module": "instance_kit.launcher",
            "class": "PolicyDockerRunLauncher",
            "config": config,
        },
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        yield instance


def stored_run(instance: dg.DagsterInstance, image: str, container_context: dict[str, Any]) -> dg.DagsterRun:
    """A run written straight into run storage, as a compromised code location could write it."""
    remote_origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(
            code_location_origin=GrpcServerCodeLocationOrigin(host="simple_ops", port=4000, location_name="simple_ops"),
            repository_name="__repository__",
        ),
        job_name="a_job",
    )
    code_origin = JobPythonOrigin(
        job_name="a_job",
        repository_origin=RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer(module="simple_ops.definitions", fn_name="defs"),
            container_image=image,
            entry_point=["dagster"],
            container_context=container_context,
        ),
    )
    run = dg.DagsterRun(
        job_name="a_job",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTING,
        remote_job_origin=remote_origin,
        job_code_origin=code_origin,
    )
    instance.add_run(run)
    return reload(instance, run.run_id)


def reload(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


def launch(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    assert isinstance(instance.run_launcher, PolicyDockerRunLauncher)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))


def containers_of(client: docker.DockerClient, uid: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"launcher-test.id={uid}"})


def test_a_run_asking_for_root_and_a_host_mount_is_refused_without_a_container(
    instance: dg.DagsterInstance, docker_client: docker.DockerClient, run_image: str, uid: str
) -> None:
    run = stored_run(
        instance,
        run_image,
        {
            "docker": {
                "container_kwargs": {
                    "user": "0",
                    "volumes": {"/etc": {"bind": "/host_etc", "mode": "rw"}},
                    "labels": {"launcher-test.id": uid},
                }
            }
        },
    )
    launch(instance, run)

    assert containers_of(docker_client, uid) == []
    after = reload(instance, run.run_id)
    assert after.status == dg.DagsterRunStatus.FAILURE
    assert after.tags["dagster/will_retry"] == "false"  # despite run_retries
    messages = [record.message for record in instance.all_logs(run.run_id)]
    [refusal] = [m for m in messages if m.startswith("Run launch refused")]
    assert "code location 'simple_ops'" in refusal
    assert "user='0' (runs run as '10001:10001')" in refusal
    assert "bind mount of host path '/etc' at '/host_etc'" in refusal
    assert "No container was created." in refusal


def test_a_run_with_a_foreign_image_is_refused(
    instance: dg.DagsterInstance, docker_client: docker.DockerClient, run_image: str, uid: str
) -> None:
    run = stored_run(instance, BASE_IMAGE, {})
    launch(instance, run)

    assert containers_of(docker_client, uid) == []
    after = reload(instance, run.run_id)
    assert after.status == dg.DagsterRunStatus.FAILURE
    assert any(
        f"image '{BASE_IMAGE}' (code location 'simple_ops' runs only '{run_image}')" in record.message
        for record in instance.all_logs(run.run_id)
    )


def test_a_run_within_the_policy_starts_with_the_platform_settings(
    instance: dg.DagsterInstance,
    docker_client: docker.DockerClient,
    run_image: str,
    uid: str,
    grants: tuple[str, str],
) -> None:
    network, volume = grants
    run = stored_run(
        instance,
        run_image,
        {
            "docker": {
                "networks": [network],
                "env_vars": ["SOURCE_API_URL=http://sample_api:8080"],
                "container_kwargs": {
                    "volumes": {volume: {"bind": "/opt/dagster/storage", "mode": "rw"}},
                    "mem_limit": "128m",
                },
            }
        },
    )
    launch(instance, run)

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
    assert host["Binds"] == [f"{volume}:/opt/dagster/storage:rw"]
    assert [(m["Type"], m["Name"]) for m in attrs["Mounts"]] == [("volume", volume)]
    assert set(attrs["NetworkSettings"]["Networks"]) == {network}
    assert "SOURCE_API_URL=http://sample_api:8080" in attrs["Config"]["Env"]
    assert "DAGSTER_PG_HOST=postgres" in attrs["Config"]["Env"]
    assert attrs["Config"]["Labels"]["dagster/run_id"] == run.run_id
    after = reload(instance, run.run_id)
    assert after.tags["docker/container_id"] == container.id
