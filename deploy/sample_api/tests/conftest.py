"""Shared fixtures: a small HTTP client (``api``, the server, comes from testkit.pytest_plugin)."""

from __future__ import annotations

import pytest

from testkit.sample_api import Fetch, SampleApi, fetch


@pytest.fixture(name="fetch")
def fetch_fixture() -> Fetch:
    """``fetch(url, method="GET", body=None, timeout=10)``: send one request to any URL."""
    return fetch


@pytest.fixture
def get(api: SampleApi) -> Fetch:
    """``get("/users")``: fetch a path of the shared sample-api."""
    return lambda path, **kwargs: fetch(api.url + path, **kwargs)
