"""Schedules and sensors are live in the running stack: the daemon evaluates them,
launches runs through the queue, and never duplicates a tick's run."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import pytest

from testkit.stack import Stack, wait_for

STATES_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    location { name }
    schedules { name scheduleState { status } }
    sensors { name sensorState { status } }
} } } }
"""

EVERY_MINUTE = {"SIMPLE_OPS_SCHEDULE_CRON": "* * * * *"}


def test_schedules_and_sensors_are_running_right_after_up(stack: Stack) -> None:
    states = {}
    for repo in stack.graphql(STATES_QUERY)["repositoriesOrError"]["nodes"]:
        states.update({s["name"]: s["scheduleState"]["status"] for s in repo["schedules"]})
        states.update({s["name"]: s["sensorState"]["status"] for s in repo["sensors"]})
    assert states == {
        "data_extraction_schedule": "RUNNING",
        "all_assets_daily_schedule": "RUNNING",
        "run_failure_alert_sensor": "RUNNING",
        "upstream_user_extract_sensor": "RUNNING",
        "source_change_sensor": "RUNNING",
    }


@pytest.fixture
def every_minute_schedule(stack: Stack) -> Iterator[None]:
    """simple_ops redeployed with a test-only cron (env override, no code change); restored after."""
    stack.up("simple_ops", env=EVERY_MINUTE)
    wait_for(stack.all_locations_loaded, timeout=60, what="simple_ops reloaded")
    yield
    stack.up("simple_ops")
    wait_for(stack.all_locations_loaded, timeout=60, what="simple_ops reloaded")


def _scheduled_runs(stack: Stack) -> list[dict]:
    return stack.runs_tagged("dagster/schedule_name", "data_extraction_schedule")


def test_daemon_runs_the_schedule_and_a_restart_never_duplicates_a_tick(
    stack: Stack, every_minute_schedule: None
) -> None:
    first = wait_for(lambda: _scheduled_runs(stack), timeout=100, interval=3, what="a scheduled run")[-1]
    assert stack.wait_for_run(first["runId"])["status"] == "SUCCESS"

    # Restart the daemon right after a tick: when it comes back it re-evaluates the
    # schedule, but the tick's run key already has its run.
    stack.compose("restart", "daemon")
    stack.up("daemon")
    wait_for(
        lambda: len({r["tags"]["dagster/run_key"] for r in _scheduled_runs(stack)}) >= 2,
        timeout=130,
        interval=3,
        what="the next tick after the restart",
    )
    runs = _scheduled_runs(stack)
    per_key = Counter(r["tags"]["dagster/run_key"] for r in runs)
    assert all(count == 1 for count in per_key.values()), per_key
    per_time = Counter(
        r["tags"][".dagster/scheduled_execution_time"] for r in runs if ".dagster/scheduled_execution_time" in r["tags"]
    )
    assert all(count == 1 for count in per_time.values()), per_time


def test_upstream_materialization_in_simple_ops_triggers_one_modular_refresh(stack: Stack) -> None:
    before = {r["runId"] for r in stack.runs_tagged("dagster/sensor_name", "upstream_user_extract_sensor")}
    upstream = stack.launch("user_assets_job", "simple_ops")
    assert stack.wait_for_run(upstream)["status"] == "SUCCESS"

    def triggered() -> list[dict]:
        runs = stack.runs_tagged("dagster/sensor_name", "upstream_user_extract_sensor")
        return [r for r in runs if r["runId"] not in before]

    downstream = wait_for(triggered, timeout=120, interval=3, what="the cross-location sensor's run")
    assert len(downstream) == 1, downstream
    assert downstream[0]["jobName"] == "all_assets_job"
    assert stack.wait_for_run(downstream[0]["runId"])["status"] == "SUCCESS"


def test_a_failed_run_posts_an_alert_to_the_webhook(stack: Stack) -> None:
    run_id = stack.failed_run("data_extraction_job", "simple_ops")

    def alert_for_run() -> list[dict]:
        return [r for r in stack.webhooks_received() if run_id in json.dumps(r["body"])]

    alerts = wait_for(alert_for_run, timeout=90, interval=3, what="the failed-run alert")
    text = alerts[0]["body"]["text"]
    assert "data_extraction_job" in text and run_id in text
    assert "not valid JSON" in text or "JSON" in text, text
