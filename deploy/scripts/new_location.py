"""Scaffold a team's code location and wire it into the deployment; standard library only.

    python deploy/scripts/new_location.py billing_reports [--team billing] [--root PATH]
    make new-location NAME=billing_reports [TEAM=billing]

Creates code_locations/<name>/ from the templates in deploy/templates/new_location/
and adds the location to the root pyproject.toml (workspace member, dev group,
uv source), deploy/Dockerfile (the pyproject COPY of the dependency stage), both
workspace.yaml files, docker-compose.yml (its code server; webserver and daemon
depend on it; the header documents its schedule variable) and .env.example.

Every change is computed and checked before the first file is written, and a
name that is already used anywhere is refused: nothing is ever overwritten.
The edits are text insertions at well-defined anchors, so comments and
formatting of the edited files stay as they are.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
import textwrap
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "new_location"
GUIDE = "docs/adding-a-code-location.md"

NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
TEAM = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")
TOML_HEADER = re.compile(r"^\[\[?[^\[\]]+\]\]?\s*(#.*)?$")
TOML_KEY = re.compile(r'^(?P<key>[A-Za-z0-9_-]+|"[^"]*")\s*=')
TOML_ITEM = re.compile(r'^(?P<indent>\s*)"(?P<value>[^"]*)"(?P<comma>\s*,)?(?P<rest>.*)$')
CODE_LOCATION_MERGE = re.compile(r"^\s*<<:\s*\*code-location\s*(#.*)?$")

#: Generated files: path in the new location (``{name}`` is filled in) -> template file.
LOCATION_FILES: Mapping[str, str] = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "src/{name}/__init__.py": "__init__.py.tmpl",
    "src/{name}/definitions.py": "definitions.py.tmpl",
    "src/{name}/assets.py": "assets.py.tmpl",
    "src/{name}/jobs.py": "jobs.py.tmpl",
    "src/{name}/schedules.py": "schedules.py.tmpl",
    "tests/conftest.py": "conftest.py.tmpl",
    "tests/test_{name}_definitions.py": "test_definitions.py.tmpl",
    "tests/test_{name}_assets.py": "test_assets.py.tmpl",
}

#: The existing files the command edits, relative to the repository root.
PYPROJECT = "pyproject.toml"
DOCKERFILE = "deploy/Dockerfile"
WORKSPACE = "deploy/dagster/workspace.yaml"
DEV_WORKSPACE = "deploy/dev/workspace.yaml"
COMPOSE = "docker-compose.yml"
ENV_EXAMPLE = ".env.example"
LOCK = "uv.lock"


class ScaffoldError(Exception):
    """The location cannot be created; the message says why and what to do."""


class AnchorError(ScaffoldError):
    """A file to edit does not have the shape the command inserts into."""


@dataclass(frozen=True)
class Location:
    """The new code location: its snake_case name and its owning team."""

    name: str
    team: str

    @property
    def package(self) -> str:
        """The project (distribution) name, e.g. ``billing-reports``."""
        return self.name.replace("_", "-")

    @property
    def env_prefix(self) -> str:
        """Prefix of the location's own variables, e.g. ``BILLING_REPORTS``."""
        return self.name.upper()

    @property
    def folder(self) -> str:
        """The location's folder, relative to the repository root."""
        return f"code_locations/{self.name}"

    def variables(self) -> dict[str, str]:
        """The values of the templates' ``{{placeholders}}``."""
        return {"name": self.name, "team": self.team, "package": self.package, "env_prefix": self.env_prefix}


@dataclass(frozen=True)
class Change:
    """The complete new text of one file, and whether the command creates it."""

    path: str
    text: str
    created: bool


# --- text editing helpers (pure functions on file contents) ----------------------------


