"""Shared fixtures: a small HTTP client (``api``, the server, comes from sample_api.pytest_plugin)."""

from __future__ import annotations

import pytest

from sample_api.testing import Fetch, SampleApi, fetch


@pytest.fixture(name="fetch")
def fetch_fixture() -> Fetch:
    """``fetch(url, method="GET", body=None, timeout=10)``: send one request to any URL."""
    return fetch


@pytest.fixture
def get(api: SampleApi) -> Fetch:
    """``get("/users")``: fetch a path of the shared sample-api."""
    return lambda path, **kwargs: fetch(api.url + path, **kwargs)
