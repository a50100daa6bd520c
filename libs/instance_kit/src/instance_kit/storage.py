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

Postgres crashes and restarts (docs/decisions.md#storage-calls-wait-out-a-postgres-restart):
a storage call that fails on a lost or refused connection is tried again, with a backoff,
for up to ``RETRY_SECONDS`` (``WEBSERVER_RETRY_SECONDS`` in the webserver, whose requests
should fail rather than hang). What is tried again is only what cannot be done twice:

- getting a connection, for every call (nothing has been sent yet);
- the whole call, for reads (``READ_PREFIXES``) and for ``IDEMPOTENT_WRITES``;
- ``store_event``, stage by stage: the INSERT (after a failure, only if the row is not
  there: the failed try may have committed), the NOTIFY, the asset index, the asset check.

Genuine errors (an IntegrityError, bad SQL, a statement timeout, a wrong password) are
raised at once. When Postgres stays away longer, the call raises
:class:`StorageUnavailableError`. A step that failed on it is not recorded as a step
failure, which ``retry_on_asset_or_op_failure: false`` would never retry: the run fails
instead (``RUN_EXCEPTION``), and run retries start it again.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import dagster as dg
import psycopg2
import sqlalchemy
import sqlalchemy.exc
from dagster._config import process_config
from dagster._core.errors import DagsterInvalidConfigError, DagsterInvariantViolationError
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetEventTagsTable,
    SqlEventLogStorageTable,
)
from dagster._serdes import ConfigurableClassData
from dagster._utils.error import SerializableErrorInfo
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.event_log.event_log import CHANNEL_NAME
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    DagsterPostgresException,
    create_pg_engine,
    get_token_provider_from_config,
    pg_config,
    pg_url_from_config,
    set_pg_statement_timeout,
)
from sqlalchemy.engine import Connection

#: Connections each storage keeps open. 2, not 1: Dagster sometimes nests a storage call in
#: another (one connection held while a second is needed); with 1 that nested connect would
#: open and close a connection every time.
POOL_SIZE = 2
#: Extra connections allowed while several threads (daemon, webserver) need one at once.
MAX_OVERFLOW = 10
#: Replace a connection after an hour, so none outlives a Postgres-side change for long.
POOL_RECYCLE_SECONDS = 3600

#: How long a storage call waits for Postgres to come back: its container restarts in ~5-15 s.
RETRY_SECONDS = 60.0
#: The same in the webserver: about what dagster-postgres waits for a connection (~11 s).
WEBSERVER_RETRY_SECONDS = 10.0
#: The first pause between two tries; each next one doubles, up to the longest.
FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 1.0
#: Public methods tried again as a whole: reads, by their names in Dagster's storage API...
READ_PREFIXES = ("get_", "has_", "fetch_", "all_")
#: ...and the writes that can be done again (each re-reads what it updates, or upserts; the
#: decisions page has their caveats), the ones a run worker or its steps make besides store_event.
IDEMPOTENT_WRITES = frozenset({"handle_run_event", "add_run_tags", "add_dynamic_partitions"})
#: libpq's messages (lower case) for a connection lost or refused while Postgres restarts.
TRANSIENT_MESSAGES = (
    "server closed the connection",  # the backend died (kill -9, crash, OOM kill)
    "terminating connection",  # a fast shutdown, or the postmaster resetting after a crash
    "connection refused",  # Postgres down
    "the database system is",  # ...starting up / in recovery mode / shutting down
    "could not translate host name",  # its container is gone, and with it its DNS name
    "timeout expired",  # connect_timeout
    "could not connect",
    "could not receive data from server",
    "could not send data to server",
    "connection already closed",
    "connection reset by peer",
    "no route to host",
    "network is unreachable",
    "ssl connection has been closed unexpectedly",
)

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
_retrying_here = threading.local()


class StorageUnavailableError(DagsterPostgresException):
    """Postgres could not be reached for the whole retry budget (raised from the last error)."""


