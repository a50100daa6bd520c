"""Per-team access, through the gateway: every mutation of the pinned dagster-graphql, by each role,
on its own team's code location and on the other team's.

Five identities: an editor of data-extraction (simple_ops), a launcher of analytics (modular_assets),
a launcher of data-extraction (the backfills a launcher cancels are simple_ops': modular_assets has
no partitioned job), a viewer, and a deployment admin. A refused mutation gets Dagster's
UnauthorizedError and changes nothing (checked per mutation); the matrix as measured is written to
test-artifacts/access-matrix.md.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from platform_services.access.roles import LOCATION_PERMISSIONS, MUTATIONS, Role, Scope
from testkit.stack import Stack, wait_for

A, B = "simple_ops", "modular_assets"
TEAMS = {A: "data-extraction", B: "analytics"}
REPO = "__repository__"


@dataclass(frozen=True)
class Person:
    name: str
    roles: dict[str, str] = field(default_factory=dict)  # team -> role
    admin: bool = False
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    def role_on(self, location: str) -> Role:
        return Role.ADMIN if self.admin else Role(self.roles.get(TEAMS[location], "viewer"))


PEOPLE = (
    Person("ed", {"data-extraction": "editor"}),
    Person("la", {"analytics": "launcher"}),
    Person("lx", {"data-extraction": "launcher"}),
    Person("vi"),
    Person("ad", admin=True),
)


def expected(person: Person, mutation: str, location: str | None) -> bool:
    """What the roles table (platform_services.access.roles) says this person may do."""
    check = MUTATIONS[mutation]
    if check.scope is Scope.NONE:
        return True
    if check.scope is Scope.DEPLOYMENT:
        return person.admin
    assert location is not None
    return check.permissions <= LOCATION_PERMISSIONS[person.role_on(location)]


class Client:
    """GraphQL through the gateway as one person; a refusal is Dagster's UnauthorizedError."""

    def __init__(self, stack: Stack, person: Person) -> None:
        self.stack, self.person = stack, person

    def call(self, query: str, **variables: Any) -> tuple[str, dict[str, Any]]:
        """("allowed" | "refused", the payload): allowed means it got past the permission check."""
        response = requests.post(
            f"{self.stack.url}/graphql",
            json={"query": query, "variables": variables},
            auth=(self.person.name, self.person.password),
            timeout=60,
        )
        body = response.json()
        if body.get("errors"):  # mutations returning a Boolean refuse by raising
            message = " ".join(e["message"] for e in body["errors"])
            assert "Unauthorized" in message or "permission" in message.lower(), body
            return "refused", body
        result = next(iter(body["data"].values()))
        return ("refused" if _unauthorized(result) else "allowed"), body


def _unauthorized(result: Any) -> bool:
    """Dagster's refusal, anywhere in a result (launchMultipleRuns and terminateRuns hold lists)."""
    if isinstance(result, dict):
        message = result.get("message") or ""
        if result.get("__typename") == "UnauthorizedError":
            # Also what an unknown dynamic partitions definition gets, after the permission check.
            return "does not contain a dynamic partitions definition" not in message
        if result.get("__typename") == "TerminateRunFailure":  # how Dagster refuses a termination
            return "do not have permission" in message
        return any(_unauthorized(value) for value in result.values())
    if isinstance(result, list):
        return any(_unauthorized(item) for item in result)
    return False


# --- what each mutation is called with, on a location ---------------------------------------------
UNAUTHORIZED = "... on UnauthorizedError { message } ... on PythonError { message }"
TERMINATED = "... on UnauthorizedError { message } ... on TerminateRunFailure { message }"


def _repo(location: str) -> dict[str, str]:
    return {"repositoryLocationName": location, "repositoryName": REPO}


