"""Check a service in-process: write its health verdict for Docker, and kill it when it hangs.

    python -m platform_services.watchdog code-server|webserver|daemon|metrics PID   # by entrypoint.sh

The entrypoint starts this watchdog beside the service's main process
(``DAGSTER_WATCHDOG=<kind>``). It has two jobs:

* The health verdict. After every check it writes one line to HEALTH_FILE: ``ok``, or what
  is wrong. Docker's health check (health-status.sh) only reads that file, so a probe starts
  no Python (~13 ms of CPU, not the ~70-135 ms of ``python -m platform_services.healthcheck``, which imports
  grpc or psycopg2 every time). The file's mtime is set to when the verdict expires, so a
  watchdog that died or hangs turns the container unhealthy. The verdict is the healthcheck module's
  exact check: for a code server, gRPC SERVING *and* the user code loaded (else the load error).
* Restarting a hung service. Docker's restart policy acts on exits, not on failing health
  checks, so a process that hangs (deadlocked, stopped) would stay unhealthy forever. After
  the service has answered once, CHECKS_IN_A_ROW failed checks kill PID with SIGKILL, the
  container exits, and ``restart: unless-stopped`` starts it again (a hung code server is
  healthy again in 16-19 s). This asks only "does it answer?": a code server whose code
  failed to import answers, and is not killed (a restart would only import the same code again).

The checks, cheap and in this one process (standard library; grpc or psycopg2 imported once):

* code-server: the gRPC port answers the HTTP/2 connection preface with its SETTINGS frame
  (a stopped or deadlocked server accepts the TCP connection, then says nothing) - the kill
  decision; if it answers, the verdict is platform_services.grpc_probe's SERVING + ListRepositories;
* webserver: GET <path prefix>/server_info answers;
* daemon: its heartbeats in Postgres are fresh (the healthcheck module's check, over one kept
  connection: Dagster's daemons heartbeat every 30 s, so a hung daemon is noticed after
  DAGSTER_DAEMON_HEARTBEAT_TOLERANCE);
* metrics: the metrics service's GET /health answers (METRICS_HOST, METRICS_PORT; it does not
  read Postgres, so a Postgres outage does not restart it).

When: every START_INTERVAL_SECONDS until the service has answered once (so that Docker's next
probe sees it healthy), then every INTERVAL_SECONDS, and RETRY_INTERVAL_SECONDS apart after a
failed check (2 s, as before the verdicts: a service must fail for ~4 s in a row to be killed).

Postgres has no watchdog: killing it is crash-safe (WAL), but a slow checkpoint or a long
query looks like a hang, and restarting it would then fail every run in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

# Standard library only at import: grpc and psycopg2 come in with the checks that need them.
from platform_services import healthcheck

INTERVAL_SECONDS = float(os.environ.get("DAGSTER_WATCHDOG_INTERVAL", "5"))
START_INTERVAL_SECONDS = min(INTERVAL_SECONDS, float(os.environ.get("DAGSTER_WATCHDOG_START_INTERVAL", "0.25")))
RETRY_INTERVAL_SECONDS = min(INTERVAL_SECONDS, float(os.environ.get("DAGSTER_WATCHDOG_RETRY_INTERVAL", "2")))
TIMEOUT_SECONDS = 3.0
CHECKS_IN_A_ROW = int(os.environ.get("DAGSTER_WATCHDOG_CHECKS", "3"))
#: Before the first healthy check, failures are start-up, not a hang (code loading, migrations).
START_GRACE_SECONDS = float(os.environ.get("DAGSTER_WATCHDOG_GRACE", "180"))
HEALTH_FILE = Path(os.environ.get("DAGSTER_HEALTH_FILE", "/tmp/dagster-health"))
#: A verdict outlives the longest gap between two writes: an interval plus a check that times
#: out (a code server's: 3 s preface + 2 x 4 s gRPC), with room to spare.
VERDICT_SECONDS = 2 * INTERVAL_SECONDS + 15

# The client's connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_FRAME = 0x04

#: A check: (the health verdict, the kill decision's problem); None means fine.
Check = Callable[[], tuple[str | None, str | None]]


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


def _same(check: Callable[[], str | None]) -> Check:
    """One check for both: the verdict is whether it answers."""

    def both() -> tuple[str | None, str | None]:
        problem = check()
        return problem, problem

    return both


def check_for(kind: str) -> Check:
    if kind == "code-server":
        port = int(os.environ.get("DAGSTER_GRPC_PORT", "4000"))
        exact = healthcheck.check_code_server

        def code_server() -> tuple[str | None, str | None]:
            # The cheap preface first: a hung server costs its 3 s timeout, not the gRPC calls' too.
            answers = grpc_answers(port)
            return (answers if answers else exact(port)), answers

        return code_server
    if kind == "webserver":
        url = f"{healthcheck.webserver_url(os.environ)}/server_info"
        return _same(
            lambda: healthcheck.check_webserver(url, TIMEOUT_SECONDS, healthcheck.identity_headers("watchdog"))
        )
    if kind == "daemon":
        tolerance = float(os.environ.get("DAGSTER_DAEMON_HEARTBEAT_TOLERANCE", "90"))
        reader = healthcheck.HeartbeatReader(application_name="dagster-daemon-watchdog")
        return _same(lambda: healthcheck.check_daemon(tolerance, reader))
    if kind == "metrics":
        url = healthcheck.metrics_health_url(os.environ)
        return _same(lambda: healthcheck.check_webserver(url, TIMEOUT_SECONDS))
    raise SystemExit(f"watchdog: unknown kind {kind!r}: use code-server, webserver, daemon or metrics")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class VerdictWriter(Protocol):
    def write(self, problem: str | None) -> None: ...


class Verdicts:
    """Writes each verdict to ``path``, atomically (a probe never reads half a line)."""

    def __init__(self, path: Path, seconds: float = VERDICT_SECONDS) -> None:
        self.path, self.seconds, self._warned = path, seconds, False

    def write(self, problem: str | None) -> None:
        temporary = self.path.with_name(f"{self.path.name}.tmp")
        try:
            temporary.write_text("ok\n" if problem is None else " ".join(problem.split()) + "\n")
            expires = time.time() + self.seconds  # the mtime is the expiry: see health-status.sh
            os.utime(temporary, (expires, expires))
            os.replace(temporary, self.path)
        except OSError as error:
            if not self._warned:  # the kill decision does not need the file: go on without it
                print(f"watchdog: cannot write the health verdict to {self.path}: {error}", file=sys.stderr, flush=True)
                self._warned = True


def watch(
    check: Check,
    pid: int,
    what: str,
    verdicts: VerdictWriter | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return when ``pid`` is gone, or after killing it for failing CHECKS_IN_A_ROW checks."""
    verdicts = verdicts or Verdicts(HEALTH_FILE)
    started, up_once, failures = time.monotonic(), False, 0
    while alive(pid):
        sleep(RETRY_INTERVAL_SECONDS if failures else INTERVAL_SECONDS if up_once else START_INTERVAL_SECONDS)
        verdict, problem = check()
        verdicts.write(verdict)
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
        print("usage: python -m platform_services.watchdog code-server|webserver|daemon|metrics PID", file=sys.stderr)
        return 2
    watch(check_for(argv[0]), int(argv[1]), argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
