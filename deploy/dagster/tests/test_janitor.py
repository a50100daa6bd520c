"""The storage janitor deletes old per-run folders and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from platform_services.janitor.folders import sweep

JANITOR = ["-m", "platform_services.janitor"]

DAY = 86400.0


def _folder(path: Path, age_days: float, now: float) -> Path:
    path.mkdir(parents=True)
    (path / "stdout.log").write_text("x")
    for item in (path / "stdout.log", path):
        os.utime(item, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_sweep_removes_only_old_run_folders(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    old_logs = _folder(tmp_path / "compute_logs" / str(uuid.uuid4()), 20, now)
    old_outputs = _folder(tmp_path / "storage" / str(uuid.uuid4()), 20, now)
    recent = _folder(tmp_path / "compute_logs" / str(uuid.uuid4()), 2, now)
    asset_value = _folder(tmp_path / "storage" / "users_cleaned", 90, now)  # not a run id: kept
    removed = sweep(tmp_path, retention_seconds=14 * DAY, now=now)
    assert sorted(removed) == sorted([old_logs, old_outputs])
    assert recent.exists() and asset_value.exists()
    assert not old_logs.exists() and not old_outputs.exists()


def test_sweep_covers_every_location_s_io_volume(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    storage, io = tmp_path / "storage", tmp_path / "io"
    old = [_folder(io / location / str(uuid.uuid4()), 20, now) for location in ("simple_ops", "modular_assets")]
    recent = _folder(io / "simple_ops" / str(uuid.uuid4()), 2, now)
    asset_value = _folder(io / "modular_assets" / "users_cleaned", 90, now)

    removed = sweep(storage, retention_seconds=14 * DAY, now=now, io_volumes=io)

    assert sorted(removed) == sorted(old)
    assert recent.exists() and asset_value.exists()


def test_a_folder_with_a_recent_file_is_kept(tmp_path: Path) -> None:
    now = 2_000_000_000.0
    folder = _folder(tmp_path / "compute_logs" / str(uuid.uuid4()), 30, now)
    os.utime(folder / "stdout.log", (now - DAY, now - DAY))  # still being appended to
    assert sweep(tmp_path, retention_seconds=14 * DAY, now=now) == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DAGSTER_STORAGE_RETENTION_DAYS", "two weeks", "must be a positive number, got 'two weeks'"),
        ("DAGSTER_RUN_RETENTION_DAYS", "-1", "must be zero or a positive number, got '-1'"),
    ],
)
def test_a_bad_retention_value_stops_with_a_clear_message(name: str, value: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, *JANITOR, "--once"],
        capture_output=True,
        text=True,
        env={**os.environ, name: value},
        timeout=30,
    )
    assert result.returncode != 0
    assert f"{name} {message}" in result.stderr