@dataclass
class World:
    """What the mutations act on, per location: jobs, schedules, sensors, assets, runs, a backfill."""

    job: dict[str, str]
    schedule: dict[str, str]
    sensor: dict[str, str]
    asset: dict[str, list[str]]
    check: dict[str, tuple[list[str], str]]
    finished_runs: dict[str, list[str]]
    backfill: str  # one to cancel and resume
    finished_backfill: str  # one to re-execute: only a finished backfill is


def schedule_state(stack: Stack, location: str, name: str) -> dict[str, Any]:
    query = """query ($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) { ... on Schedule {
      scheduleState { id selectorId status } } } }"""
    return stack.graphql(query, {"s": {**_repo(location), "scheduleName": name}})["scheduleOrError"]["scheduleState"]


def sensor_state(stack: Stack, location: str, name: str) -> dict[str, Any]:
    query = """query ($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor {
      sensorState { id selectorId status typeSpecificData { ... on SensorData { lastCursor } } } } } }"""
    return stack.graphql(query, {"s": {**_repo(location), "sensorName": name}})["sensorOrError"]["sensorState"]


def partitions(stack: Stack) -> list[str]:
    query = """query ($p: PipelineSelector!) { pipelineOrError(params: $p) { ... on Pipeline {
      partitionKeysOrError { ... on PartitionKeys { partitionKeys } } } } }"""
    selector = {**_repo(A), "pipelineName": "extraction_batch_job"}
    return stack.graphql(query, {"p": selector})["pipelineOrError"]["partitionKeysOrError"]["partitionKeys"]


def materializations(stack: Stack, path: list[str]) -> tuple[int, int]:
    query = """query ($k: AssetKeyInput!) { assetOrError(assetKey: $k) { ... on Asset {
      assetMaterializations(limit: 1000) { runId } } } }"""
    events = stack.graphql(query, {"k": {"path": path}})["assetOrError"].get("assetMaterializations") or []
    return len([e for e in events if not e["runId"]]), len(events)


def run_status(stack: Stack, run_id: str) -> str | None:
    result = stack.graphql(
        "query ($r: ID!) { runOrError(runId: $r) { __typename ... on Run { status } } }", {"r": run_id}
    )
    return result["runOrError"].get("status")


def location_version(stack: Stack, location: str) -> str:
    return stack.locations()[location]["versionKey"]


def instance_state(stack: Stack) -> dict[str, Any]:
    return stack.graphql("{ instance { concurrencyLimits { concurrencyKey slotCount } autoMaterializePaused } }")


@dataclass
class Case:
    """One mutation: its call on a location (deployment-wide ones once), what state it must not
    change when refused, and how to put the state back after an allowed call."""

    query: str
    variables: Callable[[World, str], dict[str, Any]]
    state: Callable[[Stack, World, str], Any] = lambda stack, world, location: None
    restore: Callable[[Stack, World, str], object] = lambda stack, world, location: None
    deployment: bool = False
    #: Whether a refused call left the state as it was (before, after); equality unless said otherwise.
    unchanged: Callable[[Any, Any], bool] = lambda before, after: before == after
    locations: tuple[str, ...] = (A, B)


def _launch(world: World, location: str) -> dict[str, Any]:
    return {"p": {"selector": {**_repo(location), "jobName": world.job[location]}}}


def _reexecute(world: World, location: str) -> dict[str, Any]:
    return {"r": {"parentRunId": world.finished_runs[location][0], "strategy": "ALL_STEPS"}}


def _schedule(world: World, location: str) -> dict[str, Any]:
    return {"s": {**_repo(location), "scheduleName": world.schedule[location]}}


def _sensor(world: World, location: str) -> dict[str, Any]:
    return {"s": {**_repo(location), "sensorName": world.sensor[location]}}


def _restart_schedule(stack: Stack, world: World, location: str) -> None:
    query = "mutation ($s: ScheduleSelector!) { resetSchedule(scheduleSelector: $s) { __typename } }"
    stack.graphql(query, _schedule(world, location))


def _restart_sensor(stack: Stack, world: World, location: str) -> None:
    stack.graphql(
        "mutation ($s: SensorSelector!) { resetSensor(sensorSelector: $s) { __typename } }", _sensor(world, location)
    )


