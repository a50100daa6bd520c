"""Fixtures of the platform_kit tests (``api``, a real sample-api process, comes from testkit.pytest_plugin)."""

from __future__ import annotations

import pytest

from platform_kit.source_api import SourceApiResource
from testkit.sample_api import SampleApi


@pytest.fixture
def client(api: SampleApi) -> SourceApiResource:
    """A resource on the sample API whose retries take milliseconds, not seconds."""
    return SourceApiResource(base_url=api.url, backoff_seconds=0.01, max_attempts=3)
