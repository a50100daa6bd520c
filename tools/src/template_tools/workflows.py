"""Each code location's pipeline: .github/workflows/location-<name>.yml, one per location of workspace.yaml.

Generated from one template (templates/workflows/location.yml.tmpl) by `make generate`, so a new
location gets its pipeline with `make new-location` and loses it with `make remove-location`; a
workflow of a location no longer listed is stale, and `make generate` deletes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from template_tools import templating
from template_tools.locations import CodeLocation

FOLDER = ".github/workflows"
PREFIX = "location-"
TEMPLATE = templating.TEMPLATES / "workflows" / "location.yml.tmpl"


def path(name: str) -> str:
    """The location's workflow, relative to the repository root."""
    return f"{FOLDER}/{PREFIX}{name}.yml"


def token_secret(team: str) -> str:
    """The repository secret holding the team's deploy token: ``data-extraction`` -> ``DAGSTER_DEPLOY_TOKEN_DATA_EXTRACTION``."""
    suffix = re.sub(r"[^A-Z0-9]+", "_", team.upper()).strip("_")
    return f"DAGSTER_DEPLOY_TOKEN_{suffix}" if suffix else "DAGSTER_DEPLOY_TOKEN"


def render(location: CodeLocation) -> str:
    """The workflow of ``location``."""
    variables = {"name": location.name, "team": location.team, "token_secret": token_secret(location.team)}
    return templating.render(TEMPLATE.read_text(encoding="utf-8"), variables)


def generate(locations: Sequence[CodeLocation]) -> dict[str, str]:
    """Every location's workflow: path -> text."""
    return {path(location.name): render(location) for location in locations}


def orphans(root: Path, locations: Sequence[CodeLocation]) -> list[str]:
    """The location workflows on disk whose location workspace.yaml no longer lists."""
    wanted = {path(location.name) for location in locations}
    found = sorted(f"{FOLDER}/{file.name}" for file in (root / FOLDER).glob(f"{PREFIX}*.yml"))
    return [name for name in found if name not in wanted]