def render(template: str, variables: Mapping[str, str]) -> str:
    """``template`` with every ``{{name}}`` replaced by ``variables[name]``.

    Only ``{{lower_case}}`` is a placeholder, so ``$`` and single braces (compose
    variables, f-strings, YAML flow maps) stay as written.
    """

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in variables:
            raise KeyError(f"template placeholder {match.group(0)} has no value")
        return variables[match.group(1)]

    return PLACEHOLDER.sub(value, template)


def _table_span(lines: Sequence[str], table: str, path: str) -> tuple[int, int]:
    """(index of the ``[table]`` header, index where the table ends) in TOML ``lines``."""
    for start, line in enumerate(lines):
        if line.strip() == f"[{table}]":
            end = next(
                (i for i in range(start + 1, len(lines)) if TOML_HEADER.match(lines[i])),
                len(lines),
            )
            return start, end
    raise AnchorError(f"{path}: there is no [{table}] table")


def toml_array_add(text: str, table: str, key: str, item: str, *, after: Collection[str] = (), path: str = "") -> str:
    """Add the string ``item`` to the multi-line array ``key = [...]`` of ``[table]``.

    The new line copies the indentation of the existing items and goes right after
    the last item whose value is in ``after`` (if none is, at the end of the array).
    """
    lines = text.splitlines(keepends=True)
    start, end = _table_span(lines, table, path)
    opening = re.compile(rf"^{re.escape(key)}\s*=\s*\[\s*(#.*)?$")
    first = next((i for i in range(start + 1, end) if opening.match(lines[i])), None)
    if first is None:
        raise AnchorError(f"{path}: [{table}] has no multi-line array {key} = [ ... ]")
    close = next((i for i in range(first + 1, end) if lines[i].strip().startswith("]")), None)
    if close is None:
        raise AnchorError(f"{path}: the array {key} of [{table}] is not closed by a line starting with ]")
    items = [(i, m) for i in range(first + 1, close) if (m := TOML_ITEM.match(lines[i].rstrip("\n")))]
    indent = items[0][1]["indent"] if items else "    "
    anchors = [(i, m) for i, m in items if m["value"] in after] or items[-1:]
    if anchors:
        index, match = anchors[-1]
        if not match["comma"]:  # the item was the last one, written without a trailing comma
            lines[index] = f'{match["indent"]}"{match["value"]}",{match["rest"]}\n'
        position = index + 1
    else:
        position = close
    lines.insert(position, f'{indent}"{item}",\n')
    return "".join(lines)


def toml_table_add(text: str, table: str, line: str, *, after: Collection[str] = (), path: str = "") -> str:
    """Add the ``key = value`` ``line`` to ``[table]``.

    It goes right after the last key listed in ``after``, else after the table's last key.
    """
    lines = text.splitlines(keepends=True)
    start, end = _table_span(lines, table, path)
    keys = [(i, m["key"].strip('"')) for i in range(start + 1, end) if (m := TOML_KEY.match(lines[i]))]
    anchors = [i for i, key in keys if key in after] or [i for i, _ in keys[-1:]] or [start]
    lines.insert(anchors[-1] + 1, line.rstrip("\n") + "\n")
    return "".join(lines)


def insert_after_last(text: str, pattern: str, line: str, *, path: str = "") -> str:
    """Insert ``line`` after the last line matching the regular expression ``pattern``."""
    lines = text.splitlines(keepends=True)
    matches = [i for i, existing in enumerate(lines) if re.search(pattern, existing)]
    if not matches:
        raise AnchorError(f"{path}: no line matches {pattern!r}, so it is unclear where {line.strip()!r} goes")
    lines.insert(matches[-1] + 1, line.rstrip("\n") + "\n")
    return "".join(lines)


def _indent(line: str) -> int:
    """Number of leading spaces of ``line``."""
    return len(line) - len(line.lstrip(" "))


