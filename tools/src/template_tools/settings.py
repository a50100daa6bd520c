"""The stack's settings table (deploy/settings.yaml): the source of .env.example and of the compose header.

A setting's default is where it takes effect, in docker-compose.yml's ``${NAME:-default}``;
the table says what each one means. :func:`check_table` holds the two together: every
variable docker-compose.yml reads is in the table, every entry of the table is read, and
each variable has one default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from template_tools.locations import CodeLocation

SETTINGS = "deploy/settings.yaml"
ENV_EXAMPLE = ".env.example"
COMPOSE = "docker-compose.yml"
PER_LOCATION = "<LOCATION>_"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: .env.example's section rule: "# --- title ---...", this wide.
RULE_WIDTH = 84


class SettingsError(ValueError):
    """The settings table or docker-compose.yml's variables do not agree; the message says how to fix it."""


@dataclass(frozen=True)
class Setting:
    name: str
    summary: str
    help: str = ""
    default: str | None = None  # what to show instead of docker-compose.yml's default
    example: str | None = None
    commented: bool = False

    @property
    def per_location(self) -> bool:
        return self.name.startswith(PER_LOCATION)

    def names(self, locations: Sequence[CodeLocation]) -> list[str]:
        """The variables this entry stands for (one per location for a ``<LOCATION>_`` entry)."""
        if not self.per_location:
            return [self.name]
        return [f"{location.env_prefix}_{self.name.removeprefix(PER_LOCATION)}" for location in locations]


@dataclass(frozen=True)
class Section:
    title: str
    settings: tuple[Setting, ...]
    help: str = ""


@dataclass(frozen=True)
class Table:
    intro: str
    sections: tuple[Section, ...]

    @property
    def settings(self) -> list[Setting]:
        return [setting for section in self.sections for setting in section.settings]


def read_table(root: Path) -> Table:
    """deploy/settings.yaml, checked for shape."""
    path = root / SETTINGS
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path} does not exist: is {root} the repository's root?") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{SETTINGS} is not valid YAML ({error}); fix the syntax") from None
    try:
        sections = tuple(
            Section(
                title=section["title"],
                help=section.get("help", ""),
                settings=tuple(Setting(**entry) for entry in section["settings"]),
            )
            for section in document["sections"]
        )
        return Table(intro=document["intro"], sections=sections)
    except (KeyError, TypeError) as error:
        raise SettingsError(
            f"{SETTINGS}: every section needs `title` and `settings`, every setting `name` and `summary` "
            f"(and only the keys its header lists): {error}"
        ) from None


def compose_variables(text: str) -> Iterator[tuple[str, str | None]]:
    """(name, default) of every ``${NAME...}`` in a compose file, nested ones included; ``$$`` is not a variable."""
    i = 0
    while (i := text.find("$", i)) >= 0:
        if text.startswith("$$", i):
            i += 2
            continue
        if not text.startswith("${", i):
            i += 1
            continue
        name = NAME.match(text, i + 2)
        if name is None:
            i += 2
            continue
        end = _closing_brace(text, name.end())
        rest = text[name.end() : end]
        default = rest[2:] if rest.startswith(":-") else rest[1:] if rest.startswith("-") else None
        yield name.group(), default
        i = name.end()  # a nested ${...} in the default is found next


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for index in range(start, len(text)):
        if text.startswith("${", index):
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
    raise SettingsError(f"{COMPOSE}: a `${{` at character {start} is never closed")


def compose_defaults(text: str) -> dict[str, str | None]:
    """Each variable docker-compose.yml reads, with its one default (None: none)."""
    defaults: dict[str, set[str | None]] = {}
    for name, default in compose_variables(text):
        defaults.setdefault(name, set()).add(default)
    conflicting = {name: values for name, values in defaults.items() if len({v for v in values if v}) > 1}
    if conflicting:
        name, values = next(iter(sorted(conflicting.items())))
        raise SettingsError(
            f"{COMPOSE} gives {name} more than one default ({', '.join(sorted(str(v) for v in values))}): "
            "use the same `${" + name + ":-...}` everywhere"
        )
    return {name: next((v for v in values if v), None) for name, values in defaults.items()}


def check_table(table: Table, defaults: dict[str, Any], locations: Sequence[CodeLocation]) -> None:
    """Every variable of docker-compose.yml is in the table and every entry of the table is used."""
    documented = {name: setting for setting in table.settings for name in setting.names(locations)}
    undocumented = sorted(set(defaults) - set(documented))
    if undocumented:
        raise SettingsError(
            f"{COMPOSE} reads {', '.join(undocumented)}, which {SETTINGS} does not list: add an entry "
            "(name, summary, help), then run `make generate`"
        )
    unused = sorted({documented[name].name for name in set(documented) - set(defaults)})
    if unused:
        raise SettingsError(
            f"{SETTINGS} lists {', '.join(unused)}, which {COMPOSE} does not read: remove the entry, "
            "or use the variable, then run `make generate`"
        )


def shown_default(setting: Setting, defaults: dict[str, Any], locations: Sequence[CodeLocation]) -> str:
    if setting.default is not None:
        return setting.default
    value = defaults.get(setting.names(locations)[0] if locations or not setting.per_location else setting.name)
    return '""' if value in (None, "") else str(value)


def compose_header(table: Table, defaults: dict[str, Any], locations: Sequence[CodeLocation]) -> str:
    """docker-compose.yml's list of variables: name, default, meaning (lines of comments)."""
    rows = [(s.name, shown_default(s, defaults, locations), s.summary) for s in table.settings]
    name_width = max(len(name) for name, _, _ in rows) + 2
    default_width = min(max(len(default) for _, default, _ in rows), 24) + 2
    return "".join(
        f"#   {name:<{name_width}}{default:<{default_width}}{summary}".rstrip() + "\n"
        for name, default, summary in rows
    )


def _comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.strip("\n").splitlines())


def env_example(table: Table, defaults: dict[str, Any], locations: Sequence[CodeLocation]) -> str:
    """.env.example: every setting with its meaning and value, by section."""
    parts = [f"# Generated from {SETTINGS} by `make generate`: edit that, not this file.\n", _comment(table.intro)]
    for section in table.sections:
        rule = f"# --- {section.title} "
        parts.append("\n" + rule + "-" * max(3, RULE_WIDTH - len(rule)) + "\n")
        if section.help:
            parts.append(_comment(section.help))
        for setting in section.settings:
            if setting.help:
                parts.append(_comment(setting.help))
            name = setting.names(locations)[0] if setting.per_location and locations else setting.name
            value = setting.example
            if value is None:
                default = defaults.get(name)
                value = "" if default is None else str(default)
            parts.append(f"{'# ' if setting.commented else ''}{name}={value}\n")
    return "".join(parts)
