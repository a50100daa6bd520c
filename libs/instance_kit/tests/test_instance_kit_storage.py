"""PooledPostgresStorage against a real Postgres server: same behaviour, a fraction of the connects."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy
import yaml
from dagster._core.instance import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster_postgres.event_log import PostgresEventLogStorage

from instance_kit import storage
from instance_kit.storage import (
    PooledPostgresEventLogStorage,
    PooledPostgresRunStorage,
    PooledPostgresScheduleStorage,
    PooledPostgresStorage,
)
from testkit.postgres import PostgresServer


@dg.asset
def numbers() -> list[int]:
    return list(range(10))


@dg.asset
def total(numbers: list[int]) -> int:
    return sum(numbers)


@dg.asset
def doubled(total: int) -> int:
    return 2 * total


JOB = dg.define_asset_job("three_assets_job")
DEFS = dg.Definitions(assets=[numbers, total, doubled], jobs=[JOB], executor=dg.in_process_executor)


def _instance(home: Path, postgres: PostgresServer, pooled: bool, application_name: str = "test") -> DagsterInstance:
    db_config = {**postgres.db_config, "params": {"application_name": application_name}}
    storage = (
        {
            "custom": {
                "module": "instance_kit.storage",
                "class": "PooledPostgresStorage",
                "config": {"postgres_db": db_config},
            }
        }
        if pooled
        else {"postgres": {"postgres_db": db_config}}
    )
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage, "telemetry": {"enabled": False}}))
    return DagsterInstance.from_config(str(home))


@pytest.fixture
def connects() -> Iterator[list[object]]:
    """Every new DBAPI connection any SQLAlchemy engine opens while the test runs."""
    opened: list[object] = []

    def on_connect(dbapi_connection: object, _record: object) -> None:
        opened.append(dbapi_connection)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", on_connect)
    yield opened
    sqlalchemy.event.remove(sqlalchemy.engine.Engine, "connect", on_connect)


def _engine(storage: object) -> sqlalchemy.Engine:
    """The SQLAlchemy engine of a dagster-postgres storage (not part of Dagster's typed API)."""
    engine = storage._engine  # type: ignore[attr-defined]
    assert isinstance(engine, sqlalchemy.Engine)
    return engine


def _is_pooled(instance: DagsterInstance) -> bool:
    """Whether all three storages of ``instance`` keep connections (the stock ones use a NullPool)."""
    storages = (instance._run_storage, instance._event_storage, instance._schedule_storage)
    return all(isinstance(_engine(storage).pool, sqlalchemy.pool.QueuePool) for storage in storages)


def _run(instance: DagsterInstance) -> dg.ExecuteInProcessResult:
    result = DEFS.resolve_job_def("three_assets_job").execute_in_process(instance=instance)
    assert result.success
    return result


def test_runs_reuse_connections_where_dagster_postgres_opens_one_per_call(
    tmp_path: Path, postgres: PostgresServer, connects: list[object]
) -> None:
    stock = _instance(tmp_path / "stock", postgres, pooled=False)
    pooled = _instance(tmp_path / "pooled", postgres, pooled=True)
    assert _is_pooled(pooled) and not _is_pooled(stock)
    # Warm-up: tables checked, first connections opened.
    _run(stock)
    _run(pooled)

    connects.clear()
    _run(stock)
    stock_connects = len(connects)
    connects.clear()
    result = _run(pooled)
    pooled_connects = len(connects)

    assert stock_connects > 30, "dagster-postgres no longer opens a connection per call: is this class still needed?"
    assert pooled_connects <= 2, f"{pooled_connects} connects for a 3-asset run"
    # Same storage, same data: the run and its materializations are readable back.
    record = pooled.get_run_record_by_id(result.run_id)
    assert record is not None and record.dagster_run.is_success
    latest = pooled.get_latest_materialization_event(dg.AssetKey("doubled"))
    assert latest is not None
    assert latest.asset_materialization is not None


def test_run_workers_get_the_pooled_storage_from_the_instance_ref(tmp_path: Path, postgres: PostgresServer) -> None:
    instance = _instance(tmp_path / "home", postgres, pooled=True)
    # Run containers rebuild the instance from this serialized reference, not from dagster.yaml.
    ref = dg.deserialize_value(dg.serialize_value(instance.get_ref()), InstanceRef)
    assert isinstance(ref.storage, PooledPostgresStorage)
    assert _is_pooled(DagsterInstance.from_ref(ref))


def test_a_postgres_restart_costs_no_error(tmp_path: Path, postgres: PostgresServer) -> None:
    instance = _instance(tmp_path / "home", postgres, pooled=True)
    _run(instance)  # the pools now hold connections that the restart will break
    postgres.pg_ctl("restart", "-m", "fast")
    _run(instance)  # pool_pre_ping replaces them


def test_disposing_of_the_instance_closes_its_connections(tmp_path: Path, postgres: PostgresServer) -> None:
    """A code server builds an instance per sensor tick and disposes of it: nothing may linger."""

    def backends() -> int:
        with (
            _instance(tmp_path / "observer", postgres, pooled=False, application_name="observer") as observer,
            _engine(observer._run_storage).connect() as conn,
        ):
            query = "select count(*) from pg_stat_activity where application_name = 'tick'"
            return conn.execute(sqlalchemy.text(query)).scalar_one()

    with _instance(tmp_path / "tick", postgres, pooled=True, application_name="tick") as instance:
        _run(instance)
        assert backends() > 0
    assert backends() == 0


def test_the_webserver_pool_survives_a_postgres_restart_too(tmp_path: Path, postgres: PostgresServer) -> None:
    instance = _instance(tmp_path / "home", postgres, pooled=True)
    run_id = _run(instance).run_id
    instance.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=5)
    assert instance.get_run_by_id(run_id) is not None  # the webserver's connections are open now
    postgres.pg_ctl("restart", "-m", "fast")
    assert instance.get_run_by_id(run_id) is not None
    with _engine(instance._run_storage).connect() as conn:  # and its statement timeout applies
        assert conn.execute(sqlalchemy.text("show statement_timeout")).scalar_one() == "5s"


