"""The webserver with per-team access, in process, against two real gRPC code servers of two teams.

Dagster's own GraphQL schema and permission checks answer; the identity comes in the signed
header the gateway sets. (tests/e2e drives every mutation through the real stack.)
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from dagster import DagsterInstance
from dagster._core.workspace.load_target import WorkspaceFileTarget

with warnings.catch_warnings():  # it asks for httpx2, which nothing here needs
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

from platform_services.access import identity as assertion
from platform_services.access.identity import Identity
from platform_services.access.roles import Role
from platform_services.grpc_probe import check_code_server
from platform_services.webserver.app import TeamWebserver
from platform_services.webserver.audit import AuditLog
from platform_services.webserver.context import TeamProcessContext
from platform_services.webserver.reload import ReloadError, reload
from testkit.stack import free_port, wait_for

KEY = bytes(range(32))
#: One team's code: an asset, its job, a schedule and a sensor, all named after the team.
DEFS = """
import dagster as dg

@dg.asset(name="{team}_numbers")
def numbers() -> int:
    return 1

job = dg.define_asset_job("{team}_job", selection=[numbers])
schedule = dg.ScheduleDefinition(name="{team}_schedule", job=job, cron_schedule="0 6 * * *")

@dg.sensor(name="{team}_sensor", job=job)
def sensor(context):
    return None

defs = dg.Definitions(assets=[numbers], jobs=[job], schedules=[schedule], sensors=[sensor])
"""
LOCATIONS = {"alpha_loc": "alpha", "beta_loc": "beta"}  # location -> its team


def serving(port: int) -> bool:
    return check_code_server(port, "127.0.0.1", 1.0) is None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """workspace.yaml naming two real code servers, each owned by a team."""
    root = tmp_path_factory.mktemp("locations")
    servers, entries = [], []
    for location, team in LOCATIONS.items():
        (root / f"{location}.py").write_text(DEFS.format(team=team))
        port = free_port()
        command = [sys.executable, "-m", "dagster", "api", "grpc", "-p", str(port), "-f", f"{location}.py"]
        servers.append(subprocess.Popen([*command, "--location-name", location], cwd=root))
        entries.append(
            {
                "grpc_server": {
                    "host": "127.0.0.1",
                    "port": port,
                    "location_name": location,
                    "additional_metadata": {"team": team},
                }
            }
        )
        wait_for(functools.partial(serving, port), timeout=60, interval=0.2, what=f"the code server of {location}")
    path = root / "workspace.yaml"
    path.write_text(yaml.safe_dump({"load_from": entries}))
    try:
        yield path
    finally:
        for server in servers:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def app(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("home")
    (home / "dagster.yaml").write_text(
        yaml.safe_dump(
            {
                "run_coordinator": {"module": "instance_kit.coordinator", "class": "UserTaggingRunCoordinator"},
                "telemetry": {"enabled": False},
            }
        )
    )
    with (
        DagsterInstance.from_config(str(home)) as instance,
        TeamProcessContext(
            instance,
            version="test",
            read_only=False,
            workspace_load_target=WorkspaceFileTarget(paths=[str(workspace)]),
            workspace_file=workspace,
        ) as context,
    ):
        yield TeamWebserver(context, key=KEY, audit=AuditLog(None)).create_asgi_app()


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def served(app: Any) -> Iterator[str]:
    """The same webserver over real HTTP: the URL of its root."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started or None, timeout=30, interval=0.05, what="the webserver on HTTP")
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(timeout=10)


ALICE = Identity("alice", "password", {"alpha": Role.EDITOR})  # editor of team alpha
BOB = Identity("bob", "token", {"beta": Role.LAUNCHER})  # launcher of team beta
VIEWER = Identity("vera", "sso")
ADMIN = Identity("root", "password", admin=True)


def graphql(client: TestClient, who: Identity | None, query: str, **variables: Any) -> dict[str, Any]:
    headers = {assertion.HEADER: assertion.sign(who, KEY)} if who else {}
    response = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def schedule_selector(team: str) -> dict[str, str]:
    location = next(loc for loc, owner in LOCATIONS.items() if owner == team)
    return {
        "repositoryLocationName": location,
        "repositoryName": "__repository__",
        "scheduleName": f"{team}_schedule",
    }


START_SCHEDULE = """mutation ($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename
  ... on UnauthorizedError { message } } }"""
RESET_SCHEDULE = """mutation ($s: ScheduleSelector!) { resetSchedule(scheduleSelector: $s) { __typename } }"""
RELOAD_WORKSPACE = "mutation { reloadWorkspace { __typename } }"
LAUNCH = """mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId tags { key value } } } } }"""


def start_schedule(client: TestClient, who: Identity, team: str) -> str:
    typename: str = graphql(client, who, START_SCHEDULE, s=schedule_selector(team))["startSchedule"]["__typename"]
    if typename == "ScheduleStateResult":  # leave it stopped for the next test
        graphql(client, ADMIN, RESET_SCHEDULE, s=schedule_selector(team))
    return typename


def test_a_request_without_the_gateways_identity_is_refused(client: TestClient) -> None:
    assert client.post("/graphql", json={"query": "{ version }"}).status_code == 401
    forged = assertion.sign(ADMIN, bytes(32))  # signed with another key
    refused = client.post("/graphql", json={"query": "{ version }"}, headers={assertion.HEADER: forged})
    assert refused.status_code == 401 and "signature does not hold" in refused.text
    assert client.get("/server_info").status_code == 401


