"""The YAML text-editing helpers and the scaffolder's pure parts, on small files: exact results, clear refusals."""

from __future__ import annotations

import re

import pytest

from template_tools import new_location, yamltext
from template_tools.locations import WorkspaceError, parse_workspace
from template_tools.new_location import Location, ScaffoldError
from template_tools.yamltext import AnchorError

COMPOSE = """\
services:
  webserver:
    image: w
    depends_on:
      # Started, not healthy.
      postgres: {condition: service_started}
    healthcheck: {test: [CMD, "true"]}

  # Team A's code server.
  simple_ops:
    <<: *code-location
    environment:
      A: "1"

  # Not a code location.
  sample_api:
    image: s
    depends_on: *after-migration

volumes:
  data:
"""

WORKSPACE = """\
# The locations.
load_from:
  - grpc_server:
      location_name: simple_ops
      host: simple_ops
      port: 4000
  - grpc_server:
      location_name: billing
      host: billing
      port: 4000
"""


def test_a_dependency_is_appended_inside_the_depends_on_block() -> None:
    edited = yamltext.yaml_append(COMPOSE, ["services", "webserver", "depends_on"], "gateway: {condition: x}")

    assert edited == COMPOSE.replace(
        "      postgres: {condition: service_started}\n",
        "      postgres: {condition: service_started}\n      gateway: {condition: x}\n",
    )


def test_a_list_entry_is_appended_with_the_list_s_indentation() -> None:
    edited = yamltext.yaml_append(WORKSPACE, ["load_from"], "- grpc_server:\n    location_name: b\n")

    assert edited == WORKSPACE + "  - grpc_server:\n      location_name: b\n"


def test_a_service_goes_after_its_sibling_and_the_next_comment_stays_with_the_next_service() -> None:
    edited = yamltext.yaml_insert_after(COMPOSE, ["services", "simple_ops"], "billing_reports:\n  image: b\n")

    assert edited == COMPOSE.replace(
        '      A: "1"\n\n  # Not a code location.',
        '      A: "1"\n\n  billing_reports:\n    image: b\n\n  # Not a code location.',
    )


def test_removing_a_service_takes_its_comment_and_the_blank_line_before_it() -> None:
    edited = yamltext.remove_block(COMPOSE, ["services", "simple_ops"])

    assert edited == COMPOSE.replace(
        '\n  # Team A\'s code server.\n  simple_ops:\n    <<: *code-location\n    environment:\n      A: "1"\n', ""
    )
    assert yamltext.compose_services(edited) == ["webserver", "sample_api"]


def test_removing_a_list_item_keeps_the_others_byte_for_byte() -> None:
    edited = yamltext.remove_list_items(WORKSPACE, ["load_from"], lambda item: "billing" in item)

    assert edited == WORKSPACE.split("  - grpc_server:\n      location_name: billing")[0]


def test_services_are_listed_and_filtered_by_what_they_merge() -> None:
    assert yamltext.compose_services(COMPOSE) == ["webserver", "simple_ops", "sample_api"]
    assert yamltext.compose_services(COMPOSE, merging=new_location.CODE_LOCATION_MERGE) == ["simple_ops"]


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (["services", "gateway", "depends_on"], "no key services.gateway"),
        (["services", "sample_api", "depends_on"], "services.sample_api.depends_on has no indented block"),
    ],
)
def test_a_missing_or_inline_yaml_block_is_refused(keys: list[str], problem: str) -> None:
    with pytest.raises(AnchorError, match=problem):
        yamltext.yaml_append(COMPOSE, keys, "x: 1", path="docker-compose.yml")


def test_the_workspace_lists_its_locations_in_order() -> None:
    assert [location.name for location in parse_workspace(WORKSPACE)] == ["simple_ops", "billing"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("load_from: [\n", "not valid YAML"),
        ("locations: []\n", "no `load_from:` list"),
        ("load_from:\n  - python_module: {module_name: x}\n", "not a `grpc_server:` entry"),
        ("load_from:\n  - grpc_server: {location_name: a, host: b, port: 4000}\n", "set `host: a`"),
        ("load_from:\n  - grpc_server: {location_name: A-b, host: A-b, port: 4000}\n", "snake_case"),
        ("load_from:\n  - grpc_server: {location_name: a, host: a}\n", "integer `port`"),
        ("load_from:\n" + "  - grpc_server: {location_name: a, host: a, port: 4000}\n" * 2, "listed twice"),
    ],
)
def test_a_workspace_that_breaks_the_convention_is_refused_with_the_fix(text: str, problem: str) -> None:
    with pytest.raises(WorkspaceError, match=problem):
        parse_workspace(text)


def test_templates_fill_only_double_brace_placeholders() -> None:
    template = "{{name}}: ${{{env_prefix}}_CRON:-${CRON}} {'dict': f'{x}'}"

    rendered = new_location.render(template, Location("billing_reports", team="billing").variables())

    assert rendered == "billing_reports: ${BILLING_REPORTS_CRON:-${CRON}} {'dict': f'{x}'}"
    with pytest.raises(KeyError, match=re.escape("{{owner}}")):
        new_location.render("{{owner}}", {})


@pytest.mark.parametrize(
    ("name", "team", "problem"),
    [
        ("BillingReports", "billing", "snake_case"),
        ("billing-reports", "billing", "snake_case"),
        ("2nd_location", "billing", "snake_case"),
        ("billing__reports", "billing", "snake_case"),
        ("import", "billing", "keyword"),
        ("json", "billing", "standard-library"),
        ("billing_reports", "team:billing", "without the 'team:' prefix"),
    ],
)
def test_names_that_cannot_work_are_refused(name: str, team: str, problem: str) -> None:
    with pytest.raises(ScaffoldError, match=problem):
        new_location.validate(Location(name, team=team))
