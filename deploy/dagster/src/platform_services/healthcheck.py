"""Container health checks for the Dagster services: exact, and cheap enough to run every few seconds.

    python -m platform_services.healthcheck code-server   # gRPC SERVING *and* the user code loaded
    python -m platform_services.healthcheck webserver     # GET <path prefix>/server_info answers 200
    python -m platform_services.healthcheck daemon        # this container's daemon heartbeats are fresh
    python -m platform_services.healthcheck metrics       # the metrics service's GET /health answers 200

Why not the stock commands: `dagster api grpc-health-check` reports SERVING even
when the location's code failed to import (the error only shows in
ListRepositories), and `dagster-daemon liveness-check` tolerates 30 minutes
without a heartbeat by default; both also import all of Dagster (~2 s of CPU per
call). This module imports only grpc (through platform_services.grpc_probe, which the
metrics service shares) or psycopg2 (~0.1-0.2 s).
Exit 0 when healthy; otherwise exit 1 with one line saying what is wrong.

In compose, Docker does not run this module: each service's watchdog (platform_services.watchdog) runs
these checks in its own long-lived process and writes the verdict that Docker's health
check reads (health-status.sh), so a probe starts no Python. The CLI stays for operators
and for a service without a watchdog.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from platform_services import grpc_probe  # imports grpc only when it probes

TIMEOUT_SECONDS = 4

# Daemons whose heartbeat must be fresh (names as stored by dagster-daemon).
REQUIRED_DAEMONS = ("SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING")


def check_code_server(port: int, host: str = "127.0.0.1") -> str | None:
    """None when the gRPC server is SERVING and its code loaded, else the problem."""
    return grpc_probe.check_code_server(port, host, TIMEOUT_SECONDS)


def metrics_health_url(env: Mapping[str, str]) -> str:
    """The metrics service's /health URL, from its own METRICS_HOST / METRICS_PORT."""
    host = env.get("METRICS_HOST", "")
    if host in ("", "0.0.0.0", "::"):  # it listens everywhere: ask it locally
        host = "127.0.0.1"
    elif ":" in host:  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{env.get('METRICS_PORT', '9102')}/health"


def webserver_url(env: Mapping[str, str]) -> str:
    """The webserver's root, from its own WEBSERVER_HOST (the address it listens on), port and path prefix."""
    host = env.get("WEBSERVER_HOST", "127.0.0.1")
    prefix = env.get("DAGSTER_WEBSERVER_PATH_PREFIX", "").rstrip("/")
    return f"http://{host}:{env.get('WEBSERVER_PORT', '3000')}{prefix}"


def check_webserver(url: str, timeout: float = TIMEOUT_SECONDS, headers: Mapping[str, str] | None = None) -> str | None:
    """None when the webserver's /server_info answers 200 (``headers``: the identity it asks of every request)."""
    import urllib.request  # here: a code server's watchdog needs none of it (~3 MiB)

    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout
        ) as response:
            return None if response.status == 200 else f"{url} answered {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def identity_headers(user: str) -> dict[str, str]:
    """The identity the webserver asks of every request: ``user``'s own, a viewer, signed with its key
    (IDENTITY_KEY_FILE); none for a webserver without one (`make dev`)."""
    from pathlib import Path

    from platform_services.access import identity

    path = os.environ.get("IDENTITY_KEY_FILE")
    if not path:
        return {}
    key = identity.read_key(Path(path))
    return {identity.HEADER: identity.sign(identity.Identity(user, user), key)}


def _process_start_utc(pid: int = 1) -> datetime:
    """When process ``pid`` started, as naive UTC (Dagster stores heartbeats that way)."""
    with open(f"/proc/{pid}/stat") as handle:
        start_ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    started = time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
    return datetime.fromtimestamp(started, UTC).replace(tzinfo=None)


def _postgres_password() -> str:
    """As the entrypoint reads it (a health check is exec'd, so it does not run the entrypoint)."""
    path = os.environ.get("DAGSTER_PG_PASSWORD_FILE")
    if path:
        with open(path) as handle:
            return handle.read().strip()
    return os.environ["DAGSTER_PG_PASSWORD"]


