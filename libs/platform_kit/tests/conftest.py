"""Fixtures of the platform_kit tests: a real sample-api process, reset before each use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from platform_kit.source_api import SourceApiResource
from sample_api.testing import SampleApi, running_sample_api


@pytest.fixture(scope="session")
def sample_api_process() -> Iterator[SampleApi]:
    """One sample-api subprocess for the whole session (10 users x 10 posts)."""
    with running_sample_api(users=10, posts_per_user=10) as api:
        yield api


@pytest.fixture
def api(sample_api_process: SampleApi) -> SampleApi:
    """The sample API with its start-up knobs restored and its counters zeroed."""
    sample_api_process.reset()
    return sample_api_process


@pytest.fixture
def client(api: SampleApi) -> SourceApiResource:
    """A resource on the sample API whose retries take milliseconds, not seconds."""
    return SourceApiResource(base_url=api.url, backoff_seconds=0.01, max_attempts=3)
