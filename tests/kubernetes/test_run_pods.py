"""The Jobs the run launcher builds from the chart's rendering: genuine runs as the policy allows, forged ones refused.

Everything here is real but the Kubernetes API: the run launcher is instance_kit's
PolicyK8sRunLauncher configured by the instance config the chart renders (and checked by its
schema); each code location's gRPC server runs the chart's own command line with the env the
chart gives its Deployment (its container context and image), so a genuine run carries what a
code server reports in the cluster; dagster-k8s builds each Job. The API is a fake that keeps
the Job instead of creating it. A genuine run's Job must be valid Kubernetes, restricted, mount
its location's claim and the shared ones, and carry the labels its own location's NetworkPolicy
admits and no other's; a run forged in the shared storage (another location's label, another
team's claim, root, a host path, another image, another service account) is refused with no
Job, or launched with the policy's values.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from dagster._config import process_config
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin
from dagster._core.remote_origin import RemoteJobOrigin
from dagster._core.workspace.context import BaseWorkspaceRequestContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from tests.kubernetes.conftest import Rendering, restricted_violations

from instance_kit.k8s_launcher import PolicyK8sRunLauncher
from instance_kit.k8s_policy import repository_of
from template_tools import kubernetes as generator
from template_tools.locations import ROOT, CodeLocation, read_locations
from testkit.stack import free_port

REPOSITORY = "__repository__"  # the repository of a location's Definitions


@dataclass
class FakeBatchApi:
    """Where the launcher's `create_namespaced_job` lands: kept, not sent."""

    jobs: list[tuple[str, Any]] = field(default_factory=list)

    def create_namespaced_job(self, body: Any, namespace: str, **_: Any) -> Any:
        self.jobs.append((namespace, body))
        return body


@pytest.fixture(scope="module")
def locations() -> list[CodeLocation]:
    return read_locations()


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the code server on port {port} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no code server on port {port} after {timeout} s")


@pytest.fixture(scope="module")
def code_servers(
    rendering: Rendering, locations: list[CodeLocation], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    """Each location's real gRPC server, by port: the chart's args and env for its Deployment, on loopback."""
    folder = tmp_path_factory.mktemp("code-servers")
    ports = {location.name: free_port() for location in locations}
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    for location in locations:
        container = rendering.container(generator.deployment_name(location))
        args = list(container["args"])
        args[args.index("-h") + 1], args[args.index("-p") + 1] = "127.0.0.1", str(ports[location.name])
        assert args[:3] == ["dagster", "api", "grpc"]
        # Its own throw-away instance (in the cluster: the shared Postgres), so that two starting
        # servers never create one SQLite schema at once.
        home = folder / location.name
        home.mkdir()
        env = {**os.environ, **rendering.env(generator.deployment_name(location)), "DAGSTER_HOME": str(home)}
        log = folder / f"{location.name}.log"
        with log.open("wb") as out:
            # The location's own environment (its own lock, as its image): not the platform's .venv.
            command = [str(location.bin() / "python"), "-m", *args]
            processes.append((subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT), log))
    try:
        for location, (process, log) in zip(locations, processes, strict=True):
            wait_for_port(ports[location.name], process, log)
        yield ports
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def instance(rendering: Rendering, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A local instance with the chart's run retries (a refused run must not be retried)."""
    overrides = {"run_retries": rendering.instance()["run_retries"]}
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path_factory.mktemp("instance"))) as instance:
        yield instance


@pytest.fixture(scope="module")
def workspace_context(
    instance: dg.DagsterInstance, code_servers: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkspaceProcessContext]:
    """The workspace as the daemon loads it (manifests/workspace-config.yaml), each server on loopback."""
    config_map = yaml.safe_load((ROOT / generator.WORKSPACE_CONFIG).read_text(encoding="utf-8").split("---\n", 1)[1])
    workspace = yaml.safe_load(config_map["data"]["workspace.yaml"])
    for entry in workspace["load_from"]:
        entry["grpc_server"].update(host="localhost", port=code_servers[entry["grpc_server"]["location_name"]])
    path = tmp_path_factory.mktemp("workspace") / "workspace.yaml"
    path.write_text(yaml.safe_dump(workspace), encoding="utf-8")
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(path)])) as context:
        yield context


