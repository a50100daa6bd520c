"""What a scrape of the metrics service (platform_services.metrics) costs, at 100 and at 10,000 runs.

    .venv/bin/python -m bench.metrics_scrape            # `make bench-storage` runs it (~1 min)
    .venv/bin/python -m bench.metrics_scrape --sizes 100 1000 10000 --scrapes 30

On a fresh Postgres 15 from the host's binaries (testkit.postgres, no Docker), with the
deployment's storage (instance_kit.storage.PooledPostgresStorage): seeds runs of two code
locations as the daemon stores launched ones (their tags, a month of creation times, mostly
successes, some failures, cancellations, queued and started runs), ~10 events per run, 40 assets
with materializations, 6 instigators with failed ticks and the daemons' heartbeats. Then times
full scrapes (the collector's collect plus rendering the text format, what GET /metrics does),
counts their SQL statements, and grows the same database to the next size. The smallest size
is the reference. No code servers are probed: their cost does not depend on the storage.

The seeding helpers are shared with bench.retention_cycles.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as db
import yaml

# Bench-only seeding through Dagster's storage schema: the public API writes one run (two
# statements) or one event at a time, 3-4 ms each here; this writes the same rows in bulk.
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, TickData, TickStatus
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._daemon.types import DaemonHeartbeat
from dagster._serdes import serialize_value
from dagster._utils.error import SerializableErrorInfo
from prometheus_client import CollectorRegistry, generate_latest

from platform_services.metrics.collector import DagsterCollector
from testkit.postgres import PostgresServer, running_postgres

LOCATIONS = {
    "simple_ops": ("data_extraction_job", "cleanup_job", "report_job"),
    "modular_assets": ("all_assets_job", "sources_job", "exports_job"),
}
#: The seeded runs' statuses, and the share of each.
STATUSES = (
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTED,
)
STATUS_WEIGHTS = (0.85, 0.10, 0.03, 0.01, 0.01)
ASSETS = tuple(dg.AssetKey([group, f"table_{i}"]) for group in ("sources", "analytics") for i in range(20))
#: The event log of a small run besides its materializations: its Dagster events (those that
#: carry no data) and log lines of its ops; with 2 materializations, 12 events a run.
RUN_EVENTS = (
    DagsterEventType.PIPELINE_STARTING,
    DagsterEventType.PIPELINE_START,
    *(DagsterEventType.STEP_START,) * 3,
    DagsterEventType.PIPELINE_SUCCESS,
    *(None,) * 4,
)
BATCH = 1000
WARM_UP_SCRAPES = 3


def storage_yaml(server: PostgresServer) -> dict[str, Any]:
    """dagster.yaml's storage block, as the deployment's (pooled, connect_timeout 5 s)."""
    config = {"postgres_db": {**server.db_config, "params": {"connect_timeout": 5}}}
    return {"custom": {"module": "instance_kit.storage", "class": "PooledPostgresStorage", "config": config}}


@contextmanager
def fresh_instance() -> Iterator[tuple[dg.DagsterInstance, PostgresServer]]:
    """A throw-away Postgres server and a Dagster instance on it."""
    with running_postgres() as server, tempfile.TemporaryDirectory(prefix="bench-storage-") as home:
        settings = {"storage": storage_yaml(server), "telemetry": {"enabled": False}}
        (Path(home) / "dagster.yaml").write_text(yaml.safe_dump(settings))
        instance = dg.DagsterInstance.from_config(home)
        try:
            yield instance, server
        finally:
            instance.dispose()


def origin(location: str) -> RemoteRepositoryOrigin:
    return RemoteRepositoryOrigin(
        GrpcServerCodeLocationOrigin(host=location, port=4000, location_name=location), "__repository__"
    )


@dataclass(frozen=True)
class SeededRun:
    run_id: str
    job: str
    status: dg.DagsterRunStatus
    created: datetime


def add_runs(
    instance: dg.DagsterInstance,
    count: int,
    start: datetime,
    end: datetime,
    rng: random.Random,
    finished_only: bool = False,
) -> list[SeededRun]:
    """``count`` runs created between ``start`` and ``end``: the rows ``add_run`` writes, in bulk.
    ``finished_only``: no queued or started runs (in a history of days, those would be stuck ones)."""
    statuses, weights = (STATUSES[:3], STATUS_WEIGHTS[:3]) if finished_only else (STATUSES, STATUS_WEIGHTS)
    seeded, rows, tags = [], [], []
    span = (end - start).total_seconds()
    for i in range(count):
        location = rng.choice(list(LOCATIONS))
        job = rng.choice(LOCATIONS[location])
        status = rng.choices(statuses, weights)[0]
        run_tags = {
            "dagster/code_location": location,
            ".dagster/repository": f"__repository__@{location}",
            "dagster/max_runtime": "3600",
            "dagster/max_retries": "2",
            ("dagster/schedule_name" if i % 3 else "dagster/sensor_name"): f"{job}_trigger",
        }
        run = dg.DagsterRun(
            job_name=job,
            run_id=str(uuid.uuid4()),
            status=status,
            tags=run_tags,
            remote_job_origin=RemoteJobOrigin(origin(location), job),
        )
        created = (start + timedelta(seconds=span * i / max(1, count))).replace(tzinfo=None)  # naive UTC
        rows.append(
            {
                "run_id": run.run_id,
                "pipeline_name": job,
                "status": status.value,
                "run_body": serialize_value(run),
                "create_timestamp": created,
                "update_timestamp": created,
            }
        )
        tags += [{"run_id": run.run_id, "key": key, "value": value} for key, value in run.tags_for_storage().items()]
        seeded.append(SeededRun(run.run_id, job, status, created.replace(tzinfo=UTC)))
    run_storage = instance.run_storage
    assert isinstance(run_storage, SqlRunStorage)
    with run_storage.connect() as connection:
        for first in range(0, len(rows), BATCH):
            connection.execute(RunsTable.insert(), rows[first : first + BATCH])
        for first in range(0, len(tags), BATCH):
            connection.execute(RunTagsTable.insert(), tags[first : first + BATCH])
        # As the run worker's events set them: started 2 s after creation, 5-600 s long; the
        # last update is the end.
        connection.execute(
            db.text(
                "UPDATE runs SET start_time = extract(epoch FROM create_timestamp) + 2, "
                "end_time = extract(epoch FROM create_timestamp) + 7 + (id % 595), "
                "update_timestamp = create_timestamp + make_interval(secs => 7 + (id % 595)) "
                "WHERE status IN ('SUCCESS', 'FAILURE', 'CANCELED') AND end_time IS NULL"
            )
        )
    return seeded


def add_events(
    instance: dg.DagsterInstance, runs: Sequence[SeededRun], rng: random.Random, materializations: int = 2
) -> int:
    """Each run's event log (RUN_EVENTS), and ``materializations`` materializations per successful
    run, in bulk; the latest of each asset through ``store_event``, which indexes it. Returns the
    number of events."""
    storage = instance.event_log_storage
    assert isinstance(storage, SqlEventLogStorage)
    rows: list[dict[str, Any]] = []
    latest: dict[dg.AssetKey, EventLogEntry] = {}
    for run in runs:
        timestamp = run.created.timestamp()
        for offset, event_type in enumerate(RUN_EVENTS):
            event = DagsterEvent(event_type.value, run.job) if event_type else None
            rows.append(storage._event_to_row(_entry(run, event, timestamp + offset)))
        if run.status != dg.DagsterRunStatus.SUCCESS:
            continue
        for key in rng.sample(ASSETS, materializations):
            data = StepMaterializationData(dg.AssetMaterialization(key, metadata={"dagster/row_count": 100}))
            event = DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, run.job, event_specific_data=data)
            if key in latest:
                rows.append(storage._event_to_row(latest[key]))
            latest[key] = _entry(run, event, timestamp + 5)
    with storage.index_connection() as connection:
        for first in range(0, len(rows), BATCH):
            connection.execute(SqlEventLogStorageTable.insert(), rows[first : first + BATCH])
    for entry in latest.values():
        storage.store_event(entry)
    return len(rows) + len(latest)


def _entry(run: SeededRun, event: DagsterEvent | None, timestamp: float) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level="DEBUG" if event else "INFO",
        user_message="" if event else "fetched 100 posts from the source API in 0.2 s",
        run_id=run.run_id,
        timestamp=timestamp,
        job_name=run.job,
        dagster_event=event,
    )


def add_instigators(instance: dg.DagsterInstance, failed_ticks: int) -> None:
    """A schedule and a sensor per job of the first location, ``failed_ticks`` failed ticks each."""
    error = SerializableErrorInfo("ValueError: the source API answered 500", [], "ValueError")
    for location, jobs in LOCATIONS.items():
        for job in jobs:
            remote = RemoteInstigatorOrigin(origin(location), f"{job}_trigger")
            state = instance.add_instigator_state(
                InstigatorState(remote, InstigatorType.SENSOR, InstigatorStatus.RUNNING)
            )
            for i in range(failed_ticks):
                data = TickData(
                    remote.get_id(),
                    remote.instigator_name,
                    InstigatorType.SENSOR,
                    TickStatus.FAILURE,
                    time.time() - 3600 - 30 * i,
                    error=error,
                    selector_id=state.selector_id,
                )
                instance.create_tick(data)


def add_heartbeats(instance: dg.DagsterInstance) -> None:
    for daemon in ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING"):
        instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 5, daemon, "bench", None))


class StatementCounter:
    """SQL statements the instance's three storages execute (SQLAlchemy's cursor events)."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.count = 0
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        for engine in {id(e): e for e in (getattr(storage, "_engine", None) for storage in storages) if e}.values():
            db.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args: object) -> None:
        self.count += 1


