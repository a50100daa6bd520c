"""A third team's location joins the running stack, and leaves it, without touching the other two.

Last in the suite (it changes the stack): `make new-location` in the stack's copy of the checkout,
then `make deploy` of the new location while the other two have runs queued and the webserver
is polled every 0.1 s. No shared service restarts (Postgres, the sample API, the webserver, the
daemon, the exporter, the storage janitor, the gateway, the auth service): location_networks
joins them to the new network, and the webserver and the daemon read the changed workspace by
themselves. Then `make remove-location` and its `retire` put the stack back as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from template_tools.locations import location_names
from template_tools.scaffolding import lock, new_location, remove_location
from testkit.availability import Availability
from testkit.stack import Stack, wait_for

NAME = "billing_reports"
OTHERS = {"simple_ops": "data_extraction_job", "modular_assets": "all_assets_job"}
SHARED = ("postgres", "sample_api", "webserver", "daemon", "metrics", "storage_janitor", "gateway", "auth")


@pytest.fixture(scope="module")
def added(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    before = stack.started(SHARED)
    scaffolded = new_location(stack.root, NAME, "--team", "billing")
    assert scaffolded.returncode == 0, scaffolded.stderr
    locked = lock(stack.root, tmp_path_factory.mktemp("venv") / "venv")
    assert locked.returncode == 0, locked.stderr
    runs = [stack.launch(job, location) for location, job in OTHERS.items()]
    since = time.time()
    try:
        with Availability(stack, list(OTHERS)) as availability:
            result = stack.deploy_tool("deploy", NAME, "--no-test")
            wait_for(lambda: stack.all_locations_loaded([NAME]) or None, timeout=120, what=f"{NAME} loaded")
        yield {"before": before, "runs": runs, "since": since, "availability": availability, "result": result}
    finally:  # also when a test failed before the last one removed it
        if NAME in location_names(stack.root):
            remove_location(stack.root, NAME)
        stack.deploy_tool("retire", NAME)
        stack.docker("volume", "rm", f"{stack.project}_{NAME}", check=False)  # its IO volume


def test_the_new_location_is_deployed_and_loads_beside_the_others(stack: Stack, added: dict) -> None:
    assert added["result"].returncode == 0, added["result"].stderr
    assert stack.location_names == [*location_names(), NAME]
    assert stack.all_locations_loaded()


def test_its_job_succeeds_in_its_own_release(stack: Stack, added: dict) -> None:
    run = stack.wait_for_run(stack.launch(f"{NAME}_job", NAME), timeout=400)

    assert run["status"] == "SUCCESS", stack.failure_text(run)[-3000:]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/code_location"] == NAME
    assert tags["dagster/image"].startswith(f"{stack.project}-{NAME}:")
    assert tags["dagster/image"] != f"{stack.project}-{NAME}:{stack.image_tag}"  # its release's own tag


def test_the_other_teams_saw_no_gap_no_failed_tick_no_lost_run_and_no_restart(stack: Stack, added: dict) -> None:
    availability = added["availability"]
    assert availability.unavailable == dict.fromkeys(OTHERS, 0.0), availability.samples[:5]
    for run_id in added["runs"]:
        run = stack.wait_for_run(run_id, timeout=600)
        assert run["status"] == "SUCCESS", stack.failure_text(run)[-2000:]
    assert stack.failed_ticks(added["since"]) == []
    assert stack.started(SHARED) == added["before"]


def test_removing_it_again_stops_only_its_server(stack: Stack, added: dict) -> None:
    removed = remove_location(stack.root, NAME)  # as the fixture's teardown does, checked here
    assert removed.returncode == 0, removed.stderr
    retired = stack.deploy_tool("retire", NAME)
    assert retired.returncode == 0, retired.stderr

    assert f"stopped 1 server(s) of {NAME}" in retired.stdout and f"{stack.project}_{NAME}" in retired.stdout
    wait_for(lambda: NAME not in stack.locations() or None, timeout=30, what=f"{NAME} gone from the workspace")
    assert stack.all_locations_loaded(list(OTHERS))
    assert stack.started(SHARED) == added["before"]
