"""deploy/postgres/roles.sh against the real Postgres image: a fresh volume, and one made the old way.

The old stack initialised Postgres with the Dagster user as its superuser
(POSTGRES_USER=dagster), so every table belonged to a superuser. After the script,
Dagster connects as a role that owns its database and nothing more, the history
written before is still there, and the superuser can no longer log in over TCP.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from template_tools.locations import ROOT
from testkit.stack import free_port, wait_for

IMAGE = "postgres:15-bookworm"
SCRIPT = ROOT / "deploy" / "postgres" / "roles.sh"
APP = "dagster_app"

pytestmark = pytest.mark.docker


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result


@pytest.fixture(scope="module", autouse=True)
def postgres_image() -> None:
    """The compose stack's Postgres image, which every test here runs (never pulled here)."""
    if docker("image", "inspect", IMAGE, check=False).returncode:
        pytest.fail(f"these tests run the {IMAGE} image, which is not here: docker pull {IMAGE}")


@dataclass
class Server:
    """A Postgres container with its data and socket in named volumes, published on a free port."""

    name: str
    port: int
    superuser: str
    password: str

    def connect(self, user: str, password: str) -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, dbname="dagster", connect_timeout=5
        )

    def run_roles(self, *env: str) -> subprocess.CompletedProcess[str]:
        """roles.sh as compose runs it: the Postgres image, no network, only the socket volume
        (``env``: more NAME=VALUE settings)."""
        return docker(
            "run",
            "--rm",
            *(option for setting in env for option in ("-e", setting)),
            "--user",
            "postgres",
            "--network",
            "none",
            "-v",
            f"{self.name}-socket:/var/run/postgresql",
            "-v",
            f"{SCRIPT}:/opt/postgres/roles.sh:ro",
            "-e",
            f"POSTGRES_USER={self.superuser}",
            "-e",
            "POSTGRES_DB=dagster",
            "-e",
            f"DAGSTER_PG_USER={APP}",
            "-e",
            f"DAGSTER_PG_PASSWORD={self.password}",
            "--entrypoint",
            "sh",
            IMAGE,
            "/opt/postgres/roles.sh",
            check=False,
        )

    def instance(self, home: Path, user: str) -> dg.DagsterInstance:
        """A Dagster instance on this server (the same storage config as the stack's dagster.yaml)."""
        home.mkdir(parents=True, exist_ok=True)
        db = {
            "hostname": "127.0.0.1",
            "port": self.port,
            "username": user,
            "password": self.password,
            "db_name": "dagster",
            "scheme": "postgresql+psycopg2",
        }
        (home / "dagster.yaml").write_text(
            yaml.safe_dump({"storage": {"postgres": {"postgres_db": db}}, "telemetry": {"enabled": False}})
        )
        return dg.DagsterInstance.from_config(str(home))


@pytest.fixture
def server_factory() -> Iterator[Callable[..., Server]]:
    started: list[str] = []

    def start(superuser: str, wait: bool = True) -> Server:
        server = Server(f"pgroles-test-{secrets.token_hex(4)}", free_port(), superuser, secrets.token_urlsafe(12))
        started.append(server.name)
        docker(
            "run",
            "--detach",
            "--name",
            server.name,
            "--user",
            "postgres",
            "-v",
            f"{server.name}-data:/var/lib/postgresql/data",
            "-v",
            f"{server.name}-socket:/var/run/postgresql",
            "-p",
            f"127.0.0.1:{server.port}:5432",
            "-e",
            f"POSTGRES_USER={superuser}",
            "-e",
            f"POSTGRES_PASSWORD={server.password}",
            "-e",
            "POSTGRES_DB=dagster",
            IMAGE,
        )

        def ready() -> bool:
            try:
                server.connect(superuser, server.password).close()
            except psycopg2.OperationalError:
                return False
            return True

        if wait:
            wait_for(ready, timeout=60, interval=0.5, what=f"{server.name} to accept connections")
        return server

    yield start
    for name in started:
        docker("rm", "--force", "--volumes", name, check=False)
        docker("volume", "rm", "--force", f"{name}-data", f"{name}-socket", check=False)