def _schedule_status(stack: Stack, world: World, location: str) -> Any:
    return schedule_state(stack, location, world.schedule[location])["status"]


def _sensor_status(stack: Stack, world: World, location: str) -> Any:
    return sensor_state(stack, location, world.sensor[location])["status"]


#: The cursor the setSensorCursor calls ask for: a sensor's own ticks move its cursor too, so a
#: refusal is checked as "the cursor is not this".
ASKED_CURSOR = "set-by-the-e2e-access-test"


def _sensor_cursor(stack: Stack, world: World, location: str) -> Any:
    return sensor_state(stack, location, world.sensor[location])["typeSpecificData"]["lastCursor"]


def _backfill(stack: Stack, world: World, location: str) -> Any:
    query = "query ($b: String!) { partitionBackfillOrError(backfillId: $b) { ... on PartitionBackfill { status } } }"
    return stack.graphql(query, {"b": world.backfill})["partitionBackfillOrError"]["status"]


def _runs(stack: Stack, world: World, location: str) -> Any:
    return [run_status(stack, run_id) for run_id in world.finished_runs[location]]


def _asset(stack: Stack, world: World, location: str) -> tuple[int, int]:
    """(runless materializations, all): runs launched meanwhile add to the second, never the first."""
    return materializations(stack, world.asset[location])


def _not_wiped_nor_reported(before: tuple[int, int], after: tuple[int, int]) -> bool:
    return after[0] == before[0] and after[1] >= before[1]


def _partitions(stack: Stack, world: World, location: str) -> list[str]:
    return partitions(stack)


def _batch(world: World, location: str) -> dict[str, Any]:
    return {"r": _repo(location), "d": "extraction_batches", "k": "batch-from-e2e"}


def _readd_batch(stack: Stack, world: World, location: str) -> None:
    if location == A and "batch-1" not in partitions(stack):
        stack.graphql(CASES["addDynamicPartition"].query, {**_batch(world, A), "k": "batch-1"})


def _drop_added_batch(stack: Stack, world: World, location: str) -> None:
    if location == A and "batch-from-e2e" in partitions(stack):
        stack.graphql(
            CASES["deleteDynamicPartitions"].query, {"r": _repo(A), "d": "extraction_batches", "k": ["batch-from-e2e"]}
        )


STOP_SCHEDULE = """mutation ($o: String, $s: String) { stopRunningSchedule(scheduleOriginId: $o, scheduleSelectorId: $s) {
  __typename UNAUTH } }"""
STOP_SENSOR = (
    """mutation ($o: String, $s: String) { stopSensor(jobOriginId: $o, jobSelectorId: $s) { __typename UNAUTH } }"""
)

