"""The statements a scrape runs where Dagster has no API: runs counted by group, tags, failed ticks.

Each reads an index (the run and tag indexes, the ticks' (selector_id, timestamp) one), in one
statement whatever the size of the run history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as db
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable  # no public API counts runs by group
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._core.storage.schedules.schema import JobTickTable  # nor reads failed ticks of many instigators
from dagster._core.storage.schedules.sql_schedule_storage import SqlScheduleStorage
from dagster._core.storage.tags import CODE_LOCATION_TAG

#: Run ids per statement when looking up the location of each asset's latest materialization.
TAG_BATCH = 500


class RunGroup(NamedTuple):
    """The runs of one (location, job, status) in storage."""

    location: str
    job: str
    status: str
    runs: int
    oldest: datetime  # the earliest creation time among them


class FailedTick(NamedTuple):
    id: int
    selector_id: str
    timestamp: float  # when its evaluation started (Unix time)


def utc(value: datetime) -> datetime:
    """Dagster stores naive UTC datetimes."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def count_runs(run_storage: SqlRunStorage) -> list[RunGroup]:
    """The runs per (location, job, status): one statement, on the run and tag indexes.

    The first statement of a scrape, on the storage's own pooled engine rather than
    ``run_storage.connect()``, which retries a failed connect (~11 s in dagster-postgres, up to a
    minute in instance_kit.storage): this fails at once, or after dagster.yaml's connect_timeout,
    when Postgres is down, and the scrape reads nothing else.
    """
    location = RunTagsTable.c.value
    query = (
        db.select(
            RunsTable.c.pipeline_name,
            RunsTable.c.status,
            location,
            db.func.count(),
            db.func.min(RunsTable.c.create_timestamp),
        )
        .select_from(
            RunsTable.outerjoin(
                RunTagsTable,
                db.and_(RunTagsTable.c.run_id == RunsTable.c.run_id, RunTagsTable.c.key == CODE_LOCATION_TAG),
            )
        )
        .group_by(RunsTable.c.pipeline_name, RunsTable.c.status, location)
    )
    with run_storage.connect() as connection:
        rows = connection.execute(query).all()
    return [RunGroup(value or "", job or "", status, count, utc(oldest)) for job, status, value, count, oldest in rows]


def run_locations(run_storage: SqlRunStorage, run_ids: Iterable[str]) -> dict[str, str]:
    """The ``dagster/code_location`` tag of each run, in batches of TAG_BATCH ids per statement."""
    ids = sorted(set(run_ids))
    found: dict[str, str] = {}
    for start in range(0, len(ids), TAG_BATCH):
        query = db.select(RunTagsTable.c.run_id, RunTagsTable.c.value).where(
            RunTagsTable.c.key == CODE_LOCATION_TAG, RunTagsTable.c.run_id.in_(ids[start : start + TAG_BATCH])
        )
        found.update((row["run_id"], row["value"]) for row in run_storage.fetchall(query))
    return found


def failed_ticks(storage: SqlScheduleStorage, selector_ids: Iterable[str], after: float) -> list[FailedTick]:
    """The failed ticks of these instigators that started after ``after`` (Unix time)."""
    query = db.select(JobTickTable.c.id, JobTickTable.c.selector_id, JobTickTable.c.timestamp).where(
        JobTickTable.c.selector_id.in_(sorted(selector_ids)),  # on the (selector_id, timestamp) index
        JobTickTable.c.status == TickStatus.FAILURE.value,
        JobTickTable.c.timestamp > datetime.fromtimestamp(after, UTC),
    )
    return [
        FailedTick(tick_id, selector_id, utc(timestamp).timestamp())
        for tick_id, selector_id, timestamp in storage.execute(query)
    ]