def _is_least_privilege(server: Server) -> None:
    with server.connect(APP, server.password) as conn, conn.cursor() as cur:
        cur.execute("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False, False, False)
        cur.execute(
            "SELECT pg_has_role(current_user, r, 'MEMBER') FROM unnest(ARRAY["
            "'pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program']) AS r"
        )
        assert [row[0] for row in cur.fetchall()] == [False, False, False]
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> current_user")
        assert cur.fetchone() == (0,)
    for probe in ("COPY (SELECT 1) TO PROGRAM 'id'", "SELECT pg_read_file('/etc/passwd')"):
        with (
            server.connect(APP, server.password) as conn,
            conn.cursor() as cur,
            pytest.raises(psycopg2.Error) as denied,
        ):
            cur.execute(probe)
        assert "permission denied" in str(denied.value) or "must be superuser" in str(denied.value), probe
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        server.connect(server.superuser, server.password)


def test_an_old_volume_keeps_its_history_and_dagster_loses_its_superuser(
    server_factory: Callable[[str], Server], tmp_path: Path
) -> None:
    old = server_factory("dagster")  # the old stack: POSTGRES_USER=dagster, Dagster connected as it
    with old.instance(tmp_path / "old", "dagster") as instance:
        run = instance.create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition(name="history_job")))
        instance.report_engine_event("written before the upgrade", run)

    upgraded = old.run_roles()

    assert upgraded.returncode == 0, upgraded.stderr
    _is_least_privilege(old)
    with old.instance(tmp_path / "new", APP) as instance:
        assert instance.get_run_by_id(run.run_id) is not None
        logs = instance.all_logs(run.run_id)
        assert any(entry.message == "written before the upgrade" for entry in logs)
        instance.report_engine_event("written after the upgrade", run)  # and it can still write
    assert old.run_roles().returncode == 0, "running it again must be harmless"


def test_a_fresh_volume_gets_the_same_roles_and_dagster_can_create_its_schema(
    server_factory: Callable[[str], Server], tmp_path: Path
) -> None:
    fresh = server_factory("postgres")

    result = fresh.run_roles()

    assert result.returncode == 0, result.stderr
    with fresh.instance(tmp_path / "home", APP) as instance:  # creates every Dagster table as the app role
        run = instance.create_run_for_job(dg.JobDefinition(graph_def=dg.GraphDefinition(name="fresh_job")))
        assert instance.get_run_by_id(run.run_id) is not None
    _is_least_privilege(fresh)


def test_the_superuser_as_dagster_role_is_refused_with_the_fix(server_factory: Callable[[str], Server]) -> None:
    server = server_factory("postgres")
    server.superuser = APP  # i.e. POSTGRES_USER and POSTGRES_APP_USER set to the same name

    result = server.run_roles()

    assert result.returncode == 78
    assert "Dagster must not connect as the superuser" in result.stderr


def test_it_waits_for_a_postgres_that_is_still_initialising_its_volume(
    server_factory: Callable[..., Server],
) -> None:
    """Compose starts it with Postgres, not after Postgres' health check: on a fresh volume it must
    wait through initdb and the entrypoint's temporary socket-only server, for the real one."""
    fresh = server_factory("postgres", wait=False)

    result = fresh.run_roles()

    assert result.returncode == 0, result.stderr
    _is_least_privilege(fresh)


def test_no_postgres_at_all_is_named_after_the_wait() -> None:
    nowhere = Server(f"pgroles-test-{secrets.token_hex(4)}", free_port(), "postgres", "unused")
    try:
        result = nowhere.run_roles("POSTGRES_ROLES_WAIT_SECONDS=1")
    finally:
        docker("volume", "rm", "--force", f"{nowhere.name}-socket", check=False)

    assert result.returncode == 1
    assert "Postgres did not accept connections as postgres through /var/run/postgresql within 1 s" in result.stderr
