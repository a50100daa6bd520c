"""The roles and the identity assertion: every mutation classified, each role's permissions, signatures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dagster._core.workspace.permissions import EDITOR_PERMISSIONS, LOCATION_SCOPED_PERMISSIONS, Permissions
from dagster_graphql.schema import create_schema

from platform_services.access import identity
from platform_services.access.identity import Identity, IdentityError
from platform_services.access.roles import LOCATION_PERMISSIONS, MUTATIONS, Role, Scope

KEY = bytes(range(32))
SECURITY_DOC = Path(__file__).resolve().parents[3] / "docs" / "security.md"


def test_every_mutation_of_the_pinned_dagster_graphql_is_classified() -> None:
    """A mutation a future Dagster adds fails here until it is given a check in roles.MUTATIONS."""
    schema_mutations = set(create_schema().graphql_schema.mutation_type.fields)

    assert schema_mutations - set(MUTATIONS) == set(), "classify these in platform_services.access.roles"
    assert set(MUTATIONS) - schema_mutations == set(), "these are no longer in Dagster's schema"


def test_location_mutations_check_location_permissions_and_deployment_ones_the_others() -> None:
    for name, check in MUTATIONS.items():
        if check.scope is Scope.LOCATION:
            assert check.permissions and check.permissions <= LOCATION_SCOPED_PERMISSIONS, name
        elif check.scope is Scope.DEPLOYMENT:
            assert check.permissions and not check.permissions & LOCATION_SCOPED_PERMISSIONS, name
        else:
            assert not check.permissions, name


def test_each_role_holds_what_the_one_below_holds_and_more() -> None:
    viewer, launcher, editor, admin = (LOCATION_PERMISSIONS[role] for role in Role)

    assert viewer == frozenset()
    assert viewer < launcher < editor
    assert editor == admin  # on a location an editor may do all an admin may; admin adds the deployment
    assert launcher == {
        Permissions.LAUNCH_PIPELINE_EXECUTION,
        Permissions.LAUNCH_PIPELINE_REEXECUTION,
        Permissions.TERMINATE_PIPELINE_EXECUTION,
        Permissions.LAUNCH_PARTITION_BACKFILL,
        Permissions.CANCEL_PARTITION_BACKFILL,
    }
    assert Permissions.UPDATE_SENSOR_CURSOR in editor and Permissions.WIPE_ASSETS in editor
    assert Permissions.EDIT_APP_MANAGED_COMPONENTS not in admin  # a Dagster+ feature, off in OSS


def _documented_permissions() -> dict[tuple[Role, str], set[Permissions]]:
    """docs/security.md's role table: per (role, "team" or "all"), the permissions it lists."""
    section = SECURITY_DOC.read_text(encoding="utf-8").split("## Roles", 1)[1].split("\n## ", 1)[0]
    documented: dict[tuple[Role, str], set[Permissions]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].startswith("`"):
            continue
        permissions = {Permissions(name) for name in re.findall(r"`(\w+)`", cells[0])}
        for role, where in zip(Role, cells[1:], strict=True):
            if where:
                documented.setdefault((role, where), set()).update(permissions)
    return documented


def test_the_role_table_in_the_security_doc_is_what_the_roles_hold() -> None:
    documented = _documented_permissions()
    on_team = {role: documented.get((role, "team"), set()) for role in Role}
    everywhere = documented.get((Role.ADMIN, "all"), set())

    assert {role: frozenset(permissions) for role, permissions in on_team.items() if role is not Role.ADMIN} == {
        role: LOCATION_PERMISSIONS[role] for role in Role if role is not Role.ADMIN
    }
    assert set(documented) <= {(Role.LAUNCHER, "team"), (Role.EDITOR, "team"), (Role.ADMIN, "all")}
    assert everywhere == {Permissions(p) for p, on in EDITOR_PERMISSIONS.items() if on}


def test_an_identity_holds_viewer_where_no_role_is_given_and_admin_everywhere() -> None:
    alice = Identity("alice", "password", {"billing": Role.EDITOR})

    assert alice.role_for("billing") is Role.EDITOR
    assert alice.role_for("analytics") is Role.VIEWER
    assert alice.role_for(None) is Role.VIEWER
    assert Identity("root", "password", admin=True).role_for("analytics") is Role.ADMIN
    assert alice.describe_role() == "billing:editor"


def test_a_signed_identity_verifies_as_itself() -> None:
    alice = Identity("alice", "token", {"billing": Role.LAUNCHER, "analytics": Role.EDITOR})

    assert identity.verify(identity.sign(alice, KEY, now=1000.0), KEY, now=1000.0) == alice


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda value: None, "did not come through the gateway"),
        (lambda value: "v1.x", "malformed"),
        (lambda value: value.replace("v1.", "v2.", 1), "malformed"),
        (lambda value: value[:-2] + ("AA" if not value.endswith("AA") else "BB"), "signature does not hold"),
        (lambda value: identity.sign(Identity("alice", "token", admin=True), bytes(32)), "signature does not hold"),
    ],
)
def test_a_missing_malformed_or_forged_assertion_is_refused(tamper, reason: str) -> None:  # type: ignore[no-untyped-def]
    value = identity.sign(Identity("alice", "token"), KEY)

    with pytest.raises(IdentityError, match=reason):
        identity.verify(tamper(value), KEY)


def test_an_expired_assertion_is_refused() -> None:
    value = identity.sign(Identity("alice", "token"), KEY, now=1000.0)

    with pytest.raises(IdentityError, match="expired"):
        identity.verify(value, KEY, now=1000.0 + identity.LIFETIME_SECONDS + 1)
