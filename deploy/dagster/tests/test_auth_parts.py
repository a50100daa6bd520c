"""The auth service's parts in-process: the remembered password checks, sessions, settings, token files."""

from __future__ import annotations

import base64
import time
import warnings
from pathlib import Path

import pytest

from platform_services.auth import passwords, tokens
from platform_services.auth.passwords import Passwords
from platform_services.auth.sessions import Sessions, cookie_value
from platform_services.auth.settings import ConfigError, insecure_transport, public_url, settings_from_env
from platform_services.auth.watched import WatchedFile

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    path.write_text(f"alice:{crypt.crypt('alice-password', crypt.mksalt(crypt.METHOD_SHA512))}\n")
    return path


def count_crypts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = passwords.crypt.crypt

    def counted(word: str, salt: str | None = None) -> str | None:
        calls.append(word)
        return real(word, salt)

    monkeypatch.setattr(passwords.crypt, "crypt", counted)
    return calls


def test_a_good_basic_login_is_remembered_by_the_hash_of_its_header(
    htpasswd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checker = Passwords(htpasswd, pytest.fail)
    calls = count_crypts(monkeypatch)
    header = basic_header("alice", "alice-password")

    assert [checker.check_basic(header) for _ in range(3)] == [("alice", None)] * 3

    assert len(calls) == 1  # crypt is slow on purpose: once per login, not per request
    assert all(isinstance(key, bytes) and len(key) == 32 for key in checker._cache)  # SHA-256, never the password
    assert "alice-password" not in repr(checker._cache)


def test_a_wrong_login_is_never_remembered_and_costs_a_crypt(htpasswd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checker = Passwords(htpasswd, pytest.fail)
    calls = count_crypts(monkeypatch)

    assert checker.check_basic(basic_header("alice", "nope")) == (None, "alice")
    assert checker.check_basic(basic_header("nobody", "nope")) == (None, "nobody")

    assert len(calls) == 2  # an unknown user takes as long as a wrong password
    assert checker._cache == {}


def test_a_change_of_the_htpasswd_file_forgets_remembered_logins(htpasswd: Path) -> None:
    checker = Passwords(htpasswd, pytest.fail)
    header = basic_header("alice", "alice-password")
    assert checker.check_basic(header) == ("alice", None)

    htpasswd.write_text("")

    assert checker.check_basic(header) == (None, "alice")


@pytest.mark.parametrize("header", ["Basic", "Basic !!", "Basic " + base64.b64encode(b"no-colon").decode(), "Bearer x"])
def test_a_malformed_basic_header_is_no_login(header: str) -> None:
    assert passwords.decode_basic(header) is None


def test_a_session_ends_at_its_expiry_and_at_logout(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions(3600)
    first, second = sessions.create("alice", "session"), sessions.create("bob", "sso", ("devs",))

    assert sessions.get(second).groups == ("devs",)  # type: ignore[union-attr]
    assert sessions.delete(second) is not None and sessions.get(second) is None
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 3601)
    assert sessions.get(first) is None and len(sessions) == 0


def test_expired_sessions_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions(60)
    for user in ("a", "b"):
        sessions.create(user, "session")
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)

    assert sessions.sweep() == 2 and len(sessions) == 0


def test_the_session_cookie_is_found_among_others() -> None:
    header = 'theme=dark; dagster_session="abc-123"; other=x=y; broken'

    assert cookie_value(header, "dagster_session") == "abc-123"
    assert cookie_value(header, "missing") is None and cookie_value(None, "dagster_session") is None


@pytest.mark.parametrize(
    ("env", "insecure"),
    [
        ({}, False),
        ({"GATEWAY_BIND": "127.0.0.1"}, False),
        ({"GATEWAY_BIND": "::1"}, False),
        ({"GATEWAY_BIND": "localhost"}, False),
        ({"GATEWAY_BIND": "0.0.0.0"}, True),
        ({"GATEWAY_BIND": "192.0.2.10"}, True),
        ({"GATEWAY_BIND": "0.0.0.0", "GATEWAY_TLS_CERT": "/run/tls/cert.pem"}, False),
        ({"GATEWAY_BIND": "0.0.0.0", "GATEWAY_PUBLIC_URL": "https://dagster.example.com"}, False),
        ({"GATEWAY_BIND": "0.0.0.0", "GATEWAY_PUBLIC_URL": "http://dagster.example.com"}, True),
    ],
)
def test_credentials_in_clear_over_the_network_are_recognized(env: dict[str, str], insecure: bool) -> None:
    assert (insecure_transport(env) is not None) is insecure


def test_the_public_url_defaults_to_where_the_gateway_is_published() -> None:
    assert public_url({}) == "http://127.0.0.1:3000"
    assert public_url({"GATEWAY_BIND": "0.0.0.0", "GATEWAY_PORT": "8443", "GATEWAY_TLS_CERT": "c"}) == (
        "https://127.0.0.1:8443"
    )
    assert public_url({"GATEWAY_PUBLIC_URL": "https://dagster.example.com/"}) == "https://dagster.example.com"


def test_sso_settings_come_with_their_defaults_and_the_secret_file(tmp_path: Path) -> None:
    (tmp_path / "oidc_client_secret").write_text("the-secret\n")

    oidc = settings_from_env(
        {
            "UI_SECRETS_DIR": str(tmp_path),
            "OIDC_ISSUER_URL": "https://idp.example/realms/x/",
            "OIDC_CLIENT_ID": "dagster",
        }
    ).oidc

    assert oidc is not None
    assert (oidc.issuer, oidc.client_secret, oidc.scopes) == (
        "https://idp.example/realms/x",
        "the-secret",
        "openid profile email",
    )
    assert (oidc.username_claim, oidc.groups_claim) == ("preferred_username", "groups")
    assert oidc.redirect_uri == "http://127.0.0.1:3000/__auth/oidc/callback"
    assert settings_from_env({}).oidc is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTH_PORT": "http"}, "AUTH_PORT='http' is not a port"),
        ({"SESSION_SECONDS": "5"}, "SESSION_SECONDS='5' is not a number of seconds"),
        ({"OIDC_ISSUER_URL": "idp.example"}, "OIDC_ISSUER_URL='idp.example' is not a URL"),
        ({"OIDC_ISSUER_URL": "https://idp.example"}, "OIDC_CLIENT_ID is empty"),
        ({"OIDC_ISSUER_URL": "https://i", "OIDC_CLIENT_ID": "c", "OIDC_SCOPES": "profile"}, "lacks `openid`"),
        ({"GATEWAY_PUBLIC_URL": "dagster.example.com"}, "GATEWAY_PUBLIC_URL='dagster.example.com' is not an http"),
    ],
)
def test_a_bad_setting_is_named_with_its_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("`", ".")):
        settings_from_env(env)


def test_a_token_file_that_does_not_parse_keeps_the_previous_tokens(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token = tokens.new_token()
    path.write_text(tokens.render({"ci": tokens.TokenEntry(tokens.digest(token), "2026-01-01T00:00:00Z")}))
    problems: list[str] = []
    watched = WatchedFile(path, tokens.parse_index, tokens.TokenIndex({}), problems.append)
    assert watched.get().check(token) == "ci"

    path.write_text('{"tokens": {"ci": {"sha256": "short"}}}')

    assert watched.get().check(token) == "ci"
    assert len(problems) == 1 and "the entry 'ci' is malformed" in problems[0]
    path.unlink()
    with pytest.raises(tokens.TokenRefused, match="unknown token"):
        watched.get().check(token)  # a deleted file is no tokens at all