def is_transient(error: BaseException | None) -> bool:
    """Whether ``error`` (or what it was raised from) is a lost or refused connection."""
    while error is not None and not isinstance(error, StorageUnavailableError):  # that one already waited
        if isinstance(error, sqlalchemy.exc.DBAPIError):
            if error.connection_invalidated:  # SQLAlchemy's own test: the connection is gone
                return True
            if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
                message = str(error.orig).lower()
                return any(text in message for text in TRANSIENT_MESSAGES)
            return False  # IntegrityError, ProgrammingError, DataError...: genuine
        if isinstance(error, psycopg2.OperationalError | psycopg2.InterfaceError):
            # Raised unwrapped where SQLAlchemy sets up a connection (e.g. its isolation level).
            return any(text in str(error).lower() for text in TRANSIENT_MESSAGES)
        error = error.__cause__  # e.g. dagster-postgres' "too many retries for DB connection"
    return False


def _first_line(error: BaseException) -> str:
    cause = error.orig if isinstance(error, sqlalchemy.exc.DBAPIError) else error
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def retrying(call: Callable[[bool], _T], what: str, budget: float) -> _T:
    """``call(after_failure)``, tried again while it fails on a lost or refused connection,
    for up to ``budget`` seconds; ``after_failure`` tells a try that the one before failed
    (and may have committed). Inside another retried call it is tried once: the outer call
    is the one tried again, so waits never add up. A budget of 0 (or less) means one try."""
    if budget <= 0 or getattr(_retrying_here, "active", False):
        return call(False)
    _retrying_here.active = True
    try:
        deadline = time.monotonic() + budget
        delay, after_failure = FIRST_DELAY_SECONDS, False
        while True:
            try:
                return call(after_failure)
            except Exception as error:
                left = deadline - time.monotonic()
                if not is_transient(error):
                    raise
                if left <= 0:
                    logger.error("Postgres still unreachable after %.0f s, giving up: %s", budget, what)
                    raise StorageUnavailableError(
                        f"Postgres was unreachable for {budget:.0f} s ({what}): {_first_line(error)}"
                    ) from error
                pause = min(delay, left)
                logger.warning("Postgres unreachable (%s): retrying %s in %.1f s", _first_line(error), what, pause)
                time.sleep(pause)
                delay, after_failure = min(2 * delay, MAX_DELAY_SECONDS), True
    finally:
        _retrying_here.active = False


def _retried(method: Callable[..., _T]) -> Callable[..., _T]:
    """``method`` of a pooled storage, tried again as a whole (a read, or an idempotent write)."""

    @functools.wraps(method)
    def call(self: _Pooled, *args: Any, **kwargs: Any) -> _T:
        return self._retrying(lambda _: method(self, *args, **kwargs), method.__name__)

    return call


def failed_for_lack_of_storage(event: EventLogEntry) -> bool:
    """Whether ``event`` is a step failure caused by a :class:`StorageUnavailableError`."""
    if not (event.is_dagster_event and event.dagster_event_type == DagsterEventType.STEP_FAILURE):
        return False
    pending: list[SerializableErrorInfo | None] = [
        getattr(event.get_dagster_event().event_specific_data, "error", None)
    ]
    while pending:
        error = pending.pop()
        if error is not None:
            if error.cls_name == StorageUnavailableError.__name__:
                return True
            pending += [error.cause, error.context]
    return False


if TYPE_CHECKING:

    class _Storage:
        """What the mixin calls on the storage it is mixed into (each defines its own ``dispose``)."""

        def dispose(self) -> None: ...

else:
    _Storage = object