CASES: dict[str, Case] = {
    "launchRun": Case(
        "mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename UNAUTH } }", _launch
    ),
    "launchPipelineExecution": Case(
        "mutation ($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename UNAUTH } }",
        _launch,
    ),
    "launchMultipleRuns": Case(
        """mutation ($p: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $p) { __typename
          ... on PythonError { message } ... on LaunchMultipleRunsResult { launchMultipleRunsResult { __typename UNAUTH } } } }""",
        lambda world, location: {"p": [_launch(world, location)["p"]]},
    ),
    "launchRunReexecution": Case(
        "mutation ($r: ReexecutionParams) { launchRunReexecution(reexecutionParams: $r) { __typename UNAUTH } }",
        _reexecute,
    ),
    "launchPipelineReexecution": Case(
        "mutation ($r: ReexecutionParams) { launchPipelineReexecution(reexecutionParams: $r) { __typename UNAUTH } }",
        _reexecute,
    ),
    # A finished run: allowed gets "not in a state to terminate", after the check.
    "terminateRun": Case(
        "mutation ($r: String!) { terminateRun(runId: $r) { __typename TERMINATED } }",
        lambda world, location: {"r": world.finished_runs[location][0]},
        _runs,
    ),
    "terminatePipelineExecution": Case(
        "mutation ($r: String!) { terminatePipelineExecution(runId: $r) { __typename TERMINATED } }",
        lambda world, location: {"r": world.finished_runs[location][0]},
        _runs,
    ),
    "terminateRuns": Case(
        """mutation ($r: [String!]!) { terminateRuns(runIds: $r) { __typename ... on PythonError { message }
          ... on TerminateRunsResult { terminateRunResults { __typename TERMINATED } } } }""",
        lambda world, location: {"r": [world.finished_runs[location][0]]},
        _runs,
    ),
    # Deletes the last run of the pool (each allowed deletion takes one); refused ones keep it.
    "deleteRun": Case(
        "mutation ($r: String!) { deleteRun(runId: $r) { __typename UNAUTH } }",
        lambda world, location: {"r": world.finished_runs[location][-1]},
        _runs,
    ),
    "deletePipelineRun": Case(
        "mutation ($r: String!) { deletePipelineRun(runId: $r) { __typename UNAUTH } }",
        lambda world, location: {"r": world.finished_runs[location][-1]},
        _runs,
    ),
    "launchPartitionBackfill": Case(
        "mutation ($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename UNAUTH } }",
        lambda world, location: {
            "p": {
                "selector": {"partitionSetName": "extraction_batch_job_partition_set", "repositorySelector": _repo(A)},
                "partitionNames": ["batch-1"],
            }
            if location == A
            else {"assetSelection": [{"path": world.asset[B]}], "partitionNames": []}
        },
    ),
    # The backfill mutations below act on simple_ops' backfill: modular_assets has none.
    "cancelPartitionBackfill": Case(
        "mutation ($b: String!) { cancelPartitionBackfill(backfillId: $b) { __typename UNAUTH } }",
        lambda world, location: {"b": world.backfill},
        _backfill,
        locations=(A,),
    ),
    "resumePartitionBackfill": Case(
        "mutation ($b: String!) { resumePartitionBackfill(backfillId: $b) { __typename UNAUTH } }",
        lambda world, location: {"b": world.backfill},
        _backfill,
        locations=(A,),
    ),
    "reexecutePartitionBackfill": Case(
        "mutation ($r: ReexecutionParams) { reexecutePartitionBackfill(reexecutionParams: $r) { __typename UNAUTH } }",
        lambda world, location: {"r": {"parentRunId": world.finished_backfill, "strategy": "ALL_STEPS"}},
        _backfill,
        locations=(A,),
    ),
    "startSchedule": Case(
        "mutation ($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename UNAUTH } }",
        _schedule,
        _schedule_status,
        _restart_schedule,
    ),
    "stopRunningSchedule": Case(
        STOP_SCHEDULE,
        lambda world, location: {"o": None, "s": None},  # filled in from the live state, below
        _schedule_status,
        _restart_schedule,
    ),
    "resetSchedule": Case(
        "mutation ($s: ScheduleSelector!) { resetSchedule(scheduleSelector: $s) { __typename UNAUTH } }",
        _schedule,
        _schedule_status,
    ),
    "scheduleDryRun": Case(
        "mutation ($s: ScheduleSelector!, $t: Float) { scheduleDryRun(selectorData: $s, timestamp: $t) { __typename UNAUTH } }",
        lambda world, location: {**_schedule(world, location), "t": None},
    ),
    "startSensor": Case(
        "mutation ($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename UNAUTH } }",
        _sensor,
        _sensor_status,
        _restart_sensor,
    ),
    "stopSensor": Case(STOP_SENSOR, lambda world, location: {"o": None, "s": None}, _sensor_status, _restart_sensor),
    "resetSensor": Case(
        "mutation ($s: SensorSelector!) { resetSensor(sensorSelector: $s) { __typename UNAUTH } }",
        _sensor,
        _sensor_status,
    ),
    "setSensorCursor": Case(
        "mutation ($s: SensorSelector!, $c: String) { setSensorCursor(sensorSelector: $s, cursor: $c) { __typename UNAUTH } }",
        lambda world, location: {**_sensor(world, location), "c": ASKED_CURSOR},
        _sensor_cursor,
        unchanged=lambda before, after: after != ASKED_CURSOR,
    ),
    "sensorDryRun": Case(
        "mutation ($s: SensorSelector!, $c: String) { sensorDryRun(selectorData: $s, cursor: $c) { __typename UNAUTH } }",
        lambda world, location: {**_sensor(world, location), "c": None},
    ),
    "addDynamicPartition": Case(
        """mutation ($r: RepositorySelector!, $d: String!, $k: String!) {
          addDynamicPartition(repositorySelector: $r, partitionsDefName: $d, partitionKey: $k) { __typename UNAUTH } }""",
        _batch,
        _partitions,
        _drop_added_batch,
    ),
    "deleteDynamicPartitions": Case(
        """mutation ($r: RepositorySelector!, $d: String!, $k: [String!]!) {
          deleteDynamicPartitions(repositorySelector: $r, partitionsDefName: $d, partitionKeys: $k) { __typename UNAUTH } }""",
        lambda world, location: {"r": _repo(location), "d": "extraction_batches", "k": ["batch-1"]},
        _partitions,
        _readd_batch,
    ),
    "wipeAssets": Case(
        """mutation ($a: [PartitionsByAssetSelector!]!) { wipeAssets(assetPartitionRanges: $a) { __typename UNAUTH } }""",
        lambda world, location: {"a": [{"assetKey": {"path": world.asset[location]}}]},
        _asset,
        unchanged=_not_wiped_nor_reported,
    ),
    "reportRunlessAssetEvents": Case(
        """mutation ($e: ReportRunlessAssetEventsParams!) { reportRunlessAssetEvents(eventParams: $e) { __typename UNAUTH } }""",
        lambda world, location: {
            "e": {"eventType": "ASSET_MATERIALIZATION", "assetKey": {"path": world.asset[location]}}
        },
        _asset,
        unchanged=_not_wiped_nor_reported,
    ),
    "reportAssetCheckEvaluations": Case(
        """mutation ($e: ReportAssetCheckEvaluationsParams!) { reportAssetCheckEvaluations(eventParams: $e) { __typename UNAUTH } }""",
        lambda world, location: {
            "e": {"assetKey": {"path": world.check[location][0]}, "checkName": world.check[location][1], "passed": True}
        },
    ),
    "reloadRepositoryLocation": Case(
        "mutation ($l: String!) { reloadRepositoryLocation(repositoryLocationName: $l) { __typename UNAUTH } }",
        lambda world, location: {"l": location},
    ),
    "shutdownRepositoryLocation": Case(
        "mutation ($l: String!) { shutdownRepositoryLocation(repositoryLocationName: $l) { __typename UNAUTH } }",
        lambda world, location: {"l": location},
        lambda stack, world, location: location_version(stack, location),
    ),
    "refreshComponentState": Case(
        'mutation ($l: String!) { refreshComponentState(locationName: $l, defsStateKey: "e2e") { __typename UNAUTH } }',
        lambda world, location: {"l": location},
    ),
    "setAppManagedComponent": Case(
        """mutation ($l: String!) { setAppManagedComponent(locationName: $l, componentId: "e2e", componentType: "x",
          attributes: "{}") { __typename UNAUTH } }""",
        lambda world, location: {"l": location},
    ),
    "deleteAppManagedComponent": Case(
        """mutation ($l: String!) { deleteAppManagedComponent(locationName: $l, componentId: "e2e") { __typename UNAUTH } }""",
        lambda world, location: {"l": location},
    ),
    "reloadWorkspace": Case(
        "mutation { reloadWorkspace { __typename UNAUTH } }", lambda world, location: {}, deployment=True
    ),
    "setConcurrencyLimit": Case(
        'mutation { setConcurrencyLimit(concurrencyKey: "e2e-access", limit: 1) }',
        lambda world, location: {},
        lambda stack, world, location: instance_state(stack),
        lambda stack, world, location: stack.graphql(
            'mutation { deleteConcurrencyLimit(concurrencyKey: "e2e-access") }'
        ),
        deployment=True,
    ),
    "deleteConcurrencyLimit": Case(
        'mutation { deleteConcurrencyLimit(concurrencyKey: "e2e-kept") }',
        lambda world, location: {},
        lambda stack, world, location: instance_state(stack),
        lambda stack, world, location: stack.graphql(
            'mutation { setConcurrencyLimit(concurrencyKey: "e2e-kept", limit: 3) }'
        ),
        deployment=True,
    ),
    "freeConcurrencySlots": Case(
        "mutation ($r: String!) { freeConcurrencySlots(runId: $r) }",
        lambda world, location: {"r": world.finished_runs[A][0]},
        deployment=True,
    ),
    "freeConcurrencySlotsForRun": Case(
        "mutation ($r: String!) { freeConcurrencySlotsForRun(runId: $r) }",
        lambda world, location: {"r": world.finished_runs[A][0]},
        deployment=True,
    ),
    "setAutoMaterializePaused": Case(
        "mutation { setAutoMaterializePaused(paused: true) }",
        lambda world, location: {},
        lambda stack, world, location: instance_state(stack),
        deployment=True,
    ),
    "logTelemetry": Case(
        """mutation { logTelemetry(action: "e2e", clientId: "e2e", clientTime: "0", metadata: "{}") { __typename } }""",
        lambda world, location: {},
        deployment=True,
    ),
    "setNuxSeen": Case("mutation { setNuxSeen }", lambda world, location: {}, deployment=True),
}
for _case in CASES.values():
    _case.query = _case.query.replace("UNAUTH", UNAUTHORIZED).replace("TERMINATED", TERMINATED)