def test_only_reads_and_idempotent_writes_are_retried_as_a_whole() -> None:
    """A write that is not idempotent gets its connection retried, never its statements."""
    retried = (
        PooledPostgresRunStorage.retried_whole
        | PooledPostgresEventLogStorage.retried_whole
        | PooledPostgresScheduleStorage.retried_whole
    )
    # What a run worker calls mid-run besides store_event (measured on a run of an asset job).
    assert {"get_run_records", "get_execution_plan_snapshot", "get_asset_records", "get_pool_config"} <= retried
    assert {"handle_run_event", "add_run_tags", "get_records_for_run", "get_logs_for_run"} <= retried
    assert not {"store_event", "store_event_batch", "add_run", "add_backfill", "create_tick", "wipe"} & retried


def test_store_event_is_still_the_one_split_into_stages() -> None:
    """PooledPostgresEventLogStorage.store_event re-implements dagster-postgres' store_event in
    retryable stages: after a Dagster upgrade that changes it, port the change, then this hash."""
    source = inspect.getsource(PostgresEventLogStorage.store_event)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == "4a2e37e5871bf2c8"


def test_the_webserver_waits_less_for_postgres_than_run_workers(tmp_path: Path, postgres: PostgresServer) -> None:
    """A UI request fails after ~WEBSERVER_RETRY_SECONDS instead of hanging for RETRY_SECONDS."""
    instance = _instance(tmp_path / "home", postgres, pooled=True)
    instance.optimize_for_webserver(statement_timeout=5000, pool_recycle=3600, max_overflow=5)
    for each in (instance._run_storage, instance._event_storage, instance._schedule_storage):
        assert isinstance(
            each, PooledPostgresRunStorage | PooledPostgresEventLogStorage | PooledPostgresScheduleStorage
        )
        assert each._retry_seconds == storage.WEBSERVER_RETRY_SECONDS < storage.RETRY_SECONDS
