"""platform_services.janitor.retention against a real Postgres server, with runs made by executing real jobs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_services.janitor.retention import delete_old_runs
from testkit.postgres import PostgresServer

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@dg.asset
def numbers() -> list[int]:
    return list(range(3))


@dg.asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


@dg.op
def fails() -> None:
    raise ValueError("bad data")


@dg.op
def works() -> int:
    return 1


@dg.job
def failing_job() -> None:
    fails()


@dg.job
def op_job() -> None:
    works()


ASSETS_JOB = dg.define_asset_job("assets_job")
DEFS = dg.Definitions(assets=[numbers, total], jobs=[ASSETS_JOB, failing_job, op_job], executor=dg.in_process_executor)


@pytest.fixture
def instance(tmp_path: Path, postgres: PostgresServer) -> Iterator[dg.DagsterInstance]:
    storage = {"postgres": {"postgres_db": postgres.db_config}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}}))
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    instance.wipe()  # the server is shared by the session's tests
    yield instance
    instance.wipe()
    instance.dispose()


def execute(instance: dg.DagsterInstance, job: str) -> str:
    result = DEFS.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False)
    return result.run_id


def started(instance: dg.DagsterInstance) -> str:
    run = dg.DagsterRun(job_name="assets_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED)
    instance.add_run(run)
    return run.run_id


def age(postgres: PostgresServer, run_ids: list[str], days: float) -> None:
    """Make runs ``days`` older than NOW (their creation time is all the retention looks at)."""
    created = (NOW - timedelta(days=days)).replace(tzinfo=None)
    postgres.execute("UPDATE runs SET create_timestamp = %s WHERE run_id = ANY(%s)", (created, run_ids))


def remaining(instance: dg.DagsterInstance) -> set[str]:
    return {record.dagster_run.run_id for record in instance.get_run_records()}


def test_old_finished_runs_go_with_their_events_and_the_latest_of_each_job_and_asset_stay(
    instance: dg.DagsterInstance, postgres: PostgresServer
) -> None:
    first_assets = execute(instance, "assets_job")
    failed = execute(instance, "failing_job")
    latest_assets = execute(instance, "assets_job")  # latest success of its job, latest materializations
    only_op_run = execute(instance, "op_job")  # latest success of its job
    in_flight = started(instance)
    recent_failure = execute(instance, "failing_job")
    age(postgres, [first_assets, failed, latest_assets, only_op_run, in_flight], days=120)
    age(postgres, [recent_failure], days=10)

    sweep = delete_old_runs(instance, retention_days=90, now=NOW)

    assert sorted(sweep.deleted) == sorted([first_assets, failed])
    assert set(sweep.kept) == {latest_assets, only_op_run}
    assert remaining(instance) == {latest_assets, only_op_run, in_flight, recent_failure}
    assert instance.all_logs(first_assets) == [] and instance.all_logs(failed) == []
    latest = instance.get_latest_materialization_events([dg.AssetKey("numbers"), dg.AssetKey("total")])
    assert {event.run_id for event in latest.values() if event} == {latest_assets}


def test_zero_days_keeps_everything(instance: dg.DagsterInstance, postgres: PostgresServer) -> None:
    run_id = execute(instance, "failing_job")
    age(postgres, [run_id], days=10_000)

    assert delete_old_runs(instance, retention_days=0, now=NOW).deleted == ()
    assert remaining(instance) == {run_id}


def test_batches_go_past_kept_runs_and_a_sweep_stops_at_its_limit(
    instance: dg.DagsterInstance, postgres: PostgresServer
) -> None:
    kept = execute(instance, "op_job")
    failures = [execute(instance, "failing_job") for _ in range(7)]
    age(postgres, [kept, *failures], days=365)

    first = delete_old_runs(instance, retention_days=90, now=NOW, limit=4, batch_size=2)
    second = delete_old_runs(instance, retention_days=90, now=NOW, limit=4, batch_size=2)

    assert list(first.deleted) == failures[:4]  # oldest first, at most the limit
    assert list(second.deleted) == failures[4:]
    assert remaining(instance) == {kept}