@pytest.fixture(scope="module")
def workspace(workspace_context: WorkspaceProcessContext) -> BaseWorkspaceRequestContext:
    return workspace_context.create_request_context()


@pytest.fixture(scope="module")
def batch() -> FakeBatchApi:
    return FakeBatchApi()


@pytest.fixture(scope="module")
def launcher(
    rendering: Rendering, instance: dg.DagsterInstance, kubeconfig: Path, batch: FakeBatchApi
) -> PolicyK8sRunLauncher:
    """The run launcher as the chart's instance config configures it (checked by its own schema)."""
    config = rendering.instance()["run_launcher"]
    assert (config["module"], config["class"]) == ("instance_kit.k8s_launcher", "PolicyK8sRunLauncher")
    checked = process_config(PolicyK8sRunLauncher.config_type(), config["config"])
    assert checked.success and checked.value is not None, checked.errors
    # In the cluster it loads its service account's config; here a kubeconfig that is never used.
    settings = {**checked.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    launcher = PolicyK8sRunLauncher(**settings, k8s_client_batch_api=batch, k8s_client_core_api=object())
    launcher.register_instance(instance)
    return launcher


def genuine_origins(workspace: BaseWorkspaceRequestContext, location: str) -> tuple[RemoteJobOrigin, JobPythonOrigin]:
    """A job's origins as the webserver records them on a run it creates (the location's first job)."""
    repository = workspace.get_code_location(location).get_repository(REPOSITORY)
    job = next(job for job in repository.get_all_jobs() if not job.name.startswith("__"))
    full = repository.get_full_job(job.name)
    return full.get_remote_origin(), full.get_python_origin()


def forged(origin: JobPythonOrigin, **repository_origin: Any) -> JobPythonOrigin:
    return origin._replace(repository_origin=origin.repository_origin._replace(**repository_origin))


@dataclass(frozen=True)
class Launched:
    run: dg.DagsterRun
    job: dict[str, Any] | None  # the Job (as Kubernetes JSON) the launcher created; None: refused
    message: str  # the refusal's engine event ("" when launched)


def launch(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    location: str,
    tag: dict[str, Any] | None = None,
    forge: Callable[[JobPythonOrigin], JobPythonOrigin] = lambda origin: origin,
) -> Launched:
    """A run of ``location`` written into the shared storage (as a team could write it), launched."""
    remote, code = genuine_origins(workspace, location)
    tags = {"dagster-k8s/config": json.dumps(tag)} if tag else {}
    run = dg.DagsterRun(
        job_name=remote.job_name,
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTING,
        remote_job_origin=remote,
        job_code_origin=forge(code),
        tags=tags,
    )
    instance.add_run(run)
    before = len(batch.jobs)
    launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=workspace))
    after = instance.get_run_by_id(run.run_id)
    assert after is not None
    if len(batch.jobs) == before:
        assert after.status == dg.DagsterRunStatus.FAILURE
        [message] = [r.message for r in instance.all_logs(run.run_id) if r.message.startswith("Run launch refused")]
        assert message.endswith("No Kubernetes Job was created.")
        return Launched(after, None, message)
    [(namespace, job)] = batch.jobs[before:]
    assert namespace == generator.RELEASE
    return Launched(after, kubernetes.client.ApiClient().sanitize_for_serialization(job), "")


@pytest.fixture(scope="module")
def genuine_jobs(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
) -> dict[str, dict[str, Any]]:
    """Location name -> the Job of a genuine run of it."""
    jobs = {}
    for location in locations:
        launched = launch(instance, launcher, batch, workspace, location.name)
        assert launched.job is not None, launched.message
        jobs[location.name] = launched.job
    return jobs


def policy_peers() -> dict[str, list[dict[str, str]]]:
    """Per code-location policy: the pod selectors it admits."""
    peers = {}
    for doc in yaml.safe_load_all((ROOT / generator.NETWORK_POLICIES).read_text(encoding="utf-8")):
        if doc and doc["metadata"]["name"].startswith("dagster-code-location-"):
            [rule] = doc["spec"]["ingress"]
            peers[doc["metadata"]["name"]] = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    return peers


