"""The location as the code server loads it: exact assets, groups, checks, jobs, schedule, sensor."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from simple_ops.definitions import defs
from simple_ops.extraction import QUALITY_RULES

ASSET_NAMES = ["data_extraction_summary", "raw_user_data", "transformed_user_data", "user_data_csv"]


def test_the_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)


def test_the_assets_form_one_lineage_in_one_group() -> None:
    graph = defs.resolve_asset_graph()
    every = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    nodes = {name: node for name, node in every.items() if node.group_name != "user_batches"}

    assert sorted(nodes) == ASSET_NAMES
    assert sorted(set(every) - set(nodes)) == ["user_batch_csv"]
    parents = {name: sorted(k.to_user_string() for k in node.parent_keys) for name, node in nodes.items()}
    assert parents == {
        "raw_user_data": [],
        "transformed_user_data": ["raw_user_data"],
        "user_data_csv": ["transformed_user_data"],
        "data_extraction_summary": ["transformed_user_data", "user_data_csv"],
    }
    assert {node.group_name for node in nodes.values()} == {"user_extraction"}
    assert all(node.owners == ["team:data-extraction"] for node in nodes.values())
    assert {name: node.kinds for name, node in nodes.items()} == {
        "raw_user_data": {"api", "python"},
        "transformed_user_data": {"pandas"},
        "user_data_csv": {"csv", "pandas"},
        "data_extraction_summary": {"python"},
    }
    assert all(node.description for node in nodes.values())


def test_both_quality_rules_are_blocking_checks_on_the_transformed_table() -> None:
    graph = defs.resolve_asset_graph()

    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}

    assert sorted(checks) == sorted(QUALITY_RULES) == ["emails_are_well_formed", "user_ids_are_unique"]
    assert all(spec.asset_key == dg.AssetKey("transformed_user_data") for spec in checks.values())
    assert all(spec.blocking for spec in checks.values())


def test_both_styles_appear_as_jobs_run_in_process() -> None:
    jobs = {job.name: job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}

    assert sorted(jobs) == ["data_extraction_job", "extraction_batch_job", "user_assets_job"]
    ops_job = jobs["data_extraction_job"]
    assert [node.name for node in ops_job.graph.nodes_in_topological_order] == [
        "fetch_data_from_api",
        "transform_data",
        "save_to_csv",
        "generate_summary",
    ]
    assert ops_job.description
    assert ops_job.tags == {"team": "data-extraction", "style": "ops"}
    assets_job = jobs["user_assets_job"]
    assert sorted(k.to_user_string() for k in assets_job.asset_layer.selected_asset_keys) == ASSET_NAMES
    assert {k.name for k in assets_job.asset_layer.asset_graph.asset_check_keys} == set(QUALITY_RULES)
    assert {job.executor_def.name for job in jobs.values()} == {"in_process_or_multiprocess"}


def test_the_batch_export_is_partitioned_by_named_batches() -> None:
    node = defs.resolve_asset_graph().get(dg.AssetKey("user_batch_csv"))
    job = defs.resolve_job_def("extraction_batch_job")

    assert isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
    assert node.partitions_def.name == "extraction_batches"
    assert [k.to_user_string() for k in node.parent_keys] == ["transformed_user_data"]
    assert node.group_name == "user_batches" and node.owners == ["team:data-extraction"]
    assert [k.to_user_string() for k in job.asset_layer.selected_asset_keys] == ["user_batch_csv"]


def test_the_schedule_and_the_sensor() -> None:
    schedule = defs.resolve_schedule_def("data_extraction_schedule")
    sensor = defs.resolve_sensor_def("run_failure_alert_sensor")

    assert [s.name for s in defs.schedules or []] == ["data_extraction_schedule"]
    assert [s.name for s in defs.sensors or []] == ["run_failure_alert_sensor"]
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.job_name) == (
        "0 6 * * *",
        "UTC",
        "data_extraction_job",
    )
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert isinstance(sensor, dg.RunStatusSensorDefinition)


def test_a_schedule_tick_requests_one_run_keyed_by_the_job_and_the_scheduled_time() -> None:
    tick = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 1, 2, 6, 0, tzinfo=UTC))

    [request] = defs.resolve_schedule_def("data_extraction_schedule").evaluate_tick(tick).run_requests or []

    assert request.run_key == "data_extraction_job:2026-01-02T06:00+0000"


def test_resources_are_the_source_api_and_the_exports() -> None:
    assert sorted(defs.resources or {}) == ["exports", "source_api"]
