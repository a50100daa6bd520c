"""platform_services.metrics against a real Postgres server, real runs and real gRPC code servers.

Runs are either executed (``execute_in_process``, ``dg.materialize``) with the
``dagster/code_location`` tag a launched run carries, or stored the way the webserver and
the daemon store a launched run (``instance.add_run`` with its remote origin and that tag).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    GrpcServerCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorTick,
    ScheduleInstigatorData,
    TickData,
    TickStatus,
)
from dagster._daemon.types import DaemonHeartbeat
from dagster._utils.error import SerializableErrorInfo
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from platform_services.grpc_probe import check_code_server
from platform_services.janitor.retention import delete_old_runs
from platform_services.metrics.__main__ import main
from platform_services.metrics.collector import DagsterCollector, RunDurations
from platform_services.metrics.http import make_server
from platform_services.metrics.settings import CodeServer, settings_from_env
from testkit.postgres import PostgresServer, running_postgres
from testkit.stack import free_port, wait_for

LOCATION_TAG = "dagster/code_location"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dg.asset
def numbers() -> list[int]:
    return [1, 2, 3]


@dg.asset(key_prefix=["raw"])
def events() -> int:
    return 1


@dg.op
def fails() -> None:
    raise ValueError("bad data")


@dg.job(executor_def=dg.in_process_executor)
def failing_job() -> None:
    fails()


def storage_config(server: PostgresServer) -> dict[str, object]:
    """dagster.yaml's storage, as the deployment configures it (the pooled storage)."""
    config = {"postgres_db": {**server.db_config, "params": {"connect_timeout": 5}}}
    return {"custom": {"module": "instance_kit.storage", "class": "PooledPostgresStorage", "config": config}}


def open_instance(home: Path, server: PostgresServer) -> dg.DagsterInstance:
    (home / "dagster.yaml").write_text(
        yaml.safe_dump({"storage": storage_config(server), "telemetry": {"enabled": False}})
    )
    return dg.DagsterInstance.from_config(str(home))


def wipe(instance: dg.DagsterInstance) -> None:
    instance.wipe()  # runs and event logs; the server is shared by the session's tests
    assert instance.schedule_storage is not None
    instance.schedule_storage.wipe()


@pytest.fixture
def instance(tmp_path: Path, postgres: PostgresServer) -> Iterator[dg.DagsterInstance]:
    instance = open_instance(tmp_path, postgres)
    wipe(instance)
    yield instance
    wipe(instance)
    instance.dispose()


def repository_origin(location: str) -> RemoteRepositoryOrigin:
    return RemoteRepositoryOrigin(
        GrpcServerCodeLocationOrigin(host=location, port=4000, location_name=location), "__repository__"
    )


def add_launched_run(
    instance: dg.DagsterInstance, location: str, job: str, status: dg.DagsterRunStatus = dg.DagsterRunStatus.SUCCESS
) -> str:
    """A run stored as the webserver or daemon stores one launched from ``location``."""
    run = dg.DagsterRun(
        job_name=job,
        run_id=str(uuid.uuid4()),
        status=status,
        tags={LOCATION_TAG: location},
        remote_job_origin=RemoteJobOrigin(repository_origin(location), job),
    )
    instance.add_run(run)
    return run.run_id


def execute_failing(instance: dg.DagsterInstance, location: str) -> str:
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False, tags={LOCATION_TAG: location})
    assert not result.success
    return result.run_id


def backdate(postgres: PostgresServer, run_ids: list[str], seconds: float) -> None:
    """Make runs ``seconds`` older (their creation time: what retention and the queue age read)."""
    postgres.execute(
        "UPDATE runs SET create_timestamp = create_timestamp - %s WHERE run_id = ANY(%s)",
        (timedelta(seconds=seconds), run_ids),
    )


