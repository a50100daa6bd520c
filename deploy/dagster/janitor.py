"""Bounds the shared storage volume: deletes per-run files older than the retention period.

Runs write two kinds of per-run folders, named by run id, into the storage volume:
compute logs (`compute_logs/<run_id>/`) and op outputs of the filesystem IO manager
(`storage/<run_id>/`). Asset values (`storage/<asset key>/`) are kept: they are
overwritten by each materialization and later runs may load them.

    DAGSTER_STORAGE_RETENTION_DAYS   keep per-run folders this many days (default 14)
    JANITOR_INTERVAL_SECONDS         sweep this often (default 3600)
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
HEARTBEAT = Path("/tmp/janitor.alive")
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def sweep(storage: Path, retention_seconds: float, now: float) -> list[Path]:
    """Delete run-id folders under compute_logs/ and storage/ not modified within the retention."""
    removed = []
    for parent in (storage / "compute_logs", storage / "storage"):
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
        f"janitor: deleting per-run folders older than {retention_days:g} days from {STORAGE} every {interval:g}s",
        flush=True,
    )
    while True:
        removed = sweep(STORAGE, retention_days * 86400, time.time())
        if removed:
            print(f"janitor: removed {len(removed)} folder(s), e.g. {removed[0]}", flush=True)
        HEARTBEAT.touch()
        time.sleep(interval)


if __name__ == "__main__":
    main()