#: Last: an allowed shutdown stops the location's code server (Docker restarts it).
ORDER = sorted(CASES, key=lambda name: name == "shutdownRepositoryLocation")


# --- the stack, set up for it --------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    roles = {p.name: ("admin" if p.admin else dict(p.roles)) for p in PEOPLE if p.admin or p.roles}
    stack.set_access(json.dumps({"users": roles}))  # JSON is YAML
    for person in PEOPLE:
        stack.add_user(person.name, person.password)
    wait_for(lambda: Client(stack, PEOPLE[0]).call("{ version }")[0] == "allowed", timeout=30, what="the new users")
    stack.graphql(CASES["addDynamicPartition"].query, {**_batch(None, A), "k": "batch-1"})  # type: ignore[arg-type]
    stack.graphql('mutation { setConcurrencyLimit(concurrencyKey: "e2e-kept", limit: 3) }')
    jobs = {A: "data_extraction_job", B: "sources_job"}
    # Finished runs: a re-execution parent each, and one per allowed deletion (last first).
    pool = {A: [stack.launch(jobs[A], A) for _ in range(6)], B: [stack.launch(jobs[B], B) for _ in range(4)]}
    assets_run = stack.launch("user_assets_job", A)  # simple_ops' assets get a materialization
    for run_id in [*pool[A], *pool[B], assets_run]:
        assert stack.wait_for_run(run_id)["status"] == "SUCCESS"
    query = "mutation ($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) { __typename ... on LaunchBackfillSuccess { backfillId } } }"
    params = CASES["launchPartitionBackfill"].variables(None, A)  # type: ignore[arg-type]
    finished, backfill = (stack.graphql(query, params)["launchPartitionBackfill"]["backfillId"] for _ in range(2))
    status = "query ($b: String!) { partitionBackfillOrError(backfillId: $b) { ... on PartitionBackfill { status } } }"
    wait_for(
        lambda: stack.graphql(status, {"b": finished})["partitionBackfillOrError"]["status"] == "COMPLETED_SUCCESS",
        timeout=240,
        interval=2,
        what="the backfill to finish",
    )
    yield World(
        job=jobs,
        schedule={A: "data_extraction_schedule", B: "all_assets_daily_schedule"},
        sensor={A: "run_failure_alert_sensor", B: "source_change_sensor"},
        asset={A: ["raw_user_data"], B: ["api_users_raw"]},
        check={A: (["transformed_user_data"], "user_ids_are_unique"), B: (["users_cleaned"], "user_ids_are_unique")},
        finished_runs=pool,
        backfill=backfill,
        finished_backfill=finished,
    )
    stack.set_access((stack.root / "deploy" / "access" / "access.yaml").read_text())


