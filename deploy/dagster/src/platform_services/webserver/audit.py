"""The audit log: every mutation, allowed or refused, as one JSON line and one row.

The line goes to the webserver's log; the row to ``platform_audit_log`` in Dagster's
database (so a backup keeps it; the storage janitor bounds it), and a per-operation
count to ``platform_audit_totals`` (platform_services.audit_store), which the metrics
service exports as a counter and Prometheus alerts on a burst of refusals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from platform_services.audit_store import AUDIT_LOG, AUDIT_TOTALS, create_tables

log = logging.getLogger("dagster.audit")

ALLOWED, REFUSED, FAILED = "allowed", "refused", "failed"


@dataclass(frozen=True)
class AuditRecord:
    """One mutation: who, in which role, what, on which locations and ids, and how it ended."""

    user: str
    via: str
    role: str
    operation: str
    outcome: str
    team: str | None = None
    locations: Sequence[str] = ()
    targets: Sequence[str] = ()
    detail: str = ""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    def line(self) -> str:
        return json.dumps({"audit": asdict(self)}, separators=(",", ":"))


class AuditLog:
    """Writes each record to the log and, when given a connection source, to Postgres."""

    def __init__(self, connect: Callable[[], AbstractContextManager[Connection]] | None = None) -> None:
        self._connect = None
        if connect is not None:
            with connect() as connection:
                if connection.dialect.name != "postgresql":  # a local `make dev` instance: the log only
                    return
                create_tables(connection)
            self._connect = connect

    def write(self, record: AuditRecord) -> None:
        log.info(record.line())
        if self._connect is None:
            return
        try:
            with self._connect() as pooled:
                # One transaction (the storage's connections autocommit each statement), which
                # does not wait for the disk flush (docs/decisions.md#the-audit-row-does-not-wait-for-the-disk):
                # a Postgres crash may lose the last fraction of a second of rows, never the log line above.
                connection = pooled.execution_options(isolation_level="READ COMMITTED")
                with connection.begin():
                    connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
                    self._insert(connection, record)
        except Exception:  # the log line above is the record of last resort
            log.exception("audit: could not store the record in Postgres")

    @staticmethod
    def _insert(connection: Connection, record: AuditRecord) -> None:
        connection.execute(
            AUDIT_LOG.insert().values(
                ts=datetime.fromisoformat(record.time),
                user_name=record.user,
                via=record.via,
                team=record.team,
                role=record.role,
                operation=record.operation,
                locations=",".join(record.locations) or None,
                targets=",".join(record.targets) or None,
                outcome=record.outcome,
                detail=record.detail or None,
            )
        )
        count = postgresql.insert(AUDIT_TOTALS).values(operation=record.operation, outcome=record.outcome, total=1)
        connection.execute(
            count.on_conflict_do_update(
                index_elements=[AUDIT_TOTALS.c.operation, AUDIT_TOTALS.c.outcome],
                set_={"total": AUDIT_TOTALS.c.total + 1},
            )
        )


#: Argument names that identify what a mutation acts on (run and asset ids are handled above).
IDENTIFYING = frozenset(
    {
        "scheduleName", "sensorName", "pipelineName", "jobName", "partitionsDefName", "partitionKey",
        "repositoryLocationName", "locationName", "concurrencyKey", "id", "scheduleOriginId",
        "scheduleSelectorId", "jobOriginId", "jobSelectorId",
    }
)  # fmt: skip


def targets_of(arguments: Any) -> Iterator[str]:
    """The run ids, backfill ids, asset keys and selectors a mutation's arguments name."""
    if isinstance(arguments, dict):
        for key, value in arguments.items():
            if key in ("runId", "runIds", "backfillId", "partitionKeys") and value:
                yield from (f"{key}={v}" for v in (value if isinstance(value, list) else [value]))
            elif key in ("assetKeys", "assetPartitionRanges") and isinstance(value, list):
                for item in value:
                    path = (item.get("assetKey") or item).get("path") if isinstance(item, dict) else None
                    if path:
                        yield "asset=" + "/".join(path)
            elif key in IDENTIFYING and value and not isinstance(value, dict | list):
                yield f"{key}={value}"
            else:
                yield from targets_of(value)
    elif isinstance(arguments, list):
        for item in arguments:
            yield from targets_of(item)