@pytest.mark.parametrize(
    ("who", "team", "expected"),
    [
        (ALICE, "alpha", "ScheduleStateResult"),  # an editor, on her team's location
        (ALICE, "beta", "UnauthorizedError"),  # ... not on another team's
        (BOB, "beta", "UnauthorizedError"),  # a launcher may launch, not start schedules
        (VIEWER, "alpha", "UnauthorizedError"),
        (ADMIN, "beta", "ScheduleStateResult"),
    ],
)
def test_dagsters_own_check_answers_with_the_role_on_the_locations_team(
    client: TestClient, who: Identity, team: str, expected: str
) -> None:
    assert start_schedule(client, who, team) == expected


def test_deployment_wide_mutations_are_for_admins_only(client: TestClient) -> None:
    assert graphql(client, ALICE, RELOAD_WORKSPACE)["reloadWorkspace"]["__typename"] == "UnauthorizedError"
    assert graphql(client, ADMIN, RELOAD_WORKSPACE)["reloadWorkspace"]["__typename"] == "Workspace"


def test_the_ui_is_told_what_each_location_allows(client: TestClient) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name permissions { permission value } } } } }"
    entries = graphql(client, BOB, query)["workspaceOrError"]["locationEntries"]
    allowed = {e["name"]: {p["permission"] for p in e["permissions"] if p["value"]} for e in entries}

    assert allowed["beta_loc"] >= {"launch_pipeline_execution", "terminate_pipeline_execution"}
    assert "start_schedule" not in allowed["beta_loc"]
    assert allowed["alpha_loc"] == set()


def test_a_launched_run_carries_its_users_tag_whatever_the_client_sent(client: TestClient) -> None:
    def params(location: str, job: str) -> dict[str, Any]:
        selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": job}
        return {"selector": selector, "executionMetadata": {"tags": [{"key": "user", "value": "mallory"}]}}

    result = graphql(client, BOB, LAUNCH, p=params("beta_loc", "beta_job"))["launchRun"]

    assert result["__typename"] == "LaunchRunSuccess"
    assert {t["key"]: t["value"] for t in result["run"]["tags"]}["user"] == "bob"
    refused = graphql(client, BOB, LAUNCH, p=params("alpha_loc", "alpha_job"))
    assert refused["launchRun"]["__typename"] == "UnauthorizedError"


def test_every_mutation_is_audited_allowed_or_refused(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="dagster.audit"):
        start_schedule(client, ALICE, "beta")
        start_schedule(client, ALICE, "alpha")
    records = [json.loads(r.getMessage())["audit"] for r in caplog.records if r.name == "dagster.audit"]
    refused, allowed = records[0], records[1]

    assert refused["user"] == "alice" and refused["via"] == "password" and refused["operation"] == "startSchedule"
    assert (refused["team"], refused["role"], refused["outcome"]) == ("beta", "viewer", "refused")
    assert refused["locations"] == ["beta_loc"] and "scheduleName=beta_schedule" in refused["targets"]
    assert (allowed["team"], allowed["role"], allowed["outcome"]) == ("alpha", "editor", "allowed")


def _location_names(client: TestClient) -> list[str]:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"
    return sorted(entry["name"] for entry in graphql(client, VIEWER, query)["workspaceOrError"]["locationEntries"])


def _replace(path: Path, text: str) -> None:
    partial = path.with_name(".workspace.yaml.partial")
    partial.write_text(text)
    partial.replace(path)  # as make generate writes it: a new file under the same name


def test_a_changed_workspace_file_is_loaded_without_a_restart(client: TestClient, workspace: Path) -> None:
    original = workspace.read_text()
    entries = yaml.safe_load(original)["load_from"]
    try:
        _replace(workspace, yaml.safe_dump({"load_from": entries[:1]}))  # a location removed

        wait_for(lambda: _location_names(client) == ["alpha_loc"] or None, timeout=20, what="beta_loc unlisted")
    finally:
        _replace(workspace, original)
    wait_for(lambda: _location_names(client) == sorted(LOCATIONS) or None, timeout=20, what="beta_loc listed again")


def test_a_deploy_reloads_its_location_as_the_deployer_and_no_other(
    served: str, caplog: pytest.LogCaptureFixture
) -> None:
    deployer = Identity("ci-alpha (token)", "deploy", {"alpha": Role.EDITOR})
    with caplog.at_level(logging.INFO, logger="dagster.audit"):
        server_id = reload(served, "alpha_loc", deployer, KEY)
        with pytest.raises(ReloadError, match="the webserver did not load beta_loc: Authorization failed"):
            reload(served, "beta_loc", deployer, KEY)
    records = [json.loads(r.getMessage())["audit"] for r in caplog.records if r.name == "dagster.audit"]

    assert len(server_id) == 36  # a uuid: the server Dagster now holds the code of
    assert [(r["user"], r["via"], r["operation"], r["outcome"]) for r in records] == [
        ("ci-alpha (token)", "deploy", "reloadRepositoryLocation", "allowed"),
        ("ci-alpha (token)", "deploy", "reloadRepositoryLocation", "refused"),
    ]
    with pytest.raises(ReloadError, match="did not answer"):
        reload(f"http://127.0.0.1:{free_port()}", "alpha_loc", deployer, KEY, timeout=5)
