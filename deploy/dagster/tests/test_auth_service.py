"""The auth service as a process, through its HTTP endpoints, as the gateway and browsers use it:
basic auth, the login page's session, logout, API tokens, the signed identity, live access rules."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from http.cookies import SimpleCookie

import pytest
import requests

from platform_services.access import identity
from platform_services.access.identity import Identity, Role
from testkit.auth import ADMIN_PASSWORD, ALICE_PASSWORD, Auth, AuthFiles, run_auth_to_exit, start_auth, wait_until


def verify(auth: Auth, **headers: str) -> requests.Response:
    return requests.get(f"{auth.url}/verify", headers=headers, timeout=10)


def identity_of(auth: Auth, files: AuthFiles, response: requests.Response) -> Identity:
    assert response.status_code == 200, response.headers.get("X-Auth-Error")
    return identity.verify(response.headers["X-Dagster-Identity"], files.key)


def basic(auth: Auth, user: str, password: str) -> requests.Response:
    return requests.get(f"{auth.url}/verify", auth=(user, password), timeout=10)


def log_in(auth: Auth, user: str, password: str, next_path: str = "/runs") -> requests.Response:
    return requests.post(
        f"{auth.url}/__auth/login",
        data={"username": user, "password": password, "next": next_path},
        allow_redirects=False,
        timeout=10,
    )


def session_cookie(response: requests.Response) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["Set-Cookie"])
    return f"dagster_session={cookie['dagster_session'].value}"


# --- local users ------------------------------------------------------------------------------
def test_basic_auth_asserts_the_user_with_the_roles_of_the_access_file(auth: Auth, auth_files: AuthFiles) -> None:
    response = basic(auth, "alice", ALICE_PASSWORD)

    alice = identity_of(auth, auth_files, response)
    assert alice == Identity("alice", "password", {"analytics": Role.EDITOR})
    assert response.headers["X-Dagster-User"] == "alice"
    assert response.headers["Cache-Control"] == "no-store"
    assert basic(auth, "alice", ALICE_PASSWORD).status_code == 200  # the remembered check answers the same


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no credentials"),
        ({"Authorization": "Basic YWxpY2U6d3Jvbmc="}, "wrong user name or password"),  # alice:wrong
        ({"Authorization": "Basic bm9ib2R5OmFsaWNlLXBhc3N3b3JkLTEyMw=="}, "wrong user name or password"),  # nobody
        ({"Authorization": "Basic !!!"}, "wrong user name or password"),
        ({"Authorization": "Digest x"}, "unsupported Authorization scheme"),
    ],
)
def test_no_or_wrong_credentials_get_401_with_the_reason(auth: Auth, headers: dict[str, str], reason: str) -> None:
    response = verify(auth, **headers)

    assert response.status_code == 401
    assert reason in response.headers["X-Auth-Error"]
    assert response.headers["WWW-Authenticate"].startswith('Basic realm="Dagster"')
    assert "X-Dagster-Identity" not in response.headers


def test_a_failed_basic_login_is_logged_without_the_password(auth: Auth) -> None:
    verify(
        auth,
        **{
            "Authorization": "Basic YWxpY2U6d3Jvbmc=",
            "X-Forwarded-For": "203.0.113.9, 10.0.0.7",
            "X-Original-URI": "/graphql",
        },
    )

    failed = auth.wait_for_event("login_failed")
    assert failed | {"time": None} == {
        "time": None,
        "event": "login_failed",
        "user": "alice",
        "via": "password",
        "client": "10.0.0.7",  # the address the gateway added, not one the client wrote
        "outcome": "refused",
        "reason": "wrong user name or password",
        "uri": "/graphql",
    }
    assert "wrong" not in auth.log.read_text().replace("wrong user name", "")


def test_the_break_glass_admin_is_admin_whatever_the_file_says(auth: Auth, auth_files: AuthFiles) -> None:
    auth_files.write_access("users:\n  admin: {analytics: viewer}\n")
    auth.wait_for_event("access_file_loaded")

    admin = identity_of(auth, auth_files, basic(auth, "admin", ADMIN_PASSWORD))

    assert admin.admin and admin.role_for("data-extraction") is Role.ADMIN


def test_a_changed_password_applies_at_once(auth: Auth, auth_files: AuthFiles) -> None:
    assert basic(auth, "alice", ALICE_PASSWORD).status_code == 200

    auth_files.add_user("alice", "a-brand-new-password")

    assert basic(auth, "alice", ALICE_PASSWORD).status_code == 401  # not answered from the remembered check
    assert basic(auth, "alice", "a-brand-new-password").status_code == 200


# --- the login page and sessions ----------------------------------------------------------------
def test_the_login_page_is_a_self_contained_form(auth: Auth) -> None:
    page = requests.get(f"{auth.url}/__auth/login", params={"next": "/runs?x=1"}, timeout=10)

    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    assert 'name="next" value="/runs?x=1"' in page.text
    assert "single sign-on" not in page.text  # not configured
    assert "http" not in page.text  # no external resources
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_the_gateways_raw_request_uri_is_taken_whole_as_next(auth: Auth) -> None:
    page = requests.get(f"{auth.url}/__auth/login?next=/runs?status=FAILURE&limit=5", timeout=10)

    assert 'name="next" value="/runs?status=FAILURE&amp;limit=5"' in page.text


def test_a_login_through_the_form_starts_a_session(auth: Auth, auth_files: AuthFiles) -> None:
    response = log_in(auth, "alice", ALICE_PASSWORD, "/locations/modular_assets")

    assert response.status_code == 303
    assert response.headers["Location"] == "/locations/modular_assets"
    flags = {part.strip().split("=")[0] for part in response.headers["Set-Cookie"].split(";")[1:]}
    assert flags == {"Path", "Max-Age", "Secure", "HttpOnly", "SameSite"}
    assert "Max-Age=43200" in response.headers["Set-Cookie"] and "SameSite=Lax" in response.headers["Set-Cookie"]
    alice = identity_of(auth, auth_files, verify(auth, Cookie=session_cookie(response)))
    assert alice == Identity("alice", "session", {"analytics": Role.EDITOR})
    login = auth.wait_for_event("login")
    assert (login["user"], login["via"], login["outcome"]) == ("alice", "session", "ok")


def test_a_failed_login_shows_the_form_again_with_the_error(auth: Auth) -> None:
    response = log_in(auth, "alice", "not-her-password")

    assert response.status_code == 401
    assert 'role="alert"' in response.text and "Wrong user name or password." in response.text
    assert 'value="alice"' in response.text and "not-her-password" not in response.text
    assert "Set-Cookie" not in response.headers


def test_login_redirects_only_to_paths_of_this_site(auth: Auth) -> None:
    for unsafe in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/__auth/logout", "runs"):
        assert log_in(auth, "alice", ALICE_PASSWORD, unsafe).headers["Location"] == "/", unsafe


def test_a_next_path_beyond_ascii_is_kept_percent_encoded(auth: Auth) -> None:
    response = log_in(auth, "alice", ALICE_PASSWORD, "/runs?q=é ü")

    assert response.headers["Location"] == "/runs?q=%C3%A9%20%C3%BC"


def test_logout_ends_the_session_and_clears_the_cookie(auth: Auth) -> None:
    cookie = session_cookie(log_in(auth, "alice", ALICE_PASSWORD))
    assert verify(auth, Cookie=cookie).status_code == 200

    logout = requests.post(f"{auth.url}/__auth/logout", headers={"Cookie": cookie}, allow_redirects=False, timeout=10)

    assert logout.status_code == 303 and logout.headers["Location"] == "/__auth/login?notice=logged_out"
    assert logout.headers["Set-Cookie"].startswith("dagster_session=;") and "Max-Age=0" in logout.headers["Set-Cookie"]
    after = verify(auth, Cookie=cookie)
    assert after.status_code == 401 and "session has ended" in after.headers["X-Auth-Error"]
    assert not after.headers["WWW-Authenticate"].startswith("Basic")  # a browser shows no password dialog
    assert auth.wait_for_event("logout")["user"] == "alice"
    page = requests.get(f"{auth.url}{logout.headers['Location']}", timeout=10)
    assert "You are logged out." in page.text


def test_a_session_ends_when_its_users_password_changes_or_the_user_goes(auth: Auth, auth_files: AuthFiles) -> None:
    alice = session_cookie(log_in(auth, "alice", ALICE_PASSWORD))
    admin = session_cookie(log_in(auth, "admin", ADMIN_PASSWORD))

    auth_files.add_user("alice", "alices-next-password")

    assert verify(auth, Cookie=alice).status_code == 401
    assert verify(auth, Cookie=admin).status_code == 200  # the others' sessions go on
    (auth_files.ui / "htpasswd").write_text("")
    assert verify(auth, Cookie=admin).status_code == 401


def test_a_cross_site_login_post_is_refused(auth: Auth) -> None:
    response = requests.post(
        f"{auth.url}/__auth/login",
        data={"username": "alice", "password": ALICE_PASSWORD},
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 403 and "Set-Cookie" not in response.headers


def test_repeated_failed_logins_from_one_client_are_throttled(auth: Auth) -> None:
    statuses = [log_in(auth, "alice", f"guess-{n}").status_code for n in range(12)]

    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    assert log_in(auth, "alice", ALICE_PASSWORD).status_code == 429  # even right: wait a minute
    assert auth.events("login_failed")[-1]["outcome"] == "throttled"


# --- API tokens -----------------------------------------------------------------------------------
def test_a_token_asserts_its_name_with_its_roles(auth: Auth, auth_files: AuthFiles) -> None:
    token = auth_files.add_token("ci-analytics")
    auth_files.write_access("tokens:\n  ci-analytics: {analytics: launcher}\n")
    auth.wait_for_event("access_file_loaded")

    ci = identity_of(auth, auth_files, verify(auth, Authorization=f"Bearer {token}"))

    assert ci == Identity("ci-analytics", "token", {"analytics": Role.LAUNCHER})
    assert token not in auth.log.read_text()


def test_a_revoked_token_is_refused_by_name(auth: Auth, auth_files: AuthFiles) -> None:
    token = auth_files.add_token("ci-analytics")
    assert verify(auth, Authorization=f"Bearer {token}").status_code == 200

    assert auth_files.init("revoke-token", "ci-analytics").returncode == 0
    response = verify(auth, Authorization=f"Bearer {token}")

    assert response.status_code == 401
    assert response.headers["X-Auth-Error"].startswith("token revoked at ")
    assert 'Bearer realm="Dagster", error="invalid_token"' in response.headers["WWW-Authenticate"]
    refused = auth.wait_for_event("token_refused")
    assert (refused["user"], refused["via"]) == ("ci-analytics", "token")
    assert token not in auth.log.read_text()


@pytest.mark.parametrize(
    ("token", "reason"),
    [("not-a-token", "malformed token"), ("dgt_" + "A" * 43, "unknown token"), ("", "malformed token")],
)
def test_a_malformed_or_unknown_token_is_refused_with_the_reason(auth: Auth, token: str, reason: str) -> None:
    response = verify(auth, Authorization=f"Bearer {token}")

    assert response.status_code == 401 and response.headers["X-Auth-Error"].startswith(reason)
    assert auth.wait_for_event("token_refused")["reason"].startswith(reason)


# --- the access file, live ------------------------------------------------------------------------
def test_a_change_of_the_access_file_applies_to_open_sessions(auth: Auth, auth_files: AuthFiles) -> None:
    cookie = session_cookie(log_in(auth, "alice", ALICE_PASSWORD))

    auth_files.write_access("users:\n  alice: {data-extraction: launcher, analytics: viewer}\n")

    def roles() -> dict[str, Role]:
        return dict(identity_of(auth, auth_files, verify(auth, Cookie=cookie)).teams)

    wait_until(lambda: roles() == {"data-extraction": Role.LAUNCHER}, what="the new role in the session")


def test_an_invalid_change_is_refused_with_its_line_and_the_rules_stay(auth: Auth, auth_files: AuthFiles) -> None:
    auth_files.write_access("users:\n  alice: {analytics: editor}\n  bob: {simple_ops: launcher}\n")

    refused = auth.wait_for_event("access_file_refused")

    assert f"{auth_files.access}, line 3, users: bob:" in refused["message"]
    assert (
        "'simple_ops' is a code location; roles are given per team: use its team 'data-extraction'"
        in (refused["message"])
    )
    assert "previous rules stay in force" in refused["message"]
    alice = identity_of(auth, auth_files, basic(auth, "alice", ALICE_PASSWORD))
    assert alice.role_for("analytics") is Role.EDITOR


def test_a_team_removed_from_the_workspace_refuses_rules_that_name_it(auth: Auth, auth_files: AuthFiles) -> None:
    auth_files.workspace.write_text(
        auth_files.workspace.read_text().split("  - grpc_server:\n      location_name: modular")[0]
    )

    refused = auth.wait_for_event("access_file_refused")

    assert "'analytics' is not a team of the workspace (teams: data-extraction)" in refused["message"]


def test_answers_with_a_body_are_not_held_back_on_a_kept_alive_connection(auth: Auth) -> None:
    """Headers and body in separate writes would wait ~40 ms each for the client's delayed ACK."""
    connection = http.client.HTTPConnection("127.0.0.1", auth.port, timeout=10)
    started = time.monotonic()
    for _ in range(20):
        connection.request("GET", "/verify")  # a 401 with its reason in the body
        response = connection.getresponse()
        assert response.status == 401 and response.read()
    connection.close()

    assert time.monotonic() - started < 0.5


