"""Roles in the access file, set from the host: ``make ui-user``, ``make ui-token``, ``make ui-token-revoke``.

    python -m template_tools.access user NAME [--team TEAM] --role ROLE [--check]
    python -m template_tools.access token NAME [--team TEAM] --role ROLE [--check]
    python -m template_tools.access remove-token NAME
    (each with [--access deploy/access/access.yaml] [--workspace workspace.yaml])

``--role admin`` (without a team) makes a deployment-wide admin; viewer, launcher or editor
need the team. The file is edited keeping its comments and layout, checked whole with the
auth service's own rules (so the service accepts what this writes), and replaced
atomically: the running service picks it up within seconds. ``--check`` validates and
writes nothing (make runs it before asking the init service for a password or a token).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from platform_services.access.identity import Role
from platform_services.access.rules import NAME, AccessError, parse_rules, workspace_teams
from template_tools import kubernetes
from template_tools.locations import ROOT

ACCESS = ROOT / "deploy" / "access" / "access.yaml"
SECTIONS = {"user": "users", "token": "tokens"}


class AccessEditError(Exception):
    """The change cannot be made; the message says why and what to run instead."""


def _editor() -> YAML:
    editor = YAML()
    editor.preserve_quotes = True
    editor.indent(mapping=2, sequence=4, offset=2)
    editor.width = 4096
    return editor


def check_grant(name: str, team: str | None, role: str, locations: dict[str, str]) -> None:
    """The arguments of a grant, each checked before anything is written."""
    teams = sorted(set(locations.values()))
    if not NAME.match(name):
        raise AccessEditError(f"NAME={name!r}: a name may only use letters, digits and _ . @ - (at most 64)")
    if role not in set(Role):
        raise AccessEditError(f"ROLE={role!r} is not a role: use viewer, launcher or editor with TEAM=, or admin")
    if role == Role.ADMIN and team:
        raise AccessEditError("ROLE=admin is deployment-wide: leave TEAM out")
    if role != Role.ADMIN and not team:
        raise AccessEditError(f"ROLE={role} is held per team: add TEAM= (one of {', '.join(teams) or 'none'})")
    if team and team not in teams:
        if team in locations:
            raise AccessEditError(
                f"TEAM={team!r} is a code location; roles are given per team: use its team {locations[team]!r}"
            )
        raise AccessEditError(
            f"TEAM={team!r} is not a team of workspace.yaml (teams: {', '.join(teams) or 'none'}); "
            "add its code location first (make new-location NAME=... TEAM=...)"
        )


def grant(text: str, section: str, name: str, team: str | None, role: str) -> tuple[str, str]:
    """The access file's ``text`` with ``name`` holding ``role`` (on ``team``), and what that entry now says."""
    editor = _editor()
    document = editor.load(text) or CommentedMap()
    entries = document.get(section)
    if not isinstance(entries, CommentedMap):
        entries = document[section] = CommentedMap()
    entries.fa.set_block_style()  # one entry per line, also where the section was written `{}`
    if role == Role.ADMIN:
        entries[name] = "admin"
        shown = "admin"
    else:
        assert team is not None
        current = entries.get(name)
        if not isinstance(current, CommentedMap):
            current = CommentedMap()
            current.fa.set_flow_style()
            entries[name] = current
        current[team] = role
        shown = "{" + ", ".join(f"{key}: {value}" for key, value in current.items()) + "}"
    out = io.StringIO()
    editor.dump(document, out)
    return out.getvalue(), f"{section}: {name}: {shown}"


def remove(text: str, section: str, name: str) -> str | None:
    """The access file's ``text`` without ``name``'s entry, or None if it has none."""
    editor = _editor()
    document = editor.load(text)
    entries = document.get(section) if isinstance(document, CommentedMap) else None
    if not isinstance(entries, CommentedMap) or name not in entries:
        return None
    del entries[name]
    if not entries:
        document[section] = None
    out = io.StringIO()
    editor.dump(document, out)
    return out.getvalue()


def validate(text: str, path: Path, locations: dict[str, str]) -> None:
    parse_rules(text, source=str(path), locations=locations, admin_user=os.environ.get("DAGSTER_UI_USER") or "admin")


def write_atomically(path: Path, text: str) -> None:
    """Readers (the auth service, through a mounted folder) see the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
    os.replace(tmp, path)


def write(path: Path, text: str) -> None:
    """The access file, and, in a checkout, its ConfigMap for Kubernetes (which `make verify` holds to it)."""
    write_atomically(path, text)
    root = path.resolve().parents[2]
    config_map = root / kubernetes.ACCESS_CONFIG
    if path.resolve() == (root / kubernetes.ACCESS).resolve() and config_map.is_file():
        write_atomically(config_map, kubernetes.render_access_config(text))
        print(f"access: also wrote {kubernetes.ACCESS_CONFIG} (on Kubernetes: kubectl apply -f it)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--access", type=Path, default=ACCESS, help="the access file (default: %(default)s)")
    parser.add_argument("--workspace", type=Path, default=ROOT / "workspace.yaml", help="its teams' workspace.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    for kind in SECTIONS:
        command = sub.add_parser(kind, help=f"give a {kind} a role")
        command.add_argument("name")
        command.add_argument("--team")
        command.add_argument("--role", required=True)
        command.add_argument("--check", action="store_true", help="validate only; write nothing")
    sub.add_parser("remove-token", help="remove a token's entry").add_argument("name")
    args = parser.parse_args(argv)
    path: Path = args.access
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        locations = workspace_teams(args.workspace)
        validate(text, path, locations)  # a file with a mistake is fixed by hand first, never edited further
        if args.command == "remove-token":
            new = remove(text, "tokens", args.name)
            if new is None:
                print(f"access: {path} gives no role to a token named {args.name!r}: nothing to remove")
                return 0
            validate(new, path, locations)
            write(path, new)
            print(f"access: {path}: removed tokens: {args.name}")
            return 0
        team = args.team or None
        check_grant(args.name, team, args.role, locations)
        new, entry = grant(text, SECTIONS[args.command], args.name, team, args.role)
        validate(new, path, locations)
        if not args.check:
            write(path, new)
            print(f"access: {path}: {entry} (the auth service applies it within seconds)")
    except (AccessEditError, AccessError, OSError) as error:
        print(f"access: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
