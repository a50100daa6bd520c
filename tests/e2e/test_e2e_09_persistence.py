"""State lives in named volumes: `docker compose down` + `up` (volumes kept) loses no run
history, schedule/sensor state or exports. Runs last: it restarts the whole stack."""

from __future__ import annotations

import time

from testkit.stack import Stack, wait_for

SENSOR_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes { sensors {
    name sensorState { status typeSpecificData { ... on SensorData { lastCursor } } } } } } } }
"""


def _sensor_states(stack: Stack) -> dict[str, dict]:
    return {
        sensor["name"]: sensor["sensorState"]
        for repo in stack.graphql(SENSOR_QUERY)["repositoriesOrError"]["nodes"]
        for sensor in repo["sensors"]
    }


def test_run_history_schedules_sensors_and_exports_survive_down_and_up(stack: Stack) -> None:
    run_id = stack.launch("data_extraction_job", "simple_ops")
    assert stack.wait_for_run(run_id)["status"] == "SUCCESS"
    runs_before = stack.graphql("{ runsOrError { ... on Runs { count } } }")["runsOrError"]["count"]
    sensors_before = _sensor_states(stack)
    export_before = stack.read_export("simple_ops/users.csv")

    stack.compose("down", "--timeout", "10")
    started = time.monotonic()
    stack.up()
    wait_for(stack.all_locations_loaded, timeout=90, what="both locations loaded after up")
    print(f"\n[persistence] down + up -> healthy, both locations loaded: {time.monotonic() - started:.1f}s")

    assert stack.run(run_id)["status"] == "SUCCESS"
    assert stack.graphql("{ runsOrError { ... on Runs { count } } }")["runsOrError"]["count"] == runs_before
    sensors_after = _sensor_states(stack)
    assert {n: s["status"] for n, s in sensors_after.items()} == {n: s["status"] for n, s in sensors_before.items()}
    cursor = sensors_before["source_change_sensor"]["typeSpecificData"]["lastCursor"]
    assert cursor and sensors_after["source_change_sensor"]["typeSpecificData"]["lastCursor"] == cursor
    assert stack.read_export("simple_ops/users.csv") == export_before
