"""The pieces `make generate` is built from: regions, compose variables, the one list's edits."""

from __future__ import annotations

import pytest

from template_tools.codeowners import CodeownersError
from template_tools.codeowners import render as render_codeowners
from template_tools.compose import drop_location_env, location_env_anchors
from template_tools.locations import (
    CodeLocation,
    WorkspaceError,
    add_location,
    parse_workspace,
    remove_location,
)
from template_tools.regions import RegionError, region_names, replace_region
from template_tools.settings import SettingsError, compose_defaults, compose_variables

WORKSPACE = """# the one list
load_from:
  - grpc_server:
      location_name: simple_ops  # first
      host: simple_ops
      port: 4000
      additional_metadata:
        team: data-extraction
"""


def test_a_region_is_replaced_and_the_rest_kept_byte_for_byte() -> None:
    text = "a: 1\nlist:\n  # >>> generated: items (note)\n  - old\n  # <<< generated: items\nb: 2  # kept\n"

    new = replace_region(text, "items", "- x\n- y\n", path="f.yaml")

    assert new == "a: 1\nlist:\n  # >>> generated: items (note)\n  - x\n  - y\n  # <<< generated: items\nb: 2  # kept\n"
    assert region_names(new) == ["items"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n", "expected one `# >>> generated: items` line, found 0"),
        ("# >>> generated: items\n# >>> generated: items\n# <<< generated: items\n", "found 2"),
        ("# >>> generated: items\n- x\n", "no `# <<< generated: items` line after line 1"),
    ],
)
def test_a_region_without_its_markers_is_refused_with_how_to_restore_them(text: str, message: str) -> None:
    with pytest.raises(RegionError, match="restore it from git") as error:
        replace_region(text, "items", "- x\n", path="f.yaml")
    assert message in str(error.value)


def test_compose_variables_are_found_nested_and_dollar_dollar_is_not_one() -> None:
    text = 'a: ${A:-${B:-0 6 * * *}}\nb: "$$NOT_ONE ${C}"\nc: ${D-plain}\nd: ${E:?set E}\n'

    assert list(compose_variables(text)) == [
        ("A", "${B:-0 6 * * *}"),
        ("B", "0 6 * * *"),
        ("C", None),
        ("D", "plain"),
        ("E", None),
    ]


def test_an_unclosed_variable_is_refused() -> None:
    with pytest.raises(SettingsError, match="never closed"):
        compose_defaults("a: ${A:-x\n")


def test_the_location_env_block_is_read_and_an_entry_dropped_with_its_comment() -> None:
    text = (
        "x-location-env:\n"
        "  simple_ops: &simple_ops-env\n"
        "    A: 1\n"
        "  # billing's webhook\n"
        "  billing: &billing-env\n"
        "    B: 2\n"
        "\n"
        "services: {}\n"
    )

    assert location_env_anchors(text) == {"simple_ops", "billing"}
    dropped = drop_location_env(text, "billing")
    assert dropped == "x-location-env:\n  simple_ops: &simple_ops-env\n    A: 1\n\nservices: {}\n"
    assert drop_location_env(dropped, "billing") == dropped  # nothing left to drop


def test_codeowners_takes_the_organisation_of_the_default_owner() -> None:
    text = "* @acme/platform\n# >>> generated: code-locations\n# <<< generated: code-locations\n"

    rendered = render_codeowners(text, [CodeLocation("billing_reports", team="billing")])

    assert "/code_locations/billing_reports/  @acme/billing\n" in rendered


def test_codeowners_without_a_default_owner_is_refused() -> None:
    with pytest.raises(CodeownersError, match="needs a default line"):
        render_codeowners("# >>> generated: code-locations\n# <<< generated: code-locations\n", [])


def test_adding_then_removing_a_location_keeps_the_list_byte_for_byte() -> None:
    added = add_location(WORKSPACE, CodeLocation("billing_reports", team="billing"))

    assert [(loc.name, loc.team) for loc in parse_workspace(added)] == [
        ("simple_ops", "data-extraction"),
        ("billing_reports", "billing"),
    ]
    assert "# first" in added and added.startswith("# the one list\n")
    assert remove_location(added, "billing_reports") == WORKSPACE


def test_removing_a_location_the_list_lacks_is_refused() -> None:
    with pytest.raises(WorkspaceError, match="lists no code location named 'nobody'"):
        remove_location(WORKSPACE, "nobody")


@pytest.mark.parametrize(
    ("metadata", "shown"),
    [("", "None"), ("      additional_metadata:\n        team: Billing Team\n", "'Billing Team'")],
)
def test_a_location_without_a_valid_team_is_refused_with_an_example(metadata: str, shown: str) -> None:
    text = WORKSPACE.split("      additional_metadata:")[0] + metadata

    with pytest.raises(WorkspaceError, match="needs its owning team") as error:
        parse_workspace(text)
    assert "additional_metadata: {team: billing}" in str(error.value) and f"got {shown}" in str(error.value)