def test_whoami_shows_the_identity(auth: Auth) -> None:
    response = requests.get(f"{auth.url}/__auth/whoami", auth=("alice", ALICE_PASSWORD), timeout=10)

    assert response.json() == {
        "user": "alice",
        "via": "password",
        "admin": False,
        "teams": {"analytics": "editor"},
        "roles": "analytics:editor",
    }


# --- start-up -------------------------------------------------------------------------------------
def test_an_invalid_access_file_stops_the_start_with_its_message(auth_files: AuthFiles) -> None:
    auth_files.write_access("users:\n  alice: {analytics: owner}\n")

    result = run_auth_to_exit(auth_files)

    assert result.returncode == 78
    assert f"{auth_files.access}, line 2, users: alice: analytics: 'owner' is not a role" in result.stderr


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"OIDC_ISSUER_URL": "https://idp.example", "OIDC_CLIENT_ID": "dagster"}, "single sign-on is configured"),
        ({}, "API tokens exist (ci)"),
    ],
)
def test_tokens_or_sso_refuse_to_start_on_a_public_bind_without_tls(
    auth_files: AuthFiles, env: dict[str, str], why: str
) -> None:
    if not env:
        auth_files.add_token("ci")

    result = run_auth_to_exit(auth_files, GATEWAY_BIND="0.0.0.0", **env)

    assert result.returncode == 78
    assert why in result.stderr and "would cross the network in clear" in result.stderr
    assert "Set GATEWAY_TLS_CERT" in result.stderr