HEARTBEATS_SQL = "SELECT daemon_type, max(timestamp) FROM daemon_heartbeats GROUP BY daemon_type"


class HeartbeatReader:
    """Reads the daemons' last heartbeats, over one connection kept between reads.

    The watchdog reads them every few seconds: a new connection costs ~9 ms of CPU (a
    Postgres backend, SCRAM), a read on a kept one ~0.5 ms. psycopg2's asynchronous mode
    bounds every wait by ``timeout``, also when Postgres stops answering mid-query (a kept
    connection has no connect_timeout to fall back on). Any error closes the connection;
    the next read opens a new one.
    """

    def __init__(self, timeout: float = TIMEOUT_SECONDS, application_name: str = "dagster-daemon-healthcheck") -> None:
        self._timeout = timeout
        self._application_name = application_name
        self._conn: Any = None

    def read(self) -> dict[str, datetime]:
        """Each daemon type's latest heartbeat (naive UTC); raises psycopg2.Error."""
        import psycopg2

        deadline = time.monotonic() + self._timeout
        try:
            if self._conn is None:
                self._conn = psycopg2.connect(
                    host=os.environ["DAGSTER_PG_HOST"],
                    port=os.environ.get("DAGSTER_PG_PORT", "5432"),
                    user=os.environ["DAGSTER_PG_USER"],
                    password=_postgres_password(),
                    dbname=os.environ["DAGSTER_PG_DB"],
                    application_name=self._application_name,
                    async_=True,
                )
                self._wait(deadline)
            with self._conn.cursor() as cursor:
                cursor.execute(HEARTBEATS_SQL)
                self._wait(deadline)
                return dict(cursor.fetchall())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _wait(self, deadline: float) -> None:
        import psycopg2
        from psycopg2 import extensions

        while (state := self._conn.poll()) != extensions.POLL_OK:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise psycopg2.OperationalError(f"no answer within {self._timeout:g} s")
            wants_write = state == extensions.POLL_WRITE
            fd = self._conn.fileno()
            select.select([] if wants_write else [fd], [fd] if wants_write else [], [], remaining)


def check_daemon(tolerance_seconds: float, reader: HeartbeatReader | None = None) -> str | None:
    """None when every required daemon heartbeated since this container's daemon started.

    ``reader``: a kept connection (the watchdog's); without one, a connection for this check only.
    """
    import psycopg2

    own = reader is None
    reader = reader or HeartbeatReader()
    try:
        last_beat = reader.read()
    except psycopg2.Error as exc:
        return f"cannot read heartbeats from Postgres: {' '.join(str(exc).split())}"
    finally:
        if own:
            reader.close()
    since = max(
        _process_start_utc(),
        datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=tolerance_seconds),
    )
    stale = [name for name in REQUIRED_DAEMONS if (last_beat.get(name) or datetime.min) < since]
    return f"no fresh heartbeat from: {', '.join(stale)}" if stale else None


def main(argv: list[str]) -> int:
    kind = argv[1] if len(argv) > 1 else ""
    if kind == "code-server":
        problem = check_code_server(int(os.environ.get("DAGSTER_GRPC_PORT", "4000")))
    elif kind == "webserver":
        # Signed like a request through the gateway: the webserver answers nothing else (Kubernetes'
        # probes run this; compose's health check reads the watchdog's verdict).
        url = f"{webserver_url(os.environ)}/server_info"
        problem = check_webserver(url, headers=identity_headers("healthcheck"))
    elif kind == "daemon":
        problem = check_daemon(float(os.environ.get("DAGSTER_DAEMON_HEARTBEAT_TOLERANCE", "90")))
    elif kind == "metrics":
        problem = check_webserver(metrics_health_url(os.environ))
    else:
        print("usage: python -m platform_services.healthcheck code-server|webserver|daemon|metrics", file=sys.stderr)
        return 2
    if problem:
        print(f"unhealthy: {problem}")
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
