"""Each code location's own lock, and the platform's pins that every lock shares.

    make lock [LOCATION=<name>] [UPGRADE=<package>]   # python -m template_tools.locks lock ...
    make verify                                      # ... and python -m template_tools.locks check

A code location is a uv project of its own: code_locations/<name>/uv.lock is what its
environment and its image install, so a team adds or upgrades its libraries without
changing another team's lock or image. Dagster and the platform's libraries stay one
version everywhere: the root pyproject.toml's ``[tool.uv] constraint-dependencies`` are
the pins, `make generate` copies them into each location's pyproject.toml (the region
``platform-pins``), uv applies them when it locks, and ``check`` fails when a lock is not
current with its pyproject.toml or resolves a pinned package to another version than the
root uv.lock (docs/decisions.md#one-lock-per-code-location).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from template_tools.locations import ROOT, CodeLocation, WorkspaceError, read_locations, read_source
from template_tools.regions import RegionError, replace_region

PYPROJECT = "pyproject.toml"
LOCK = "uv.lock"
REGION = "platform-pins"
DEFAULT_UV = ROOT / ".tools" / "bin" / "uv"
#: A requirement's distribution name (PEP 508), before any extras, specifier or marker.
REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


class LockError(ValueError):
    """A lock or the pins cannot be read; the message names the file and the fix."""


def normalize(name: str) -> str:
    """A distribution name as uv.lock writes it (PEP 503): ``SQLAlchemy`` -> ``sqlalchemy``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(root_pyproject: str) -> list[str]:
    """The root pyproject.toml's ``[tool.uv] constraint-dependencies``: Dagster and the platform's libraries."""
    try:
        document = tomllib.loads(root_pyproject)
    except tomllib.TOMLDecodeError as error:
        raise LockError(f"{PYPROJECT} is not valid TOML ({error})") from None
    found = document.get("tool", {}).get("uv", {}).get("constraint-dependencies")
    if not isinstance(found, list) or not found or not all(isinstance(pin, str) for pin in found):
        raise LockError(
            f"{PYPROJECT} has no [tool.uv] constraint-dependencies: they pin Dagster and the platform's "
            "libraries for every lock; restore them from git"
        )
    return found


def pinned_names(pin_list: Sequence[str]) -> list[str]:
    """The normalized package names of ``pin_list``."""
    names = []
    for pin in pin_list:
        match = REQUIREMENT_NAME.match(pin)
        if match is None:
            raise LockError(f"{PYPROJECT}: {pin!r} in constraint-dependencies is not a requirement")
        names.append(normalize(match[1]))
    return names


def render(text: str, pin_list: Sequence[str], *, path: str) -> str:
    """A location's pyproject.toml ``text`` with the pins in its ``platform-pins`` region."""
    body = "constraint-dependencies = [\n" + "".join(f'    "{pin}",\n' for pin in pin_list) + "]\n"
    try:
        return replace_region(text, REGION, body, path=path)
    except RegionError as error:
        raise RegionError(
            f"{error}. The region sits in the location's [tool.uv] table; `make new-location` writes it"
        ) from None


