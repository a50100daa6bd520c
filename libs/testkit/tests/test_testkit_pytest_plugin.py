"""testkit.pytest_plugin: a test marked docker fails, naming the reason, where Docker is missing.

Each test runs a small suite in a pytester session, which loads the plugin through its
entry point as every session of the workspace does.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SUITE = """
import pytest


@pytest.mark.docker
def test_needs_docker():
    pass


def test_needs_nothing():
    pass
"""
UNREACHABLE = "unix:///nonexistent/docker.sock"


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\naddopts = --strict-markers\nmarkers =\n    docker: needs a Docker engine\n")
    pytester.makepyfile(SUITE)
    return pytester


def test_a_docker_test_fails_with_the_reason_where_no_engine_answers(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)

    result = suite.runpytest()

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*marked docker and needs a Docker engine: `docker info` failed*"])
    result.stdout.fnmatch_lines(['*-m "not docker" (make test-unit)*'])


def test_a_docker_test_fails_where_there_is_no_docker_command(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(suite.mkdir("empty")))

    result = suite.runpytest()

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*there is no `docker` command on PATH*"])


def test_the_tier_without_docker_deselects_them_and_asks_no_engine(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", UNREACHABLE)

    result = suite.runpytest("-m", "not docker")

    result.assert_outcomes(passed=1, deselected=1)


@pytest.mark.docker
def test_a_docker_test_runs_where_the_engine_answers(suite: pytest.Pytester) -> None:
    suite.runpytest().assert_outcomes(passed=2)
