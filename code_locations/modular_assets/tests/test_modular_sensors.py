"""The two sensors, on a real ephemeral instance and against the real sample API.

Sensors are evaluated with ``evaluate_tick``, as the daemon does, so the
results include the cursor the daemon would store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from modular_assets.sensors import source_change_sensor, upstream_user_extract_sensor
from platform_kit.source_api import SourceApiResource
from testkit.sample_api import SampleApi

if TYPE_CHECKING:  # the type of evaluate_tick()'s result, which dagster does not export
    from dagster._core.definitions.sensor_definition import SensorExecutionData

UPSTREAM = dg.AssetKey("user_data_csv")


@dataclass(frozen=True)
class Tick:
    """One sensor evaluation as the daemon reads it, with Dagster's optional fields filled in."""

    run_keys: list[str]  # of the runs requested, in order
    tags: list[Mapping[str, str]]  # of the runs requested, in order
    skip_message: str  # "" when the tick did not skip
    cursor: str | None  # None: the stored cursor stays as it was

    def saved_cursor(self) -> str:
        """The cursor this tick stores (the test fails if it stores none)."""
        assert self.cursor is not None, "the tick stored no cursor"
        return self.cursor


def tick(data: SensorExecutionData) -> Tick:
    run_keys = []
    for request in data.run_requests or []:
        assert request.run_key is not None, "every run these sensors request has a run key"
        run_keys.append(request.run_key)
    tags = [request.tags for request in data.run_requests or []]
    return Tick(run_keys=run_keys, tags=tags, skip_message=data.skip_message or "", cursor=data.cursor)


# --- upstream_user_extract_sensor -------------------------------------------------------------


@pytest.fixture
def sensor_instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


def evaluate_upstream(instance: dg.DagsterInstance, cursor: str | None) -> Tick:
    context = dg.build_sensor_context(instance=instance, cursor=cursor)
    return tick(upstream_user_extract_sensor.evaluate_tick(context))


def test_upstream_sensor_targets_all_assets_job_and_is_on_by_default() -> None:
    assert upstream_user_extract_sensor.asset_key == UPSTREAM
    assert upstream_user_extract_sensor.job_name == "all_assets_job"
    assert upstream_user_extract_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert upstream_user_extract_sensor.minimum_interval_seconds == 30


def test_upstream_sensor_requests_one_run_per_materialization(sensor_instance: dg.DagsterInstance) -> None:
    nothing_yet = evaluate_upstream(sensor_instance, None)
    assert not nothing_yet.run_keys
    assert nothing_yet.skip_message

    sensor_instance.report_runless_asset_event(dg.AssetMaterialization(UPSTREAM))
    first = evaluate_upstream(sensor_instance, None)
    [run_key] = first.run_keys
    assert run_key.startswith("user_data_csv:runless:")

    again = evaluate_upstream(sensor_instance, first.cursor)
    assert not again.run_keys, "the same materialization must not start a second run"
    assert again.cursor in (None, first.cursor)

    sensor_instance.report_runless_asset_event(dg.AssetMaterialization(UPSTREAM))
    second = evaluate_upstream(sensor_instance, first.cursor)
    [next_run_key] = second.run_keys
    assert next_run_key != run_key
    assert int(second.saved_cursor()) > int(first.saved_cursor())


def test_upstream_sensor_repeated_evaluation_of_one_event_gives_the_same_run_key(
    sensor_instance: dg.DagsterInstance,
) -> None:
    sensor_instance.report_runless_asset_event(dg.AssetMaterialization(UPSTREAM))
    [once] = evaluate_upstream(sensor_instance, None).run_keys
    [twice] = evaluate_upstream(sensor_instance, None).run_keys  # cursor lost, e.g. a crash
    assert once == twice  # Dagster starts one run per run key


