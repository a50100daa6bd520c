"""The compose stack comes up healthy, runs a job of every location (workspace.yaml) through
queue + daemon + Docker run launcher, writes the exports, and shows compute logs through the API."""

from __future__ import annotations

import csv
import io

import pytest

from template_tools.locations import location_names
from testkit.stack import Stack, wait_for

PLATFORM = {"postgres", "webserver", "daemon", "sample_api", "gateway", "storage_janitor", "socket_proxy", "backup"}
LONG_RUNNING = PLATFORM | set(location_names())

JOBS_QUERY = """
query ($location: String!) { repositoryOrError(repositorySelector:
    {repositoryLocationName: $location, repositoryName: "__repository__"}) {
  ... on Repository { jobs { name } } } }
"""


def test_every_service_is_healthy_and_every_location_loads(stack: Stack) -> None:
    services = {s["Service"]: s for s in stack.services()}
    assert set(services) >= LONG_RUNNING, f"missing services: {LONG_RUNNING - set(services)}"
    for name in LONG_RUNNING:
        assert services[name]["Health"] == "healthy", services[name]
    assert len([s for s in services.values() if s["Service"] == "daemon"]) == 1
    wait_for(stack.all_locations_loaded, timeout=60, what="every code location LOADED")


@pytest.mark.parametrize("location", location_names())
def test_every_location_runs_a_job_in_its_own_image(stack: Stack, location: str) -> None:
    """The location's first job (by name; `__ASSET_JOB` is Dagster's own) succeeds in a container of its image."""
    jobs = stack.graphql(JOBS_QUERY, {"location": location})["repositoryOrError"]["jobs"]
    job = min(j["name"] for j in jobs if not j["name"].startswith("__"))

    run = stack.wait_for_run(stack.launch(job, location))

    assert run["status"] == "SUCCESS", stack.failure_text(run)[-3000:]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/image"] == f"{stack.project}-{location}:{stack.image_tag}"


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def extraction_run(stack: Stack) -> dict:
    run_id = stack.launch("data_extraction_job", "simple_ops")
    return stack.wait_for_run(run_id)


@pytest.fixture(scope="module")
def modular_run(stack: Stack) -> dict:
    run_id = stack.launch("all_assets_job", "modular_assets")
    return stack.wait_for_run(run_id)


def test_data_extraction_job_succeeds_and_exports_users(stack: Stack, extraction_run: dict) -> None:
    assert extraction_run["status"] == "SUCCESS", extraction_run["eventConnection"]["events"][-5:]
    tags = {t["key"]: t["value"] for t in extraction_run["tags"]}
    assert tags["dagster/code_location"] == "simple_ops"
    assert tags["dagster/image"] == f"{stack.project}-simple_ops:e2e"  # ran in the location's own image
    rows = _csv_rows(stack.read_export("simple_ops/users.csv"))
    assert len(rows) == 10
    assert {"user_id", "email", "company_name", "lat", "lng"} <= set(rows[0])


def test_modular_all_assets_job_succeeds_and_exports_every_file(stack: Stack, modular_run: dict) -> None:
    assert modular_run["status"] == "SUCCESS", modular_run["eventConnection"]["events"][-5:]
    assert len(_csv_rows(stack.read_export("modular_assets/users.csv"))) == 10
    assert len(_csv_rows(stack.read_export("modular_assets/posts_enriched.csv"))) == 100
    assert len(_csv_rows(stack.read_export("modular_assets/user_stats.csv"))) == 10
    top = _csv_rows(stack.read_export("modular_assets/top_authors.csv"))
    assert len(top) == 5
    counts = [int(row["total_posts"]) for row in top]
    assert counts == sorted(counts, reverse=True)


def test_compute_logs_of_a_run_container_are_readable_through_the_api(stack: Stack, extraction_run: dict) -> None:
    captured = [e for e in extraction_run["eventConnection"]["events"] if e["__typename"] == "LogsCapturedEvent"]
    assert captured, "the run reported no captured logs"
    logs = [stack.captured_logs(extraction_run["runId"], event["fileKey"]) for event in captured]
    assert any((log["stdout"] or "") + (log["stderr"] or "") for log in logs), logs


def test_run_containers_are_removed_after_the_runs(stack: Stack, extraction_run: dict, modular_run: dict) -> None:
    def no_run_containers_left() -> bool:
        listed = stack.docker(
            "ps", "--all", "--quiet", "--filter", f"label=com.dagster-template.project={stack.project}"
        ).stdout
        return not listed.strip()

    wait_for(no_run_containers_left, timeout=30, what="exited run containers to be removed")
