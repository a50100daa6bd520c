"""The pods the K8sRunLauncher makes of values.yaml: one run per code location, launched offline.

dagster_k8s' real K8sRunLauncher, configured as the chart's dagster.yaml configures it (its
config checked by dagster_k8s' own schema), launches a run of each location whose origin
carries the container context the chart gives that location's code server. The Kubernetes
API is a fake that keeps the Job instead of creating it. The Job must be valid Kubernetes,
meet the restricted Pod Security Standard, mount the location's own claim and the shared
ones, and carry the labels its location's NetworkPolicy lets through (and no other's).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster_k8s import K8sRunLauncher
from dagster_k8s import launcher as launcher_module

from template_tools import kubernetes as generator
from template_tools.locations import ROOT, CodeLocation, read_locations

if TYPE_CHECKING:
    from tests.kubernetes.conftest import Chart

RUN_ID = "0123abcd-0000-4000-8000-000000000000"
JOB = "daily_job"


@dataclass
class FakeBatchApi:
    """Where the launcher's `create_namespaced_job` lands: kept, not sent."""

    jobs: list[tuple[str, Any]] = field(default_factory=list)

    def create_namespaced_job(self, body: Any, namespace: str, **_: Any) -> Any:
        self.jobs.append((namespace, body))
        return body


def run_of(chart: Chart, location: CodeLocation, run_id: str) -> DagsterRun:
    """A run of ``location`` as its code server would submit it: its image, and the chart's container context."""
    deployments = {item["name"]: item for item in chart.values["dagster-user-deployments"]["deployments"]}
    deployment = deployments[generator.k8s_name(location)]
    repository = RepositoryPythonOrigin(
        executable_path="python",
        code_pointer=ModuleCodePointer(location.module, "defs", working_directory=None),
        container_image=f"{deployment['image']['repository']}:{deployment['image']['tag']}",
        container_context=chart.container_context(deployment),
    )
    server = GrpcServerCodeLocationOrigin(
        host=generator.k8s_name(location), port=location.port, location_name=location.name
    )
    return DagsterRun(
        job_name=JOB,
        run_id=run_id,
        job_code_origin=JobPythonOrigin(JOB, repository),
        remote_job_origin=RemoteJobOrigin(RemoteRepositoryOrigin(server, "__repository__"), JOB),
        status=DagsterRunStatus.STARTING,
    )


@pytest.fixture(scope="module")
def locations() -> list[CodeLocation]:
    return read_locations()


