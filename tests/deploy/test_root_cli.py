"""The repository's root is where a newcomer first runs `dagster`: it works, or says what to do.

Dagster takes ./dagster.yaml as the instance when DAGSTER_HOME is unset; here that is the
compose stack's instance, whose Postgres settings only the stack's services set.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from template_tools.locations import ROOT, read_locations

#: A location's own `dagster` (its environment holds its code), run at the repository's root.
LOCATION = read_locations()[0]
VALIDATE = [str(LOCATION.bin() / "dagster"), "definitions", "validate", "-m", LOCATION.module]


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(VALIDATE, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}


def test_without_dagster_home_the_cli_names_the_unset_settings_and_what_to_do() -> None:
    result = run(clean_env())

    assert result.returncode != 0
    assert "DAGSTER_PG_HOST" in result.stderr and "which are not set" in result.stderr
    assert "run `make dev`" in result.stderr and "export DAGSTER_HOME=" in result.stderr


def test_with_a_dagster_home_of_its_own_the_cli_works(tmp_path: Path) -> None:
    result = run({**clean_env(), "DAGSTER_HOME": str(tmp_path)})

    assert result.returncode == 0, result.stderr[-2000:]
