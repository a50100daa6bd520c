"""The audit log's tables in Dagster's database: the webserver writes them, the janitor bounds the
log, the metrics service counts from the totals (never pruned, so a counter that only grows).

Created by the webserver when it starts (`CREATE TABLE IF NOT EXISTS`): owned by the role
Dagster connects as, kept by every backup of the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

METADATA = sa.MetaData()
AUDIT_LOG = sa.Table(
    "platform_audit_log",
    METADATA,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("user_name", sa.Text, nullable=False),
    sa.Column("via", sa.Text, nullable=False),
    sa.Column("team", sa.Text),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("operation", sa.Text, nullable=False),
    sa.Column("locations", sa.Text),
    sa.Column("targets", sa.Text),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
)
AUDIT_TOTALS = sa.Table(
    "platform_audit_totals",
    METADATA,
    sa.Column("operation", sa.Text, primary_key=True),
    sa.Column("outcome", sa.Text, primary_key=True),
    sa.Column("total", sa.BigInteger, nullable=False),
)


class Total(NamedTuple):
    operation: str
    outcome: str
    total: int


def create_tables(connection: Connection) -> None:
    METADATA.create_all(connection, checkfirst=True)


def prune(connection: Connection, retention_days: float, now: datetime | None = None) -> int:
    """Delete the audit records older than ``retention_days``; how many. The totals stay."""
    if not sa.inspect(connection).has_table(AUDIT_LOG.name):
        return 0  # no webserver has started yet
    cutoff = (now or datetime.now(UTC)) - timedelta(days=retention_days)
    return connection.execute(AUDIT_LOG.delete().where(AUDIT_LOG.c.ts < cutoff)).rowcount or 0


def totals(connection: Connection) -> list[Total]:
    """Every (operation, outcome)'s count of mutations since the deployment began."""
    if not sa.inspect(connection).has_table(AUDIT_TOTALS.name):
        return []
    query = sa.select(AUDIT_TOTALS.c.operation, AUDIT_TOTALS.c.outcome, AUDIT_TOTALS.c.total)
    return [Total(*row) for row in connection.execute(query.order_by(AUDIT_TOTALS.c.operation))]
