"""A real Postgres 15 server for the platform services' tests (testkit.postgres)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.postgres import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A fresh server with a ``dagster`` database, owned by user ``dagster``; stopped at the end."""
    try:
        with running_postgres() as server:
            yield server
    except RuntimeError as error:
        pytest.fail(str(error))
