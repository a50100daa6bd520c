"""The exporter's prometheus_client collector: everything is read when Prometheus scrapes.

A scrape reads Dagster's storage (a few statements, see :mod:`.queries`), probes every code
server concurrently meanwhile, and measures the volumes. The run-duration histogram and the
tick-failure counter are kept here, fed by each scrape from where the previous one stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import NamedTuple

import dagster as dg
import sqlalchemy as db
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._core.storage.schedules.sql_schedule_storage import SqlScheduleStorage
from dagster._core.storage.tags import CODE_LOCATION_TAG
from dagster_postgres.utils import DagsterPostgresException
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from platform_services import audit_store
from platform_services.grpc_probe import check_code_server
from platform_services.metrics.queries import count_runs, failed_ticks, run_locations
from platform_services.metrics.settings import CodeServer, Volume

log = logging.getLogger(__name__)

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


class RunLabels(NamedTuple):
    location: str
    job: str
    status: str


class InstigatorLabels(NamedTuple):
    location: str
    instigator: str
    type: str


def _first_line(error: BaseException) -> str:
    """The error in one line (a config error: the first line of each of its first errors, which
    name the setting, e.g. an unset env var of dagster.yaml)."""
    if isinstance(error, dg.DagsterInvalidConfigError) and error.errors:
        text = "; ".join(problem.message.strip().splitlines()[0].rstrip(":") for problem in error.errors[:3])
    else:
        text = next(iter(str(error).strip().splitlines()), "")
    return f"{type(error).__name__}: {text}".rstrip(": ")


class RunDurations:
    """dagster_run_duration_seconds: each run that finishes after ``since`` is observed once.

    Fed incrementally: every update reads the finished runs updated since the previous
    update (less RUN_OVERLAP_SECONDS) and skips the ids it counted already; only the ids of
    that overlap are kept. Deleted runs change nothing: the counts live here.
    """

    def __init__(self, since: float) -> None:
        self._horizon = since
        self._counted: dict[str, float] = {}  # run id -> when it finished
        self._series: dict[RunLabels, list[float]] = {}  # bucket counts (not cumulative), sum

    def known_jobs(self, jobs: Iterable[tuple[str, str]]) -> None:
        """Start every (location, job)'s series at 0, so that ``increase()`` sees its first run."""
        for location, job in jobs:
            for status in FINISHED_STATUSES:
                self._series.setdefault(RunLabels(location, job, status.value), [0.0] * (len(RUN_DURATION_BUCKETS) + 2))

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
            self.observe(RunLabels(run.tags.get(CODE_LOCATION_TAG, ""), run.job_name, run.status.value), duration)
        self._horizon = max(horizon, now - RUN_OVERLAP_SECONDS)
        self._counted = {run_id: at for run_id, at in self._counted.items() if at >= self._horizon}

    def observe(self, labels: tuple[str, str, str], seconds: float) -> None:
        series = self._series.setdefault(RunLabels(*labels), [0.0] * (len(RUN_DURATION_BUCKETS) + 2))
        bucket = next(
            (i for i, bound in enumerate(RUN_DURATION_BUCKETS) if seconds <= bound), len(RUN_DURATION_BUCKETS)
        )
        series[bucket] += 1
        series[-1] += seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "dagster_run_duration_seconds",
            "Runs that finished since the exporter started, by end - start time (0 for runs that never started)",
            labels=RunLabels._fields,
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
        self._totals: dict[InstigatorLabels, int] = {}

    def update(self, instance: dg.DagsterInstance, now: float) -> None:
        instigators: dict[str, InstigatorLabels] = {}
        for state in instance.all_instigator_state():
            labels = InstigatorLabels(
                state.origin.repository_origin.code_location_origin.location_name,
                state.instigator_name,
                state.instigator_type.value.lower(),
            )
            self._totals.setdefault(labels, 0)  # from 0, so that increase() sees the first failure
            instigators[state.selector_id] = labels
        storage = instance.schedule_storage
        horizon = self._horizon
        if instigators and isinstance(storage, SqlScheduleStorage):
            for tick in failed_ticks(storage, instigators, horizon):
                if tick.id not in self._counted:
                    self._counted[tick.id] = tick.timestamp
                    self._totals[instigators[tick.selector_id]] += 1
        self._horizon = max(horizon, now - TICK_OVERLAP_SECONDS)
        self._counted = {tick_id: at for tick_id, at in self._counted.items() if at >= self._horizon}

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "dagster_tick_failures",
            "Failed schedule and sensor ticks since the exporter started",
            labels=InstigatorLabels._fields,
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
        volumes: Sequence[tuple[str, str]] = (),  # (name, path): Volume, or a plain pair
        clock: Callable[[], float] = time.time,
        open_wait: float = OPEN_WAIT_SECONDS,
    ) -> None:
        self._opener = _InstanceOpener(open_instance)
        self._open_wait = open_wait
        self._code_servers = tuple(code_servers)
        self._volumes = tuple(Volume(*volume) for volume in volumes)
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
        self.run_durations.known_jobs({(group.location, group.job) for group in groups})
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
        queued = [group for group in groups if group.status == dg.DagsterRunStatus.QUEUED.value]
        for group in sorted(groups):
            runs.add_metric((group.location, group.job, group.status), group.runs)
        oldest_queued = min((group.oldest for group in queued), default=None)
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
        with run_storage.connect() as connection:
            audited = audit_store.totals(connection)
        mutations = CounterMetricFamily(
            "dagster_audit_mutations",
            "Mutations asked of the webserver since the deployment began, by operation and outcome "
            "(allowed, refused, failed): its audit log's totals",
            labels=("operation", "outcome"),
        )
        for total in audited:
            mutations.add_metric((total.operation, total.outcome), total.total)
        return [
            runs,
            mutations,
            _gauge("dagster_run_queue_length", "Runs waiting in the run queue", sum(group.runs for group in queued)),
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
        for volume in self._volumes:
            try:
                stats = os.statvfs(volume.path)
            except OSError as error:
                problem = f"{volume.path}: {error.strerror}"
                if problem != self._volume_problems.get(volume.name):
                    log.warning("volume %s: %s", volume.name, problem)
                self._volume_problems[volume.name] = problem
                continue
            self._volume_problems[volume.name] = None
            used_bytes = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
            usable = used_bytes + stats.f_bavail * stats.f_frsize
            size.add_metric((volume.name,), stats.f_blocks * stats.f_frsize)
            used.add_metric((volume.name,), used_bytes)
            ratio.add_metric((volume.name,), used_bytes / usable if usable else 0.0)
        return [size, used, ratio]