class _Pooled(_Storage):
    """Mixin for a dagster-postgres storage: swap its NullPool engine for a pooled one, and wait
    out a Postgres restart (the module doc says what is tried again)."""

    postgres_url: str
    _engine: Any
    _token_provider: Any
    _retry_seconds: float | None = None  # None: RETRY_SECONDS (read at each call); 0: try once
    #: The methods of this storage that are tried again as a whole.
    retried_whole: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = [name for name in dir(cls) if name.startswith(READ_PREFIXES) or name in IDEMPOTENT_WRITES]
        methods = {name: inspect.getattr_static(cls, name) for name in names}
        # Not the classmethods, staticmethods and properties.
        cls.retried_whole = frozenset(name for name, method in methods.items() if inspect.isfunction(method))
        for name in cls.retried_whole:
            setattr(cls, name, _retried(methods[name]))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Dagster creates (or checks) the tables with its NullPool engine; then it is replaced.
        # A run worker that starts while Postgres restarts waits for it here too.
        self._retrying(lambda _: super(_Pooled, self).__init__(*args, **kwargs), "start-up")
        self._use_pool(POOL_SIZE, MAX_OVERFLOW, POOL_RECYCLE_SECONDS)

    def optimize_for_webserver(self, statement_timeout: int, pool_recycle: int, max_overflow: int) -> None:
        """What dagster-postgres does for the webserver (one pooled connection and its statement
        timeout), plus the pre-ping, so a Postgres restart fails no UI request; and a shorter wait
        while Postgres is away, so a UI request fails instead of hanging."""
        self._use_pool(1, max_overflow, pool_recycle)
        self._retry_seconds = WEBSERVER_RETRY_SECONDS
        sqlalchemy.event.listen(
            self._engine, "connect", lambda connection, _: set_pg_statement_timeout(connection, statement_timeout)
        )

    def fail_fast(self) -> None:
        """Try each call once, for a caller that must answer quickly (the metrics exporter)."""
        self._retry_seconds = 0.0

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

    def _retrying(self, call: Callable[[bool], _T], what: str) -> _T:
        budget = RETRY_SECONDS if self._retry_seconds is None else self._retry_seconds
        return retrying(call, f"{type(self).__name__}.{what}", budget)

    @contextmanager
    def _checkout(self) -> Iterator[Connection]:
        """A connection from the pool, waiting for one while Postgres restarts (in place of
        dagster-postgres' create_pg_connection, which gives up after ~11 s)."""
        conn = self._retrying(lambda _: self._engine.connect(), "connect")
        try:
            yield conn
        finally:
            conn.close()

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledPostgresRunStorage(_Pooled, PostgresRunStorage):
    """``PostgresRunStorage`` with pooled connections."""

    def connect(self) -> AbstractContextManager[Connection]:
        return self._checkout()


