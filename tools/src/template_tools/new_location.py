"""Scaffold a team's code location and register it in the deployment.

    make new-location NAME=billing_reports [TEAM=billing]
    python -m template_tools.new_location billing_reports [--team billing] [--root PATH]

Creates code_locations/<name>/ from the templates in templates/new_location/, adds the
location and its team to workspace.yaml (the one list of code locations), and writes
what derives from that list (`make generate`: its compose service, network and IO
volume, its Kubernetes parts, its CODEOWNERS line, the platform's pins in its
pyproject.toml). The image build picks it up by its LOCATION
build argument. `make new-location` then locks the project on its own
(`make lock LOCATION=<name>`: code_locations/<name>/uv.lock).

Every change is computed and checked before the first file is written, and a name
that is already used anywhere is refused: nothing is ever overwritten.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from template_tools import generate, templating
from template_tools.compose import PLATFORM_NETWORKS
from template_tools.locations import ROOT, TEAM, WORKSPACE, CodeLocation, WorkspaceError, add_location, parse_workspace

TEMPLATES = templating.TEMPLATES / "new_location"
GUIDE = "docs/adding-a-code-location.md"
COMPOSE = "docker-compose.yml"
LOCK = "uv.lock"

NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

#: Generated files: path in the new location (``{name}`` is filled in) -> template file.
LOCATION_FILES: Mapping[str, str] = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "src/{name}/__init__.py": "__init__.py.tmpl",
    "src/{name}/py.typed": "py.typed.tmpl",
    "src/{name}/definitions.py": "definitions.py.tmpl",
    "src/{name}/assets.py": "assets.py.tmpl",
    "src/{name}/jobs.py": "jobs.py.tmpl",
    "src/{name}/schedules.py": "schedules.py.tmpl",
    "tests/conftest.py": "conftest.py.tmpl",
    "tests/test_{name}_definitions.py": "test_definitions.py.tmpl",
    "tests/test_{name}_assets.py": "test_assets.py.tmpl",
}


class ScaffoldError(Exception):
    """The location cannot be created (or removed); the message says why and what to do."""


@dataclass(frozen=True)
class Location(CodeLocation):
    """The new code location: its snake_case name and its owning team."""

    def variables(self) -> dict[str, str]:
        """The values of the templates' ``{{placeholders}}``."""
        return {"name": self.name, "team": self.team, "package": self.package, "env_prefix": self.env_prefix}


@dataclass(frozen=True)
class Change:
    """The complete new text of one file, and whether the command creates it."""

    path: str
    text: str
    created: bool


def validate(location: Location) -> None:
    """Refuse names that are not snake_case identifiers or that shadow a standard module."""
    if not NAME.match(location.name):
        raise ScaffoldError(
            f"{location.name!r} is not a valid location name: use snake_case (lower-case letters, "
            "digits and single underscores, starting with a letter), e.g. billing_reports"
        )
    if keyword.iskeyword(location.name) or location.name in sys.stdlib_module_names:
        raise ScaffoldError(
            f"{location.name!r} is a Python keyword or standard-library module, and the location's "
            "package would shadow it; choose another name, e.g. billing_reports"
        )
    if location.name in PLATFORM_NETWORKS:
        raise ScaffoldError(
            f"{location.name!r} is the name of one of the platform's networks "
            f"({', '.join(sorted(PLATFORM_NETWORKS))}), and the location's network is named like "
            "the location; choose another name, e.g. billing_reports"
        )
    if not TEAM.match(location.team):
        raise ScaffoldError(
            f"{location.team!r} is not a valid team name: use lower-case letters and digits, "
            "separated by - _ or . (without the 'team:' prefix), e.g. billing"
        )