def scrape(collector: DagsterCollector) -> Samples:
    """One scrape, rendered and parsed again as Prometheus would: {(sample name, labels): value}."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (sample, labels), v in samples.items() if sample == name}


def failure_count(samples: Samples, location: str) -> float | None:
    return value(samples, "dagster_run_duration_seconds_count", location=location, job="failing_job", status="FAILURE")


# --- runs, queue, daemons, assets, ticks ------------------------------------------------------


def test_runs_queue_heartbeats_and_assets_of_two_locations(
    instance: dg.DagsterInstance, postgres: PostgresServer
) -> None:
    for status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
        add_launched_run(instance, "team_a", "daily_job", status)
    oldest = add_launched_run(instance, "team_b", "export_job", dg.DagsterRunStatus.QUEUED)
    add_launched_run(instance, "team_b", "export_job", dg.DagsterRunStatus.QUEUED)
    add_launched_run(instance, "team_b", "export_job", dg.DagsterRunStatus.STARTED)
    backdate(postgres, [oldest], seconds=600)
    assets = dg.materialize([numbers, events], instance=instance, tags={LOCATION_TAG: "team_b"})
    materialized_at = {
        key: event.timestamp
        for key, event in instance.get_latest_materialization_events(
            [dg.AssetKey("numbers"), dg.AssetKey(["raw", "events"])]
        ).items()
        if event
    }
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 42, "SENSOR", "daemon-1", None))
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 2, "SCHEDULER", "daemon-1", None))
    # A daemon type the instance no longer runs (an old version's, or one turned off): its row stays.
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time() - 9999, "RETIRED", "daemon-0", None))

    samples = scrape(DagsterCollector(lambda: instance))

    assert value(samples, "dagster_storage_up") == 1
    assert series(samples, "dagster_runs") == {
        frozenset({("location", "team_a"), ("job", "daily_job"), ("status", "SUCCESS")}): 2,
        frozenset({("location", "team_a"), ("job", "daily_job"), ("status", "FAILURE")}): 1,
        frozenset({("location", "team_b"), ("job", "export_job"), ("status", "QUEUED")}): 2,
        frozenset({("location", "team_b"), ("job", "export_job"), ("status", "STARTED")}): 1,
        frozenset({("location", "team_b"), ("job", "__ephemeral_asset_job__"), ("status", "SUCCESS")}): 1,
    }
    assert value(samples, "dagster_run_queue_length") == 2
    assert 595 <= (value(samples, "dagster_run_queue_oldest_age_seconds") or 0) <= 700
    assert 41 <= (value(samples, "dagster_daemon_heartbeat_age_seconds", daemon="SENSOR") or 0) < 50
    assert 1 <= (value(samples, "dagster_daemon_heartbeat_age_seconds", daemon="SCHEDULER") or 0) < 10
    assert value(samples, "dagster_daemon_heartbeat_age_seconds", daemon="RETIRED") is None
    assert series(samples, "dagster_asset_last_materialization_timestamp_seconds") == {
        frozenset({("location", "team_b"), ("asset", "numbers")}): pytest.approx(
            materialized_at[dg.AssetKey("numbers")]
        ),
        frozenset({("location", "team_b"), ("asset", "raw/events")}): pytest.approx(
            materialized_at[dg.AssetKey(["raw", "events"])]
        ),
    }
    assert assets.success
    assert 0 < (value(samples, "dagster_scrape_duration_seconds") or 0) < 5


def test_an_empty_queue_has_age_0(instance: dg.DagsterInstance) -> None:
    add_launched_run(instance, "team_a", "daily_job")

    samples = scrape(DagsterCollector(lambda: instance))

    assert value(samples, "dagster_run_queue_length") == 0
    assert value(samples, "dagster_run_queue_oldest_age_seconds") == 0


def test_a_run_that_fails_after_the_start_is_counted_once_and_retention_does_not_lower_it(
    instance: dg.DagsterInstance, postgres: PostgresServer
) -> None:
    before = execute_failing(instance, "team_a")  # finished before the exporter started: not counted
    collector = DagsterCollector(lambda: instance)
    first = scrape(collector)
    failed = execute_failing(instance, "team_a")
    add_launched_run(instance, "team_b", "daily_job", dg.DagsterRunStatus.QUEUED)  # not finished: not counted

    second, third = scrape(collector), scrape(collector)

    assert failure_count(first, "team_a") == 0  # the series exists before the first failure
    assert failure_count(second, "team_a") == 1 and failure_count(third, "team_a") == 1
    duration = instance.get_run_records(dg.RunsFilter(run_ids=[failed]))[0]
    assert duration.start_time and duration.end_time
    assert value(third, "dagster_run_duration_seconds_sum", location="team_a", job="failing_job", status="FAILURE") == (
        pytest.approx(duration.end_time - duration.start_time)
    )
    for bucket in ("1.0", "+Inf"):  # cumulative: the smallest bucket that holds it, and every larger one
        labels = {"location": "team_a", "job": "failing_job", "status": "FAILURE", "le": bucket}
        assert value(third, "dagster_run_duration_seconds_bucket", **labels) == 1
    assert not any(
        dict(labels).get("status") == "QUEUED" for labels in series(third, "dagster_run_duration_seconds_count")
    )

    backdate(postgres, [before, failed], seconds=200 * 86400)
    sweep = delete_old_runs(instance, retention_days=90)
    after_retention = scrape(collector)

    assert set(sweep.deleted) == {before, failed}
    assert failure_count(after_retention, "team_a") == 1
    assert value(after_retention, "dagster_runs", location="team_a", job="failing_job", status="FAILURE") is None


def start_tick(instance: dg.DagsterInstance, state: InstigatorState, timestamp: float) -> InstigatorTick:
    """As the sensor and schedule daemons record a tick: STARTED when its evaluation starts."""
    origin = state.origin
    data = TickData(
        origin.get_id(),
        origin.instigator_name,
        state.instigator_type,
        TickStatus.STARTED,
        timestamp,
        selector_id=state.selector_id,
    )
    return instance.create_tick(data)


def fail_tick(instance: dg.DagsterInstance, tick: InstigatorTick) -> None:
    """...and updated in place when the evaluation fails."""
    error = SerializableErrorInfo("ValueError: the source API answered 500", [], "ValueError")
    instance.update_tick(tick.with_status(TickStatus.FAILURE, error=error))


def test_failed_ticks_are_counted_from_0_once_each(instance: dg.DagsterInstance) -> None:
    sensor_origin = RemoteInstigatorOrigin(repository_origin("team_a"), "source_change_sensor")
    sensor = instance.add_instigator_state(
        InstigatorState(sensor_origin, InstigatorType.SENSOR, InstigatorStatus.RUNNING)
    )
    schedule_origin = RemoteInstigatorOrigin(repository_origin("team_b"), "daily_schedule")
    schedule_data = ScheduleInstigatorData("0 6 * * *", time.time())
    instance.add_instigator_state(
        InstigatorState(schedule_origin, InstigatorType.SCHEDULE, InstigatorStatus.RUNNING, schedule_data)
    )
    fail_tick(instance, start_tick(instance, sensor, time.time() - 60))  # before the exporter started: not counted
    collector = DagsterCollector(lambda: instance)
    first = scrape(collector)

    tick = start_tick(instance, sensor, time.time())
    while_started = scrape(collector)
    fail_tick(instance, tick)
    second, third = scrape(collector), scrape(collector)

    labels = {"location": "team_a", "instigator": "source_change_sensor", "type": "sensor"}
    assert value(first, "dagster_tick_failures_total", **labels) == 0
    assert (
        value(first, "dagster_tick_failures_total", location="team_b", instigator="daily_schedule", type="schedule")
        == 0
    )
    assert value(while_started, "dagster_tick_failures_total", **labels) == 0
    assert value(second, "dagster_tick_failures_total", **labels) == 1
    assert value(third, "dagster_tick_failures_total", **labels) == 1


# --- code locations ---------------------------------------------------------------------------

DEFS = "import dagster as dg\n\n@dg.asset\ndef one() -> int:\n    return 1\n\ndefs = dg.Definitions(assets=[one])\n"


@pytest.fixture(scope="module")
def code_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Real `dagster api grpc` servers: one whose code loads, one whose code fails to import."""
    root = tmp_path_factory.mktemp("locations")
    (root / "good.py").write_text(DEFS)
    (root / "broken.py").write_text("raise ImportError('a missing dependency')\n")
    ports = {"good": free_port(), "broken": free_port()}
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "api",
                "grpc",
                "--lazy-load-user-code",
                "-p",
                str(port),
                "-f",
                f"{name}.py",
            ],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, port in ports.items()
    ]
    try:
        for port in ports.values():
            wait_for(functools.partial(_serving, port), timeout=60, interval=0.2, what="the gRPC server")
        yield ports
    finally:
        for server in servers:
            server.kill()
            server.wait()


