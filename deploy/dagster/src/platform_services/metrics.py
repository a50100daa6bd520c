"""Prometheus metrics of the deployment: runs, the run queue, daemons, code locations, assets, ticks, volumes.

    python -m platform_services.metrics       # the `metrics` service; reads $DAGSTER_HOME/dagster.yaml

Settings, from the environment (a bad value exits 2 with one line naming it):

    METRICS_HOST       address to listen on (default 0.0.0.0)
    METRICS_PORT       port (default 9102)
    METRICS_WORKSPACE  the workspace.yaml whose grpc_server locations are probed
                       (default $DAGSTER_HOME/workspace.yaml)
    METRICS_VOLUMES    comma-separated name=path pairs whose file system usage is reported,
                       e.g. storage=/opt/dagster/storage,postgres=/var/lib/postgresql/data
                       (statvfs needs no read access to the folder itself; default: none)

Endpoints: ``GET /metrics`` (Prometheus text format), ``GET /health`` ("ok" whenever the
process serves; never touches Postgres), ``POST /alerts`` (Alertmanager's webhook: one
``ALERT <status> <alertname> severity=... <labels>: <summary>`` line per alert on stdout).

Everything is read when Prometheus scrapes, in a few statements whatever the size of the run
history (one GROUP BY over the runs, the runs updated since the last scrape, the heartbeats,
the asset table, the instigators and their recent failed ticks); the code servers are probed
concurrently meanwhile. When Postgres is down a scrape still answers, within the connect
timeout of dagster.yaml, with ``dagster_storage_up 0`` and the location and volume metrics;
the problem is logged once, not every scrape. The metrics (all gauges unless noted):

    dagster_runs{location,job,status}                  runs in storage
    dagster_run_duration_seconds{location,job,status}  histogram: runs that finished since the
                                                       exporter started, end - start (0 if never started)
    dagster_run_queue_length, dagster_run_queue_oldest_age_seconds
    dagster_daemon_heartbeat_age_seconds{daemon}       each daemon the instance requires
    dagster_code_location_loaded{location}             1 when its server serves and its code loaded
    dagster_asset_last_materialization_timestamp_seconds{location,asset}
    dagster_tick_failures_total{location,instigator,type}  counter, since the exporter started
    dagster_volume_size_bytes{volume}, dagster_volume_used_bytes{volume},
    dagster_volume_used_ratio{volume}                  used / (used + available), as df's Use%
    dagster_storage_up, dagster_scrape_duration_seconds

``location`` is a run's ``dagster/code_location`` tag, which Dagster sets on every run it
launches from a code location ("" for runs without it, e.g. ``execute_in_process``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import dagster as dg
import sqlalchemy as db
import yaml
from dagster._core.instance.ref import InstanceRef  # the only check of dagster.yaml that does not connect
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.runs.schema import RunsTable, RunTagsTable  # no public API counts runs by group
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._core.storage.schedules.schema import JobTickTable  # nor reads failed ticks of many instigators
from dagster._core.storage.schedules.sql_schedule_storage import SqlScheduleStorage
from dagster._core.storage.tags import CODE_LOCATION_TAG
from dagster_postgres.utils import DagsterPostgresException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from platform_services.grpc_probe import check_code_server

log = logging.getLogger("platform_services.metrics")

DEFAULT_HOST = "0.0.0.0"
DEFAULT_PORT = 9102
#: Upper bounds of dagster_run_duration_seconds' buckets, from a second to 6 hours.
RUN_DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
FINISHED_STATUSES = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
#: Each scrape re-reads the runs that finished this long before the previous one (a run's end
#: time is its worker's clock, written a moment later); the ids it counted meanwhile are kept.
RUN_OVERLAP_SECONDS = 300.0
#: Same for ticks, whose timestamp is when the evaluation started (a sensor may run for minutes).
TICK_OVERLAP_SECONDS = 900.0
#: Per gRPC call of a code server probe (two calls): a hung server costs a scrape at most ~3 s.
PROBE_TIMEOUT_SECONDS = 1.5
PROBE_DEADLINE_SECONDS = 4.0
#: How long a scrape waits for the instance to open (with Postgres down, opening it waits for
#: Postgres: ~11 s in dagster-postgres, up to a minute in instance_kit.storage).
OPEN_WAIT_SECONDS = 3.0
MAX_ALERT_BYTES = 1 << 20
#: Run ids per statement when looking up the location of each asset's latest materialization.
TAG_BATCH = 500


class ConfigError(Exception):
    """A bad setting; the message names the variable and what to set."""


@dataclasses.dataclass(frozen=True)
class CodeServer:
    """A grpc_server entry of workspace.yaml."""

    location: str
    host: str
    port: int


@dataclasses.dataclass(frozen=True)
class Settings:
    host: str
    port: int
    code_servers: tuple[CodeServer, ...]
    volumes: tuple[tuple[str, str], ...]


def read_code_servers(path: Path) -> tuple[CodeServer, ...]:
    """The grpc_server locations of a workspace.yaml (other kinds of entries have no server to probe)."""
    workspace = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    servers = []
    for entry in workspace.get("load_from") or []:
        target = entry.get("grpc_server") if isinstance(entry, Mapping) else None
        if not isinstance(target, Mapping):
            continue
        name = str(target.get("location_name") or target.get("host") or "")
        try:
            port = int(target["port"])
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{name or 'a grpc_server entry'} has no integer port") from None
        servers.append(CodeServer(name, str(target.get("host") or "localhost"), port))
    return tuple(servers)


def parse_volumes(value: str) -> tuple[tuple[str, str], ...]:
    """``name=path,name=path`` (blank: none)."""
    volumes: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not name or not path:
            raise ConfigError(
                f"METRICS_VOLUMES: {item!r} is not name=path: set comma-separated name=path pairs, "
                "e.g. storage=/opt/dagster/storage,exports=/opt/dagster/exports"
            )
        if name in volumes:
            raise ConfigError(f"METRICS_VOLUMES: the name {name!r} is given twice: give each volume its own name")
        volumes[name] = path
    return tuple(volumes.items())


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The exporter's settings, each checked (:class:`ConfigError` names the variable and the fix)."""
    home = env.get("DAGSTER_HOME", "")
    if not home or not (Path(home) / "dagster.yaml").is_file():
        raise ConfigError(
            f"DAGSTER_HOME={home!r} has no dagster.yaml: set DAGSTER_HOME to the folder of the deployment's dagster.yaml"
        )
    try:
        InstanceRef.from_dir(home)
    except Exception as error:
        raise ConfigError(f"DAGSTER_HOME: {home}/dagster.yaml is not a valid instance config: {error}") from None
    raw_port = env.get("METRICS_PORT", str(DEFAULT_PORT))
    if not raw_port.strip().isdigit() or not 0 < int(raw_port) < 65536:
        raise ConfigError(
            f"METRICS_PORT={raw_port!r} is not a port: set a number from 1 to 65535 (default {DEFAULT_PORT})"
        )
    workspace = Path(env.get("METRICS_WORKSPACE") or Path(home) / "workspace.yaml")
    if not workspace.is_file():
        raise ConfigError(
            f"METRICS_WORKSPACE={str(workspace)!r} is not a file: set it to the deployment's workspace.yaml "
            "(default $DAGSTER_HOME/workspace.yaml)"
        )
    try:
        code_servers = read_code_servers(workspace)
    except (ConfigError, yaml.YAMLError, AttributeError) as error:
        raise ConfigError(f"METRICS_WORKSPACE={str(workspace)!r} is not a usable workspace.yaml: {error}") from None
    volumes = parse_volumes(env.get("METRICS_VOLUMES", ""))
    for name, path in volumes:
        try:
            os.statvfs(path)
        except OSError as error:
            raise ConfigError(
                f"METRICS_VOLUMES: {name}={path}: {error.strerror}: mount the volume there or fix the path"
            ) from None
    return Settings(env.get("METRICS_HOST") or DEFAULT_HOST, int(raw_port), code_servers, volumes)


