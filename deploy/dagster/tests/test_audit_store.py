"""The audit log in a real Postgres: the webserver's rows and totals, the janitor's pruning, the counter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from platform_services import audit_store
from platform_services.webserver.audit import AuditLog, AuditRecord
from testkit.postgres import PostgresServer


@pytest.fixture
def connect(postgres: PostgresServer) -> Iterator[object]:
    config = postgres.db_config
    url = f"postgresql+psycopg2://dagster:{config['password']}@127.0.0.1:{config['port']}/dagster"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")  # as Dagster's storages connect

    @contextmanager
    def connection() -> Iterator[Connection]:
        with engine.connect() as conn:
            yield conn

    with connection() as conn:  # a clean slate: the tables are the webserver's to create
        audit_store.METADATA.drop_all(conn)
    yield connection
    engine.dispose()


def record(operation: str, outcome: str, *, days_ago: float = 0) -> AuditRecord:
    time = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="milliseconds")
    return AuditRecord(
        user="alice",
        via="password",
        role="editor",
        team="billing",
        operation=operation,
        outcome=outcome,
        locations=["billing_reports"],
        targets=["runId=1234"],
        time=time,
    )


def test_each_mutation_is_a_row_and_a_count_that_pruning_leaves_alone(connect) -> None:  # type: ignore[no-untyped-def]
    audit = AuditLog(connect)  # creates the tables, as the webserver does when it starts
    audit.write(record("launchRun", "allowed", days_ago=400))
    audit.write(record("launchRun", "allowed"))
    audit.write(record("launchRun", "refused"))

    with connect() as connection:
        rows = connection.execute(sa.select(audit_store.AUDIT_LOG)).mappings().all()
        assert [(r["user_name"], r["team"], r["operation"], r["outcome"]) for r in rows][-1] == (
            "alice",
            "billing",
            "launchRun",
            "refused",
        )
        assert rows[-1]["locations"] == "billing_reports" and rows[-1]["targets"] == "runId=1234"
        assert audit_store.prune(connection, retention_days=365) == 1  # the 400-day-old one
        assert connection.execute(sa.select(sa.func.count()).select_from(audit_store.AUDIT_LOG)).scalar() == 2
        assert audit_store.totals(connection) == [
            audit_store.Total("launchRun", "allowed", 2),
            audit_store.Total("launchRun", "refused", 1),
        ]


def test_a_record_is_one_transaction_that_leaves_the_shared_connection_as_it_was(connect) -> None:  # type: ignore[no-untyped-def]
    audit = AuditLog(connect)
    audit.write(record("launchRun", "allowed"))

    # Dagster's storage shares the pool: its statements must still autocommit, and wait for the disk.
    with connect() as connection:
        assert connection.connection.dbapi_connection.autocommit
        assert connection.execute(sa.text("SHOW synchronous_commit")).scalar() == "on"
        assert connection.execute(sa.select(sa.func.count()).select_from(audit_store.AUDIT_LOG)).scalar() == 1


def test_before_any_webserver_started_there_is_nothing_to_prune_or_count(connect) -> None:  # type: ignore[no-untyped-def]
    with connect() as connection:
        assert audit_store.prune(connection, retention_days=1) == 0
        assert audit_store.totals(connection) == []


def test_a_record_that_cannot_be_stored_is_still_logged(caplog: pytest.LogCaptureFixture) -> None:
    @contextmanager
    def unreachable() -> Iterator[Connection]:
        raise sa.exc.OperationalError("connect", {}, Exception("Postgres is restarting"))
        yield  # pragma: no cover

    audit = AuditLog(None)
    audit._connect = unreachable  # as if Postgres went away after the webserver started

    with caplog.at_level("INFO", logger="dagster.audit"):
        audit.write(record("wipeAssets", "refused"))

    assert '"operation":"wipeAssets"' in caplog.text and "could not store the record" in caplog.text
