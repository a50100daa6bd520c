"""The init service (platform_services.init_secrets), run as a process against two folders
that stand in for its volumes: what it generates, keeps, takes from .env, and refuses."""

from __future__ import annotations

import hashlib
import json
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


def test_ui_user_keep_changes_no_existing_password_but_sets_a_new_users(volumes: Volumes) -> None:
    volumes.run("add-user", "alice", "--password", "alices-own-password")

    kept = volumes.run("add-user", "alice", "--keep")
    new = volumes.run("add-user", "bob", "--keep")

    assert kept.returncode == 0 and "its password is unchanged" in kept.stdout
    assert verifies(volumes.htpasswd, "alice", "alices-own-password")
    assert new.returncode == 0 and "with password" in new.stdout and "bob:$6$" in volumes.htpasswd


def test_a_token_is_shown_once_and_only_its_hash_is_stored(volumes: Volumes) -> None:
    created = volumes.run("add-token", "ci-billing")

    assert created.returncode == 0, created.stderr
    token = created.stdout.splitlines()[1]
    assert re.fullmatch(r"dgt_[A-Za-z0-9_-]{43}", token)
    stored = json.loads((volumes.ui / "tokens.json").read_text())["tokens"]["ci-billing"]
    assert stored["sha256"] == hashlib.sha256(token.encode()).hexdigest() and stored["revoked"] is None
    assert token not in (volumes.ui / "tokens.json").read_text()
    assert mode(volumes.ui / "tokens.json") == 0o644


def test_a_token_name_in_use_is_refused_until_revoked(volumes: Volumes) -> None:
    first = volumes.run("add-token", "ci").stdout.splitlines()[1]

    again = volumes.run("add-token", "ci")
    revoked = volumes.run("revoke-token", "ci")
    twice = volumes.run("revoke-token", "ci")
    renewed = volumes.run("add-token", "ci")

    assert again.returncode == 1 and "a token named 'ci' exists: revoke it first" in again.stderr
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert twice.returncode == 0 and "no active API token named 'ci'" in twice.stdout
    assert renewed.returncode == 0 and renewed.stdout.splitlines()[1] != first


def test_a_revoked_token_keeps_its_hash_so_it_is_refused_by_name(volumes: Volumes) -> None:
    token = volumes.run("add-token", "ci").stdout.splitlines()[1]

    volumes.run("revoke-token", "ci")

    stored = json.loads((volumes.ui / "tokens.json").read_text())["tokens"]["ci"]
    assert stored["sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stored["revoked"])


def test_a_bad_token_name_is_refused(volumes: Volumes) -> None:
    result = volumes.run("add-token", "ci billing")

    assert result.returncode == 1 and "may only use letters" in result.stderr
    assert volumes.files() == {}


def test_the_identity_key_is_generated_once_where_its_folder_is_mounted(volumes: Volumes, tmp_path: Path) -> None:
    key_file = tmp_path / "identity" / "identity_key"

    without = volumes.run(IDENTITY_KEY_FILE=str(key_file))
    assert without.returncode == 0 and "identity key" not in without.stdout  # its volume is not mounted here
    key_file.parent.mkdir()
    first = volumes.run(IDENTITY_KEY_FILE=str(key_file))
    key = key_file.read_text()
    again = volumes.run(IDENTITY_KEY_FILE=str(key_file))

    assert "init: identity key generated" in first.stdout and "init: identity key kept" in again.stdout
    assert re.fullmatch(r"[0-9a-f]{64}", key) and key_file.read_text() == key


def test_the_oidc_client_secret_comes_from_the_environment(volumes: Volumes) -> None:
    set_ = volumes.run(OIDC_CLIENT_SECRET="s3cret-from-env")
    kept = volumes.run(OIDC_CLIENT_SECRET="s3cret-from-env")
    unset = volumes.run()

    assert "OIDC client secret set from OIDC_CLIENT_SECRET" in set_.stdout
    assert "OIDC client secret kept" in kept.stdout and "OIDC client secret" not in unset.stdout
    assert (volumes.ui / "oidc_client_secret").read_text() == "s3cret-from-env"