def percentile(samples: Sequence[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000], help="runs in storage (ascending)")
    parser.add_argument("--scrapes", type=int, default=20, help="timed scrapes per size (default 20)")
    args = parser.parse_args(argv)
    rng = random.Random(42)
    now = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    rows = []
    with fresh_instance() as (instance, _), tempfile.TemporaryDirectory() as volume:
        add_instigators(instance, failed_ticks=20)
        add_heartbeats(instance)
        collector = DagsterCollector(lambda: instance, volumes=[("storage", volume)])
        registry = CollectorRegistry()
        registry.register(collector)
        counter = StatementCounter(instance)
        seeded = 0
        for size in sorted(args.sizes):
            started = time.perf_counter()
            runs = add_runs(instance, size - seeded, now - timedelta(days=30), now - timedelta(minutes=5), rng)
            events = add_events(instance, runs, rng)
            seeding = time.perf_counter() - started
            seeded = size
            for _ in range(WARM_UP_SCRAPES):  # the first one after seeding reads the new finished runs
                generate_latest(registry)
            times, statements = [], []
            for _ in range(args.scrapes):
                before = counter.count
                started = time.perf_counter()
                body = generate_latest(registry)
                times.append((time.perf_counter() - started) * 1000)
                statements.append(counter.count - before)
            rows.append((size, len(runs), events, seeding, times, len(body), statements))
            print(f"  {size:,} runs seeded ({len(runs):,} new, {events:,} events) in {seeding:.1f} s", flush=True)

    reference = statistics.median(rows[0][4])
    load = " / ".join(f"{value:.1f}" for value in (load_start, os.getloadavg()[0]))
    print(
        f"\nmetrics scrape (platform_services.metrics): {args.scrapes} scrapes per size after {WARM_UP_SCRAPES} "
        f"warm-up ones; Postgres 15 on this host; load average {load} (start / end)"
    )
    header = ("runs", "min ms", "median ms", "p95 ms", "vs first", "bytes", "statements", "seeded in")
    print("{:>8} {:>7} {:>10} {:>7} {:>9} {:>8} {:>11} {:>10}".format(*header))
    for size, _, _, seeding, times, size_bytes, statements in rows:
        median = statistics.median(times)
        print(
            f"{size:>8,} {min(times):>7.1f} {median:>10.1f} {percentile(times, 0.95):>7.1f} "
            f"{median / reference:>8.2f}x {size_bytes:>8,} {statistics.median(statements):>11g} {seeding:>9.1f}s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