def test_upstream_sensor_names_the_run_that_materialized_the_export(sensor_instance: dg.DagsterInstance) -> None:
    @dg.asset(name="user_data_csv")
    def stand_in_for_simple_ops_export() -> None:
        """simple_ops' asset, by key: this location never imports the other one."""

    upstream_run = dg.materialize([stand_in_for_simple_ops_export], instance=sensor_instance)
    evaluation = evaluate_upstream(sensor_instance, None)
    [run_key], [tags] = evaluation.run_keys, evaluation.tags
    assert run_key.startswith(f"user_data_csv:{upstream_run.run_id}:")
    assert tags["upstream_run"] == upstream_run.run_id


def test_upstream_sensor_ignores_other_assets(sensor_instance: dg.DagsterInstance) -> None:
    sensor_instance.report_runless_asset_event(dg.AssetMaterialization("some_other_asset"))
    assert not evaluate_upstream(sensor_instance, None).run_keys


# --- source_change_sensor ---------------------------------------------------------------------


def evaluate_source(base_url: str, cursor: str | None) -> Tick:
    source_api = SourceApiResource(base_url=base_url, max_attempts=1, timeout_seconds=5.0)
    context = dg.build_sensor_context(cursor=cursor, resources={"source_api": source_api})
    return tick(source_change_sensor.evaluate_tick(context))


def test_source_sensor_targets_all_assets_job_and_is_on_by_default() -> None:
    assert source_change_sensor.job_name == "all_assets_job"
    assert source_change_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert source_change_sensor.minimum_interval_seconds == 30
    assert "source_api" in source_change_sensor.required_resource_keys


def test_source_sensor_records_a_baseline_first_then_runs_once_per_change(api: SampleApi) -> None:
    baseline = evaluate_source(api.url, None)
    assert not baseline.run_keys
    assert "baseline" in baseline.skip_message and "daily schedule" in baseline.skip_message
    assert json.loads(baseline.saved_cursor())["fingerprint"] == "/users=10:10 /posts=100:100"

    unchanged = evaluate_source(api.url, baseline.cursor)
    assert not unchanged.run_keys
    assert "unchanged" in unchanged.skip_message

    api.configure(users=12)
    changed = evaluate_source(api.url, baseline.cursor)
    [run_key] = changed.run_keys
    assert json.loads(changed.saved_cursor())["fingerprint"] == "/users=12:12 /posts=120:120"

    repeated = evaluate_source(api.url, baseline.cursor)  # the same tick evaluated again
    assert repeated.run_keys == [run_key]

    settled = evaluate_source(api.url, changed.cursor)
    assert not settled.run_keys

    api.configure(users=10)  # back to the first data: a change again, with a new run key
    back = evaluate_source(api.url, changed.cursor)
    [back_run_key] = back.run_keys
    assert back_run_key != run_key


def test_source_sensor_notices_posts_changing_alone(api: SampleApi) -> None:
    baseline = evaluate_source(api.url, None)
    api.configure(posts_per_user=11)
    assert len(evaluate_source(api.url, baseline.cursor).run_keys) == 1


def test_source_sensor_skips_while_the_api_is_down_and_keeps_its_cursor() -> None:
    cursor = json.dumps({"fingerprint": "/users=10:10 /posts=100:100", "baseline": "x", "changes": 0})
    down = evaluate_source("http://127.0.0.1:1", cursor)
    assert not down.run_keys
    assert "http://127.0.0.1:1/users" in down.skip_message and "ConnectionError" in down.skip_message
    assert down.cursor in (None, cursor)


@pytest.mark.parametrize("mode", ["malformed", "wrong_shape"])
def test_source_sensor_skips_on_garbage_answers(api: SampleApi, mode: str) -> None:
    baseline = evaluate_source(api.url, None)
    api.configure(mode=mode)
    garbage = evaluate_source(api.url, baseline.cursor)
    assert not garbage.run_keys
    assert "SOURCE_API_URL" in garbage.skip_message
    assert garbage.cursor in (None, baseline.cursor)


def test_source_sensor_treats_an_unreadable_cursor_as_no_cursor(api: SampleApi) -> None:
    result = evaluate_source(api.url, "not json")
    assert not result.run_keys
    assert "baseline" in result.skip_message
