"""The layout's promises: one list of code locations, and everything that names a location agrees with it."""

from __future__ import annotations

import re
import subprocess

from template_tools.locations import ROOT, location_names
from template_tools.new_location import CODE_LOCATION_MERGE
from template_tools.yamltext import compose_services


def tracked(pattern: str) -> list[str]:
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-files", pattern], capture_output=True, text=True, check=True)
    return listing.stdout.split()


def test_every_listed_location_has_a_code_server_service_and_every_code_server_is_listed() -> None:
    services = compose_services((ROOT / "docker-compose.yml").read_text(), merging=CODE_LOCATION_MERGE)

    assert services == location_names()


def test_every_project_under_code_locations_is_listed() -> None:
    folders = sorted(path.parent.name for path in (ROOT / "code_locations").glob("*/pyproject.toml"))

    assert folders == sorted(location_names())


def test_the_only_instance_config_is_the_top_level_one() -> None:
    assert tracked("*dagster.yaml") == ["dagster.yaml"]
    assert tracked("*workspace.yaml") == ["workspace.yaml"]


def test_no_code_edits_sys_path() -> None:
    offenders = [
        f"{path}:{number}"
        for path in tracked("*.py")
        for number, line in enumerate((ROOT / path).read_text().splitlines(), 1)
        if re.search(r"sys\.path\.(insert|append)", line)
    ]

    assert offenders == []
