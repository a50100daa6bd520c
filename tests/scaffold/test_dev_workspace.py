"""`make dev`'s workspace: every location, each loaded by its own environment's Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from template_tools.dev import dev_workspace
from template_tools.locations import read_locations


@pytest.mark.slow
def test_dagster_loads_every_location_of_make_dev_s_workspace_in_its_own_environment(tmp_path: Path) -> None:
    locations = read_locations()
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(dev_workspace(locations))
    entries = [entry["python_module"] for entry in yaml.safe_load(workspace.read_text())["load_from"]]
    assert [(entry["location_name"], entry["executable_path"]) for entry in entries] == [
        (location.name, str(location.bin() / "python")) for location in locations
    ]
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "SOURCE_API_URL": "http://127.0.0.1:1"}

    # The platform's `dagster` (.venv) starts each location's code server with that location's Python.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", str(workspace)],
        env={**env, "EXPORTS_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "All code locations passed validation" in output
    for location in locations:
        assert f"Started Dagster code server for module {location.module}" in output
