"""The roles and the identity assertion: every mutation classified, each role's permissions, signatures."""

from __future__ import annotations

import pytest
from dagster._core.workspace.permissions import LOCATION_SCOPED_PERMISSIONS, Permissions
from dagster_graphql.schema import create_schema

from platform_services.access import identity
from platform_services.access.identity import Identity, IdentityError
from platform_services.access.roles import LOCATION_PERMISSIONS, MUTATIONS, Role, Scope

KEY = bytes(range(32))


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
