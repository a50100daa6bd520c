"""A team ships its code location on its own: make deploy, a broken deploy, rollback, and the refusals.

Against the suite's stack, from its copy of the checkout (stack.root), as a team works from
theirs: a change to modular_assets' code is deployed while both teams have runs queued, and the
webserver is polled every 0.1 s meanwhile (testkit.availability). The deploys skip the location's
tests (`--no-test`, as the per-team pipeline does after its test job); tests/scaffold checks that
a failing test stops a deploy.
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from instance_kit import releases
from testkit.availability import Availability
from testkit.markers import add_marker, asset_names
from testkit.stack import Stack, wait_for

LOCATION, OTHER = "modular_assets", "simple_ops"
JOBS = {LOCATION: "all_assets_job", OTHER: "data_extraction_job"}
DEFINITIONS = f"code_locations/{LOCATION}/src/{LOCATION}/definitions.py"


def record(stack: Stack, location: str = LOCATION) -> releases.LocationReleases:
    return releases.read(stack.root / "releases" / stack.project, location)


@pytest.fixture(scope="module")
def definitions(stack: Stack) -> Iterator[Path]:
    path = stack.root / DEFINITIONS
    original = path.read_text()
    yield path
    path.write_text(original)


@pytest.fixture(scope="module")
def deployed(stack: Stack, definitions: Path) -> dict[str, object]:
    """A code change of modular_assets deployed while both teams have runs queued and sensors run."""
    marker = add_marker(definitions)
    runs = [stack.launch(JOBS[location], location) for location in (LOCATION, OTHER, LOCATION, OTHER)]
    since = time.time()
    with Availability(stack, [LOCATION, OTHER]) as availability:
        result = stack.deploy_tool("deploy", LOCATION, "--no-test")
    return {"marker": marker, "runs": runs, "since": since, "availability": availability, "result": result}


def test_a_deploy_under_load_serves_the_new_code_with_no_gap(stack: Stack, deployed: dict) -> None:
    result, availability = deployed["result"], deployed["availability"]
    assert result.returncode == 0, result.stderr
    assert re.search(r"modular_assets runs release [0-9a-f]{12}", result.stdout), result.stdout

    assert deployed["marker"] in asset_names(stack, LOCATION)  # as soon as the deploy returns
    assert "the webserver shows the new release" in result.stderr
    assert availability.polls > 20
    assert availability.unavailable == {LOCATION: 0.0, OTHER: 0.0}, availability.samples[:5]
    assert stack.failed_ticks(deployed["since"]) == []


def test_runs_queued_before_the_deploy_all_succeed_each_in_a_release_of_its_location(
    stack: Stack, deployed: dict
) -> None:
    live = record(stack)
    for run_id in deployed["runs"]:
        run = stack.wait_for_run(run_id, timeout=600)
        assert run["status"] == "SUCCESS", stack.failure_text(run)[-2000:]
        tags = {t["key"]: t["value"] for t in run["tags"]}
        location = tags["dagster/code_location"]
        image = tags["dagster/image"]
        assert image.startswith(f"{stack.project}-{location}:"), image
        if location == LOCATION:
            assert image.rsplit(":", 1)[1] in {r.tag for r in live.releases} | {stack.image_tag}


def test_the_release_is_recorded_with_who_deployed_it(stack: Stack, deployed: dict) -> None:
    live = record(stack)
    assert [d.action for d in live.history] == ["up", "deploy"]  # the running one adopted, then the deploy
    listing = stack.deploy_tool("releases", LOCATION)
    assert listing.returncode == 0, listing.stderr
    first = listing.stdout.splitlines()[1]
    assert first.startswith(live.live or "?") and first.endswith("(deploy)  <- live")


def test_a_broken_release_is_refused_and_the_live_one_keeps_serving(
    stack: Stack, deployed: dict, definitions: Path
) -> None:
    good = definitions.read_text()
    live_before = record(stack).live
    definitions.write_text(good + '\nraise RuntimeError("deliberately broken by the e2e test")\n')
    try:
        with Availability(stack, [LOCATION, OTHER]) as availability:
            result = stack.deploy_tool("deploy", LOCATION, "--no-test")
    finally:
        definitions.write_text(good)

    assert result.returncode == 1
    assert "deliberately broken by the e2e test" in result.stderr
    assert f"release {live_before} keeps serving" in result.stderr
    assert availability.unavailable == {LOCATION: 0.0, OTHER: 0.0}, availability.samples[:5]
    assert record(stack).live == live_before
    assert deployed["marker"] in asset_names(stack, LOCATION)


def test_a_deploy_while_another_of_the_same_location_runs_is_refused(stack: Stack, deployed: dict) -> None:
    lock = stack.root / "releases" / stack.project / f".{LOCATION}.lock"
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running deploy holds it
        result = stack.deploy_tool("deploy", LOCATION, "--no-test")

    assert result.returncode == 1
    assert "already running" in result.stderr and "The live release keeps serving" in result.stderr


@pytest.fixture(scope="module")
def team_tokens(stack: Stack) -> Iterator[dict[str, str]]:
    """API tokens of the analytics team (modular_assets'): an editor's and a launcher's."""
    previous = stack.access_file.read_text()
    roles = {"ci-analytics-deploy": "editor", "ci-analytics-launch": "launcher"}
    tokens = {name: stack.add_token(name) for name in roles}
    access = yaml.safe_load(previous) or {}
    stack.set_access(json.dumps({**access, "tokens": {name: {"analytics": role} for name, role in roles.items()}}))

    def editor() -> bool:
        whoami = requests.get(
            f"{stack.url}/__auth/whoami",
            headers={"Authorization": f"Bearer {tokens['ci-analytics-deploy']}"},
            timeout=10,
        )
        return whoami.ok and whoami.json()["teams"].get("analytics") == "editor"

    wait_for(lambda: editor() or None, timeout=30, what="the access file's new tokens in force")
    yield tokens
    stack.set_access(previous)


def test_a_token_that_is_not_an_editor_of_the_team_may_not_deploy(
    stack: Stack, deployed: dict, team_tokens: dict[str, str]
) -> None:
    live = record(stack).live
    result = stack.deploy_tool("rollback", LOCATION, env={"DAGSTER_DEPLOY_TOKEN": team_tokens["ci-analytics-launch"]})

    assert result.returncode == 1
    assert "needs the editor role on its team 'analytics'" in result.stderr
    assert record(stack).live == live


def test_rollback_returns_to_the_previous_release_with_no_gap(
    stack: Stack, deployed: dict, team_tokens: dict[str, str]
) -> None:
    before = record(stack)
    with Availability(stack, [LOCATION, OTHER]) as availability:
        result = stack.deploy_tool(
            "rollback", LOCATION, env={"DAGSTER_DEPLOY_TOKEN": team_tokens["ci-analytics-deploy"]}
        )

    assert result.returncode == 0, result.stderr
    assert record(stack).live == before.previous
    assert record(stack).history[-1].by == "ci-analytics-deploy (token)"
    assert deployed["marker"] not in asset_names(stack, LOCATION)  # the code from before the deploy again
    assert "the webserver shows the new release" in result.stderr
    sql = (
        "SELECT via, team, role, outcome FROM platform_audit_log WHERE operation = 'reloadRepositoryLocation' "
        "AND user_name = 'ci-analytics-deploy (token)' ORDER BY id DESC LIMIT 1"
    )
    audited = stack.compose("exec", "-T", "postgres", "psql", "-U", "postgres", "-d", "dagster", "-At", "-c", sql)
    assert audited.stdout.strip() == "deploy|analytics|editor|allowed"  # the deploy's reload, by its deployer
    assert availability.unavailable == {LOCATION: 0.0, OTHER: 0.0}, availability.samples[:5]
    run = stack.wait_for_run(stack.launch(JOBS[LOCATION], LOCATION))
    assert run["status"] == "SUCCESS"
    assert {t["key"]: t["value"] for t in run["tags"]}["dagster/image"].endswith(f":{before.previous}")


def test_rolling_back_to_another_locations_release_or_a_missing_image_is_refused(stack: Stack, deployed: dict) -> None:
    theirs = record(stack).previous
    assert theirs is not None

    other = stack.deploy_tool("rollback", OTHER, "--to", theirs)
    assert other.returncode == 1
    assert f"it is a release of {LOCATION}, not of {OTHER}" in other.stderr

    stack.docker("image", "rm", f"{stack.project}-{LOCATION}:{theirs}")  # the previous release's image, gone
    live = record(stack).live
    missing = stack.deploy_tool("rollback", LOCATION)
    assert missing.returncode == 1
    assert "is gone from this host" in missing.stderr and f"make deploy LOCATION={LOCATION}" in missing.stderr
    assert record(stack).live == live
