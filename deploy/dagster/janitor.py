"""Bounds the shared storage volume: deletes per-run files older than the retention period.

Runs write two kinds of per-run folders, named by run id: compute logs
(`compute_logs/<run_id>/` in the shared storage volume) and op outputs of the
filesystem IO manager (`<run_id>/` in their location's IO volume, mounted here at
`/opt/dagster/io/<location>`; `storage/<run_id>/` in volumes of older stacks).
Asset values (`<asset key>/`) are kept: they are overwritten by each
materialization and later runs may load them.

    DAGSTER_STORAGE_RETENTION_DAYS   keep per-run folders this many days (default 14)
    JANITOR_INTERVAL_SECONDS         sweep this often (default 3600)
    DAGSTER_IO_DIR                   where the IO volumes are mounted (default /opt/dagster/io)
    DAGSTER_RUN_RETENTION_DAYS       delete finished runs (and their event logs) older than this
                                     from Postgres (default 90; 0 keeps them), through Dagster's API:
                                     instance_kit.retention, which keeps the latest success of each
                                     job and the latest materialization of each asset

    python janitor.py          sweep every JANITOR_INTERVAL_SECONDS
    python janitor.py --once   one sweep, then exit (operators, tests)
Run history itself stays in Postgres; tick history is purged by dagster.yaml's retention.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

STORAGE = Path(os.environ.get("DAGSTER_STORAGE_DIR", "/opt/dagster/storage"))
IO_VOLUMES = Path(os.environ.get("DAGSTER_IO_DIR", "/opt/dagster/io"))
HEARTBEAT = Path("/tmp/janitor.alive")
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def sweep(storage: Path, retention_seconds: float, now: float, io_volumes: Path | None = None) -> list[Path]:
    """Delete run-id folders not modified within the retention: under compute_logs/ and
    storage/ of ``storage``, and at the top of every IO volume under ``io_volumes``."""
    removed = []
    locations = sorted(io_volumes.iterdir()) if io_volumes and io_volumes.is_dir() else []
    for parent in (storage / "compute_logs", storage / "storage", *locations):
        if not parent.is_dir():
            continue
        for folder in parent.iterdir():
            if folder.is_dir() and RUN_ID.match(folder.name) and now - _newest_mtime(folder) > retention_seconds:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


def _newest_mtime(folder: Path) -> float:
    """The latest modification time of the folder or anything in it."""
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


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


def delete_old_runs(retention_days: float) -> None:
    """Finished runs older than the retention, from Postgres: in a child process, so the ~100 MiB
    that Dagster takes are given back after each sweep (this process stays at a few MiB)."""
    command = [sys.executable, "-m", "instance_kit.retention", f"{retention_days:g}"]
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
    interval = _number("JANITOR_INTERVAL_SECONDS", "3600")
    runs = f"runs older than {run_retention_days:g} days" if run_retention_days else "no runs (retention 0)"
    print(
        f"janitor: deleting per-run folders older than {retention_days:g} days from {STORAGE} and "
        f"{IO_VOLUMES}/*, and {runs}, every {interval:g}s",
        flush=True,
    )
    while True:
        removed = sweep(STORAGE, retention_days * 86400, time.time(), IO_VOLUMES)
        if removed:
            print(f"janitor: removed {len(removed)} folder(s), e.g. {removed[0]}", flush=True)
        if run_retention_days:
            delete_old_runs(run_retention_days)
        HEARTBEAT.touch()
        if "--once" in argv:
            return
        time.sleep(interval)


if __name__ == "__main__":
    main(sys.argv[1:])