class PooledPostgresEventLogStorage(_Pooled, PostgresEventLogStorage):
    """``PostgresEventLogStorage`` with pooled connections, whose ``store_event`` stores an event
    exactly once through a Postgres crash."""

    def _connect(self) -> AbstractContextManager[Connection]:
        return self._checkout()

    def store_event(self, event: EventLogEntry) -> None:
        """dagster-postgres' ``store_event`` (INSERT, NOTIFY, asset index, asset check), each stage
        tried again on its own, so that no retry repeats what an earlier try did."""
        if failed_for_lack_of_storage(event):
            # Not stored: the exception leaves the step's error boundary, and the run fails.
            raise StorageUnavailableError(
                f"Step {event.step_key!r} failed because Postgres was unreachable: failing the run instead"
                " of the step, so that run retries apply"
            )
        row = self._event_to_row(event)
        event_id = self._retrying(lambda after_failure: self.insert_event_row(row, after_failure), "store_event")
        self._retrying(lambda _: self._notify(row["run_id"], event_id), "store_event (NOTIFY)")
        dagster_event = event.dagster_event
        if dagster_event and dagster_event.event_type in ASSET_EVENTS and dagster_event.asset_key:
            self._retrying(lambda again: self._index_asset_event(event, event_id, again), "store_event (asset index)")
        if dagster_event and dagster_event.event_type in ASSET_CHECK_EVENTS:
            self._retrying(lambda again: self._store_check_event(event, event_id, again), "store_event (asset check)")

    def insert_event_row(self, row: Mapping[str, Any], after_failure: bool) -> int:
        """INSERT an event_logs row, its id back. After a failed try, the row may be there already:
        that try's INSERT can have committed before the connection broke."""
        table = SqlEventLogStorageTable
        with self._connect() as conn:
            if after_failure:
                same = (
                    table.c.run_id == row["run_id"],
                    table.c.timestamp == row["timestamp"],
                    table.c.event == row["event"],
                )
                existing = conn.execute(sqlalchemy.select(table.c.id).where(*same).limit(1)).scalar()
                if existing is not None:
                    return int(existing)
            event_id = conn.execute(table.insert().values(**row).returning(table.c.id)).scalar()
        if event_id is None:
            raise DagsterInvariantViolationError("Cannot store an event with a null event id.")
        return int(event_id)

    def _notify(self, run_id: str | None, event_id: int) -> None:
        # dagster-postgres no longer LISTENs; it still NOTIFYs, for version skew. Harmless to repeat.
        with self._connect() as conn:
            conn.execute(sqlalchemy.text(f"NOTIFY {CHANNEL_NAME}, :notify_id; "), {"notify_id": f"{run_id}_{event_id}"})

    def _index_asset_event(self, event: EventLogEntry, event_id: int, after_failure: bool) -> None:
        with self.index_transaction() as conn:
            if after_failure and self.has_table(AssetEventTagsTable.name):  # that try may have committed
                conn.execute(AssetEventTagsTable.delete().where(AssetEventTagsTable.c.event_id == event_id))
            self._store_asset_event_tags(conn, [event], [event_id])
            self._store_asset_event(conn, event, event_id)  # an upsert

    def _store_check_event(self, event: EventLogEntry, event_id: int, after_failure: bool) -> None:
        if after_failure:  # that try may have committed: its row names this event
            table = AssetCheckExecutionsTable
            with self.index_connection() as conn:
                query = sqlalchemy.select(table.c.id).where(table.c.evaluation_event_storage_id == event_id).limit(1)
                if conn.execute(query).first() is not None:
                    return
        self.store_asset_check_event(event, event_id)


class PooledPostgresScheduleStorage(_Pooled, PostgresScheduleStorage):
    """``PostgresScheduleStorage`` with pooled connections."""

    def connect(self, run_id: str | None = None) -> AbstractContextManager[Connection]:
        return self._checkout()


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
    def config_type(cls) -> dg.Permissive:
        # Checked in from_config_value instead, where a dagster.yaml read outside the stack (the
        # CLI at the repository's root) can be told what to do about its unset variables.
        return dg.Permissive()

    @classmethod
    def from_config_value(
        cls,
        inst_data: ConfigurableClassData | None,
        config_value: Mapping[str, Any],
    ) -> PooledPostgresStorage:
        result = process_config(pg_config(), config_value)
        if not result.success:
            unset = sorted(name for name in _env_names(config_value) if os.getenv(name) is None)
            message = "Errors whilst loading the configuration of instance_kit.storage.PooledPostgresStorage"
            if unset:
                message = (
                    f"The instance's Postgres settings come from {', '.join(unset)}, which "
                    f"{'is' if len(unset) == 1 else 'are'} not set. This dagster.yaml is the compose stack's "
                    "instance, whose services set them. To run dagster outside the stack, run `make dev` (a "
                    "local instance in .dagster_home), or point DAGSTER_HOME at a folder of your own: "
                    "mkdir -p .dagster_home && export DAGSTER_HOME=$PWD/.dagster_home"
                )
            raise DagsterInvalidConfigError(message, result.errors, config_value)
        config: Mapping[str, Any] = result.value or {}
        # The parent's from_config_value builds a DagsterPostgresStorage, not ``cls``.
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config),
            should_autocreate_tables=config.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config),
        )


def _env_names(config: Any) -> set[str]:
    """The env vars a config reads with ``{env: NAME}``, at any depth."""
    if isinstance(config, Mapping):
        if set(config) == {"env"} and isinstance(config["env"], str):
            return {config["env"]}
        return set().union(*(_env_names(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(_env_names(value) for value in config))
    return set()