def live_variables(stack: Stack, world: World, name: str, location: str) -> dict[str, Any]:
    variables = CASES[name].variables(world, location)
    if name == "stopRunningSchedule":
        state = schedule_state(stack, location, world.schedule[location])
        variables = {"o": state["id"], "s": state["selectorId"]}
    elif name == "stopSensor":
        state = sensor_state(stack, location, world.sensor[location])
        variables = {"o": state["id"], "s": state["selectorId"]}
    return variables


def test_every_mutation_by_every_role_on_its_own_and_the_other_teams_location(
    stack: Stack, world: World, artifacts: Path
) -> None:
    rows, wrong = [], []
    for name in ORDER:
        case = CASES[name]
        for location in [None] if case.deployment else case.locations:
            here = location or A
            cells = []
            for person in PEOPLE:
                before = case.state(stack, world, here)
                outcome, body = Client(stack, person).call(case.query, **live_variables(stack, world, name, here))
                cells.append("yes" if outcome == "allowed" else "no")
                if (outcome == "allowed") != expected(person, name, location):
                    wrong.append(f"{name} by {person.name} on {location}: {outcome}, not as the roles say: {body}")
                if outcome == "refused":
                    after = case.state(stack, world, here)
                    if not case.unchanged(before, after):
                        wrong.append(f"{name} by {person.name} on {location}: refused, yet {before} -> {after}")
                    continue
                if name in ("deleteRun", "deletePipelineRun"):
                    world.finished_runs[here].pop()
                if name == "setSensorCursor":
                    stack.graphql(case.query, {**_sensor(world, here), "c": before})
                case.restore(stack, world, here)
                if name == "shutdownRepositoryLocation":
                    wait_for(functools.partial(stack.all_locations_loaded, [here]), timeout=120, what=f"{here} back")
            rows.append((name, location or "(deployment)", cells))
    lines = ["| mutation | location | " + " | ".join(p.name for p in PEOPLE) + " |", "|---|---|" + "---|" * len(PEOPLE)]
    lines += [f"| {name} | {location} | " + " | ".join(cells) + " |" for name, location, cells in rows]
    roles = ", ".join(f"{p.name}: {'admin' if p.admin else p.roles or 'viewer'}" for p in PEOPLE)
    (artifacts / "access-matrix.md").write_text(
        f"Allowed (yes) or refused (no), as measured. {roles}\n\n" + "\n".join(lines) + "\n"
    )
    assert wrong == [], "\n".join(wrong)
    assert {name for name, _, _ in rows} == set(MUTATIONS)  # every mutation of the schema was called