def read(root: Path, path: str) -> str:
    """The text of ``root/path``, or a ScaffoldError saying the root is not this repository."""
    try:
        return (root / path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScaffoldError(f"{root / path} does not exist: is {root} the repository's root (--root)?") from None


def registered(root: Path) -> list[str]:
    """The location names workspace.yaml lists, or a ScaffoldError naming what is wrong with it."""
    try:
        return [location.name for location in parse_workspace(read(root, WORKSPACE))]
    except WorkspaceError as error:
        raise ScaffoldError(f"{error}; nothing was changed") from None


def find_conflicts(root: Path, location: Location) -> list[str]:
    """Every place where the location's name is already taken (empty: the name is free)."""
    conflicts = []
    if (root / location.folder).exists():
        conflicts.append(f"{location.folder}/ exists")
    if location.name in registered(root):
        conflicts.append(f"{WORKSPACE}: has a location named {location.name}")
    if location.name in compose_services(read(root, COMPOSE)):
        conflicts.append(f"{COMPOSE}: has a service named {location.name}")
    if location.name in compose_volumes(read(root, COMPOSE)):
        conflicts.append(f"{COMPOSE}: has a volume named {location.name}")
    # Its package must not shadow a library of the platform's lock or of any location's.
    for lock in [LOCK, *sorted(str(path.relative_to(root)) for path in root.glob(f"code_locations/*/{LOCK}"))]:
        try:
            packages = tomllib.loads(read(root, lock)).get("package", [])
        except tomllib.TOMLDecodeError as error:
            raise ScaffoldError(f"{lock} is not valid TOML ({error}); run `make lock` first") from None
        if any(entry["name"] == location.package for entry in packages):
            conflicts.append(f"{lock}: has a package named {location.package}")
    return conflicts


def template(name: str, location: Location) -> str:
    """The template file ``name`` rendered for ``location``."""
    return templating.render((TEMPLATES / name).read_text(encoding="utf-8"), location.variables())


def compose_services(text: str) -> list[str]:
    """The service names of docker-compose.yml (a location's service is named like it)."""
    return list((yaml.safe_load(text) or {}).get("services") or {})


def compose_volumes(text: str) -> list[str]:
    """The volume names of docker-compose.yml (a location's IO volume is named like it)."""
    return list((yaml.safe_load(text) or {}).get("volumes") or {})


def plan(root: Path, location: Location) -> list[Change]:
    """Every file the command writes, with its complete new text; nothing is written yet."""
    validate(location)
    conflicts = find_conflicts(root, location)
    if conflicts:
        raise ScaffoldError(
            f"code location {location.name!r} cannot be created, the name is already used:\n"
            + "".join(f"  - {conflict}\n" for conflict in conflicts)
            + "Nothing was changed. Choose another NAME, or remove the existing location first "
            f"(`make remove-location NAME={location.name}`)."
        )
    scaffolded = {
        f"{location.folder}/{target.format(name=location.name)}": template(source, location)
        for target, source in LOCATION_FILES.items()
    }
    try:
        workspace = add_location(read(root, WORKSPACE), location)
        # The new pyproject.toml gets the platform's pins as `make generate` writes them.
        derived = generate.outputs(root, {WORKSPACE: workspace, **scaffolded})
    except generate.ERRORS as error:
        raise ScaffoldError(f"{error}. Nothing was changed.") from None
    created = {path: derived.pop(path, text) for path, text in scaffolded.items()}
    created |= {path: text for path, text in derived.items() if read_or_none(root, path) is None}
    edits = {WORKSPACE: workspace, **{path: text for path, text in derived.items() if path not in created}}
    return [Change(path, text, created=True) for path, text in created.items()] + [
        Change(path, text, created=False) for path, text in edits.items() if text != read_or_none(root, path)
    ]


def read_or_none(root: Path, path: str) -> str | None:
    target = root / path
    return target.read_text(encoding="utf-8") if target.is_file() else None


def apply(root: Path, changes: Sequence[Change]) -> None:
    """Write every change (creating the new location's folders); each file is replaced atomically."""
    generate.write(root, {change.path: change.text for change in changes}, [change.path for change in changes])


def next_steps(location: Location, changes: Sequence[Change]) -> str:
    """What was done and what to do next, for the terminal."""
    inside = location.folder + "/"
    created = [c.path.removeprefix(inside) for c in changes if c.created and c.path.startswith(inside)]
    outside = [c.path for c in changes if c.created and not c.path.startswith(inside)]
    edited = [c.path for c in changes if not c.created]
    name = location.name
    return "\n".join(
        [
            f"new-location: created code location {name} (owner team:{location.team}) in {location.folder}/:",
            *(f"  + {path}" for path in created),
            "its pipeline (tests, builds and deploys only this location):",
            *(f"  + {path}" for path in outside),
            "and registered it in:",
            *(f"  ~ {path}" for path in edited),
            "",
            f"Next steps (`make new-location` already ran `make lock LOCATION={name}`: its own uv.lock):",
            f"  make test-location LOCATION={name}   # its own tests",
            f"  make deploy LOCATION={name}          # build, test and start it; no other team's service restarts",
            f"Every later deploy of it is the same command; make rollback LOCATION={name} returns to the one before.",
            f"Then replace the example assets in {location.folder}/src/{name}/assets.py. See {GUIDE}.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("name", help="the location's snake_case name, e.g. billing_reports")
    parser.add_argument("--team", help="owning team: assets get owners=['team:TEAM'] (default: the name with hyphens)")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root to edit (default: this repo)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    location = Location(name=args.name, team=args.team or args.name.replace("_", "-"))
    try:
        changes = plan(root, location)
    except ScaffoldError as error:
        print(f"new-location: {error}", file=sys.stderr)
        return 1
    apply(root, changes)
    print(next_steps(location, changes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
