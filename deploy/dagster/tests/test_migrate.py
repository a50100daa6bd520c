"""The migrate one-shot runs `dagster instance migrate` once per Dagster version and database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from testkit.postgres import PASSWORD, PostgresServer, postgres_or_fail

MIGRATE = ["-m", "platform_services.migrate"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A server of this module's own: the migration must find an empty database."""
    with postgres_or_fail() as server:
        yield server


def _migrate(postgres: PostgresServer, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (home / "dagster.yaml").write_text(yaml.safe_dump({"storage": {"postgres": {"postgres_db": postgres.db_config}}}))
    connection = {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": PASSWORD,
        "DAGSTER_PG_DB": "dagster",
    }
    bin_dir = str(Path(sys.executable).parent)  # `dagster` of this venv
    return subprocess.run(
        [sys.executable, *MIGRATE],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "DAGSTER_HOME": str(home), **connection, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrates_once_per_dagster_version(postgres: PostgresServer, tmp_path: Path) -> None:
    first = _migrate(postgres, tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"recorded Dagster {version('dagster')} as migrated" in first.stdout
    postgres.execute("SELECT 1 FROM runs LIMIT 1")  # Dagster's tables exist

    second = _migrate(postgres, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already migrated" in second.stdout

    # Another version recorded (an upgrade, a restored backup): Dagster's migration runs again.
    postgres.execute("UPDATE dagster_template_schema SET dagster_version = '1.0.0'")
    third = _migrate(postgres, tmp_path)
    assert third.returncode == 0, third.stderr
    assert "recorded Dagster" in third.stdout


def test_a_missing_setting_is_named(postgres: PostgresServer, tmp_path: Path) -> None:
    result = _migrate(postgres, tmp_path, DAGSTER_PG_HOST="")
    assert result.returncode != 0
    assert "DAGSTER_PG_HOST not set" in result.stderr