def _is_content(line: str) -> bool:
    """A line that is neither blank nor only a comment."""
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _block(lines: Sequence[str], header: int) -> tuple[int, str]:
    """(end, child indentation) of the YAML block under the key at line ``header``.

    The block holds the following lines indented deeper than the key (blank lines
    included, trailing blank lines not); ``end`` is the index after its last line.
    """
    own = _indent(lines[header])
    end = header + 1
    for i in range(header + 1, len(lines)):
        if lines[i].strip() and _indent(lines[i]) <= own:
            break
        if lines[i].strip():
            end = i + 1
    children = [line for line in lines[header + 1 : end] if _is_content(line)]
    return end, " " * _indent(children[0]) if children else ""


def yaml_find(lines: Sequence[str], keys: Sequence[str], *, path: str = "") -> int:
    """Index of the line of the nested mapping key ``keys`` (e.g. services → webserver).

    Works on block-style YAML as written in this repo: each key on its own line,
    children indented deeper than their parent.
    """
    start, end, indent = 0, len(lines), ""
    found = -1
    for depth, key in enumerate(keys):
        pattern = re.compile(rf"^{indent}{re.escape(key)}:(\s|$)")
        found = next((i for i in range(start, end) if pattern.match(lines[i])), -1)
        if found < 0:
            raise AnchorError(f"{path}: no key {'.'.join(keys[: depth + 1])}")
        end, indent = _block(lines, found)
        start = found + 1
    return found


def yaml_append(text: str, keys: Sequence[str], block: str, *, path: str = "") -> str:
    """Append ``block`` (written at column 0) as the last child of the YAML key ``keys``.

    The block is indented like the key's existing children; a blank line separates
    it from the previous child when the children are separated by blank lines.
    """
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, keys, path=path)
    end, indent = _block(lines, header)
    if not indent:
        raise AnchorError(f"{path}: {'.'.join(keys)} has no indented block of entries to add to")
    spaced = any(not line.strip() for line in lines[header + 1 : end])
    new = textwrap.indent(block.rstrip("\n") + "\n", indent)
    lines.insert(end, ("\n" if spaced else "") + new)
    return "".join(lines)


def yaml_insert_after(text: str, keys: Sequence[str], block: str, *, path: str = "") -> str:
    """Insert ``block`` (written at column 0) as a sibling right after the YAML key ``keys``.

    Used to add a service after another one; a blank line goes before the block.
    """
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, keys, path=path)
    end, _ = _block(lines, header)
    indent = " " * _indent(lines[header])
    lines.insert(end, "\n" + textwrap.indent(block.rstrip("\n") + "\n", indent))
    return "".join(lines)


def compose_services(text: str, *, merging: re.Pattern[str] | None = None) -> list[str]:
    """Names of the services of a compose file, in order.

    With ``merging``: only the services with a line matching it (e.g. ``<<: *code-location``).
    """
    lines = text.splitlines(keepends=True)
    header = yaml_find(lines, ["services"], path=COMPOSE)
    end, indent = _block(lines, header)
    service = re.compile(rf"^{indent}([A-Za-z0-9][A-Za-z0-9_.-]*):\s*(#.*)?$")
    names = []
    for i in range(header + 1, end):
        if match := service.match(lines[i]):
            body = lines[i + 1 : _block(lines, i)[0]]
            if merging is None or any(merging.match(line) for line in body):
                names.append(match.group(1))
    return names


# --- the command ---------------------------------------------------------------------------


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


def read_toml(root: Path, path: str) -> dict[str, Any]:
    """The parsed TOML file ``root/path``, or a ScaffoldError naming the syntax error."""
    try:
        return tomllib.loads(read(root, path))
    except tomllib.TOMLDecodeError as error:
        raise ScaffoldError(f"{path} is not valid TOML ({error}); fix it first") from None


def workspace_members(pyproject: Mapping[str, Any]) -> list[str]:
    """The ``[tool.uv.workspace] members`` of a parsed pyproject.toml (empty when missing)."""
    members: list[str] = pyproject.get("tool", {}).get("uv", {}).get("workspace", {}).get("members", [])
    return members


