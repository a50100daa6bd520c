"""The one list of code locations: the top-level ``workspace.yaml``.

Everything that needs the set of locations (compose checks, ``make check``,
``make dev``, the end-to-end suite, the bench, the scaffolder) reads it here.
One convention ties a location's names together, and :func:`read_locations`
refuses a workspace that breaks it, naming the entry and the fix:

* ``location_name`` == the gRPC ``host`` == its compose service;
* its project is ``code_locations/<name>/``, its package ``<name>``, its
  definitions ``<name>.definitions``;
* its owning team is ``additional_metadata: {team: <team>}``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

ROOT = Path(__file__).resolve().parents[3]
WORKSPACE = "workspace.yaml"
NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
TEAM = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")


class WorkspaceError(ValueError):
    """workspace.yaml does not list the code locations the way the template expects."""


@dataclass(frozen=True)
class CodeLocation:
    """One entry of workspace.yaml."""

    name: str
    port: int = 4000
    #: The team that owns it (its people's roles, its CODEOWNERS line, its assets' owner).
    team: str = ""

    @property
    def folder(self) -> str:
        """The location's project, relative to the repository root."""
        return f"code_locations/{self.name}"

    @property
    def package(self) -> str:
        """Its distribution name (its project's), e.g. ``simple-ops``."""
        return self.name.replace("_", "-")

    def bin(self, root: Path = ROOT) -> Path:
        """The scripts folder of its own environment (``make venv``: from its own uv.lock, as its image)."""
        folder = root / self.folder / ".venv" / "bin"
        if not (folder / "python").exists():
            raise WorkspaceError(
                f"{self.folder}/.venv does not exist: the location's code runs in its own environment; "
                f"run `make venv` (or `make venv LOCATION={self.name}`)"
            )
        return folder

    @property
    def module(self) -> str:
        """The module holding its ``Definitions``."""
        return f"{self.name}.definitions"

    @property
    def env_prefix(self) -> str:
        """Prefix of its own variables, e.g. ``SIMPLE_OPS`` (``SIMPLE_OPS_SCHEDULE_CRON``)."""
        return self.name.upper()


def parse_workspace(text: str, *, source: str = WORKSPACE) -> list[CodeLocation]:
    """The code locations of a workspace.yaml's text, in order."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise WorkspaceError(f"{source} is not valid YAML ({error}); fix the syntax") from None
    entries = document.get("load_from") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise WorkspaceError(f"{source} has no `load_from:` list; it must list the code locations")
    locations: list[CodeLocation] = []
    for index, entry in enumerate(entries):
        server = entry.get("grpc_server") if isinstance(entry, dict) else None
        if not isinstance(server, dict):
            raise WorkspaceError(
                f"{source}: load_from[{index}] is not a `grpc_server:` entry; every location runs in its "
                "own code-server container (run `make new-location` to add one)"
            )
        name = server.get("location_name")
        if not isinstance(name, str) or not NAME.match(name):
            raise WorkspaceError(f"{source}: load_from[{index}] needs a snake_case `location_name`, got {name!r}")
        if server.get("host") != name:
            raise WorkspaceError(
                f"{source}: location {name!r} has host {server.get('host')!r}; the host must be the "
                f"location's name (its compose service): set `host: {name}`"
            )
        port = server.get("port")
        if not isinstance(port, int):
            raise WorkspaceError(f"{source}: location {name!r} needs an integer `port` (the code servers use 4000)")
        if any(existing.name == name for existing in locations):
            raise WorkspaceError(f"{source}: location {name!r} is listed twice; remove one entry")
        metadata = server.get("additional_metadata")
        team = metadata.get("team") if isinstance(metadata, dict) else None
        if not isinstance(team, str) or not TEAM.match(team):
            raise WorkspaceError(
                f"{source}: location {name!r} needs its owning team, e.g. `additional_metadata: {{team: billing}}` "
                f"(lower-case letters and digits, separated by - _ or .), got {team!r}"
            )
        locations.append(CodeLocation(name=name, port=port, team=team))
    return locations


def read_source(root: Path, path: str, sources: Mapping[str, str] | None = None) -> str:
    """``path``'s text: from ``sources`` when it holds it (a change not yet written), else from disk."""
    if sources and path in sources:
        return sources[path]
    try:
        return (root / path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkspaceError(f"{root / path} does not exist: is {root} the repository's root (--root)?") from None


def read_locations(root: Path = ROOT) -> list[CodeLocation]:
    """The code locations that ``root/workspace.yaml`` lists, each with its project folder checked."""
    locations = parse_workspace(read_source(root, WORKSPACE))
    for location in locations:
        if not (root / location.folder / "pyproject.toml").is_file():
            raise WorkspaceError(
                f"{WORKSPACE} lists {location.name!r}, but {location.folder}/pyproject.toml does not exist: "
                f"remove the entry (`make remove-location NAME={location.name}`) or restore the folder"
            )
    return locations


def location_names(root: Path = ROOT) -> list[str]:
    """Just the names, in workspace order."""
    return [location.name for location in read_locations(root)]


def _round_trip() -> YAML:
    """A YAML editor that keeps the comments and layout of workspace.yaml."""
    editor = YAML()
    editor.preserve_quotes = True
    editor.indent(mapping=2, sequence=4, offset=2)
    editor.width = 4096
    return editor


def _dump(editor: YAML, document: object) -> str:
    out = io.StringIO()
    editor.dump(document, out)
    return out.getvalue()


def add_location(text: str, location: CodeLocation) -> str:
    """workspace.yaml's ``text`` with ``location`` appended to ``load_from`` (comments and layout kept)."""
    editor = _round_trip()
    document = editor.load(text)
    server = {"location_name": location.name, "host": location.name, "port": location.port}
    entry = CommentedMap(server | {"additional_metadata": CommentedMap({"team": location.team})})
    document["load_from"].append(CommentedMap({"grpc_server": entry}))
    new = _dump(editor, document)
    if location.name not in [entry.name for entry in parse_workspace(new)]:
        raise WorkspaceError(f"{WORKSPACE}: the edited file does not list {location.name}; is load_from a list?")
    return new


def remove_location(text: str, name: str) -> str:
    """workspace.yaml's ``text`` without the entry of location ``name`` (comments and layout kept)."""
    editor = _round_trip()
    document = editor.load(text)
    entries = document["load_from"]
    keep = [entry for entry in entries if (entry.get("grpc_server") or {}).get("location_name") != name]
    if len(keep) == len(entries):
        raise WorkspaceError(f"{WORKSPACE} lists no code location named {name!r}")
    for index in reversed(range(len(entries))):
        if entries[index] not in keep:
            del entries[index]
    return _dump(editor, document)
