"""Fixtures of the auth service's tests: its files, and the service running against them (testkit.auth)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.auth import Auth, AuthFiles, start_auth


@pytest.fixture
def auth_files(tmp_path: Path) -> AuthFiles:
    return AuthFiles(tmp_path).create()


@pytest.fixture
def auth(auth_files: AuthFiles) -> Iterator[Auth]:
    service = start_auth(auth_files)
    yield service
    service.stop()
