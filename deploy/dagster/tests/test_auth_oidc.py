"""Single sign-on end to end: the auth service against a real OpenID Connect provider process
(oidc-provider-mock), driven through the authorization code flow as a browser would; and the
ID token's checks, each with a token made to break it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from platform_services.access import identity
from platform_services.access.identity import Identity, Role
from platform_services.auth.oidc import OidcError, Provider
from platform_services.auth.settings import OidcSettings
from testkit.auth import ALICE_PASSWORD, Auth, AuthFiles, free_port, start_auth, wait_until
from testkit.oidc import IdentityProvider, run_provider

CLIENT_ID = "dagster-test"
ACCESS = """\
users:
  dave: {data-extraction: launcher}
groups:
  analytics-devs: {analytics: editor}
  platform-admins: admin
"""


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = run_provider(free_port())
    yield provider
    provider.stop()


def sso_env(issuer: str, callback_port: int) -> dict[str, str]:
    # The browser comes back to the auth service directly: here it is its own gateway.
    return {
        "OIDC_ISSUER_URL": issuer,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{callback_port}",
        "OIDC_RETRY_SECONDS": "1",
    }


@pytest.fixture
def sso_auth(auth_files: AuthFiles, idp: IdentityProvider) -> Iterator[Auth]:
    auth_files.write_access(ACCESS)
    (auth_files.ui / "oidc_client_secret").write_text("a-client-secret\n")
    port = free_port()
    service = start_auth(auth_files, AUTH_PORT=str(port), **sso_env(idp.url, port))
    try:
        service.wait_for_event("sso")  # discovery runs in the background
        yield service
    finally:
        service.stop()


def cookies(response: requests.Response) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for value in response.raw.headers.getlist("Set-Cookie"):
        jar.load(value)
    return {name: morsel.value for name, morsel in jar.items()}


def sso_login(auth: Auth, idp: IdentityProvider, sub: str, action: str = "authorize") -> requests.Response:
    """The browser's part: to the provider, its form submitted, and back to the callback."""
    start = requests.get(f"{auth.url}/__auth/oidc/login", params={"next": "/runs"}, allow_redirects=False, timeout=10)
    assert start.status_code == 302, start.text
    authorize = start.headers["Location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["client_id"] == [CLIENT_ID] and query["nonce"] and query["state"]
    form = requests.get(authorize, timeout=10)
    assert form.status_code == 200 and 'name="sub"' in form.text  # the provider's own login form
    data = {"sub": sub} if action == "authorize" else {"action": "deny"}
    answer = requests.post(authorize, data=data, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    callback = answer.headers["Location"]
    assert callback.startswith(f"{auth.url}/__auth/oidc/callback?")
    state_cookie = f"dagster_oidc_state={cookies(start)['dagster_oidc_state']}"
    return requests.get(callback, headers={"Cookie": state_cookie}, allow_redirects=False, timeout=10)


def test_sso_logs_in_with_the_roles_of_the_users_groups(
    sso_auth: Auth, idp: IdentityProvider, auth_files: AuthFiles
) -> None:
    idp.set_user("dave-sub", preferred_username="dave", email="dave@example.com", groups=["analytics-devs", "x"])

    back = sso_login(sso_auth, idp, "dave-sub")

    assert back.status_code == 303 and back.headers["Location"] == "/runs"
    session = cookies(back)["dagster_session"]
    assert "Secure" in back.raw.headers.getlist("Set-Cookie")[-1]
    verified = requests.get(f"{sso_auth.url}/verify", headers={"Cookie": f"dagster_session={session}"}, timeout=10)
    dave = identity.verify(verified.headers["X-Dagster-Identity"], auth_files.key)
    # The groups' role and dave's own entry, by the name the provider gave.
    assert dave == Identity("dave", "sso", {"analytics": Role.EDITOR, "data-extraction": Role.LAUNCHER})
    login = sso_auth.wait_for_event("login")
    assert (login["user"], login["via"], login["outcome"], login["groups"]) == (
        "dave",
        "sso",
        "ok",
        ["analytics-devs", "x"],
    )


def test_the_username_falls_back_to_the_email_then_the_subject(sso_auth: Auth, idp: IdentityProvider) -> None:
    idp.set_user("erin-sub", email="erin@example.com", groups="platform-admins")
    idp.set_user("frank-sub")

    erin = sso_login(sso_auth, idp, "erin-sub")
    frank = sso_login(sso_auth, idp, "frank-sub")

    def whoami(response: requests.Response) -> dict[str, object]:
        cookie = f"dagster_session={cookies(response)['dagster_session']}"
        return requests.get(f"{sso_auth.url}/__auth/whoami", headers={"Cookie": cookie}, timeout=10).json()

    assert whoami(erin)["user"] == "erin@example.com" and whoami(erin)["admin"] is True  # one group, as a string
    assert whoami(frank)["user"] == "frank-sub" and whoami(frank)["teams"] == {}


def test_a_name_beyond_ascii_is_asserted_whole_and_passed_on_encoded(
    sso_auth: Auth, idp: IdentityProvider, auth_files: AuthFiles
) -> None:
    idp.set_user("zoe-sub", preferred_username="Zoë 李")
    cookie = f"dagster_session={cookies(sso_login(sso_auth, idp, 'zoe-sub'))['dagster_session']}"

    verified = requests.get(f"{sso_auth.url}/verify", headers={"Cookie": cookie}, timeout=10)

    assert identity.verify(verified.headers["X-Dagster-Identity"], auth_files.key).user == "Zoë 李"
    assert verified.headers["X-Dagster-User"] == "Zo%C3%AB%20%E6%9D%8E"


def test_a_denied_login_comes_back_to_the_login_page_with_the_reason(sso_auth: Auth, idp: IdentityProvider) -> None:
    back = sso_login(sso_auth, idp, "", action="deny")

    assert back.status_code == 401 and "access_denied" in back.text
    assert "dagster_session" not in cookies(back)
    assert "access_denied" in sso_auth.wait_for_event("login_failed")["reason"]


def test_a_callback_without_its_state_cookie_is_refused(sso_auth: Auth, idp: IdentityProvider) -> None:
    start = requests.get(f"{sso_auth.url}/__auth/oidc/login", allow_redirects=False, timeout=10)
    answer = requests.post(start.headers["Location"], data={"sub": "dave-sub"}, allow_redirects=False, timeout=10)

    back = requests.get(answer.headers["Location"], allow_redirects=False, timeout=10)  # another browser

    assert back.status_code == 401 and "started in another browser" in back.text
    replay = requests.get(answer.headers["Location"], allow_redirects=False, timeout=10)
    assert "unknown or took too long" in replay.text  # a state is good for one try


def test_the_login_page_offers_sso(sso_auth: Auth) -> None:
    page = requests.get(f"{sso_auth.url}/__auth/login", params={"next": "/runs?a=b"}, timeout=10)

    assert 'href="/__auth/oidc/login?next=/runs%3Fa%3Db"' in page.text


def test_an_unreachable_issuer_leaves_local_login_working_until_it_is_back(auth_files: AuthFiles) -> None:
    issuer_port, port = free_port(), free_port()
    service = start_auth(auth_files, AUTH_PORT=str(port), **sso_env(f"http://127.0.0.1:{issuer_port}", port))
    try:
        unavailable = service.wait_for_event("sso_unavailable")
        assert "check OIDC_ISSUER_URL" in unavailable["message"] and "Local logins still work" in unavailable["message"]
        page = requests.get(f"{service.url}/__auth/login", timeout=10).text
        assert "Single sign-on is unavailable" in page and "cannot be reached" in page
        assert requests.get(f"{service.url}/verify", auth=("alice", ALICE_PASSWORD), timeout=10).status_code == 200
        assert requests.get(f"{service.url}/__auth/oidc/login", allow_redirects=False, timeout=10).status_code == 503

        provider = run_provider(issuer_port)  # the issuer comes back: discovery is retried
        try:
            wait_until(lambda: service.events("sso"), what="single sign-on to become available")
            assert "Log in with single sign-on" in requests.get(f"{service.url}/__auth/login", timeout=10).text
        finally:
            provider.process.terminate()
            provider.process.wait(10)
    finally:
        service.stop()


# --- the ID token's checks, against tokens made to break each -------------------------------------
ISSUER = "https://idp.example"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def provider_with_keys() -> Provider:
    settings = OidcSettings(ISSUER, CLIENT_ID, "", "openid", "preferred_username", "groups", "http://x/cb", 30)
    provider = Provider(settings)
    provider._metadata = {"jwks_uri": "http://unused", "id_token_signing_alg_values_supported": ["RS256"]}
    provider._jwks = {"keys": [KEY.as_dict(private=False)]}
    provider._jwks_fetched = time.monotonic()
    return provider


def id_token(key: RSAKey = KEY, **changes: object) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "s", "aud": CLIENT_ID, "exp": now + 300, "iat": now, "nonce": "n"} | changes
    claims = {name: value for name, value in claims.items() if value is not None}
    return {"id_token": jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)}


