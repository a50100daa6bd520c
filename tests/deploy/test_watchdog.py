"""deploy/dagster/watchdog.py against real processes: a Dagster gRPC server and an HTTP server,
stopped with SIGSTOP as a hung process would be."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from template_tools.locations import ROOT
from template_tools.stack import free_port, wait_for

WATCHDOG = ROOT / "deploy" / "dagster" / "watchdog.py"
spec = importlib.util.spec_from_file_location("watchdog", WATCHDOG)
assert spec is not None and spec.loader is not None
watchdog = importlib.util.module_from_spec(spec)
spec.loader.exec_module(watchdog)

DEFS = "import dagster as dg\n\n@dg.asset\ndef one() -> int:\n    return 1\n\ndefs = dg.Definitions(assets=[one])\n"


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


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    root = tmp_path_factory.mktemp("location")
    (root / "defs.py").write_text(DEFS)
    port = free_port()
    command = [sys.executable, "-m", "dagster", "api", "grpc", "-p", str(port), "-f", "defs.py"]
    server = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: watchdog.grpc_answers(port) is None, timeout=60, interval=0.2, what="the gRPC server")
    yield server, port
    _stop(server)


def _serving(
    command: list[str], path: str, port: int, what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``command`` (an HTTP server on ``port``), wait until ``path`` answers 200, stop it after."""
    server = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers = watchdog._healthcheck().check_webserver
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


def _watchdog(kind: str, pid: int, **env: str) -> subprocess.Popen[str]:
    settings = {"DAGSTER_WATCHDOG_INTERVAL": "0.2", "DAGSTER_WATCHDOG_CHECKS": "3", **env}
    return subprocess.Popen(
        [sys.executable, str(WATCHDOG), kind, str(pid)],
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


def test_a_hung_server_is_killed_after_the_checks_in_a_row(web_server: tuple[subprocess.Popen[bytes], int]) -> None:
    server, port = web_server
    watcher = _watchdog("webserver", server.pid, WEBSERVER_PORT=str(port), DAGSTER_WATCHDOG_GRACE="0")

    os.kill(server.pid, signal.SIGSTOP)
    _, stderr = watcher.communicate(timeout=60)

    assert server.wait(timeout=10) == -signal.SIGKILL
    assert watcher.returncode == 0
    assert "failed 3 checks in a row" in stderr and f"killing PID {server.pid}" in stderr


def test_start_up_failures_are_not_a_hang_and_the_watchdog_ends_with_its_process() -> None:
    never_listens = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watcher = _watchdog("webserver", never_listens.pid, WEBSERVER_PORT=str(free_port()), DAGSTER_WATCHDOG_GRACE="60")
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            watcher.wait(timeout=3)  # 15 failed checks, all within the grace period
        assert never_listens.poll() is None
    finally:
        never_listens.kill()
        never_listens.wait()

    assert watcher.wait(timeout=10) == 0


def test_an_unknown_kind_is_named() -> None:
    result = subprocess.run(
        [sys.executable, str(WATCHDOG), "scheduler", "1"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0 and "unknown kind 'scheduler'" in result.stderr


HEALTHCHECK = ROOT / "deploy" / "dagster" / "healthcheck.py"


def _healthcheck_script(kind: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), kind], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_the_code_server_health_check_runs_as_a_script(grpc_server: tuple[subprocess.Popen[bytes], int]) -> None:
    _, port = grpc_server

    healthy = _healthcheck_script("code-server", DAGSTER_GRPC_PORT=str(port))
    unhealthy = _healthcheck_script("code-server", DAGSTER_GRPC_PORT=str(free_port()))

    assert (healthy.returncode, healthy.stdout) == (0, "healthy\n")
    assert unhealthy.returncode == 1 and unhealthy.stdout.startswith("unhealthy: gRPC health check failed")


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

    assert watchdog._healthcheck().metrics_health_url(env) == url


@pytest.fixture
def metrics_service(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The real metrics service (instance_kit.metrics), on an instance of its own (SQLite: its
    /health never reads the storage) and a workspace without locations."""
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "workspace.yaml").write_text("load_from: []\n")
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "METRICS_HOST": "127.0.0.1", "METRICS_PORT": str(port)}
    command = [sys.executable, "-m", "instance_kit.metrics"]
    yield from _serving(command, "/health", port, "the metrics service", env=env)


def test_the_metrics_service_is_healthy_until_it_hangs_and_then_killed(
    metrics_service: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = metrics_service
    healthy = _healthcheck_script("metrics", METRICS_HOST="0.0.0.0", METRICS_PORT=str(port))
    elsewhere = _healthcheck_script("metrics", METRICS_PORT=str(free_port()))
    assert (healthy.returncode, healthy.stdout) == (0, "healthy\n")
    assert elsewhere.returncode == 1 and elsewhere.stdout.startswith("unhealthy: http://127.0.0.1:")

    watcher = _watchdog(
        "metrics", server.pid, METRICS_HOST="127.0.0.1", METRICS_PORT=str(port), DAGSTER_WATCHDOG_GRACE="0"
    )
    os.kill(server.pid, signal.SIGSTOP)
    _, stderr = watcher.communicate(timeout=60)

    assert server.wait(timeout=10) == -signal.SIGKILL
    assert watcher.returncode == 0
    assert "the metrics failed 3 checks in a row" in stderr and f"killing PID {server.pid}" in stderr
