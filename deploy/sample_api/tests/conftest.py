"""Shared fixtures: a small HTTP client (``api``, the server, comes from sample_api.pytest_plugin)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

import pytest

from sample_api.testing import SampleApi

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Reply:
    """A complete HTTP response."""

    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


Fetch = Callable[..., Reply]


def _fetch(url: str, method: str = "GET", body: bytes | None = None, timeout: float = 10) -> Reply:
    """Send one request; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


@pytest.fixture
def fetch() -> Fetch:
    """``fetch(url, method="GET", body=None, timeout=10)``: send one request to any URL."""
    return _fetch


@pytest.fixture
def get(api: SampleApi) -> Fetch:
    """``get("/users")``: fetch a path of the shared sample-api."""
    return lambda path, **kwargs: _fetch(api.url + path, **kwargs)