# --- what a scrape reads ------------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    """Dagster stores naive UTC datetimes."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _first_line(error: BaseException) -> str:
    """The error in one line (a config error: the first line of each of its first errors, which
    name the setting, e.g. an unset env var of dagster.yaml)."""
    if isinstance(error, dg.DagsterInvalidConfigError) and error.errors:
        text = "; ".join(problem.message.strip().splitlines()[0].rstrip(":") for problem in error.errors[:3])
    else:
        text = next(iter(str(error).strip().splitlines()), "")
    return f"{type(error).__name__}: {text}".rstrip(": ")


def count_runs(run_storage: SqlRunStorage) -> list[tuple[str, str, str, int, datetime]]:
    """(location, job, status, runs, oldest creation) per group: one statement, on the run and tag indexes.

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
    return [(value or "", job or "", status, count, _utc(oldest)) for job, status, value, count, oldest in rows]


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


class RunDurations:
    """dagster_run_duration_seconds: each run that finishes after ``since`` is observed once.

    Fed incrementally: every update reads the finished runs updated since the previous
    update (less RUN_OVERLAP_SECONDS) and skips the ids it counted already; only the ids of
    that overlap are kept. Deleted runs change nothing: the counts live here.
    """

    def __init__(self, since: float) -> None:
        self._horizon = since
        self._counted: dict[str, float] = {}  # run id -> when it finished
        self._series: dict[tuple[str, str, str], list[float]] = {}  # bucket counts (not cumulative), sum

    def known_jobs(self, jobs: Iterable[tuple[str, str]]) -> None:
        """Start every (location, job)'s series at 0, so that ``increase()`` sees its first run."""
        for location, job in jobs:
            for status in FINISHED_STATUSES:
                self._series.setdefault((location, job, status.value), [0.0] * (len(RUN_DURATION_BUCKETS) + 2))

    def update(self, instance: dg.DagsterInstance, now: float) -> None:
        horizon = self._horizon
        updated = dg.RunsFilter(statuses=list(FINISHED_STATUSES), updated_after=datetime.fromtimestamp(horizon, UTC))
        for record in instance.get_run_records(filters=updated):
            run = record.dagster_run
            finished = record.end_time or record.update_timestamp.timestamp()
            if finished < horizon or run.run_id in self._counted:
                continue  # finished before the exporter started, or counted already
            self._counted[run.run_id] = finished
            duration = max(0.0, finished - record.start_time) if record.start_time else 0.0
            self.observe((run.tags.get(CODE_LOCATION_TAG, ""), run.job_name, run.status.value), duration)
        self._horizon = max(horizon, now - RUN_OVERLAP_SECONDS)
        self._counted = {run_id: at for run_id, at in self._counted.items() if at >= self._horizon}

    def observe(self, labels: tuple[str, str, str], seconds: float) -> None:
        series = self._series.setdefault(labels, [0.0] * (len(RUN_DURATION_BUCKETS) + 2))
        bucket = next(
            (i for i, bound in enumerate(RUN_DURATION_BUCKETS) if seconds <= bound), len(RUN_DURATION_BUCKETS)
        )
        series[bucket] += 1
        series[-1] += seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "dagster_run_duration_seconds",
            "Runs that finished since the exporter started, by end - start time (0 for runs that never started)",
            labels=("location", "job", "status"),
        )
        bounds = [floatToGoString(bound) for bound in RUN_DURATION_BUCKETS] + ["+Inf"]
        for labels, series in sorted(self._series.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, series[:-1], strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, series[-1])
        return family