def admitted_by(labels: dict[str, str]) -> set[str]:
    """The code-location NetworkPolicies whose peers admit a pod with these labels."""
    return {name for name, selectors in policy_peers().items() if any(s.items() <= labels.items() for s in selectors)}


def claims(job: dict[str, Any]) -> dict[str, str]:
    """Mount path -> claim of a Job's pod."""
    spec = job["spec"]["template"]["spec"]
    [container] = spec["containers"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    return {
        mount["mountPath"]: volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        for mount in container["volumeMounts"]
        if "persistentVolumeClaim" in volumes[mount["name"]]
    }


# --- genuine runs: built as before, with the platform's settings -------------------------------------------
def test_each_genuine_run_job_is_valid_kubernetes(genuine_jobs: dict[str, dict], kubernetes_version: str) -> None:
    for name, job in genuine_jobs.items():
        try:
            kubernetes_validate.validate(job, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"the run Job of {name} is not valid for Kubernetes {kubernetes_version}: {error.message}")


def test_a_genuine_run_pod_is_matched_by_its_own_locations_network_policy_only(
    genuine_jobs: dict[str, dict], locations: list[CodeLocation]
) -> None:
    for location in locations:
        labels = genuine_jobs[location.name]["spec"]["template"]["metadata"]["labels"]
        assert labels[generator.RUN_LOCATION_LABEL] == location.name
        assert admitted_by(labels) == {f"dagster-code-location-{generator.k8s_name(location)}"}


def test_a_genuine_run_pod_is_restricted_bounded_and_under_the_run_account(
    genuine_jobs: dict[str, dict], values: dict[str, Any], rendering: Rendering
) -> None:
    account = rendering.instance()["run_launcher"]["config"]["service_account_name"]
    for name, job in genuine_jobs.items():
        spec = job["spec"]["template"]["spec"]
        assert restricted_violations(spec) == [], name
        assert spec["securityContext"] == values["x-shared"]["podSecurityContext"], name
        [container] = spec["containers"]
        assert container["securityContext"] == values["x-shared"]["securityContext"], name
        assert container["resources"] == values["x-shared"]["codeLocation"]["resources"], name
        assert spec["serviceAccountName"] == account == generator.RUN_SERVICE_ACCOUNT
        assert job["spec"]["activeDeadlineSeconds"] == 21600  # compose: DAGSTER_MAX_RUN_SECONDS
        assert job["spec"]["backoffLimit"] == 0  # a failed run is retried by Dagster (run retries), not by the Job


def test_a_genuine_run_pod_mounts_its_own_io_claim_and_the_shared_ones(
    genuine_jobs: dict[str, dict], locations: list[CodeLocation]
) -> None:
    for location in locations:
        job = genuine_jobs[location.name]
        spec = job["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert len({v["name"] for v in spec["volumes"]}) == len(spec["volumes"]), "a volume listed twice"
        assert len({m["mountPath"] for m in container["volumeMounts"]}) == len(container["volumeMounts"])
        assert claims(job) == {
            generator.STORAGE_DIR: "dagster-storage",
            generator.IO_DIR: generator.io_claim(location),
            "/opt/dagster/exports": "dagster-exports",
        }


def test_a_genuine_run_pod_gets_its_locations_env_image_and_the_postgres_password(
    genuine_jobs: dict[str, dict], locations: list[CodeLocation], values: dict[str, Any], rendering: Rendering
) -> None:
    for location in locations:
        [container] = genuine_jobs[location.name]["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": values["global"]["postgresqlSecretName"],
            "key": "postgresql-password",
        }
        for item in values["x-shared"]["codeLocation"]["env"]:
            assert env[item["name"]] == item
        assert container["image"] == rendering.container(generator.deployment_name(location))["image"]
        assert {"configMapRef": {"name": generator.env_config_map(location)}} in container["envFrom"]
        # The image's entrypoint (deploy/dagster/entrypoint.sh) stays: the Job sets only args, the code
        # server's entry point (`dagster`, as the chart starts it) + `api execute_run <args>`.
        assert "command" not in container and container["args"][:3] == ["dagster", "api", "execute_run"]


# --- forged runs: refused, or launched with the policy's values -----------------------------------------
def other(locations: list[CodeLocation], name: str) -> CodeLocation:
    return next(location for location in locations if location.name != name)


@pytest.mark.parametrize(
    ("forgery", "named"),
    [
        pytest.param(
            lambda other: {"pod_template_spec_metadata": {"labels": {"dagster/code-location": other.name}}},
            lambda other, own: f"labels.dagster/code-location='{other.name}' (the platform sets '{own.name}')",
            id="another location's label",
        ),
        pytest.param(
            lambda other: {
                "pod_spec_config": {
                    "volumes": [{"name": "theirs", "persistentVolumeClaim": {"claimName": generator.io_claim(other)}}]
                },
                "container_config": {"volumeMounts": [{"name": "theirs", "mountPath": "/mnt/theirs"}]},
            },
            lambda other, own: (
                f"volume 'theirs' {{'persistent_volume_claim': {{'claim_name': '{generator.io_claim(other)}'}}}}"
            ),
            id="another team's claim",
        ),
        pytest.param(
            lambda other: {"container_config": {"securityContext": {"runAsUser": 0, "runAsNonRoot": False}}},
            lambda other, own: "container_config.security_context.run_as_user=0 (the platform sets 10001)",
            id="root",
        ),
        pytest.param(
            lambda other: {
                "pod_spec_config": {"volumes": [{"name": "host", "hostPath": {"path": "/"}}]},
                "container_config": {"volumeMounts": [{"name": "host", "mountPath": "/host"}]},
            },
            lambda other, own: "volume 'host' {'host_path': {'path': '/'}}",
            id="a host path",
        ),
        pytest.param(
            lambda other: {"container_config": {"image": "attacker/tools:latest"}},
            lambda other, own: f"image 'attacker/tools:latest' (code location '{own.name}' runs only ",
            id="another image",
        ),
        pytest.param(
            lambda other: {"pod_spec_config": {"serviceAccountName": generator.FULLNAME}},
            lambda other, own: (
                f"service_account_name='{generator.FULLNAME}' (the platform sets '{generator.RUN_SERVICE_ACCOUNT}')"
            ),
            id="another service account",
        ),
    ],
)
def test_a_run_forging_its_job_in_its_tags_is_refused_without_a_job(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
    forgery: Callable[[CodeLocation], dict[str, Any]],
    named: Callable[[CodeLocation, CodeLocation], str],
) -> None:
    own = locations[0]
    launched = launch(instance, launcher, batch, workspace, own.name, tag=forgery(other(locations, own.name)))

    assert launched.job is None
    assert f"Run launch refused by PolicyK8sRunLauncher for code location '{own.name}'" in launched.message
    assert named(other(locations, own.name), own) in launched.message
    assert launched.run.tags["dagster/will_retry"] == "false"  # despite run_retries


def test_a_run_whose_stored_origin_names_another_image_is_refused(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
) -> None:
    own, theirs = locations[0], other(locations, locations[0].name)
    their_image = launcher.policy.image_for(theirs.name)
    launched = launch(
        instance, launcher, batch, workspace, own.name, forge=lambda code: forged(code, container_image=their_image)
    )

    assert launched.job is None
    assert f"image '{their_image}' (code location '{own.name}' runs only " in launched.message
    assert f"container_image '{their_image}' (code location '{own.name}' serves " in launched.message


def test_a_run_whose_stored_container_context_adds_another_teams_claim_is_refused(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
) -> None:
    own, theirs = locations[0], other(locations, locations[0].name)

    def steal(code: JobPythonOrigin) -> JobPythonOrigin:
        context = json.loads(json.dumps(code.repository_origin.container_context))
        context["k8s"]["volumes"][-1]["persistentVolumeClaim"]["claimName"] = generator.io_claim(theirs)
        return forged(code, container_context=context)

    launched = launch(instance, launcher, batch, workspace, own.name, forge=steal)

    assert launched.job is None
    assert f"'claim_name': '{generator.io_claim(theirs)}'" in launched.message  # by the policy
    assert "container_context {'k8s': {" in launched.message  # and by its location's own server


def test_a_run_asking_for_less_is_launched_with_the_policys_values(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
    genuine_jobs: dict[str, dict],
) -> None:
    own = locations[0]
    asked = {
        "container_config": {"resources": {"limits": {"memory": "1Gi"}}},
        "job_spec_config": {"activeDeadlineSeconds": 600},
        "pod_template_spec_metadata": {"labels": {"dagster/code-location": own.name}},
    }
    launched = launch(instance, launcher, batch, workspace, own.name, tag=asked)

    assert launched.job is not None, launched.message
    spec, genuine = launched.job["spec"], genuine_jobs[own.name]["spec"]
    assert (
        spec["template"]["spec"]["containers"][0]["resources"]
        == genuine["template"]["spec"]["containers"][0]["resources"]
    )
    assert spec["activeDeadlineSeconds"] == genuine["activeDeadlineSeconds"] == 21600
    assert launched.run.tags["dagster/image"] == genuine["template"]["spec"]["containers"][0]["image"]


SHIPPED_TAG = "5e1f2a3b4c6d"  # a release shipped on its own (docs/kubernetes.md, "Shipping one location")


def test_a_run_of_a_shipped_release_starts_from_that_release(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
    genuine_jobs: dict[str, dict],
) -> None:
    # Planned by the location's server of that release, which reports it (DAGSTER_CURRENT_IMAGE),
    # or queued before the ship and planned by the one before: the grant in the instance config
    # is not changed by a ship, so the webserver and daemon keep running.
    own = locations[0]
    shipped = f"{repository_of(launcher.policy.image_for(own.name))}:{SHIPPED_TAG}"
    launched = launch(
        instance, launcher, batch, workspace, own.name, forge=lambda code: forged(code, container_image=shipped)
    )

    assert launched.job is not None, launched.message
    pod, genuine = launched.job["spec"]["template"]["spec"], genuine_jobs[own.name]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == shipped
    assert launched.run.tags["dagster/image"] == shipped
    # Everything else as the genuine run's (its own claims, label, account, security context).
    assert claims(launched.job) == claims(genuine_jobs[own.name])
    assert admitted_by(launched.job["spec"]["template"]["metadata"]["labels"]) == {
        f"dagster-code-location-{generator.k8s_name(own)}"
    }
    assert {k: v for k, v in pod["containers"][0].items() if k not in ("image", "env", "args")} == {
        k: v for k, v in genuine["containers"][0].items() if k not in ("image", "env", "args")
    }


def test_another_locations_release_is_refused(
    instance: dg.DagsterInstance,
    launcher: PolicyK8sRunLauncher,
    batch: FakeBatchApi,
    workspace: BaseWorkspaceRequestContext,
    locations: list[CodeLocation],
) -> None:
    own, theirs = locations[0], other(locations, locations[0].name)
    their_release = f"{repository_of(launcher.policy.image_for(theirs.name))}:{SHIPPED_TAG}"
    launched = launch(
        instance, launcher, batch, workspace, own.name, forge=lambda code: forged(code, container_image=their_release)
    )

    assert launched.job is None
    assert f"image '{their_release}' (code location '{own.name}' runs only " in launched.message
    assert f"container_image '{their_release}' (code location '{own.name}' serves " in launched.message


def test_the_readiness_probe_passes_on_each_loaded_code_server(
    rendering: Rendering, locations: list[CodeLocation], code_servers: dict[str, int]
) -> None:
    # The rendered probe's command, run as the kubelet would in the pod (its port: 4000 there).
    for location in locations:
        command = rendering.container(generator.deployment_name(location))["readinessProbe"]["exec"]["command"]
        assert command[0] == "python"
        env = {**os.environ, "DAGSTER_GRPC_PORT": str(code_servers[location.name])}
        result = subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (location.name, result.stdout, result.stderr)
