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
Run history itself stays in Postgres; tick history is purged by dagster.yaml's retention.
"""

from __future__ import annotations

import os
import re
import shutil
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


def _positive(name: str, default: str) -> float:
    value = os.environ.get(name) or default
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number <= 0:
        sys.exit(f"janitor: {name} must be a positive number, got {value!r}")
    return number


def main() -> None:
    retention_days = _positive("DAGSTER_STORAGE_RETENTION_DAYS", "14")
    interval = _positive("JANITOR_INTERVAL_SECONDS", "3600")
    print(
        f"janitor: deleting per-run folders older than {retention_days:g} days from {STORAGE} and "
        f"{IO_VOLUMES}/* every {interval:g}s",
        flush=True,
    )
    while True:
        removed = sweep(STORAGE, retention_days * 86400, time.time(), IO_VOLUMES)
        if removed:
            print(f"janitor: removed {len(removed)} folder(s), e.g. {removed[0]}", flush=True)
        HEARTBEAT.touch()
        time.sleep(interval)


if __name__ == "__main__":
    main()