class TickFailures:
    """dagster_tick_failures_total: failed schedule and sensor ticks since ``since``, by instigator.

    A tick is written when its evaluation starts and updated to FAILURE in place, so each
    update reads the failed ticks that started up to TICK_OVERLAP_SECONDS before the previous
    update, and counts each tick id once.
    """

    def __init__(self, since: float) -> None:
        self._horizon = since
        self._counted: dict[int, float] = {}  # tick id -> its timestamp
        self._totals: dict[tuple[str, str, str], int] = {}

    def update(self, instance: dg.DagsterInstance, now: float) -> None:
        instigators: dict[str, tuple[str, str, str]] = {}
        for state in instance.all_instigator_state():
            labels = (
                state.origin.repository_origin.code_location_origin.location_name,
                state.instigator_name,
                state.instigator_type.value.lower(),
            )
            self._totals.setdefault(labels, 0)  # from 0, so that increase() sees the first failure
            instigators[state.selector_id] = labels
        storage = instance.schedule_storage
        horizon = self._horizon
        if instigators and isinstance(storage, SqlScheduleStorage):
            query = db.select(JobTickTable.c.id, JobTickTable.c.selector_id, JobTickTable.c.timestamp).where(
                JobTickTable.c.selector_id.in_(sorted(instigators)),  # on the (selector_id, timestamp) index
                JobTickTable.c.status == TickStatus.FAILURE.value,
                JobTickTable.c.timestamp > datetime.fromtimestamp(horizon, UTC),
            )
            for tick_id, selector_id, timestamp in storage.execute(query):
                if tick_id not in self._counted:
                    self._counted[tick_id] = _utc(timestamp).timestamp()
                    self._totals[instigators[selector_id]] += 1
        self._horizon = max(horizon, now - TICK_OVERLAP_SECONDS)
        self._counted = {tick_id: at for tick_id, at in self._counted.items() if at >= self._horizon}

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "dagster_tick_failures",
            "Failed schedule and sensor ticks since the exporter started",
            labels=("location", "instigator", "type"),
        )
        for labels, total in sorted(self._totals.items()):
            family.add_metric(labels, total)
        return family