def test_a_refused_termination_leaves_the_run_running_and_a_launch_carries_its_user(stack: Stack, world: World) -> None:
    launcher, viewer = Client(stack, PEOPLE[1]), Client(stack, PEOPLE[3])  # la: analytics, vi
    query = "mutation ($p: ExecutionParams!) { launchRun(executionParams: $p) { ... on LaunchRunSuccess { run { runId } } } }"
    run_id = launcher.call(query, **_launch(world, B))[1]["data"]["launchRun"]["run"]["runId"]
    terminate = "mutation ($r: String!) { terminateRun(runId: $r) { __typename TERMINATED } }".replace(
        "TERMINATED", TERMINATED
    )

    for who in (viewer, Client(stack, PEOPLE[0])):  # a viewer, and data-extraction's editor
        assert who.call(terminate, r=run_id)[0] == "refused"

    run = stack.wait_for_run(run_id)
    assert run["status"] == "SUCCESS"  # never canceled
    assert {t["key"]: t["value"] for t in run["tags"]}["user"] == "la"


def test_an_identity_sent_by_a_client_is_ignored_and_the_webserver_refuses_requests_not_from_the_gateway(
    stack: Stack, world: World
) -> None:
    forged = "v1.eyJhZG1pbiI6dHJ1ZX0.forged"  # any value: the gateway replaces the header
    viewer = PEOPLE[3]
    response = requests.post(
        f"{stack.url}/graphql",
        json={"query": "mutation { reloadWorkspace { __typename } }"},
        auth=(viewer.name, viewer.password),
        headers={"X-Dagster-Identity": forged},
        timeout=30,
    )
    assert response.json()["data"]["reloadWorkspace"]["__typename"] == "UnauthorizedError"
    # Straight to the webserver, from the one other service on its network (the auth service).
    probe = (
        "import urllib.request, urllib.error\n"
        "request = urllib.request.Request('http://webserver.ui:3000/graphql', data=b'{}', "
        "headers={'Content-Type': 'application/json', 'X-Dagster-Identity': 'v1.x.y'})\n"
        "try:\n    urllib.request.urlopen(request, timeout=10)\nexcept urllib.error.HTTPError as e:\n    print(e.code)\n"
    )
    assert stack.compose("exec", "-T", "auth", "python", "-c", probe).stdout.strip() == "401"


