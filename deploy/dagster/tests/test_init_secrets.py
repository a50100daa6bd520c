"""The init service (platform_services.init_secrets), run as a process against two folders
that stand in for its volumes: what it generates, keeps, takes from .env, and refuses."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # what the script hashes with (libc's, as nginx verifies)

SCRIPT = ["-m", "platform_services.init_secrets"]


@dataclass
class Volumes:
    pg: Path
    ui: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {"DAGSTER_SECRETS_DIR": str(self.pg), "UI_SECRETS_DIR": str(self.ui), **env}
        return subprocess.run(
            [sys.executable, *SCRIPT, *args], capture_output=True, text=True, timeout=60, env=environment
        )

    @property
    def postgres_password(self) -> str:
        return (self.pg / "postgres_password").read_text()

    @property
    def htpasswd(self) -> str:
        return (self.ui / "htpasswd").read_text()

    def files(self) -> dict[str, bytes]:
        return {str(path): path.read_bytes() for folder in (self.pg, self.ui) for path in sorted(folder.iterdir())}


@pytest.fixture
def volumes(tmp_path: Path) -> Volumes:
    pg, ui = tmp_path / "dagster-secrets", tmp_path / "ui-secrets"
    pg.mkdir()
    ui.mkdir()
    return Volumes(pg, ui)


def verifies(htpasswd: str, user: str, password: str) -> bool:
    hashes = dict(line.split(":", 1) for line in htpasswd.splitlines())
    return crypt.crypt(password, hashes[user]) == hashes[user]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_first_start_generates_every_secret_and_prints_the_login(volumes: Volumes) -> None:
    first = volumes.run(GATEWAY_PORT="3123")

    assert first.returncode == 0, first.stderr
    password = re.search(r"login: user admin, password (\S+) \(generated", first.stdout)
    assert password and len(password.group(1)) >= 12
    assert "Dagster UI: http://127.0.0.1:3123/" in first.stdout
    assert len(volumes.postgres_password) >= 24
    assert verifies(volumes.htpasswd, "admin", password.group(1))
    assert password.group(1) not in volumes.htpasswd  # the gateway gets the hash only
    assert mode(volumes.ui / "initial_login") == 0o600
    assert mode(volumes.ui / "htpasswd") == mode(volumes.pg / "postgres_password") == 0o644


def test_later_starts_keep_what_is_stored(volumes: Volumes) -> None:
    first = volumes.run()
    stored = volumes.files()

    again = volumes.run()

    assert again.returncode == 0, again.stderr
    assert volumes.files() == stored
    assert first.stdout.splitlines()[1:] == again.stdout.splitlines()[1:]  # the same login
    assert "Postgres password kept; UI login kept" in again.stdout


def test_settings_from_env_win_and_are_applied_to_stored_secrets(volumes: Volumes) -> None:
    volumes.run()

    changed = volumes.run(
        POSTGRES_PASSWORD="from-dot-env", DAGSTER_UI_USER="ops", DAGSTER_UI_PASSWORD="a-long-password"
    )

    assert changed.returncode == 0, changed.stderr
    assert volumes.postgres_password == "from-dot-env"
    assert verifies(volumes.htpasswd, "ops", "a-long-password")
    assert "admin:" in volumes.htpasswd  # the generated user stays
    assert "login: user admin, password" in changed.stdout  # ... and its login is still shown
    stored = volumes.files()
    assert volumes.run(POSTGRES_PASSWORD="from-dot-env", DAGSTER_UI_USER="ops", DAGSTER_UI_PASSWORD="a-long-password")
    assert volumes.files() == stored  # nothing is rewritten when nothing changed


def test_a_lost_postgres_password_is_generated_again(volumes: Volumes) -> None:
    volumes.run()
    (volumes.pg / "postgres_password").write_text("")

    assert volumes.run().returncode == 0
    assert len(volumes.postgres_password) >= 24  # postgres_roles sets it on the role at every start


def test_ui_user_refuses_a_short_password_and_writes_nothing(volumes: Volumes) -> None:
    refused = volumes.run("add-user", "alice", "--password", "elevenchars")

    assert refused.returncode == 1
    assert "has 11 characters; use at least 12" in refused.stderr
    assert volumes.files() == {}


def test_ui_user_defaults_to_a_random_password_and_stores_only_its_hash(volumes: Volumes) -> None:
    added = volumes.run("add-user", "alice")

    assert added.returncode == 0, added.stderr
    password = added.stdout.split("with password ", 1)[1].split(";", 1)[0]
    assert len(password) >= 12
    assert volumes.htpasswd.startswith("alice:$6$") and password not in volumes.htpasswd
    assert verifies(volumes.htpasswd, "alice", password)


def test_changing_the_generated_password_stops_showing_it(volumes: Volumes) -> None:
    volumes.run()

    assert volumes.run("add-user", "admin", "--password", "chosen-by-the-admin").returncode == 0

    assert not (volumes.ui / "initial_login").exists()
    assert volumes.run("access").stdout.splitlines()[1] == "  login: users admin (passwords as set with `make ui-user`)"
    assert verifies(volumes.htpasswd, "admin", "chosen-by-the-admin")


def test_a_malformed_htpasswd_line_is_named_and_nothing_changes(volumes: Volumes) -> None:
    (volumes.ui / "htpasswd").write_text("admin:$6$salt$hash\nnot a user line\n")
    stored = volumes.files()

    result = volumes.run("add-user", "alice")

    assert result.returncode == 1
    assert f"{volumes.ui / 'htpasswd'}, line 2, is not 'user:$hash'" in result.stderr
    assert volumes.files() == stored


def test_the_owned_folders_are_given_to_the_runs_user(volumes: Volumes, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    if os.getuid() != 0:
        pytest.skip("giving a folder to another user needs root (as the init service runs)")

    first = volumes.run(DAGSTER_OWNED_DIRS=str(exports), DAGSTER_UID="10001")
    again = volumes.run(DAGSTER_OWNED_DIRS=str(exports), DAGSTER_UID="10001")

    assert first.returncode == 0 and f"{exports} now belongs to the runs' user" in first.stdout
    assert (exports.stat().st_uid, exports.stat().st_gid) == (10001, 10001)
    assert "now belongs" not in again.stdout  # already the runs' user's