def try_storage_once(instance: dg.DagsterInstance) -> None:
    """instance_kit.storage waits out a Postgres restart (up to a minute) in every storage call; a
    scrape must answer within Prometheus' scrape timeout instead, so the exporter's storages try
    each call once: that scrape reports the storage down, the next one tries again."""
    for storage in (instance.run_storage, instance.event_log_storage, instance.schedule_storage):
        fail_fast = getattr(storage, "fail_fast", None)  # instance_kit.storage's
        if fail_fast is not None:
            fail_fast()


class _InstanceOpener:
    """Opens the instance in a thread: with Postgres down, DagsterInstance.get() waits for it for
    longer than a scrape may take. Each scrape waits a little for it, then reports storage down."""

    def __init__(self, open_instance: Callable[[], dg.DagsterInstance]) -> None:
        self._open = open_instance
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.instance: dg.DagsterInstance | None = None
        self.error: BaseException | None = None

    def get(self, wait: float) -> dg.DagsterInstance | None:
        with self._lock:
            if self.instance is None and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._run, name="open-instance", daemon=True)
                self._thread.start()
            thread = self._thread
        if self.instance is None and thread is not None:
            thread.join(wait)
        return self.instance

    def _run(self) -> None:
        try:
            instance = self._open()
            try_storage_once(instance)
            self.instance, self.error = instance, None
        except Exception as error:  # reported by the scrape that waits for it
            self.error = error