def test_a_good_id_token_is_accepted() -> None:
    assert provider_with_keys()._validate(id_token(), "n")["sub"] == "s"


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        (id_token(iss="https://evil.example"), "iss"),
        (id_token(aud="another-client"), "aud"),
        (id_token(exp=int(time.time()) - 3600), "expired"),
        (id_token(nonce="replayed"), "nonce"),
        (id_token(nonce=None), "nonce"),
        (id_token(key=RSAKey.generate_key(2048, parameters={"kid": "k1"})), "BadSignatureError"),
    ],
)
def test_an_id_token_that_fails_a_check_is_refused(token: dict[str, str], problem: str) -> None:
    with pytest.raises(OidcError, match=f"the ID token is not valid .*{problem}"):
        provider_with_keys()._validate(token, "n")


def test_the_log_never_shows_a_session_id_or_a_token(sso_auth: Auth, idp: IdentityProvider) -> None:
    idp.set_user("gina-sub", preferred_username="gina")
    back = sso_login(sso_auth, idp, "gina-sub")

    log = sso_auth.log.read_text()
    assert back.status_code == 303
    assert cookies(back)["dagster_session"] not in log and "eyJ" not in log  # no session id, no JWT


def resident_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's memory from /proc")
def test_the_service_stays_within_its_memory_budget_with_sso_in_use(sso_auth: Auth, idp: IdentityProvider) -> None:
    """40 MiB of resident memory, after single sign-on loaded Authlib, its JOSE library and cryptography."""
    idp.set_user("hana-sub", preferred_username="hana")
    assert sso_login(sso_auth, idp, "hana-sub").status_code == 303

    assert resident_mib(sso_auth.process.pid) < 40
