"""The access file: what each entry grants, and a message naming the file, line, entry and fix for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_services.access.identity import Identity, Role
from platform_services.access.rules import AccessError, load_rules, parse_rules

REPO = Path(__file__).resolve().parents[3]
LOCATIONS = {"simple_ops": "data-extraction", "modular_assets": "analytics", "billing_reports": "billing"}
RULES = """\
users:
  alice: {analytics: editor}
  carol: admin
  dave: {billing: launcher, analytics: viewer}
tokens:
  ci-billing: {billing: launcher}
groups:
  billing-devs: {billing: editor, analytics: launcher}
  platform-admins: admin
  "/org/data team": {data-extraction: launcher}
"""


def parse(text: str, admin_user: str = "admin"):  # type: ignore[no-untyped-def]
    return parse_rules(text, source="access.yaml", locations=LOCATIONS, admin_user=admin_user)


def test_each_section_gives_its_entries_their_roles() -> None:
    rules = parse(RULES)

    assert rules.for_user("alice", "session") == Identity("alice", "session", {"analytics": Role.EDITOR})
    assert rules.for_user("carol", "sso").admin
    assert rules.for_token("ci-billing") == Identity("ci-billing", "token", {"billing": Role.LAUNCHER})
    assert rules.for_user("dave", "password").teams == {"billing": Role.LAUNCHER}  # viewer is everyone's
    assert rules.teams == {"data-extraction", "analytics", "billing"}


def test_anyone_else_is_a_viewer_of_everything() -> None:
    nobody = parse(RULES).for_user("mallory", "session")

    assert nobody == Identity("mallory", "session", {})
    assert nobody.role_for("billing") is Role.VIEWER and not nobody.admin
    assert parse(RULES).for_token("unlisted") == Identity("unlisted", "token", {})


def test_the_highest_role_per_team_wins_across_the_user_and_their_groups() -> None:
    rules = parse(RULES)

    dave = rules.for_user("dave", "sso", ["billing-devs", "/org/data team", "unknown-group"])

    assert dave.teams == {"billing": Role.EDITOR, "analytics": Role.LAUNCHER, "data-extraction": Role.LAUNCHER}
    assert rules.for_user("dave", "sso", ["platform-admins"]).admin


def test_the_break_glass_user_is_admin_when_logged_in_locally_only() -> None:
    rules = parse("users:\n  root: {analytics: viewer}\n", admin_user="root")

    assert rules.for_user("root", "password").admin
    assert rules.for_user("root", "session").admin
    assert not rules.for_user("root", "sso").admin  # an identity provider's user of that name is not
    assert not rules.for_token("root").admin


@pytest.mark.parametrize(
    "text",
    ["", "# only comments\n", "users:\ntokens:\ngroups:\n", "users: {}\n", "groups:\n  devs: admin\n"],
)
def test_an_empty_file_or_empty_sections_are_valid(text: str) -> None:
    assert parse(text).for_user("alice", "session").teams == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "users:\n  alice: {simple_ops: editor}\n",
            "access.yaml, line 2, users: alice: 'simple_ops' is a code location; roles are given per team: "
            "use its team 'data-extraction'",
        ),
        (
            "users:\n  alice: {marketing: editor}\n",
            "access.yaml, line 2, users: alice: 'marketing' is not a team of the workspace "
            "(teams: analytics, billing, data-extraction): use one of those",
        ),
        (
            "tokens:\n  ci:\n    billing: owner\n",
            "access.yaml, line 3, tokens: ci: billing: 'owner' is not a role: give viewer, launcher or editor "
            "for a team, or `admin` alone",
        ),
        (
            "groups:\n  devs: {billing: admin}\n",
            "access.yaml, line 2, groups: devs: billing: admin is deployment-wide, never per team",
        ),
        (
            "users:\n  alice: editor\n",
            "access.yaml, line 2, users: alice: 'editor' needs its team, e.g. {billing: editor}",
        ),
        ("users:\n  alice: superuser\n", "access.yaml, line 2, users: alice: 'superuser' is not a role"),
        ("users:\n  alice:\n  bob: admin\n", "access.yaml, line 2, users: alice: has no role"),
        ("users:\n  alice: [analytics, editor]\n", "access.yaml, line 2, users: alice: is not a role"),
        (
            "users:\n\n  alice: admin\n  alice: {billing: editor}\n",
            "line 4, users: alice: is given twice (also on line 3)",
        ),
        ("users:\n  alice: {billing: editor, billing: viewer}\n", "line 2, users: alice: billing: is given twice"),
        (
            "user:\n  alice: admin\n",
            "access.yaml, line 1, user: is not a section: the sections are users, tokens, groups",
        ),
        ("users:\n  - alice\n", "access.yaml, line 2, users: must be a map of user names to their roles"),
        ("- alice\n", "access.yaml, line 1, the top level: must be a map with the sections users, tokens, groups"),
        ("users:\n  alice smith: admin\n", "access.yaml, line 2, users: alice smith: a name may only use letters"),
        ("users:\n  alice: {billing: editor\ntokens:\n", "access.yaml, line 3: not valid YAML"),
        ("users:\n\talice: admin\n", "access.yaml, line 2: not valid YAML"),
    ],
)
def test_each_mistake_is_named_with_its_line_and_fix(text: str, message: str) -> None:
    with pytest.raises(AccessError) as refused:
        parse(text)

    assert message in str(refused.value)


def test_the_committed_access_file_is_valid_against_the_repository_workspace() -> None:
    rules = load_rules(REPO / "deploy/access/access.yaml", REPO / "workspace.yaml", "admin")

    assert rules.teams == {"data-extraction", "analytics"}
    assert rules.for_user("admin", "session").admin


def test_its_commented_examples_are_valid_once_uncommented() -> None:
    text = (REPO / "deploy/access/access.yaml").read_text()
    examples = "\n".join(
        line[2:]
        for line in text.splitlines()
        if line.startswith("# ")
        and line[2:].split(":")[0].strip()
        in {"users", "tokens", "groups", "alice", "carol", "ci-analytics", "analytics-devs", "platform-admins"}
    )

    rules = parse_rules(
        examples,
        source="examples",
        locations={"simple_ops": "data-extraction", "modular_assets": "analytics"},
        admin_user="admin",
    )

    assert rules.for_user("alice", "sso", ["analytics-devs"]).teams == {
        "analytics": Role.EDITOR,
        "data-extraction": Role.LAUNCHER,
    }


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"workspace.yaml": "load_from: []\n"}, "the access file"),
        ({"access.yaml": "users:\n"}, "the workspace"),
    ],
)
def test_a_missing_file_is_named_with_the_setting_to_check(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)

    with pytest.raises(AccessError, match=f"{message} .* does not exist: set (ACCESS_FILE|WORKSPACE_FILE)"):
        load_rules(tmp_path / "access.yaml", tmp_path / "workspace.yaml", "admin")
