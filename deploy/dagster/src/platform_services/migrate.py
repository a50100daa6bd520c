"""Create or upgrade Dagster's schema, unless this Dagster version already did: the `migrate` one-shot.

    python -m platform_services.migrate   # in the instance image, through entrypoint.sh (which resolves the password)

`dagster instance migrate` imports all of Dagster and reads Alembic's revisions, ~2.5 s on every
`up`, and the webserver and daemon wait for it. After it succeeds, the Dagster version that ran
it is recorded in a one-row table, ``dagster_template_schema``, of Dagster's database. When the
row names the installed version, that migration has already run against this database, and this
exits at once. Any other case runs it: a fresh database, an upgrade or downgrade, a restored
backup made under another version, a migration that failed before its row was written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from typing import Any

TABLE = "dagster_template_schema"
#: The same variables dagster.yaml reads (docker-compose.yml's x-dagster-env).
CONNECTION_ENV = {
    "host": "DAGSTER_PG_HOST",
    "port": "DAGSTER_PG_PORT",
    "user": "DAGSTER_PG_USER",
    "password": "DAGSTER_PG_PASSWORD",
    "dbname": "DAGSTER_PG_DB",
}
MIGRATE = ["dagster", "instance", "migrate"]


def connect() -> Any:
    import psycopg2  # dagster-postgres' driver, in the instance image

    missing = [name for name in CONNECTION_ENV.values() if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"migrate: {', '.join(missing)} not set (docker-compose.yml's x-dagster-env sets them)")
    return psycopg2.connect(connect_timeout=10, **{key: os.environ[name] for key, name in CONNECTION_ENV.items()})


def recorded_version(connection: Any) -> str | None:
    """The Dagster version whose migration last succeeded on this database, or None."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (TABLE,))
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT dagster_version FROM {TABLE}")
        row = cursor.fetchone()
    return row[0] if row else None


def record(connection: Any, dagster_version: str) -> None:
    with connection, connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (dagster_version text NOT NULL, migrated_at timestamptz NOT NULL)"
        )
        cursor.execute(f"DELETE FROM {TABLE}")
        cursor.execute(f"INSERT INTO {TABLE} VALUES (%s, now())", (dagster_version,))


def main() -> int:
    installed = version("dagster")
    connection = connect()
    try:
        if recorded_version(connection) == installed:
            print(f"migrate: the schema is already migrated for Dagster {installed}: nothing to do", flush=True)
            return 0
        connection.rollback()  # no transaction stays open (and no lock held) while Dagster migrates
        result = subprocess.run(MIGRATE)
        if result.returncode != 0:
            return result.returncode
        record(connection, installed)
        print(f"migrate: recorded Dagster {installed} as migrated", flush=True)
        return 0
    finally:
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