def _serving(port: int) -> bool:
    problem = check_code_server(port, "127.0.0.1", 1.0)
    return problem is None or "failed to load" in problem


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts connections and never answers, as a stopped (SIGSTOP) server does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_each_location_is_probed_and_a_hung_one_does_not_stall_the_scrape(
    instance: dg.DagsterInstance, code_servers: dict[str, int], hung_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    servers = [
        CodeServer("simple_ops", "127.0.0.1", code_servers["good"]),
        CodeServer("broken_code", "127.0.0.1", code_servers["broken"]),
        CodeServer("not_running", "127.0.0.1", free_port()),
        CodeServer("hung", "127.0.0.1", hung_port),
    ]
    collector = DagsterCollector(lambda: instance, servers)

    with caplog.at_level(logging.INFO, logger="platform_services.metrics"):
        started = time.monotonic()
        first = scrape(collector)
        elapsed = time.monotonic() - started
        second = scrape(collector)

    assert series(first, "dagster_code_location_loaded") == {
        frozenset({("location", "simple_ops")}): 1,
        frozenset({("location", "broken_code")}): 0,
        frozenset({("location", "not_running")}): 0,
        frozenset({("location", "hung")}): 0,
    }
    assert series(second, "dagster_code_location_loaded") == series(first, "dagster_code_location_loaded")
    assert elapsed < 8  # the hung server costs its two 1.5 s gRPC deadlines, not a stalled scrape
    logged = [record.getMessage() for record in caplog.records]
    assert sum("is not loaded" in line for line in logged) == 3  # once per location, not per scrape
    assert any("broken_code" in line and "failed to load" in line for line in logged)


# --- Postgres down ----------------------------------------------------------------------------


def test_postgres_down_answers_quickly_with_storage_up_0_and_logs_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_postgres() as server:
        instance = open_instance(tmp_path, server)
        add_launched_run(instance, "team_a", "daily_job")
        collector = DagsterCollector(
            lambda: instance, [CodeServer("simple_ops", "127.0.0.1", free_port())], [("storage", str(tmp_path))]
        )
        registry = CollectorRegistry()
        registry.register(collector)
        http = make_server("127.0.0.1", 0, registry)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{http.server_address[1]}"
        try:
            assert value(scrape(collector), "dagster_storage_up") == 1
            server.pg_ctl("stop", "-m", "fast")
            with caplog.at_level(logging.INFO, logger="platform_services.metrics"):
                started = time.monotonic()
                down = scrape(collector)
                elapsed = time.monotonic() - started
                scrape(collector)
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    health = (response.status, response.read())
                # Postgres gone in the middle of a scrape: the exporter's storage calls try once.
                started = time.monotonic()
                with pytest.raises(Exception, match=r"[Cc]onnection refused"):
                    instance.get_daemon_heartbeats()
                mid_scrape = time.monotonic() - started
                storage_lines = [r.getMessage() for r in caplog.records if "storage" in r.getMessage()]
                server.pg_ctl("start")
                up = scrape(collector)
        finally:
            http.shutdown()
            http.server_close()
            instance.dispose()

    assert value(down, "dagster_storage_up") == 0
    assert elapsed < 5 and mid_scrape < 5
    assert value(down, "dagster_code_location_loaded", location="simple_ops") == 0
    assert (value(down, "dagster_volume_size_bytes", volume="storage") or 0) > 0
    assert series(down, "dagster_runs") == {}
    assert health == (200, b"ok\n")
    assert len(storage_lines) == 1 and "cannot read Dagster's storage: OperationalError" in storage_lines[0]
    assert not any(record.exc_info for record in caplog.records)
    assert value(up, "dagster_storage_up") == 1
    assert value(up, "dagster_runs", location="team_a", job="daily_job", status="SUCCESS") == 1
    assert any("reading Dagster's storage again" in record.getMessage() for record in caplog.records)


# --- volumes ----------------------------------------------------------------------------------


def test_volume_usage_is_that_of_the_file_system(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    samples = scrape(DagsterCollector(lambda: instance, volumes=[("storage", str(tmp_path))]))

    stats = os.statvfs(tmp_path)
    size, used = (
        value(samples, "dagster_volume_size_bytes", volume="storage"),
        value(samples, "dagster_volume_used_bytes", volume="storage"),
    )
    assert size == stats.f_blocks * stats.f_frsize
    assert used is not None and 0 < used <= size
    assert 0 < (value(samples, "dagster_volume_used_ratio", volume="storage") or 0) <= 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root, to act as two users")
def test_a_private_folder_of_another_user_can_be_measured(tmp_path: Path) -> None:
    """The postgres volume: mode 0700, owned by Postgres' uid, mounted read-only in the exporter."""
    parent = Path(f"/tmp/metrics-volume-{uuid.uuid4().hex}")
    private = parent / "data"
    private.mkdir(parents=True, mode=0o700)
    parent.chmod(0o755)
    try:
        # stat -f: the statfs(2) call behind os.statvfs (the venv's python is not readable by nobody).
        statfs = subprocess.run(
            ["runuser", "-u", "nobody", "--", "stat", "-f", "-c", "%b", str(private)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        listing = subprocess.run(["runuser", "-u", "nobody", "--", "ls", str(private)], capture_output=True, timeout=30)
        blocks = os.statvfs(parent).f_blocks
    finally:
        shutil.rmtree(parent)

    assert listing.returncode != 0  # the folder is private to its owner, its file system's size is not
    assert statfs.returncode == 0 and int(statfs.stdout) == blocks, statfs.stderr


# --- settings ---------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, postgres: PostgresServer) -> Path:
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"storage": storage_config(postgres)}))
    location = {"grpc_server": {"host": "simple_ops", "port": 4000, "location_name": "simple_ops"}}
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump({"load_from": [location]}))
    return tmp_path