def pyprojects(
    root: Path, locations: Sequence[CodeLocation], sources: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each location's pyproject.toml with the current pins (``sources``: texts not yet written)."""
    pin_list = pins(read_source(root, PYPROJECT, sources))
    files = {}
    for location in locations:
        path = f"{location.folder}/{PYPROJECT}"
        files[path] = render(read_source(root, path, sources), pin_list, path=path)
    return files


def locked_versions(text: str, *, path: str) -> dict[str, set[str]]:
    """Every package of a uv.lock's text and its versions (one, unless the lock forks)."""
    try:
        packages = tomllib.loads(text).get("package", [])
    except tomllib.TOMLDecodeError as error:
        raise LockError(f"{path} is not valid TOML ({error}): run `make lock`") from None
    versions: dict[str, set[str]] = {}
    for package in packages:
        if "version" in package:
            versions.setdefault(normalize(package["name"]), set()).add(package["version"])
    return versions


@dataclass(frozen=True)
class Mismatch:
    """A location's lock resolves a pinned package to another version than the root lock."""

    location: str
    package: str
    ours: str
    platform: str

    def __str__(self) -> str:
        return (
            f"code_locations/{self.location}/{LOCK} resolves {self.package} {self.ours}, "
            f"the platform (the root {LOCK}) {self.platform}"
        )


def _versions(found: set[str]) -> str:
    return ", ".join(sorted(found))


def mismatches(root: Path, locations: Sequence[CodeLocation]) -> list[Mismatch]:
    """Every pinned package a location's lock resolves to another version than the root lock."""
    names = pinned_names(pins(read_source(root, PYPROJECT)))
    platform = locked_versions(read_source(root, LOCK), path=LOCK)
    found = []
    for location in locations:
        path = f"{location.folder}/{LOCK}"
        ours = locked_versions(read_source(root, path), path=path)
        for name in names:
            if name in ours and ours[name] != platform.get(name):
                found.append(
                    Mismatch(location.name, name, _versions(ours[name]), _versions(platform.get(name, {"none"})))
                )
    return found


def missing_locks(root: Path, locations: Sequence[CodeLocation]) -> list[str]:
    """The locations without a uv.lock of their own."""
    return [location.name for location in locations if not (root / location.folder / LOCK).is_file()]


def stale_projects(root: Path, uv: Path, folders: Sequence[str]) -> list[str]:
    """The projects (``"."``: the root) whose uv.lock is not current with their pyproject.toml files."""
    stale = []
    for folder in folders:
        result = _uv(uv, root, "lock", "--check", "--offline", "--project", folder)
        if result.returncode:
            stale.append(folder)
    return stale


def _uv(uv: Path, root: Path, *args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    if not uv.is_file():
        raise LockError(f"uv is not at {uv}: run `make venv` (it installs uv into .tools/)")
    # The Python interpreter of a location's lock is this one's (the tools run on the same 3.11).
    env = {**os.environ, "UV_PYTHON": sys.executable, "UV_PYTHON_DOWNLOADS": "never"}
    return subprocess.run([str(uv), *args], cwd=root, env=env, capture_output=quiet, text=True, timeout=600)


def problems(root: Path, uv: Path) -> list[str]:
    """What is wrong with the locks, each with its fix; empty when every lock is current and agrees."""
    locations = read_locations(root)
    found = [
        f"code_locations/{name}/{LOCK} does not exist: every location installs from its own lock; "
        f"run `make lock LOCATION={name}`"
        for name in missing_locks(root, locations)
    ]
    locked = [location for location in locations if location.name not in missing_locks(root, locations)]
    for folder in stale_projects(root, uv, [".", *(location.folder for location in locked)]):
        if folder == ".":
            found.append(f"{LOCK} is not current with the root {PYPROJECT} (or a library's): run `make lock`")
        else:
            name = folder.removeprefix("code_locations/")
            found.append(
                f"{folder}/{LOCK} is not current with its {PYPROJECT} (or a platform library's): "
                f"run `make lock LOCATION={name}`"
            )
    for mismatch in mismatches(root, locked):
        found.append(
            f"{mismatch}. Dagster and the platform's libraries (the root {PYPROJECT}'s constraint-dependencies) are "
            f"one version in every image: run `make lock LOCATION={mismatch.location}`; if it still resolves "
            f"{mismatch.ours}, code_locations/{mismatch.location}/{PYPROJECT} asks for it (an override, or a "
            f"requirement that excludes {mismatch.platform}): remove that. To move a platform library for "
            f"everyone, change its pin in the root {PYPROJECT} and run `make lock`."
        )
    return found


def lock(root: Path, uv: Path, names: Sequence[str], upgrade: Sequence[str] = ()) -> int:
    """Write the pins into each named location's pyproject.toml, then lock it; 1 if any lock failed."""
    locations = {location.name: location for location in read_locations(root)}
    unknown = [name for name in names if name not in locations]
    if unknown:
        raise LockError(
            f"workspace.yaml lists no code location {', '.join(unknown)} (it lists: {', '.join(locations)})"
        )
    targets = [locations[name] for name in names]
    for path, text in pyprojects(root, targets).items():
        if (root / path).read_text(encoding="utf-8") != text:
            (root / path).write_text(text, encoding="utf-8")
            print(f"lock: wrote the platform's pins into {path}")
    failed = []
    for location in targets:
        lock_path = root / location.folder / LOCK
        if not lock_path.is_file():
            # uv prefers what a lock already holds: a new location starts from the versions the
            # platform's lock is tested with, and locks from uv's cache when it holds them.
            shutil.copyfile(root / LOCK, lock_path)
            print(f"lock: {location.folder}/{LOCK} starts from the root {LOCK}'s versions")
        args = [arg for package in upgrade for arg in ("--upgrade-package", package)]
        print(f"lock: {location.folder}/{LOCK}", flush=True)
        result = _uv(uv, root, "lock", "--project", location.folder, *args, quiet=False)
        if result.returncode:
            failed.append(location.name)
    if failed:
        print(f"lock: could not lock {', '.join(failed)} (uv's reason is above)", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m template_tools.locks", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's root (default: this checkout)")
    parser.add_argument("--uv", type=Path, default=DEFAULT_UV, help=f"the uv binary (default: {DEFAULT_UV})")
    commands = parser.add_subparsers(dest="command", required=True)
    locking = commands.add_parser("lock", help="write the pins into the locations' pyproject.toml, then lock them")
    locking.add_argument("--location", action="append", default=[], help="only this location (default: every one)")
    locking.add_argument("--upgrade-package", action="append", default=[], help="let uv move this package")
    commands.add_parser("check", help="exit 1 when a lock is missing, not current, or moves a pinned package")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    try:
        if args.command == "lock":
            names = args.location or [location.name for location in read_locations(root)]
            status = lock(root, args.uv, names, args.upgrade_package)
            return status or check(root, args.uv)
        return check(root, args.uv)
    except (LockError, WorkspaceError, RegionError) as error:
        print(f"locks: {error}", file=sys.stderr)
        return 1


def check(root: Path, uv: Path) -> int:
    """Print what is wrong with the locks (1) or that they agree (0)."""
    found = problems(root, uv)
    for problem in found:
        print(f"verify: {problem}", file=sys.stderr)
    if found:
        return 1
    count = len(read_locations(root))
    print(
        f"verify: uv.lock and the {count} locations' locks are current and pin the same Dagster and platform libraries"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