def test_a_public_bind_with_tls_starts(auth_files: AuthFiles) -> None:
    auth_files.add_token("ci")

    service = start_auth(auth_files, GATEWAY_BIND="0.0.0.0", GATEWAY_TLS_CERT="/run/tls/cert.pem")
    service.stop()

    assert service.events("start")


def test_the_init_service_refuses_a_token_on_a_public_bind_without_tls(auth_files: AuthFiles) -> None:
    result = auth_files.init("add-token", "ci", GATEWAY_BIND="0.0.0.0")

    assert result.returncode == 1 and "no token was created" in result.stderr
    assert not (auth_files.ui / "tokens.json").exists()


def test_a_missing_identity_key_stops_the_start(auth_files: AuthFiles) -> None:
    auth_files.key_file.unlink()

    result = run_auth_to_exit(auth_files)

    assert result.returncode == 78 and "the init service writes it on first start" in result.stderr


def test_the_heartbeat_file_is_touched_after_health_answers(auth_files: AuthFiles) -> None:
    beat = auth_files.root / "alive"
    service = start_auth(auth_files, AUTH_HEALTH_FILE=str(beat))
    try:
        wait_until(beat.exists, what="the heartbeat file")
    finally:
        service.stop()


def test_the_service_loads_no_dagster() -> None:
    """Dagster would make the service ten times as large (its idle memory budget is 40 MiB)."""
    code = "import sys, platform_services.auth.app, platform_services.auth.oidc; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", f"import json; {code}"], capture_output=True, text=True, timeout=60)

    loaded = json.loads(result.stdout)
    assert not [name for name in loaded if name.split(".")[0] in ("dagster", "authlib", "joserfc", "requests")]