def test_every_mutation_is_in_the_audit_log_with_who_and_how_it_ended(stack: Stack, world: World) -> None:
    sql = (
        "SELECT user_name, via, team, role, operation, outcome, locations FROM platform_audit_log "
        "WHERE user_name IN ('ed', 'vi') AND operation = 'startSchedule' ORDER BY id"
    )
    out = stack.compose(
        "exec", "-T", "postgres", "psql", "-U", "postgres", "-d", "dagster", "-At", "-F", "|", "-c", sql
    ).stdout
    rows = {tuple(line.split("|")) for line in out.splitlines()}
    assert ("ed", "password", "data-extraction", "editor", "startSchedule", "allowed", "simple_ops") in rows
    assert ("vi", "password", "analytics", "viewer", "startSchedule", "refused", "modular_assets") in rows
    logs = stack.compose("logs", "--no-color", "webserver").stdout
    assert '"user":"vi"' in logs and '"outcome":"refused"' in logs and '"operation":"startSchedule"' in logs
    # The totals, as the metrics service exports them to Prometheus.
    refused = 'sum(dagster_audit_mutations_total{outcome="refused"})'
    wait_for(lambda: stack.prometheus_query(refused), timeout=90, interval=5, what="the audit counter in Prometheus")
    assert float(stack.prometheus_query(refused)[0]["value"][1]) > 0


def test_a_token_acts_within_its_scope_until_it_is_revoked(stack: Stack, world: World) -> None:
    token = stack.add_token("ci-analytics")
    access = stack.access_file.read_text()
    stack.set_access(json.dumps({**json.loads(access), "tokens": {"ci-analytics": {"analytics": "launcher"}}}))
    headers = {"Authorization": f"Bearer {token}"}

    def launch(location: str) -> str:
        query = CASES["launchRun"].query
        return stack.graphql(query, _launch(world, location), headers=headers)["launchRun"]["__typename"]

    wait_for(lambda: launch(B) == "LaunchRunSuccess", timeout=30, what="the token's scope")
    assert launch(A) == "UnauthorizedError"
    stack.compose("run", "--rm", "--no-deps", "-T", "init", "revoke-token", "ci-analytics")
    refused = requests.post(f"{stack.url}/graphql", json={"query": "{ version }"}, headers=headers, timeout=30)
    assert refused.status_code == 401
