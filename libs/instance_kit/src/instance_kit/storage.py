"""Dagster's Postgres storage, with connections kept open instead of opened per call.

dagster-postgres gives its run, event-log and schedule storages a SQLAlchemy
``NullPool``: every storage call opens a new connection and closes it, and with
SCRAM authentication those connects were most of a small run's time
(docs/decisions.md#pooled-postgres-connections).

:class:`PooledPostgresStorage` is ``DagsterPostgresStorage`` with one change:
each of the three storages keeps up to ``POOL_SIZE`` connections open (more
are opened, and closed again, when threads need them at the same time).
``pool_pre_ping`` tests a connection before handing it out, so a Postgres
restart costs one failed ping instead of an error in Dagster.

Configure it in ``dagster.yaml`` in place of ``storage: postgres:``::

    storage:
      custom:
        module: instance_kit.storage
        class: PooledPostgresStorage
        config:
          postgres_db: {...}      # exactly the config of `storage: postgres:`

Each storage closes its connections when Dagster disposes of it (a code server
builds a short-lived instance for every sensor or schedule evaluation). Run
workers get the same class: the instance reference Dagster hands them
names it. In the webserver, Dagster's ``optimize_for_webserver`` sets one
connection per storage and its statement timeout, as dagster-postgres does, with
the pre-ping added. Connections: at most 3 x POOL_SIZE kept open per process
(webserver, daemon, each code server, each run worker), plus up to MAX_OVERFLOW
per storage while threads overlap. docker-compose.yml sets Postgres'
``max_connections`` to 200 (its default is 100) to leave headroom for that with
the run queue's limit of 4 runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
    set_pg_statement_timeout,
)

#: Connections each storage keeps open. 2, not 1: Dagster sometimes nests a storage call in
#: another (one connection held while a second is needed); with 1 that nested connect would
#: open and close a connection every time.
POOL_SIZE = 2
#: Extra connections allowed while several threads (daemon, webserver) need one at once.
MAX_OVERFLOW = 10
#: Replace a connection after an hour, so none outlives a Postgres-side change for long.
POOL_RECYCLE_SECONDS = 3600


if TYPE_CHECKING:

    class _Storage:
        """What the mixin calls on the storage it is mixed into (each defines its own ``dispose``)."""

        def dispose(self) -> None: ...

else:
    _Storage = object


class _Pooled(_Storage):
    """Mixin for a dagster-postgres storage: swap its NullPool engine for a pooled one."""

    postgres_url: str
    _engine: Any
    _token_provider: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Dagster creates (or checks) the tables with its NullPool engine; then it is replaced.
        super().__init__(*args, **kwargs)
        self._use_pool(POOL_SIZE, MAX_OVERFLOW, POOL_RECYCLE_SECONDS)

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        """What dagster-postgres does for the webserver (one pooled connection and its statement
        timeout), plus the pre-ping, so a Postgres restart fails no UI request."""
        self._use_pool(1, max_overflow, pool_recycle)
        sqlalchemy.event.listen(
            self._engine, "connect", lambda connection, _: set_pg_statement_timeout(connection, statement_timeout)
        )

    def _use_pool(self, pool_size: int, max_overflow: int, pool_recycle: int) -> None:
        self._engine.dispose()
        self._engine = create_pg_engine(
            self.postgres_url,
            self._token_provider,
            isolation_level="AUTOCOMMIT",  # what dagster-postgres uses
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=pool_recycle,
        )

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledPostgresRunStorage(_Pooled, PostgresRunStorage):
    """``PostgresRunStorage`` with pooled connections."""


class PooledPostgresEventLogStorage(_Pooled, PostgresEventLogStorage):
    """``PostgresEventLogStorage`` with pooled connections."""


class PooledPostgresScheduleStorage(_Pooled, PostgresScheduleStorage):
    """``PostgresScheduleStorage`` with pooled connections."""


class PooledPostgresStorage(DagsterPostgresStorage):
    """``DagsterPostgresStorage`` whose storages keep their connections open (see the module doc)."""

    def __init__(
        self,
        postgres_url: str,
        should_autocreate_tables: bool = True,
        inst_data: ConfigurableClassData | None = None,
        token_provider: Any = None,
    ) -> None:
        # DagsterPostgresStorage.__init__, with the pooled storages.
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = PooledPostgresRunStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._event_log_storage = PooledPostgresEventLogStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        self._schedule_storage = PooledPostgresScheduleStorage(
            postgres_url, should_autocreate_tables, token_provider=token_provider
        )
        super(DagsterPostgresStorage, self).__init__()  # what comes after DagsterPostgresStorage

    @classmethod
    def from_config_value(
        cls,
        inst_data: ConfigurableClassData | None,  # ty: ignore[invalid-method-override]
        config_value: Mapping[str, Any],
    ) -> PooledPostgresStorage:
        # The parent's from_config_value builds a DagsterPostgresStorage, not ``cls``.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
