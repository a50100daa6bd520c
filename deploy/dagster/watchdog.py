"""Restart a hung service: kill its main process when it stops answering, so Docker restarts it.

    python watchdog.py code-server|webserver|daemon|metrics PID     # started by entrypoint.sh

Docker's restart policy acts on exits, not on failing health checks, so a process
that hangs (deadlocked, stopped) would stay unhealthy forever. The entrypoint starts
this watchdog beside the service's main process (``DAGSTER_WATCHDOG=<kind>``); after
the service has been up once, CHECKS_IN_A_ROW failed checks, INTERVAL_SECONDS apart,
kill PID with SIGKILL, the container exits, and ``restart: unless-stopped`` starts it
again (a hung code server is back in ~15 s). The checks ask only "does it answer?",
cheaply (standard library, one small process):

* code-server: the gRPC port answers the HTTP/2 connection preface with its SETTINGS
  frame (a stopped or deadlocked server accepts the TCP connection, then says nothing);
* webserver: GET <path prefix>/server_info answers;
* daemon: its heartbeats in Postgres are fresh (healthcheck.py's check: Dagster's daemons
  heartbeat every 30 s, so a hung daemon is noticed after DAGSTER_DAEMON_HEARTBEAT_TOLERANCE);
* metrics: the metrics service's GET /health answers (METRICS_HOST, METRICS_PORT; it does not
  read Postgres, so a Postgres outage does not restart it).

Postgres has no watchdog: killing it is crash-safe (WAL), but a slow checkpoint or a long
query looks like a hang, and restarting it would then fail every run in flight.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

INTERVAL_SECONDS = float(os.environ.get("DAGSTER_WATCHDOG_INTERVAL", "2"))
TIMEOUT_SECONDS = 3.0
CHECKS_IN_A_ROW = int(os.environ.get("DAGSTER_WATCHDOG_CHECKS", "3"))
#: Before the first healthy check, failures are start-up, not a hang (code loading, migrations).
START_GRACE_SECONDS = float(os.environ.get("DAGSTER_WATCHDOG_GRACE", "180"))

# The client's connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_FRAME = 0x04


def grpc_answers(port: int, host: str = "127.0.0.1") -> str | None:
    """None when the server at ``port`` sends its SETTINGS frame, else what went wrong."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_SECONDS) as connection:
            connection.sendall(HTTP2_PREFACE)
            header = connection.recv(9)
    except OSError as error:
        return f"gRPC port {port}: {error or type(error).__name__}"
    if len(header) < 9 or header[3] != SETTINGS_FRAME:
        return f"gRPC port {port} did not answer the HTTP/2 preface"
    return None


def _healthcheck() -> Any:
    """healthcheck.py beside this file: its webserver, daemon and metrics checks (it imports grpc and
    psycopg2 only inside the checks that need them)."""
    spec = importlib.util.spec_from_file_location("healthcheck", Path(__file__).with_name("healthcheck.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_for(kind: str) -> Callable[[], str | None]:
    if kind == "code-server":
        port = int(os.environ.get("DAGSTER_GRPC_PORT", "4000"))
        return lambda: grpc_answers(port)
    if kind == "webserver":
        host = os.environ.get("WEBSERVER_HOST", "127.0.0.1")
        url = f"http://{host}:{os.environ.get('WEBSERVER_PORT', '3000')}"
        prefix = os.environ.get("DAGSTER_WEBSERVER_PATH_PREFIX", "").rstrip("/")
        check_webserver = _healthcheck().check_webserver
        return lambda: check_webserver(f"{url}{prefix}/server_info", TIMEOUT_SECONDS)
    if kind == "daemon":
        tolerance = float(os.environ.get("DAGSTER_DAEMON_HEARTBEAT_TOLERANCE", "90"))
        check_daemon = _healthcheck().check_daemon
        return lambda: check_daemon(tolerance)
    if kind == "metrics":
        healthcheck = _healthcheck()
        url = healthcheck.metrics_health_url(os.environ)
        return lambda: healthcheck.check_webserver(url, TIMEOUT_SECONDS)
    raise SystemExit(f"watchdog: unknown kind {kind!r}: use code-server, webserver, daemon or metrics")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def watch(check: Callable[[], str | None], pid: int, what: str) -> None:
    """Return when ``pid`` is gone, or after killing it for failing CHECKS_IN_A_ROW checks."""
    started, up_once, failures = time.monotonic(), False, 0
    while alive(pid):
        time.sleep(INTERVAL_SECONDS)
        problem = check()
        if problem is None:
            up_once, failures = True, 0
            continue
        if not up_once and time.monotonic() - started < START_GRACE_SECONDS:
            continue
        failures += 1
        if failures >= CHECKS_IN_A_ROW:
            print(
                f"watchdog: the {what} failed {failures} checks in a row ({problem}): killing PID {pid} "
                "so that Docker restarts the container",
                file=sys.stderr,
                flush=True,
            )
            os.kill(pid, signal.SIGKILL)
            return


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: watchdog.py code-server|webserver|daemon|metrics PID", file=sys.stderr)
        return 2
    watch(check_for(argv[0]), int(argv[1]), argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