def _gauge(name: str, documentation: str, value: float | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, labels: Sequence[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class DagsterCollector:
    """The exporter's prometheus_client collector: everything is read when Prometheus scrapes.

    ``open_instance`` is called (in a thread, until it succeeds) to open the instance; the
    histogram and the tick counter count from when the collector was made.
    """

    def __init__(
        self,
        open_instance: Callable[[], dg.DagsterInstance],
        code_servers: Sequence[CodeServer] = (),
        volumes: Sequence[tuple[str, str]] = (),
        clock: Callable[[], float] = time.time,
        open_wait: float = OPEN_WAIT_SECONDS,
    ) -> None:
        self._opener = _InstanceOpener(open_instance)
        self._open_wait = open_wait
        self._code_servers = tuple(code_servers)
        self._volumes = tuple(volumes)
        self._clock = clock
        since = clock()
        self.run_durations = RunDurations(since)
        self.tick_failures = TickFailures(since)
        self._lock = threading.Lock()
        self._probes = ThreadPoolExecutor(
            max_workers=max(1, min(16, len(self._code_servers))), thread_name_prefix="probe"
        )
        self._storage_problem: str | None = None
        self._location_problems: dict[str, str | None] = {}
        self._volume_problems: dict[str, str | None] = {}

    def open(self) -> None:
        """Start opening the instance now rather than at the first scrape."""
        self._opener.get(wait=0)

    @property
    def instance(self) -> dg.DagsterInstance | None:
        return self._opener.instance

    def collect(self) -> Iterable[Metric]:
        with self._lock:  # one scrape at a time: the histogram's and counter's state is shared
            started = time.monotonic()
            probes = [
                self._probes.submit(check_code_server, server.port, server.host, PROBE_TIMEOUT_SECONDS)
                for server in self._code_servers
            ]
            families: list[Metric] = []
            storage_up = self._read_storage(families)
            families += [self.run_durations.family(), self.tick_failures.family()]
            families += self._volume_families()
            families.append(self._location_family(probes, started + PROBE_DEADLINE_SECONDS))
            families.append(
                _gauge("dagster_storage_up", "1 when this scrape could read Dagster's Postgres storage", storage_up)
            )
            families.append(
                _gauge(
                    "dagster_scrape_duration_seconds",
                    "How long this scrape took to collect",
                    time.monotonic() - started,
                )
            )
            return families

    # --- storage -------------------------------------------------------------------------------

    def _read_storage(self, families: list[Metric]) -> int:
        instance = self._opener.get(wait=self._open_wait)
        if instance is None:
            error = self._opener.error
            self._storage_down(f"cannot open the Dagster instance: {_first_line(error) if error else 'still opening'}")
            return 0
        try:
            families += self._read(instance, self._clock())
        except Exception as error:  # Postgres down or restarting, mostly: one line, not a traceback per scrape
            self._storage_down(f"cannot read Dagster's storage: {_first_line(error)}", error)
            return 0
        if self._storage_problem is not None:
            log.info("reading Dagster's storage again")
        self._storage_problem = None
        return 1

    def _storage_down(self, problem: str, error: BaseException | None = None) -> None:
        if problem != self._storage_problem:
            unexpected = error is not None and not isinstance(error, db.exc.SQLAlchemyError | DagsterPostgresException)
            log.warning("%s (storage metrics are left out until it recovers)", problem, exc_info=unexpected)
        self._storage_problem = problem

    def _read(self, instance: dg.DagsterInstance, now: float) -> list[Metric]:
        run_storage = instance.run_storage
        if not isinstance(run_storage, SqlRunStorage):
            raise TypeError(f"the metrics need a SQL run storage, dagster.yaml configures {type(run_storage).__name__}")
        groups = count_runs(run_storage)
        self.run_durations.known_jobs({(location, job) for location, job, *_ in groups})
        self.run_durations.update(instance, now)
        # Only the daemons this instance runs: rows of daemons since turned off stay in the table.
        required = set(instance.get_required_daemon_types())
        heartbeats = {name: beat for name, beat in instance.get_daemon_heartbeats().items() if name in required}
        latest = {
            record.asset_entry.asset_key: record.asset_entry.last_materialization_record
            for record in instance.get_asset_records()
        }
        materialized = {key: event for key, event in latest.items() if event is not None}
        locations = run_locations(run_storage, (event.run_id for event in materialized.values() if event.run_id))
        self.tick_failures.update(instance, now)

        runs = _labelled("dagster_runs", "Runs in Dagster's storage", ("location", "job", "status"))
        queued = [
            (count, oldest) for _, _, status, count, oldest in groups if status == dg.DagsterRunStatus.QUEUED.value
        ]
        for location, job, status, count, _ in sorted(groups):
            runs.add_metric((location, job, status), count)
        oldest_queued = min((oldest for _, oldest in queued), default=None)
        ages = _labelled(
            "dagster_daemon_heartbeat_age_seconds",
            "Seconds since the last heartbeat of each daemon the instance requires",
            ("daemon",),
        )
        for daemon, heartbeat in sorted(heartbeats.items()):
            ages.add_metric((daemon,), max(0.0, now - heartbeat.timestamp))  # an epoch float in the heartbeat
        assets = _labelled(
            "dagster_asset_last_materialization_timestamp_seconds",
            "When each asset was last materialized (Unix time)",
            ("location", "asset"),
        )
        for key, event in sorted(materialized.items(), key=lambda item: item[0].to_user_string()):
            assets.add_metric((locations.get(event.run_id, ""), "/".join(key.path)), event.timestamp)
        return [
            runs,
            _gauge("dagster_run_queue_length", "Runs waiting in the run queue", sum(count for count, _ in queued)),
            _gauge(
                "dagster_run_queue_oldest_age_seconds",
                "Seconds the oldest queued run has waited (0 when the queue is empty)",
                max(0.0, now - oldest_queued.timestamp()) if oldest_queued else 0.0,
            ),
            ages,
            assets,
        ]

    # --- code locations and volumes ----------------------------------------------------------

    def _location_family(self, probes: Sequence[Future[str | None]], deadline: float) -> GaugeMetricFamily:
        family = _labelled(
            "dagster_code_location_loaded",
            "1 when the location's gRPC server serves and its code loaded (workspace.yaml's locations)",
            ("location",),
        )
        for server, probe in zip(self._code_servers, probes, strict=True):
            try:
                problem = probe.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                problem = f"no answer within {PROBE_DEADLINE_SECONDS:g} s"
            except Exception as error:
                problem = _first_line(error)
            previous = self._location_problems.get(server.location, "")  # "": not probed yet
            if problem and problem != previous:
                log.warning(
                    "code location %s (%s:%d) is not loaded: %s", server.location, server.host, server.port, problem
                )
            elif not problem and previous:
                log.info("code location %s is loaded", server.location)
            self._location_problems[server.location] = problem
            family.add_metric((server.location,), 0 if problem else 1)
        return family

    def _volume_families(self) -> list[Metric]:
        size = _labelled("dagster_volume_size_bytes", "Size of the volume's file system", ("volume",))
        used = _labelled("dagster_volume_used_bytes", "Bytes used on the volume's file system", ("volume",))
        ratio = _labelled(
            "dagster_volume_used_ratio",
            "Used / (used + available to unprivileged users), as df's Use%",
            ("volume",),
        )
        for name, path in self._volumes:
            try:
                stats = os.statvfs(path)
            except OSError as error:
                problem = f"{path}: {error.strerror}"
                if problem != self._volume_problems.get(name):
                    log.warning("volume %s: %s", name, problem)
                self._volume_problems[name] = problem
                continue
            self._volume_problems[name] = None
            used_bytes = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
            usable = used_bytes + stats.f_bavail * stats.f_frsize
            size.add_metric((name,), stats.f_blocks * stats.f_frsize)
            used.add_metric((name,), used_bytes)
            ratio.add_metric((name,), used_bytes / usable if usable else 0.0)
        return [size, used, ratio]


# --- HTTP ---------------------------------------------------------------------------------------


def alert_lines(payload: Any) -> list[str]:
    """One log line per alert of an Alertmanager webhook payload (version 4)."""
    alerts = payload.get("alerts") if isinstance(payload, Mapping) else None
    if not isinstance(alerts, list):
        raise ValueError("not an Alertmanager webhook payload: no alerts list")
    lines = []
    for alert in alerts:
        if not isinstance(alert, Mapping):
            continue
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (alert.get("annotations") or {}).items()}
        status = alert.get("status") or payload.get("status") or "unknown"
        details = [f"severity={labels['severity']}"] if "severity" in labels else []
        details += [f"{key}={value}" for key, value in sorted(labels.items()) if key not in ("alertname", "severity")]
        summary = annotations.get("summary") or annotations.get("description") or "(no summary)"
        line = f"ALERT {status} {labels.get('alertname', 'unnamed')} {' '.join(details)}: {summary}"
        if annotations.get("action"):
            line += f" (action: {annotations['action']})"
        lines.append(" ".join(line.split()))  # one line, whatever the annotations hold
    return lines


def make_server(host: str, port: int, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """The exporter's HTTP server (not started): /metrics, /health and /alerts."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "dagster-metrics"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                try:
                    body = generate_latest(registry)
                except Exception:
                    log.exception("the scrape failed")
                    self._reply(500, b"the scrape failed: see the metrics service's log\n")
                    return
                self._reply(200, body, CONTENT_TYPE_LATEST)
            elif path == "/health":
                self._reply(200, b"ok\n")
            else:
                self._reply(404, b"not found: GET /metrics, GET /health, POST /alerts\n")

        def do_POST(self) -> None:
            if urlsplit(self.path).path != "/alerts":
                self._reply(404, b"not found: GET /metrics, GET /health, POST /alerts\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_ALERT_BYTES:
                self._reply(413, b"payload too large\n")
                return
            try:
                lines = alert_lines(json.loads(self.rfile.read(length) or b"null"))
            except ValueError as error:  # JSONDecodeError is one
                self._reply(400, f"{error}\n".encode())
                return
            for line in lines:
                log.info("%s", line)
            self._reply(200, b"ok\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """No access log: Prometheus scrapes every 15 s."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


class _QuietRetries(logging.Filter):
    """dagster-postgres and instance_kit.storage log a warning per connect retry (while the
    instance opens with Postgres down, one a second): the exporter logs the outcome, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "instance_kit.storage" and record.levelno < logging.ERROR:
            return False
        return not record.getMessage().startswith("Retrying failed database connection")


def _stop(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        settings = settings_from_env(env)
    except ConfigError as error:
        print(f"metrics: {error}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.addFilter(_QuietRetries())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    collector = DagsterCollector(dg.DagsterInstance.get, settings.code_servers, settings.volumes)
    registry = CollectorRegistry()
    registry.register(collector)
    try:
        server = make_server(settings.host, settings.port, registry)
    except OSError as error:
        print(f"metrics: cannot listen on {settings.host}:{settings.port}: {error.strerror}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _stop)  # PID 1 in its container: SIGTERM's default would be ignored
    collector.open()
    log.info(
        "serving http://%s:%d/metrics: %d code location(s) (%s), volumes: %s",
        settings.host,
        settings.port,
        len(settings.code_servers),
        ", ".join(server.location for server in settings.code_servers) or "none",
        ", ".join(f"{name}={path}" for name, path in settings.volumes) or "none",
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
