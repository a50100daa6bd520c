"""platform_services.watchdog against real processes: a Dagster gRPC server and an HTTP server,
stopped with SIGSTOP as a hung process would be; the verdicts it writes for Docker's health
check (health-status.sh), and when it checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from platform_services import healthcheck, watchdog
from template_tools.locations import ROOT
from testkit.postgres import PASSWORD as POSTGRES_PASSWORD
from testkit.postgres import PostgresServer, running_postgres
from testkit.stack import free_port, wait_for

WATCHDOG = ["-m", "platform_services.watchdog"]

DEFS = "import dagster as dg\n\n@dg.asset\ndef one() -> int:\n    return 1\n\ndefs = dg.Definitions(assets=[one])\n"
BROKEN_DEFS = "import dagster as dg\nimport no_such_module_for_the_test\n\ndefs = dg.Definitions()\n"
HEALTH_STATUS = ROOT / "deploy" / "dagster" / "health-status.sh"


def _freeze(pid: int) -> None:
    """SIGSTOP ``pid`` and wait until every thread of it is stopped (kill returns before they are)."""
    os.kill(pid, signal.SIGSTOP)

    def stopped() -> bool:
        states = [
            (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
        ]
        return all(state in ("T", "t") for state in states)

    wait_for(stopped, timeout=10, interval=0.01, what=f"PID {pid} to stop")


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGCONT)
    process.kill()
    process.wait()


def _grpc_server(root: Path, defs: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A code server as the images run it (--lazy-load-user-code: a load error is served, not fatal)."""
    (root / "defs.py").write_text(defs)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "dagster",
        "api",
        "grpc",
        "--lazy-load-user-code",
        "-p",
        str(port),
        "-f",
        "defs.py",
    ]
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: watchdog.grpc_answers(port) is None, timeout=60, interval=0.2, what="the gRPC server")
    yield server, port
    _stop(server)


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    yield from _grpc_server(tmp_path_factory.mktemp("location"), DEFS)


