"""``python -m platform_services.janitor [--once]``: the storage janitor (see the package's docstring)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from platform_services.janitor.folders import sweep

STORAGE = Path(os.environ.get("DAGSTER_STORAGE_DIR", "/opt/dagster/storage"))
IO_VOLUMES = Path(os.environ.get("DAGSTER_IO_DIR", "/opt/dagster/io"))
HEARTBEAT = Path("/tmp/janitor.alive")


def _number(name: str, default: str, zero_allowed: bool = False) -> float:
    value = os.environ.get(name) or default
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0 or (number == 0 and not zero_allowed):
        kind = "zero or a positive number" if zero_allowed else "a positive number"
        sys.exit(f"janitor: {name} must be {kind}, got {value!r}")
    return number


def delete_old_runs(retention_days: float, audit_days: float) -> None:
    """Finished runs and audit records older than their retention, from Postgres: in a child process,
    so the memory Dagster takes is given back after each sweep (this process stays at a few MiB)."""
    command = [sys.executable, "-m", "platform_services.janitor.retention", f"{retention_days:g}", f"{audit_days:g}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        print("janitor: deleting old runs took over 30 minutes; the next sweep goes on", flush=True)
        return
    for line in (result.stdout + result.stderr).strip().splitlines()[-5:]:
        print(f"janitor: {line}", flush=True)


def main(argv: list[str]) -> None:
    retention_days = _number("DAGSTER_STORAGE_RETENTION_DAYS", "14")
    run_retention_days = _number("DAGSTER_RUN_RETENTION_DAYS", "90", zero_allowed=True)
    audit_days = _number("DAGSTER_AUDIT_RETENTION_DAYS", "365", zero_allowed=True)
    interval = _number("JANITOR_INTERVAL_SECONDS", "3600")
    runs = f"runs older than {run_retention_days:g} days" if run_retention_days else "no runs (retention 0)"
    runs += f", audit records older than {audit_days:g} days" if audit_days else ", no audit records (retention 0)"
    print(
        f"janitor: deleting per-run folders older than {retention_days:g} days from {STORAGE} and "
        f"{IO_VOLUMES}/*, and {runs}, every {interval:g}s",
        flush=True,
    )
    while True:
        removed = sweep(STORAGE, retention_days * 86400, time.time(), IO_VOLUMES)
        if removed:
            print(f"janitor: removed {len(removed)} folder(s), e.g. {removed[0]}", flush=True)
        if run_retention_days or audit_days:
            delete_old_runs(run_retention_days, audit_days)
        HEARTBEAT.touch()
        if "--once" in argv:
            return
        time.sleep(interval)


if __name__ == "__main__":
    main(sys.argv[1:])
