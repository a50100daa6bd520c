"""What the running platform reads of workspace.yaml, the one list of code locations.

The launch policy reads which locations are registered; the webserver and the auth
service read which team owns each (``additional_metadata: {team: ...}``). The file is
read anew each time, so a location added to the list needs no restart of its readers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml


def _servers(path: str | Path) -> Iterator[Mapping[str, Any]]:
    workspace = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    for entry in workspace.get("load_from") or []:
        for target in entry.values() if isinstance(entry, Mapping) else []:
            if isinstance(target, Mapping) and target.get("location_name"):
                yield target


def read_locations(locations_file: str | Path) -> frozenset[str]:
    """The ``location_name`` of every entry of a workspace.yaml's ``load_from``."""
    return frozenset(str(server["location_name"]) for server in _servers(locations_file))


def read_teams(locations_file: str | Path) -> dict[str, str]:
    """Each location's owning team (``additional_metadata.team``); a location without one is left out."""
    teams = {}
    for server in _servers(locations_file):
        metadata = server.get("additional_metadata")
        team = metadata.get("team") if isinstance(metadata, Mapping) else None
        if isinstance(team, str) and team:
            teams[str(server["location_name"])] = team
    return teams


def read_hosts(locations_file: str | Path) -> dict[str, str]:
    """Each gRPC location's server host (``host``, by default the location's name)."""
    return {
        str(server["location_name"]): str(server.get("host") or server["location_name"])
        for server in _servers(locations_file)
    }
