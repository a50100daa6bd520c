"""docker-compose.yml's health checks: none starts Python per probe, and the file-age ones work.

Docker runs every probe as a new process in the container (~13 ms of CPU even for `true`);
a Python start with grpc or psycopg2 cost 70-135 ms, every 2 s, per service. The Dagster
services' watchdogs check in-process and write a verdict (deploy/dagster/tests/test_watchdog.py);
the other services touch a heartbeat file that the probe only ages.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from template_tools.locations import ROOT


def services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def _test(service: dict[str, Any]) -> list[str]:
    test: list[str] = service.get("healthcheck", {}).get("test", [])
    return test


def test_no_health_check_starts_python() -> None:
    for name, service in services().items():
        assert not any("python" in part for part in _test(service)), f"{name}: its health check starts Python"


def test_the_services_with_a_watchdog_are_healthy_by_its_verdict() -> None:
    for name, service in services().items():
        watched = "DAGSTER_WATCHDOG" in (service.get("environment") or {})
        reads_verdict = _test(service) == ["CMD", "/opt/dagster/bin/health-status.sh"]
        assert watched == reads_verdict, (
            f"{name}: a watchdog {'without' if watched else 'missing for'} its verdict check"
        )


def test_only_up_waits_for_postgres_health_check() -> None:
    """Its probe runs every 10 s (each forks a backend): nothing may wait for it, or start-up waits too."""
    for name, service in services().items():
        depends_on = service.get("depends_on") or {}
        assert depends_on.get("postgres", {}).get("condition") != "service_healthy", name
    assert services()["postgres_roles"]["depends_on"] == {"postgres": {"condition": "service_started"}}


def _run_probe(service: str, heartbeat: str, path: Path) -> subprocess.CompletedProcess[str]:
    """The service's CMD-SHELL probe as Docker runs it ($$ is compose's escaped $), on ``path``."""
    kind, command = _test(services()[service])
    assert kind == "CMD-SHELL" and heartbeat in command
    return subprocess.run(
        ["sh", "-c", command.replace("$$", "$").replace(heartbeat, str(path))],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "LC_ALL": "C"},
    )


@pytest.mark.parametrize(
    ("service", "heartbeat", "max_age", "message"),
    [
        ("storage_janitor", "/tmp/janitor.alive", 7300, "unhealthy: no sweep finished in 7300 s"),
        ("sample_api", "/tmp/sample-api.alive", 15, "unhealthy: /health has not answered for 15 s"),
    ],
)
def test_a_heartbeat_probe_is_healthy_while_the_file_is_young(
    tmp_path: Path, service: str, heartbeat: str, max_age: int, message: str
) -> None:
    path = tmp_path / "alive"
    assert _run_probe(service, heartbeat, path).stdout == f"{message}\n"  # none yet

    path.touch()
    fresh = _run_probe(service, heartbeat, path)
    assert (fresh.returncode, fresh.stderr) == (0, "")

    old = time.time() - max_age - 5
    os.utime(path, (old, old))
    stale = _run_probe(service, heartbeat, path)
    assert (stale.returncode, stale.stdout) == (1, f"{message}\n")
