"""pytest fixtures for suites that test against a real sample-api process.

Registered as a pytest plugin (entry point ``pytest11``), so every suite with
testkit installed has them without a conftest:

* ``sample_api_process``: one server for the whole session (10 users x 10 posts);
* ``api``: that server reset to its start-up knobs, with ``SOURCE_API_URL``
  pointing at it for the test (as the deployment sets it).

Tests may change knobs freely and in any order: each use of ``api`` starts clean.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.sample_api import SampleApi, running_sample_api


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