def find_conflicts(root: Path, location: Location) -> list[str]:
    """Every place where the location's name is already taken (empty: the name is free)."""
    name, package = location.name, location.package
    pyproject = read_toml(root, PYPROJECT)
    conflicts = []
    if (root / location.folder).exists():
        conflicts.append(f"{location.folder}/ exists")
    if location.folder in workspace_members(pyproject):
        conflicts.append(f"{PYPROJECT}: [tool.uv.workspace] members lists {location.folder}")
    if package in pyproject.get("dependency-groups", {}).get("dev", []):
        conflicts.append(f"{PYPROJECT}: the dev dependency group lists {package}")
    if package in pyproject.get("tool", {}).get("uv", {}).get("sources", {}):
        conflicts.append(f"{PYPROJECT}: [tool.uv.sources] has {package}")
    if any(entry["name"] == package for entry in read_toml(root, LOCK).get("package", [])):
        conflicts.append(f"{LOCK}: has a package named {package}")
    if f"COPY {location.folder}/" in read(root, DOCKERFILE):
        conflicts.append(f"{DOCKERFILE}: copies {location.folder}/")
    for workspace in (WORKSPACE, DEV_WORKSPACE):
        if re.search(rf"^\s*location_name:\s*{name}\s*$", read(root, workspace), re.MULTILINE):
            conflicts.append(f"{workspace}: has a location named {name}")
    if name in compose_services(read(root, COMPOSE)):
        conflicts.append(f"{COMPOSE}: has a service named {name}")
    if re.search(rf"^{location.env_prefix}_SCHEDULE_CRON=", read(root, ENV_EXAMPLE), re.MULTILINE):
        conflicts.append(f"{ENV_EXAMPLE}: sets {location.env_prefix}_SCHEDULE_CRON")
    return conflicts


def template(name: str, location: Location) -> str:
    """The template file ``name`` rendered for ``location``."""
    return render((TEMPLATES / name).read_text(encoding="utf-8"), location.variables())


def edit_pyproject(root: Path, location: Location) -> str:
    """The root pyproject.toml with the location as member, dev dependency and workspace source.

    Each entry goes next to those of the existing code locations.
    """
    text = read(root, PYPROJECT)
    folders = [m for m in workspace_members(tomllib.loads(text)) if m.startswith("code_locations/")]
    packages = [read_toml(root, f"{folder}/pyproject.toml")["project"]["name"] for folder in folders]
    text = toml_array_add(text, "tool.uv.workspace", "members", location.folder, after=folders, path=PYPROJECT)
    text = toml_array_add(text, "dependency-groups", "dev", location.package, after=packages, path=PYPROJECT)
    source = f"{location.package} = {{ workspace = true }}"
    text = toml_table_add(text, "tool.uv.sources", source, after=packages, path=PYPROJECT)
    edited = tomllib.loads(text)
    if (
        location.folder not in edited["tool"]["uv"]["workspace"]["members"]
        or location.package not in edited["dependency-groups"]["dev"]
        or edited["tool"]["uv"]["sources"].get(location.package) != {"workspace": True}
    ):
        raise AnchorError(f"{PYPROJECT}: the edited file does not list {location.package} as expected")
    return text


def edit_dockerfile(root: Path, location: Location) -> str:
    """deploy/Dockerfile with the location's pyproject.toml copied into the dependency stage."""
    return insert_after_last(
        read(root, DOCKERFILE),
        r"^COPY code_locations/[^/\s]+/pyproject\.toml code_locations/[^/\s]+/\s*$",
        f"COPY {location.folder}/pyproject.toml {location.folder}/",
        path=DOCKERFILE,
    )


def edit_workspace(root: Path, path: str, entry: str, location: Location) -> str:
    """The workspace file ``path`` with the template ``entry`` appended to ``load_from``."""
    return yaml_append(read(root, path), ["load_from"], template(entry, location), path=path)


