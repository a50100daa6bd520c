"""The access file: each person's, token's and single-sign-on group's role per team.

    users:            # local and single-sign-on users, by name
      alice: {billing: editor}
      carol: admin
    tokens:           # API tokens, by name (make ui-token)
      ci-billing: {billing: launcher}
    groups:           # the identity provider's groups claim -> roles
      billing-devs: {billing: editor, analytics: launcher}

A value is ``admin`` (deployment-wide) or a map of team -> viewer, launcher or editor;
the teams are workspace.yaml's. Everyone is a viewer of every team unless granted more,
the highest role per team wins, and the local user ``DAGSTER_UI_USER`` is always admin
(the break-glass login). A bad file is refused with a message naming the file, the line,
the entry and the fix: the service keeps the rules it had.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from instance_kit.workspace import read_teams
from platform_services.access.identity import Identity, Role

#: Each section, and what its keys are.
SECTIONS = {"users": "user names", "tokens": "token names", "groups": "group names (the groups claim's values)"}
#: As init's user names; tokens are named the same way.
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
#: How a person logged in with a local password: only these can be the break-glass admin
#: (a single-sign-on user who happens to have that name is not).
LOCAL_VIAS = frozenset({"password", "session"})
TEAM_ROLES = (Role.VIEWER, Role.LAUNCHER, Role.EDITOR)
#: Each role holds what the ones before it hold.
RANK = {role: rank for rank, role in enumerate(Role)}
ROLE_HELP = "viewer, launcher or editor for a team, or `admin` alone for the whole deployment"


class AccessError(ValueError):
    """The access file (or the workspace it names teams of) is unusable; the message says where and why."""


@dataclass(frozen=True)
class Grant:
    """What an entry gives: deployment-wide admin, or a role per team."""

    admin: bool = False
    teams: Mapping[str, Role] = field(default_factory=dict)

    def merged(self, other: Grant) -> Grant:
        """The higher role of the two per team."""
        teams = dict(self.teams)
        for team, role in other.teams.items():
            if RANK[role] > RANK[teams.get(team, Role.VIEWER)]:
                teams[team] = role
        return Grant(self.admin or other.admin, teams)

    def identity(self, user: str, via: str) -> Identity:
        if self.admin:
            return Identity(user, via, admin=True)
        teams = {team: role for team, role in sorted(self.teams.items()) if role is not Role.VIEWER}
        return Identity(user, via, teams)


NOTHING = Grant()


@dataclass(frozen=True)
class Rules:
    """The access file's grants, checked against the workspace's teams."""

    users: Mapping[str, Grant] = field(default_factory=dict)
    tokens: Mapping[str, Grant] = field(default_factory=dict)
    groups: Mapping[str, Grant] = field(default_factory=dict)
    admin_user: str = "admin"
    teams: frozenset[str] = frozenset()

    def for_user(self, name: str, via: str, groups: Iterable[str] = ()) -> Identity:
        """A person's identity: their own entry and their groups', the highest role per team."""
        if via in LOCAL_VIAS and name == self.admin_user:
            return Identity(name, via, admin=True)
        grant = self.users.get(name, NOTHING)
        for group in groups:
            grant = grant.merged(self.groups.get(group, NOTHING))
        return grant.identity(name, via)

    def for_token(self, name: str) -> Identity:
        return self.tokens.get(name, NOTHING).identity(name, "token")


class _Parser:
    def __init__(self, source: str, locations: Mapping[str, str]) -> None:
        self.source = source
        self.locations = locations
        self.teams = frozenset(locations.values())

    def fail(self, node: yaml.Node, where: str, problem: str) -> AccessError:
        return AccessError(f"{self.source}, line {node.start_mark.line + 1}, {where}: {problem}")

    def pairs(self, node: yaml.MappingNode, where: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The mapping's entries as (key, key node, value node); a repeated or non-text key is an error."""
        seen: dict[str, int] = {}
        result: list[tuple[str, yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or not key_node.value:
                raise self.fail(key_node, where, "a key must be a plain name")
            key = key_node.value
            if key in seen:
                raise self.fail(
                    key_node, f"{where}: {key}", f"is given twice (also on line {seen[key]}): keep one of the two"
                )
            seen[key] = key_node.start_mark.line + 1
            result.append((key, key_node, value_node))
        return result

    def role(self, node: yaml.Node, where: str) -> Role:
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if value == Role.ADMIN:
            raise self.fail(
                node, where, "admin is deployment-wide, never per team: give the entry `admin` alone, not under a team"
            )
        if value not in TEAM_ROLES:
            shown = repr(value) if isinstance(value, str) and value else "no role"
            raise self.fail(node, where, f"{shown} is not a role: give {ROLE_HELP}")
        return Role(value)

    def team(self, node: yaml.Node, name: str, where: str) -> str:
        if name in self.teams:
            return name
        if name in self.locations:
            raise self.fail(
                node,
                where,
                f"{name!r} is a code location; roles are given per team: use its team {self.locations[name]!r}",
            )
        known = ", ".join(sorted(self.teams)) or "none"
        raise self.fail(
            node,
            where,
            f"{name!r} is not a team of the workspace (teams: {known}): use one of those, or add the "
            "team's code location to workspace.yaml first (make new-location)",
        )

    def grant(self, node: yaml.Node, where: str) -> Grant:
        if isinstance(node, yaml.ScalarNode):
            if node.value == Role.ADMIN:
                return Grant(admin=True)
            if node.value in TEAM_ROLES:
                raise self.fail(
                    node,
                    where,
                    f"{node.value!r} needs its team, e.g. {{billing: {node.value}}}: only `admin` stands alone",
                )
            if not node.value:
                raise self.fail(node, where, f"has no role: give `admin`, or a map of team: role ({ROLE_HELP})")
            raise self.fail(node, where, f"{node.value!r} is not a role: give {ROLE_HELP}")
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, where, "is not a role: give `admin`, or a map of team: role, e.g. {billing: editor}")
        teams = {}
        for team, key_node, value_node in self.pairs(node, where):
            teams[self.team(key_node, team, where)] = self.role(value_node, f"{where}: {team}")
        return Grant(teams=MappingProxyType(teams))

    def section(self, name: str, node: yaml.Node) -> dict[str, Grant]:
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, name, f"must be a map of {SECTIONS[name]} to their roles, e.g. `alice: admin`")
        grants = {}
        for entry, key_node, value_node in self.pairs(node, name):
            where = f"{name}: {entry}"
            if name != "groups" and not NAME.match(entry):
                raise self.fail(key_node, where, "a name may only use letters, digits and _ . @ - (at most 64)")
            grants[entry] = self.grant(value_node, where)
        return grants

    def rules(self, text: str, admin_user: str) -> Rules:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = f", line {mark.line + 1}" if mark else ""
            raise AccessError(
                f"{self.source}{line}: not valid YAML ({error.problem or error.context}): fix the syntax "
                "(indentation, a missing `:` or an unclosed { or [)"
            ) from None
        except yaml.YAMLError as error:
            raise AccessError(f"{self.source}: not valid YAML ({error}): fix the syntax") from None
        sections: dict[str, dict[str, Grant]] = {name: {} for name in SECTIONS}
        if root is None or (isinstance(root, yaml.ScalarNode) and root.tag.endswith(":null")):
            return Rules(admin_user=admin_user, teams=self.teams)
        if not isinstance(root, yaml.MappingNode):
            raise self.fail(root, "the top level", f"must be a map with the sections {', '.join(SECTIONS)}")
        for name, key_node, value_node in self.pairs(root, "the top level"):
            if name not in SECTIONS:
                raise self.fail(
                    key_node, name, f"is not a section: the sections are {', '.join(SECTIONS)} (check the spelling)"
                )
            sections[name] = self.section(name, value_node)
        return Rules(
            users=MappingProxyType(sections["users"]),
            tokens=MappingProxyType(sections["tokens"]),
            groups=MappingProxyType(sections["groups"]),
            admin_user=admin_user,
            teams=self.teams,
        )


def parse_rules(text: str, *, source: str, locations: Mapping[str, str], admin_user: str) -> Rules:
    """The rules of an access file's ``text``; ``locations`` maps each code location to its team."""
    return _Parser(source, locations).rules(text, admin_user)


def workspace_teams(workspace_file: Path) -> dict[str, str]:
    """Each code location's team, from workspace.yaml, or an error naming the file."""
    try:
        return read_teams(workspace_file)
    except FileNotFoundError:
        raise AccessError(
            f"the workspace {workspace_file} does not exist: set WORKSPACE_FILE to workspace.yaml"
        ) from None
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise AccessError(f"the workspace {workspace_file} cannot be read for its teams: {error}") from None


def load_rules(access_file: Path, workspace_file: Path, admin_user: str) -> Rules:
    """The rules of the access file, checked against the workspace's teams."""
    try:
        text = access_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AccessError(
            f"the access file {access_file} does not exist: set ACCESS_FILE, or mount the folder that holds "
            "access.yaml (the repository's deploy/access)"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise AccessError(f"the access file {access_file} cannot be read: {error}") from None
    return parse_rules(text, source=str(access_file), locations=workspace_teams(workspace_file), admin_user=admin_user)
