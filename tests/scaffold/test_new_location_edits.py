"""The text-editing helpers of new_location on small files: exact results, and clear refusals."""

from __future__ import annotations

import pytest

import new_location
from new_location import AnchorError, Location, ScaffoldError

PYPROJECT = """\
[dependency-groups]
dev = [
    "platform-kit",
    "simple-ops",
    "pytest==9.2.0",      # the test runner
]

[tool.uv.sources]
platform-kit = { workspace = true }
simple-ops = { workspace = true }

[tool.pytest.ini_options]
addopts = "-ra"
"""

COMPOSE = """\
services:
  webserver:
    image: w
    depends_on:
      <<: *after-migration
      # Started, not healthy.
      simple_ops: {condition: service_started}
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
      port: 4000
"""


def test_an_array_item_goes_after_the_anchor_with_the_same_indentation() -> None:
    edited = new_location.toml_array_add(PYPROJECT, "dependency-groups", "dev", "billing-reports", after=["simple-ops"])

    assert edited == PYPROJECT.replace('    "simple-ops",\n', '    "simple-ops",\n    "billing-reports",\n')


def test_without_an_anchor_the_item_is_appended_and_the_missing_comma_added() -> None:
    text = 'x = 1\n\n[t]\nitems = [\n  "a",\n  "b"  # last\n]\n'

    edited = new_location.toml_array_add(text, "t", "items", "c", after=["not-there"])

    assert edited == 'x = 1\n\n[t]\nitems = [\n  "a",\n  "b",  # last\n  "c",\n]\n'


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[other]\ndev = [\n]\n", r"no \[dependency-groups\] table"),
        ('[dependency-groups]\ndev = ["a", "b"]\n', "no multi-line array dev"),
        ('[dependency-groups]\ndev = [\n    "a",\n[next]\n', "not closed"),
    ],
)
def test_an_array_of_another_shape_is_refused(text: str, problem: str) -> None:
    with pytest.raises(AnchorError, match=problem):
        new_location.toml_array_add(text, "dependency-groups", "dev", "x", path="pyproject.toml")


def test_a_table_entry_goes_after_the_anchor_key_or_after_the_last_key() -> None:
    line = "billing-reports = { workspace = true }"

    after_anchor = new_location.toml_table_add(PYPROJECT, "tool.uv.sources", line, after=["platform-kit"])
    at_the_end = new_location.toml_table_add(PYPROJECT, "tool.uv.sources", line)

    assert after_anchor == PYPROJECT.replace(
        "platform-kit = { workspace = true }\n", f"platform-kit = {{ workspace = true }}\n{line}\n"
    )
    assert at_the_end == PYPROJECT.replace(
        "simple-ops = { workspace = true }\n", f"simple-ops = {{ workspace = true }}\n{line}\n"
    )


def test_a_dependency_is_appended_inside_the_depends_on_block() -> None:
    edited = new_location.yaml_append(
        COMPOSE, ["services", "webserver", "depends_on"], "billing_reports: {condition: service_started}"
    )

    assert edited == COMPOSE.replace(
        "      simple_ops: {condition: service_started}\n",
        "      simple_ops: {condition: service_started}\n      billing_reports: {condition: service_started}\n",
    )


def test_a_list_entry_is_appended_with_the_list_s_indentation() -> None:
    edited = new_location.yaml_append(WORKSPACE, ["load_from"], "- grpc_server:\n    location_name: b\n")

    assert edited == WORKSPACE + "  - grpc_server:\n      location_name: b\n"


def test_a_service_goes_after_its_sibling_and_the_next_comment_stays_with_the_next_service() -> None:
    edited = new_location.yaml_insert_after(COMPOSE, ["services", "simple_ops"], "billing_reports:\n  image: b\n")

    assert edited == COMPOSE.replace(
        '      A: "1"\n\n  # Not a code location.',
        '      A: "1"\n\n  billing_reports:\n    image: b\n\n  # Not a code location.',
    )


def test_services_are_listed_and_filtered_by_what_they_merge() -> None:
    assert new_location.compose_services(COMPOSE) == ["webserver", "simple_ops", "sample_api"]
    assert new_location.compose_services(COMPOSE, merging=new_location.CODE_LOCATION_MERGE) == ["simple_ops"]


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (["services", "gateway", "depends_on"], "no key services.gateway"),
        (["services", "sample_api", "depends_on"], "services.sample_api.depends_on has no indented block"),
    ],
)
def test_a_missing_or_inline_yaml_block_is_refused(keys: list[str], problem: str) -> None:
    with pytest.raises(AnchorError, match=problem):
        new_location.yaml_append(COMPOSE, keys, "x: 1", path="docker-compose.yml")


def test_a_line_goes_after_the_last_match_or_the_missing_anchor_is_named() -> None:
    text = "COPY a/pyproject.toml a/\nCOPY b/pyproject.toml b/\nRUN uv sync\n"

    assert new_location.insert_after_last(text, r"^COPY \w+/pyproject", "COPY c/pyproject.toml c/") == (
        "COPY a/pyproject.toml a/\nCOPY b/pyproject.toml b/\nCOPY c/pyproject.toml c/\nRUN uv sync\n"
    )
    with pytest.raises(AnchorError, match=r"Dockerfile: no line matches"):
        new_location.insert_after_last("FROM x\n", r"^COPY", "COPY c/", path="Dockerfile")


def test_templates_fill_only_double_brace_placeholders() -> None:
    template = "{{name}}: ${{{env_prefix}}_CRON:-${CRON}} {'dict': f'{x}'}"

    rendered = new_location.render(template, Location("billing_reports", "billing").variables())

    assert rendered == "billing_reports: ${BILLING_REPORTS_CRON:-${CRON}} {'dict': f'{x}'}"
    with pytest.raises(KeyError, match="{{owner}}"):
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
        new_location.validate(Location(name, team))
