"""``python -m platform_services.metrics``: the metrics service (see the package's docstring)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import NoReturn

import dagster as dg
from prometheus_client import CollectorRegistry

from platform_services.metrics.collector import DagsterCollector
from platform_services.metrics.http import make_server
from platform_services.metrics.settings import ConfigError, settings_from_env

log = logging.getLogger("platform_services.metrics")


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
        ", ".join(f"{volume.name}={volume.path}" for volume in settings.volumes) or "none",
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
