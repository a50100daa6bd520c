"""The per-run folders of the storage and IO volumes: deleted once older than the retention."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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