def edit_compose(root: Path, location: Location) -> str:
    """docker-compose.yml with the location's service, the dependencies on it and its variable.

    The service goes after the last service that merges ``*code-location``;
    webserver and daemon depend on it being started (not healthy, so one team's
    broken deploy cannot keep the UI down).
    """
    text = read(root, COMPOSE)
    code_locations = compose_services(text, merging=CODE_LOCATION_MERGE)
    if not code_locations:
        raise AnchorError(f"{COMPOSE}: no service merges *code-location, so it is unclear where the new one goes")
    service = template("compose-service.yml.tmpl", location)
    text = yaml_insert_after(text, ["services", code_locations[-1]], service, path=COMPOSE)
    for dependent in ("webserver", "daemon"):
        dependency = f"{location.name}: {{condition: service_started}}"
        text = yaml_append(text, ["services", dependent, "depends_on"], dependency, path=COMPOSE)
    variable = f"#   {location.env_prefix}_SCHEDULE_CRON   per-location override of SCHEDULE_CRON ({location.name})"
    return insert_after_last(text, r"^#\s+[A-Z][A-Z0-9_]*_SCHEDULE_CRON\b", variable, path=COMPOSE)


def edit_env_example(root: Path, location: Location) -> str:
    """.env.example with the location's (empty) schedule override next to the others."""
    return insert_after_last(
        read(root, ENV_EXAMPLE),
        r"^[A-Z][A-Z0-9_]*_SCHEDULE_CRON=",
        f"{location.env_prefix}_SCHEDULE_CRON=",
        path=ENV_EXAMPLE,
    )


def plan(root: Path, location: Location) -> list[Change]:
    """Every file the command writes, with its complete new text; nothing is written yet."""
    validate(location)
    conflicts = find_conflicts(root, location)
    if conflicts:
        raise ScaffoldError(
            f"code location {location.name!r} cannot be created, the name is already used:\n"
            + "".join(f"  - {conflict}\n" for conflict in conflicts)
            + "Nothing was changed. Choose another NAME, or remove the existing location from every "
            f"place listed above first ({GUIDE} lists them)."
        )
    files = [
        Change(f"{location.folder}/{target.format(name=location.name)}", template(source, location), created=True)
        for target, source in LOCATION_FILES.items()
    ]
    edits = {
        PYPROJECT: edit_pyproject(root, location),
        DOCKERFILE: edit_dockerfile(root, location),
        WORKSPACE: edit_workspace(root, WORKSPACE, "workspace-grpc-server.yml.tmpl", location),
        DEV_WORKSPACE: edit_workspace(root, DEV_WORKSPACE, "workspace-python-module.yml.tmpl", location),
        COMPOSE: edit_compose(root, location),
        ENV_EXAMPLE: edit_env_example(root, location),
    }
    return files + [Change(path, text, created=False) for path, text in edits.items()]


def apply(root: Path, changes: Sequence[Change]) -> None:
    """Write every change (creating the new location's folders)."""
    for change in changes:
        target = root / change.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(change.text, encoding="utf-8")


def next_steps(location: Location, changes: Sequence[Change]) -> str:
    """What was done and what to do next, for the terminal."""
    created = [c.path for c in changes if c.created]
    edited = [c.path for c in changes if not c.created]
    name = location.name
    return "\n".join(
        [
            f"new-location: created code location {name} (owner team:{location.team}) in {location.folder}/:",
            *(f"  + {path.removeprefix(location.folder + '/')}" for path in created),
            "and wired it into:",
            *(f"  ~ {path}" for path in edited),
            "",
            "Next steps:",
            f"  make lock   # add {location.package} to uv.lock (commit uv.lock with the new files)",
            "  make test   # install it into .venv, then run every test (the new ones included)",
            "  make up     # rebuild the stack: webserver and daemon load the new workspace.yaml",
            f"Later deploys of this location alone: docker compose build {name} && docker compose up -d {name}",
            f"Then replace the example assets in {location.folder}/src/{name}/assets.py. See {GUIDE}.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
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