def test_the_settings_default_to_dagster_home(home: Path) -> None:
    settings = settings_from_env({"DAGSTER_HOME": str(home), "METRICS_VOLUMES": f"storage={home}, exports={home}"})

    assert (settings.host, settings.port) == ("0.0.0.0", 9102)
    assert settings.code_servers == (CodeServer("simple_ops", "simple_ops", 4000),)
    assert settings.volumes == (("storage", str(home)), ("exports", str(home)))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"METRICS_PORT": "ninety"}, "METRICS_PORT='ninety' is not a port"),
        ({"METRICS_PORT": "70000"}, "METRICS_PORT='70000' is not a port"),
        ({"METRICS_VOLUMES": "storage=/tmp,exports"}, "METRICS_VOLUMES: 'exports' is not name=path"),
        ({"METRICS_VOLUMES": "storage=/no/such/folder"}, "METRICS_VOLUMES: storage=/no/such/folder"),
        ({"METRICS_WORKSPACE": "/no/such/workspace.yaml"}, "METRICS_WORKSPACE='/no/such/workspace.yaml' is not a file"),
        ({"DAGSTER_HOME": "/no/such/home"}, "DAGSTER_HOME='/no/such/home' has no dagster.yaml"),
    ],
)
def test_a_bad_setting_exits_2_naming_it(
    home: Path, env: dict[str, str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main({"DAGSTER_HOME": str(home), **env}) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err


def test_python_m_exits_2_on_a_bad_setting(home: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(home), "METRICS_PORT": "http"}
    result = subprocess.run(
        [sys.executable, "-m", "platform_services.metrics"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "metrics: METRICS_PORT='http' is not a port: set a number from 1 to 65535 (default 9102)"
    ]


# --- HTTP -------------------------------------------------------------------------------------

ALERTS = {
    "version": "4",
    "status": "firing",
    "receiver": "operators",
    "groupLabels": {"alertname": "DagsterDaemonDown"},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DagsterDaemonDown", "severity": "critical", "daemon": "SENSOR"},
            "annotations": {
                "summary": "Dagster's SENSOR daemon has not heartbeated for 1m 30s",
                "action": "docker compose ps daemon; docker compose logs daemon",
            },
            "startsAt": "2026-12-01T10:00:00Z",
        },
        {
            "status": "resolved",
            "labels": {"alertname": "DagsterVolumeAlmostFull", "severity": "warning", "volume": "storage"},
            "annotations": {"summary": "The storage volume is 81% full\n(second line)"},
            "startsAt": "2026-12-01T09:00:00Z",
        },
    ],
}


@pytest.fixture
def http_url(instance: dg.DagsterInstance) -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(DagsterCollector(lambda: instance))
    server = make_server("127.0.0.1", 0, registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _request(url: str, data: bytes | None = None) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_the_endpoints(http_url: str, instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture) -> None:
    add_launched_run(instance, "team_a", "daily_job")

    status, content_type, body = _request(f"{http_url}/metrics")
    assert (status, content_type.split(";")[0]) == (200, "text/plain")
    names = {family.name for family in text_string_to_metric_families(body.decode())}
    assert {"dagster_runs", "dagster_run_duration_seconds", "dagster_tick_failures", "dagster_storage_up"} <= names
    assert _request(f"{http_url}/health")[::2] == (200, b"ok\n")
    assert _request(f"{http_url}/nothing")[0] == 404
    assert _request(f"{http_url}/metrics", data=b"{}")[0] == 404  # POST
    assert _request(f"{http_url}/alerts", data=b"not json")[0] == 400

    with caplog.at_level(logging.INFO, logger="platform_services.metrics"):
        assert _request(f"{http_url}/alerts", data=json.dumps(ALERTS).encode())[::2] == (200, b"ok\n")

    assert [record.getMessage() for record in caplog.records] == [
        "ALERT firing DagsterDaemonDown severity=critical daemon=SENSOR: Dagster's SENSOR daemon has not "
        "heartbeated for 1m 30s (action: docker compose ps daemon; docker compose logs daemon)",
        "ALERT resolved DagsterVolumeAlmostFull severity=warning volume=storage: The storage volume is 81% full "
        "(second line)",
    ]


def test_the_histogram_buckets_are_cumulative() -> None:
    durations = RunDurations(since=time.time())
    for seconds in (0.5, 3, 3, 4000, 100_000):
        durations.observe(("team_a", "daily_job", "SUCCESS"), seconds)

    samples = durations.family().samples
    buckets = {sample.labels["le"]: sample.value for sample in samples if sample.name.endswith("_bucket")}
    assert (buckets["1.0"], buckets["2.5"], buckets["5.0"], buckets["3600.0"], buckets["7200.0"]) == (1, 1, 3, 3, 4)
    assert (buckets["21600.0"], buckets["+Inf"]) == (4, 5)
    assert [sample.value for sample in samples if sample.name.endswith("_sum")] == [0.5 + 3 + 3 + 4000 + 100_000]


def test_an_instance_that_cannot_open_yet_is_storage_down_not_a_stalled_scrape() -> None:
    release = threading.Event()

    def opens_slowly() -> dg.DagsterInstance:  # as DagsterInstance.get() retrying while Postgres is down
        release.wait(30)
        raise RuntimeError("Postgres is down")

    try:
        started = time.monotonic()
        samples = scrape(DagsterCollector(opens_slowly, open_wait=0.5))
        elapsed = time.monotonic() - started
    finally:
        release.set()

    assert value(samples, "dagster_storage_up") == 0
    assert elapsed < 2.5
