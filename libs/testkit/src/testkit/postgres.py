"""A real Postgres 15 server for tests, from the host's server binaries (no Docker).

The server runs SCRAM authentication on TCP, like the compose stack's (its private socket
folder trusts local connections, for createdb). initdb refuses to run as root, so as root
the server runs as ``nobody``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PASSWORD = "instance-kit-test-password"  # a throw-away server that listens on 127.0.0.1 only


@dataclass(frozen=True)
class PostgresServer:
    """A running throw-away server: its data folder, its port, and the user it runs as."""

    data_dir: Path
    port: int
    run_as: tuple[str, ...]

    @property
    def db_config(self) -> dict[str, object]:
        """The ``postgres_db`` block of dagster.yaml for this server."""
        return {
            "hostname": "127.0.0.1",
            "port": self.port,
            "username": "dagster",
            "password": PASSWORD,
            "db_name": "dagster",
            "scheme": "postgresql+psycopg2",
        }

    def execute(self, statement: str, parameters: tuple[object, ...] = ()) -> None:
        """One SQL statement on the ``dagster`` database, committed (e.g. to backdate runs)."""
        import psycopg2  # dagster-postgres' driver, there wherever Dagster's storage is

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="dagster", password=PASSWORD, dbname="dagster"
        )
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(statement, parameters)
        finally:
            connection.close()

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.run_as, "pg_ctl", "-D", str(self.data_dir), "-l", str(self.data_dir / "server.log"), "-w", *args],
            check=True,
            capture_output=True,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh server with a ``dagster`` database, owned by user ``dagster``; stopped at the end."""
    for binary in ("initdb", "pg_ctl"):
        if not shutil.which(binary):
            raise RuntimeError(
                f"{binary} not found on PATH: install the Postgres 15 server binaries "
                "(Debian: apt-get install postgresql-15, then add /usr/lib/postgresql/15/bin to PATH)"
            )
    root = Path(tempfile.mkdtemp(prefix="instance-kit-pg-"))
    run_as: tuple[str, ...] = ()
    if os.geteuid() == 0:
        run_as = ("runuser", "-u", "nobody", "--")
        shutil.chown(root, "nobody")
    password_file = root / "password"
    password_file.write_text(PASSWORD)
    if run_as:
        shutil.chown(password_file, "nobody")
    server = PostgresServer(root / "data", _free_port(), run_as)
    subprocess.run(
        [
            *run_as,
            "initdb",
            "-D",
            str(server.data_dir),
            "-U",
            "dagster",
            f"--pwfile={password_file}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
        check=True,
        capture_output=True,
    )
    with open(server.data_dir / "postgresql.conf", "a") as conf:
        conf.write(f"listen_addresses = '127.0.0.1'\nport = {server.port}\nunix_socket_directories = '{root}'\n")
    server.pg_ctl("start")
    try:
        subprocess.run(
            [*run_as, "createdb", "-h", str(root), "-p", str(server.port), "-U", "dagster", "dagster"],
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        server.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_or_fail() -> Iterator[PostgresServer]:
    """:func:`running_postgres` for a fixture: a server that cannot start fails the test, saying why."""
    import pytest  # here: the benchmarks use this module without pytest

    try:
        with running_postgres() as server:
            yield server
    except RuntimeError as error:
        pytest.fail(str(error))