@pytest.fixture(scope="module")
def run_jobs(
    chart: Chart, locations: list[CodeLocation], kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict]:
    """Location name -> the Job (as a dict) the launcher creates for one of its runs."""
    checked = process_config(K8sRunLauncher.config_type(), chart.run_launcher_config())
    assert checked.success and checked.value is not None, checked.errors
    # In the cluster it loads its service account's config; here a kubeconfig that is never used.
    settings = {**checked.value, "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    batch = FakeBatchApi()
    with DagsterInstance.local_temp(tempdir=str(tmp_path_factory.mktemp("instance"))) as instance:
        launcher = K8sRunLauncher(**settings, k8s_client_batch_api=batch, k8s_client_core_api=object())
        launcher.register_instance(instance)
        for index, location in enumerate(locations):
            run = instance.add_run(run_of(chart, location, f"{RUN_ID[:-2]}{index:02d}"))
            launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    assert [namespace for namespace, _ in batch.jobs] == ["dagster"] * len(locations)
    client = kubernetes.client.ApiClient()
    return {
        location.name: client.sanitize_for_serialization(job)
        for location, (_, job) in zip(locations, batch.jobs, strict=True)
    }


def test_the_launcher_still_labels_run_pods_as_the_policies_expect() -> None:
    """dagster_k8s' source: the labels the NetworkPolicies select run pods by (upgrade guard)."""
    source = inspect.getsource(launcher_module.K8sRunLauncher._launch_k8s_job_with_args)

    assert 'labels["dagster/code-location"]' in source
    assert 'component="run_worker"' in source


def test_each_run_job_is_valid_kubernetes(run_jobs: dict[str, dict], kubernetes_version: str) -> None:
    for name, job in run_jobs.items():
        try:
            kubernetes_validate.validate(job, kubernetes_version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"the run Job of {name} is not valid for Kubernetes {kubernetes_version}: {error.message}")


def policy_peers() -> dict[str, list[dict[str, str]]]:
    """Per code-location policy: the pod selectors it admits."""
    path = ROOT / generator.NETWORK_POLICIES
    peers = {}
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc and doc["metadata"]["name"].startswith("dagster-code-location-"):
            [rule] = doc["spec"]["ingress"]
            peers[doc["metadata"]["name"]] = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    return peers


def admitted(labels: dict[str, str], selectors: list[dict[str, str]]) -> bool:
    return any(selector.items() <= labels.items() for selector in selectors)


def test_a_run_pod_reaches_its_own_code_server_and_no_other(
    run_jobs: dict[str, dict], locations: list[CodeLocation]
) -> None:
    peers = policy_peers()
    for location in locations:
        labels = run_jobs[location.name]["spec"]["template"]["metadata"]["labels"]
        assert labels[generator.RUN_LOCATION_LABEL] == location.name
        for other in locations:
            policy = f"dagster-code-location-{generator.k8s_name(other)}"
            assert admitted(labels, peers[policy]) is (other == location), (location.name, policy)


def test_a_run_pod_reaches_postgres() -> None:
    path = ROOT / generator.NETWORK_POLICIES
    postgres = next(
        doc
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if doc and doc["metadata"]["name"] == "dagster-postgres"
    )
    selectors = [peer["podSelector"]["matchLabels"] for peer in postgres["spec"]["ingress"][0]["from"]]

    assert dict(generator.RUN_PODS) in selectors


def test_a_run_pod_is_restricted_and_bounded(run_jobs: dict[str, dict], values: dict[str, Any]) -> None:
    for name, job in run_jobs.items():
        spec = job["spec"]["template"]["spec"]
        assert spec["securityContext"] == values["x-shared"]["podSecurityContext"], name
        [container] = spec["containers"]
        assert container["securityContext"] == values["x-shared"]["securityContext"], name
        assert container["resources"] == values["x-shared"]["codeLocation"]["resources"], name
        assert job["spec"]["activeDeadlineSeconds"] == 21600  # compose: DAGSTER_MAX_RUN_SECONDS
        assert job["spec"]["backoffLimit"] == 0  # a failed run is retried by Dagster (run retries), not by the Job


def test_a_run_pod_mounts_its_own_io_claim_and_the_shared_ones(
    run_jobs: dict[str, dict], locations: list[CodeLocation]
) -> None:
    for location in locations:
        spec = run_jobs[location.name]["spec"]["template"]["spec"]
        [container] = spec["containers"]
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert len(volumes) == len(spec["volumes"]), "a volume is listed twice (the pod would be refused)"
        assert len(mounts) == len(container["volumeMounts"])
        claims = {
            path: volumes[name]["persistentVolumeClaim"]["claimName"]
            for path, name in mounts.items()
            if "persistentVolumeClaim" in volumes[name]
        }
        assert claims == {
            generator.STORAGE_DIR: "dagster-storage",
            generator.IO_DIR: generator.io_claim(location),
            "/opt/dagster/exports": "dagster-exports",
        }
        assert "emptyDir" in volumes[mounts["/tmp"]]


def test_a_run_pod_gets_its_locations_env_image_and_the_postgres_password(
    run_jobs: dict[str, dict], locations: list[CodeLocation], values: dict[str, Any]
) -> None:
    for location in locations:
        [container] = run_jobs[location.name]["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item for item in container["env"]}
        assert env["DAGSTER_PG_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": values["global"]["postgresqlSecretName"],
            "key": "postgresql-password",
        }
        for item in values["x-shared"]["codeLocation"]["env"]:
            assert env[item["name"]] == item
        assert container["image"].endswith(f"-{location.name}:local")
        # The image's entrypoint (deploy/dagster/entrypoint.sh) stays: the Job sets only args,
        # `<the code server's python> -m dagster api execute_run <args>`.
        assert "command" not in container and container["args"][1:5] == ["-m", "dagster", "api", "execute_run"]