@pytest.fixture(scope="module")
def broken_grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A code server whose code fails to import: it answers, and reports the error."""
    yield from _grpc_server(tmp_path_factory.mktemp("broken_location"), BROKEN_DEFS)


def _serving(
    command: list[str], path: str, port: int, what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``command`` (an HTTP server on ``port``), wait until ``path`` answers 200, stop it after."""
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers = healthcheck.check_webserver
    wait_for(lambda: answers(f"http://127.0.0.1:{port}{path}") is None, timeout=60, interval=0.1, what=what)
    yield server, port
    if server.poll() is None:
        _stop(server)


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A stand-in webserver whose /server_info answers 200."""
    (tmp_path / "server_info").write_text("{}")
    port = free_port()
    command = [sys.executable, "-m", "http.server", "-b", "127.0.0.1", str(port)]
    yield from _serving(command, "/server_info", port, "the HTTP server", cwd=tmp_path)


def _watchdog(kind: str, pid: int, health_file: Path, **env: str) -> subprocess.Popen[str]:
    settings = {
        "DAGSTER_WATCHDOG_INTERVAL": "0.2",
        "DAGSTER_WATCHDOG_CHECKS": "3",
        "DAGSTER_HEALTH_FILE": str(health_file),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, *WATCHDOG, kind, str(pid)],
        env={**os.environ, **settings},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_grpc_server_answers_until_it_is_stopped(grpc_server: tuple[subprocess.Popen[bytes], int]) -> None:
    server, port = grpc_server
    assert watchdog.grpc_answers(port) is None

    _freeze(server.pid)
    try:
        problem = watchdog.grpc_answers(port)
    finally:
        os.kill(server.pid, signal.SIGCONT)

    assert problem is not None and f"gRPC port {port}" in problem
    # Resumed, it first works through what queued up meanwhile.
    wait_for(lambda: watchdog.grpc_answers(port) is None, timeout=30, interval=0.2, what="the server to answer again")
    assert watchdog.grpc_answers(free_port()) is not None  # nothing listening


def _health_status(health_file: Path) -> subprocess.CompletedProcess[str]:
    """Docker's health check of the Dagster services, on ``health_file``."""
    return subprocess.run(
        ["sh", str(HEALTH_STATUS)],
        env={**os.environ, "DAGSTER_HEALTH_FILE": str(health_file)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def _verdict(health_file: Path) -> str | None:
    try:
        return health_file.read_text()
    except FileNotFoundError:
        return None


def test_a_hung_server_is_killed_after_the_checks_in_a_row(
    web_server: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    server, port = web_server
    health = tmp_path / "health"
    watcher = _watchdog("webserver", server.pid, health, WEBSERVER_PORT=str(port), DAGSTER_WATCHDOG_GRACE="0")
    wait_for(lambda: _verdict(health) == "ok\n", timeout=30, interval=0.1, what="the first verdict")
    assert health.stat().st_mtime > time.time()  # the verdict's expiry
    assert (_health_status(health).returncode, _health_status(health).stdout) == (0, "healthy\n")

    os.kill(server.pid, signal.SIGSTOP)
    _, stderr = watcher.communicate(timeout=60)

    assert server.wait(timeout=10) == -signal.SIGKILL
    assert watcher.returncode == 0
    assert "failed 3 checks in a row" in stderr and f"killing PID {server.pid}" in stderr
    # Until the container exits, Docker's health check says why.
    status = _health_status(health)
    assert status.returncode == 1
    assert status.stdout.startswith(f"unhealthy: http://127.0.0.1:{port}/server_info: "), status.stdout


def test_start_up_failures_are_not_a_hang_and_the_watchdog_ends_with_its_process(tmp_path: Path) -> None:
    never_listens = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = _watchdog(
        "webserver",
        never_listens.pid,
        tmp_path / "health",
        WEBSERVER_PORT=str(free_port()),
        DAGSTER_WATCHDOG_GRACE="60",
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            watcher.wait(timeout=3)  # 15 failed checks, all within the grace period
        assert never_listens.poll() is None
    finally:
        never_listens.kill()
        never_listens.wait()

    assert watcher.wait(timeout=10) == 0
    assert "Connection refused" in (_verdict(tmp_path / "health") or "")  # what Docker's health log shows


def test_a_code_servers_verdict_is_ok_when_it_serves_its_code(
    grpc_server: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    server, port = grpc_server
    health = tmp_path / "health"
    watcher = _watchdog("code-server", server.pid, health, DAGSTER_GRPC_PORT=str(port))
    try:
        wait_for(lambda: _verdict(health) == "ok\n", timeout=30, interval=0.1, what="the code server's verdict")
        assert _health_status(health).returncode == 0
    finally:
        watcher.kill()
        watcher.wait()


def test_a_code_server_whose_code_fails_to_import_is_unhealthy_with_the_error_and_not_killed(
    broken_grpc_server: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    """The verdict is the exact check (SERVING and the code loaded); the kill decision only asks
    whether it answers: a restart would import the same broken code again."""
    server, port = broken_grpc_server
    health = tmp_path / "health"
    watcher = _watchdog("code-server", server.pid, health, DAGSTER_GRPC_PORT=str(port), DAGSTER_WATCHDOG_GRACE="0")
    try:
        wait_for(lambda: "failed to load" in (_verdict(health) or ""), timeout=30, interval=0.1, what="the verdict")
        time.sleep(2)  # ~10 more checks, each one a failed verdict
        assert watcher.poll() is None and server.poll() is None
    finally:
        watcher.kill()
        watcher.wait()

    status = _health_status(health)
    assert status.returncode == 1
    assert status.stdout.startswith("unhealthy: the code location failed to load: ")
    assert "No module named 'no_such_module_for_the_test'" in status.stdout
    assert status.stdout.count("\n") == 1  # one line, as written


def test_an_unknown_kind_is_named() -> None:
    result = subprocess.run([sys.executable, *WATCHDOG, "scheduler", "1"], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "unknown kind 'scheduler'" in result.stderr


HEALTHCHECK = ["-m", "platform_services.healthcheck"]


def _healthcheck_script(kind: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *HEALTHCHECK, kind], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_code_server_health_check_runs_as_a_script(grpc_server: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = grpc_server

    healthy = _healthcheck_script("code-server", DAGSTER_GRPC_PORT=str(port))
    unhealthy = _healthcheck_script("code-server", DAGSTER_GRPC_PORT=str(free_port()))

    assert (healthy.returncode, healthy.stdout) == (0, "healthy\n")
    assert unhealthy.returncode == 1 and unhealthy.stdout.startswith("unhealthy: gRPC health check failed")


def test_the_code_server_health_check_script_names_the_load_error(
    broken_grpc_server: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = broken_grpc_server

    result = _healthcheck_script("code-server", DAGSTER_GRPC_PORT=str(port))

    assert result.returncode == 1
    assert result.stdout.startswith("unhealthy: the code location failed to load: ")
    assert "No module named 'no_such_module_for_the_test'" in result.stdout


@pytest.mark.parametrize(
    ("host", "url"),
    [
        (None, "http://127.0.0.1:9102/health"),
        ("0.0.0.0", "http://127.0.0.1:9102/health"),
        ("metrics.monitoring", "http://metrics.monitoring:9102/health"),
        ("::1", "http://[::1]:9102/health"),
    ],
)
def test_the_metrics_check_asks_the_address_the_service_listens_on(host: str | None, url: str) -> None:
    env = {} if host is None else {"METRICS_HOST": host}

    assert healthcheck.metrics_health_url(env) == url


@pytest.fixture
def metrics_service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The real metrics service (platform_services.metrics), on an instance of its own (SQLite: its
    /health never reads the storage) and a workspace without locations."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "workspace.yaml").write_text("load_from: []\n")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(port)}
    command = [sys.executable, "-m", "platform_services.metrics"]
    yield from _serving(command, "/health", port, "the metrics service", env=env)


def test_the_metrics_service_is_healthy_until_it_hangs_and_then_killed(
    metrics_service: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    server, port = metrics_service
    healthy = _healthcheck_script("metrics", METRICS_HOST="0.0.0.0", METRICS_PORT=str(port))
    elsewhere = _healthcheck_script("metrics", METRICS_PORT=str(free_port()))
    assert (healthy.returncode, healthy.stdout) == (0, "healthy\n")
    assert elsewhere.returncode == 1 and elsewhere.stdout.startswith("unhealthy: http://127.0.0.1:")

    watcher = _watchdog(
        "metrics",
        server.pid,
        tmp_path / "health",
        METRICS_HOST="127.0.0.1",
        METRICS_PORT=str(port),
        DAGSTER_WATCHDOG_GRACE="0",
    )
    os.kill(server.pid, signal.SIGSTOP)
    _, stderr = watcher.communicate(timeout=60)

    assert server.wait(timeout=10) == -signal.SIGKILL
    assert watcher.returncode == 0
    assert "the metrics failed 3 checks in a row" in stderr and f"killing PID {server.pid}" in stderr


# --- when it checks, and what it writes ---------------------------------------------------------


class Recorder:
    """Stands in for the verdict file and for time.sleep: records both, and ends the watch (by
    ending the watched process) after ``sleeps`` sleeps."""

    def __init__(self, process: subprocess.Popen[bytes], sleeps: int) -> None:
        self.process, self.sleeps = process, sleeps
        self.delays: list[float] = []
        self.verdicts: list[str | None] = []

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) > self.sleeps:
            self.process.kill()
            self.process.wait()

    def write(self, problem: str | None) -> None:
        self.verdicts.append(problem)


@pytest.fixture
def intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "START_INTERVAL_SECONDS": 0.25,
        "INTERVAL_SECONDS": 5.0,
        "RETRY_INTERVAL_SECONDS": 2.0,
        "CHECKS_IN_A_ROW": 3,
        "START_GRACE_SECONDS": 180.0,
    }.items():
        monkeypatch.setattr(watchdog, name, value)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def _checks(*results: tuple[str | None, str | None]) -> Callable[[], tuple[str | None, str | None]]:
    queue = list(results)
    return lambda: queue.pop(0)


@pytest.mark.usefixtures("intervals")
def test_it_checks_fast_until_the_service_answers_then_every_interval_and_sooner_after_a_failure(
    sleeper: subprocess.Popen[bytes],
) -> None:
    down = ("refused", "refused")
    up = (None, None)
    recorder = Recorder(sleeper, sleeps=7)

    watchdog.watch(_checks(down, down, up, up, down, down, up, up), sleeper.pid, "webserver", recorder, recorder.sleep)

    assert recorder.delays == [0.25, 0.25, 0.25, 5.0, 5.0, 2.0, 2.0, 5.0]
    assert recorder.verdicts == ["refused", "refused", None, None, "refused", "refused", None, None]


@pytest.mark.usefixtures("intervals")
def test_a_verdict_that_is_not_ok_while_the_service_answers_neither_kills_it_nor_keeps_checking_fast(
    sleeper: subprocess.Popen[bytes],
) -> None:
    """A code server whose code failed to load: it answers, so it is up; its verdict says why not healthy."""
    load_error = ("the code location failed to load: ImportError", None)
    recorder = Recorder(sleeper, sleeps=4)

    watchdog.watch(_checks(*[load_error] * 5), sleeper.pid, "code-server", recorder, recorder.sleep)

    assert recorder.delays == [0.25, 5.0, 5.0, 5.0, 5.0]
    assert recorder.verdicts == [load_error[0]] * 5
    assert sleeper.returncode == -signal.SIGKILL  # by the recorder at the end, not by the watchdog


def test_a_verdict_is_one_line_written_whole_and_expires_after_its_seconds(tmp_path: Path) -> None:
    verdicts = watchdog.Verdicts(tmp_path / "health", seconds=60)

    verdicts.write("cannot read heartbeats from Postgres: connection refused\n\tIs the server running?")

    assert (
        tmp_path / "health"
    ).read_text() == "cannot read heartbeats from Postgres: connection refused Is the server running?\n"
    assert 55 < (tmp_path / "health").stat().st_mtime - time.time() <= 60
    verdicts.write(None)
    assert (tmp_path / "health").read_text() == "ok\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["health"]  # no temporary file left


def test_a_verdict_that_cannot_be_written_is_reported_once_and_the_watch_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdicts = watchdog.Verdicts(tmp_path / "missing" / "health")

    verdicts.write(None)
    verdicts.write("down")

    assert capsys.readouterr().err.count("cannot write the health verdict") == 1


@pytest.mark.parametrize(
    ("content", "expires_in", "code", "output"),
    [
        (None, 0, 1, "unhealthy: no verdict in {file} yet (the watchdog writes one after each check)\n"),
        ("ok\n", 30, 0, "healthy\n"),
        (
            "gRPC port 4000: [Errno 111] Connection refused\n",
            30,
            1,
            "unhealthy: gRPC port 4000: [Errno 111] Connection refused\n",
        ),
        # The watchdog died or hangs: its last verdict, even "ok", no longer counts.
        ("ok\n", -1, 1, "unhealthy: the watchdog's verdict has expired (is the watchdog running?); it said: ok\n"),
    ],
)
def test_the_health_status_script_trusts_only_an_unexpired_ok(
    tmp_path: Path, content: str | None, expires_in: float, code: int, output: str
) -> None:
    health = tmp_path / "health"
    if content is not None:
        health.write_text(content)
        os.utime(health, (time.time() + expires_in, time.time() + expires_in))

    result = _health_status(health)

    assert (result.returncode, result.stdout, result.stderr) == (code, output.format(file=health), "")


# --- the daemon's check, over one kept connection ------------------------------------------------


@pytest.fixture(scope="module")
def heartbeats_db() -> Iterator[PostgresServer]:
    """A real Postgres with a daemon_heartbeats table shaped like Dagster's (naive UTC timestamps)."""
    try:
        with running_postgres() as server:
            server.execute(
                "CREATE TABLE daemon_heartbeats (daemon_type text PRIMARY KEY, daemon_id text, timestamp timestamp)"
            )
            yield server
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture
def daemon_env(heartbeats_db: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(heartbeats_db.port),
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": POSTGRES_PASSWORD,
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_PG_PASSWORD_FILE", raising=False)
    return heartbeats_db


def _beat(server: PostgresServer, seconds_ago: float, *daemons: str) -> None:
    for name in daemons:
        server.execute(
            "INSERT INTO daemon_heartbeats VALUES (%s, 'test', (now() AT TIME ZONE 'UTC') - %s * interval '1 second') "
            "ON CONFLICT (daemon_type) DO UPDATE SET timestamp = EXCLUDED.timestamp",
            (name, seconds_ago),
        )


def test_the_daemon_check_reads_fresh_heartbeats_over_one_kept_connection(daemon_env: PostgresServer) -> None:
    reader = healthcheck.HeartbeatReader(application_name="watchdog-test")
    _beat(daemon_env, 0, *healthcheck.REQUIRED_DAEMONS)
    try:
        assert healthcheck.check_daemon(90, reader) is None
        connection = reader._conn
        _beat(daemon_env, 120, "SENSOR")  # older than the tolerance
        assert healthcheck.check_daemon(90, reader) == "no fresh heartbeat from: SENSOR"
        assert reader._conn is connection  # the same connection, not one per check

        # A lost connection is one failed check; the next one connects again.
        daemon_env.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'watchdog-test'"
        )
        assert (healthcheck.check_daemon(90, reader) or "").startswith("cannot read heartbeats from Postgres: ")
        _beat(daemon_env, 0, "SENSOR")
        assert healthcheck.check_daemon(90, reader) is None
    finally:
        reader.close()


def test_the_daemon_check_gives_up_on_a_postgres_that_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a stopped server does: the connection is accepted, then nothing. Every wait is bounded."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        for name, value in {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(listener.getsockname()[1]),
            "DAGSTER_PG_USER": "dagster",
            "DAGSTER_PG_PASSWORD": "unused",
            "DAGSTER_PG_DB": "dagster",
        }.items():
            monkeypatch.setenv(name, value)
        reader = healthcheck.HeartbeatReader(timeout=1)
        started = time.monotonic()

        problem = healthcheck.check_daemon(90, reader)

    assert time.monotonic() - started < 5
    assert problem == "cannot read heartbeats from Postgres: no answer within 1 s"
