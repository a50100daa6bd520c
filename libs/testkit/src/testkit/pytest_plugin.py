"""The pytest plugin of the workspace: sample-API fixtures and the ``docker`` tier's guard.

Registered as a pytest plugin (entry point ``pytest11``), so every suite with
testkit installed has them without a conftest:

* ``sample_api_process``: one server for the whole session (10 users x 10 posts);
* ``api``: that server reset to its start-up knobs, with ``SOURCE_API_URL``
  pointing at it for the test (as the deployment sets it);
* ``postgres``: a real Postgres 15 server for the session (testkit.postgres).

Tests may change knobs freely and in any order: each use of ``api`` starts clean.

A test marked ``docker`` fails, saying why, where no Docker engine answers: a
suite that needs Docker must not pass by skipping. ``-m "not docker"`` deselects
those tests instead (``make test-unit``).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from testkit.postgres import PostgresServer, postgres_or_fail
from testkit.sample_api import SampleApi, running_sample_api

#: Why no Docker engine answers (None: one does), asked once per session.
_DOCKER_PROBLEM = pytest.StashKey[str | None]()


@pytest.fixture(scope="session")
def sample_api_process() -> Iterator[SampleApi]:
    """One sample-api subprocess for the whole session."""
    with running_sample_api(users=10, posts_per_user=10) as api:
        yield api


@pytest.fixture
def api(sample_api_process: SampleApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[SampleApi]:
    """The sample API with its start-up knobs and zeroed counters; SOURCE_API_URL points at it."""
    sample_api_process.reset()
    monkeypatch.setenv("SOURCE_API_URL", sample_api_process.url)
    yield sample_api_process
    sample_api_process.reset()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A fresh server with a ``dagster`` database, owned by user ``dagster``; stopped at the end."""
    with postgres_or_fail() as server:
        yield server


def docker_problem() -> str | None:
    """Why the docker CLI cannot reach an engine here, or None when it can."""
    if shutil.which("docker") is None:
        return "there is no `docker` command on PATH"
    try:
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if info.returncode:
        return f"`docker info` failed: {(info.stderr or info.stdout).strip()}"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    stash = item.config.stash
    if _DOCKER_PROBLEM not in stash:
        stash[_DOCKER_PROBLEM] = docker_problem()
    if problem := stash[_DOCKER_PROBLEM]:
        pytest.fail(
            f"this test is marked docker and needs a Docker engine: {problem}\n"
            'Start Docker, or leave these tests out with -m "not docker" (make test-unit).',
            pytrace=False,
        )
