"""Backups, as an operator uses them: `make backup`, then the worst case (`down --volumes`:
every volume gone, and a fresh `up`), then `make restore`. Run history, schedule and sensor
state and the exports come back identical; a corrupt or missing backup changes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.stack import Stack, wait_for

STATE_QUERY = """
{ runsOrError { ... on Runs { results { runId status jobName } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name
    schedules { name scheduleState { status } }
    sensors { name sensorState { status typeSpecificData { ... on SensorData { lastCursor } } } } } } } }
"""
#: Its cursor changes only when the source API's data does; the run-status sensors' cursors move
#: with every tick (they record the time of their last look), so only their status is compared.
STABLE_CURSOR = "source_change_sensor"


def _make(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    files = " ".join(f"-f {path}" for path in stack.compose_files)
    compose = f"COMPOSE=docker compose -p {stack.project} --env-file {stack.env_file} {files}"
    return subprocess.run(
        ["make", "--no-print-directory", *args, compose], cwd=stack.root, capture_output=True, text=True, timeout=900
    )


def _state(stack: Stack) -> dict[str, Any]:
    """Run history, schedule and sensor state, and an export: what a restore must bring back."""
    data = stack.graphql(STATE_QUERY)
    repositories = data["repositoriesOrError"]["nodes"]
    return {
        "runs": sorted((r["runId"], r["status"], r["jobName"]) for r in data["runsOrError"]["results"]),
        "schedules": sorted(
            (s["name"], s["scheduleState"]["status"]) for repo in repositories for s in repo["schedules"]
        ),
        "sensors": sorted(
            (
                s["name"],
                s["sensorState"]["status"],
                s["sensorState"]["typeSpecificData"]["lastCursor"] if s["name"] == STABLE_CURSOR else None,
            )
            for repo in repositories
            for s in repo["sensors"]
        ),
        "export": stack.read_export("simple_ops/users.csv"),
    }


@pytest.fixture(scope="module")
def backup(stack: Stack) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A backup made by `make backup`, and the state it holds."""
    run_id = stack.launch("data_extraction_job", "simple_ops")  # history and an export to restore
    assert stack.wait_for_run(run_id)["status"] == "SUCCESS"
    state = _state(stack)
    started = time.monotonic()
    made = _make(stack, "backup")
    assert made.returncode == 0, made.stderr
    written = re.search(r"make backup: wrote (backups/\S+)", made.stdout)
    assert written, made.stdout
    folder = stack.root / written.group(1)
    sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    print(f"\n[backup] make backup: {time.monotonic() - started:.1f}s, {sizes}")
    yield folder, state
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_damaged_or_missing_backup_is_refused_and_nothing_changes(
    stack: Stack, backup: tuple[Path, dict[str, Any]], tmp_path: Path, damage: str
) -> None:
    folder, before = backup
    if damage == "corrupt":
        target = shutil.copytree(folder, tmp_path / folder.name)
        dump = target / "dagster.dump"
        dump.write_bytes(dump.read_bytes()[:-100] + b"\0" * 100)
        expected = f"{target} is corrupt: a file does not match its checksum"
    else:
        target = tmp_path / "no-such-backup"
        expected = f"no backup at {target}"

    refused = _make(stack, "restore", f"BACKUP={target}")

    assert refused.returncode != 0
    assert expected in refused.stderr, refused.stderr
    assert "stopping" not in refused.stdout  # nothing was stopped
    assert _state(stack) == before


def test_restore_after_losing_every_volume_brings_back_history_schedules_sensors_and_exports(
    stack: Stack, backup: tuple[Path, dict[str, Any]]
) -> None:
    folder, before = backup
    stack.down()  # every volume: Postgres, exports, secrets
    stack.up()
    wait_for(stack.all_locations_loaded, timeout=120, what="both locations loaded on the fresh stack")
    assert stack.graphql("{ runsOrError { ... on Runs { count } } }")["runsOrError"]["count"] == 0

    started = time.monotonic()
    restored = _make(stack, "restore", f"BACKUP={folder.relative_to(stack.root)}")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    wait_for(stack.all_locations_loaded, timeout=120, what="both locations loaded after the restore")
    print(f"\n[backup] make restore (stop, restore, up): {time.monotonic() - started:.1f}s")

    assert _state(stack) == before


def test_the_backup_service_backs_up_at_start_and_keeps_the_newest(stack: Stack, tmp_path: Path) -> None:
    made = stack.compose("exec", "-T", "backup", "ls", "/var/lib/postgresql/data").stdout.split()
    assert any(name.startswith("20") for name in made), made  # its first backup, at start

    # Its loop, keeping 2, on a folder of ours that holds 4 older backups: one round, then (asleep) stopped.
    older = [f"2020-01-0{day}T000000Z" for day in range(1, 5)]
    for name in older:
        (tmp_path / name).mkdir()
    looped = stack.compose(
        *("run", "--rm", "--no-deps", "-T", "--user", f"{os.getuid()}:{os.getgid()}", "-v", f"{tmp_path}:/rotation"),
        *("--entrypoint", "timeout"),
        *("-e", "DAGSTER_BACKUP_KEEP=2", "-e", "DAGSTER_BACKUP_INTERVAL_SECONDS=3600"),
        *("backup", "10", "sh", "/opt/postgres/backup.sh", "daily", "/rotation"),
        check=False,
    )
    assert looped.returncode == 124, looped.stderr  # stopped by timeout, not failed
    wrote = re.search(r"backup: wrote /rotation/(\S+)", looped.stdout)
    assert wrote, looped.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == [older[-1], wrote.group(1)]
