"""What the location gives Dagster: the asset graph, groups, checks, jobs, schedule and sensors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from modular_assets.definitions import defs
from platform_kit.executors import run_executor

if TYPE_CHECKING:  # the type of Definitions.resolve_asset_graph(), which dagster does not export
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

GROUPS = {
    "sources": {"api_users_raw", "api_posts_raw"},
    "transforms": {"users_cleaned", "posts_cleaned", "posts_with_user_info"},
    "analytics": {"user_activity_stats", "top_authors", "data_summary"},
    "exports": {"users_csv", "posts_enriched_csv", "user_stats_csv", "top_authors_csv", "export_summary"},
}
ASSET_NAMES = set().union(*GROUPS.values())
UPSTREAM = dg.AssetKey("user_data_csv")

DEPENDENCIES = {
    "api_users_raw": {"user_data_csv"},
    "api_posts_raw": set(),
    "users_cleaned": {"api_users_raw"},
    "posts_cleaned": {"api_posts_raw"},
    "posts_with_user_info": {"posts_cleaned", "users_cleaned"},
    "user_activity_stats": {"users_cleaned", "posts_cleaned"},
    "top_authors": {"user_activity_stats"},
    "data_summary": {"users_cleaned", "posts_cleaned"},
    "users_csv": {"users_cleaned"},
    "posts_enriched_csv": {"posts_with_user_info"},
    "user_stats_csv": {"user_activity_stats"},
    "top_authors_csv": {"top_authors"},
    "export_summary": {"users_csv", "posts_enriched_csv", "user_stats_csv", "top_authors_csv", "data_summary"},
}


@pytest.fixture(scope="module")
def graph() -> AssetGraph:
    """The location's asset graph, after the same validation ``dg check defs`` does."""
    dg.Definitions.validate_loadable(defs)
    return defs.resolve_asset_graph()


def test_the_location_defines_exactly_its_13_assets_plus_the_external_upstream(graph: AssetGraph) -> None:
    materializable = {key.to_user_string() for key in graph.materializable_asset_keys}
    assert materializable == ASSET_NAMES
    assert len(materializable) == 13
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == ASSET_NAMES | {"user_data_csv"}
    upstream = graph.get(UPSTREAM)
    assert upstream.is_external and not upstream.is_materializable, "simple_ops owns user_data_csv"


def test_the_lineage(graph: AssetGraph) -> None:
    for asset, parents in DEPENDENCIES.items():
        assert {k.to_user_string() for k in graph.get(dg.AssetKey(asset)).parent_keys} == parents, asset


def test_each_layer_is_its_own_group(graph: AssetGraph) -> None:
    groups: dict[str, set[str]] = {}
    for key in graph.materializable_asset_keys:
        groups.setdefault(graph.get(key).group_name, set()).add(key.to_user_string())
    assert groups == GROUPS


OWN_SPECS = [spec for spec in defs.resolve_all_asset_specs() if spec.key != UPSTREAM]


def test_the_specs_cover_every_asset() -> None:
    assert {spec.key.to_user_string() for spec in OWN_SPECS} == ASSET_NAMES


@pytest.mark.parametrize("spec", OWN_SPECS, ids=lambda spec: spec.key.to_user_string())
def test_every_asset_is_documented_owned_and_tagged(spec: dg.AssetSpec) -> None:
    assert spec.description and len(spec.description) > 40
    assert spec.owners == ["team:analytics"]
    assert spec.tags.get("layer") == spec.group_name
    assert spec.kinds and spec.kinds <= {"api", "pandas", "csv", "python", "json"}


def test_the_blocking_checks(graph: AssetGraph) -> None:
    checks = {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys}
    assert checks == {
        ("users_cleaned", "user_ids_are_unique"),
        ("users_cleaned", "emails_are_well_formed"),
        ("posts_cleaned", "post_ids_are_unique"),
        ("posts_cleaned", "titles_are_not_blank"),
        ("posts_cleaned", "authors_exist"),
    }
    assert all(graph.get_check_spec(key).blocking for key in graph.asset_check_keys)


def job_assets(name: str) -> set[str]:
    job = defs.resolve_job_def(name)
    return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def test_the_jobs_select_the_location_or_one_layer_and_never_the_external_asset() -> None:
    assert {job.name for job in defs.resolve_all_job_defs()} - {"__ASSET_JOB"} == {
        "all_assets_job",
        "sources_job",
        "transforms_job",
        "analytics_job",
        "exports_job",
    }
    assert job_assets("all_assets_job") == ASSET_NAMES
    for group, assets in GROUPS.items():
        assert job_assets(f"{group}_job") == assets, group


def test_the_schedule_and_the_sensors() -> None:
    schedule = defs.resolve_schedule_def("all_assets_daily_schedule")
    assert schedule.job_name == "all_assets_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    sensors = {name: defs.resolve_sensor_def(name) for name in ("upstream_user_extract_sensor", "source_change_sensor")}
    assert all(sensor.job_name == "all_assets_job" for sensor in sensors.values())
    assert {s.name for s in defs.sensors or []} == set(sensors)
    assert [s.name for s in defs.schedules or []] == ["all_assets_daily_schedule"]


def test_a_schedule_tick_requests_one_run_keyed_by_the_job_and_the_scheduled_time() -> None:
    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 1, 6, 0, tzinfo=UTC))

    [request] = defs.resolve_schedule_def("all_assets_daily_schedule").evaluate_tick(tick).run_requests or []

    assert request.run_key == "all_assets_job:2026-03-01T06:00+0000"


def test_runs_execute_in_process() -> None:
    assert defs.executor is run_executor
