"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, state and nonce.

    GET /__auth/oidc/login?next=/runs   -> 302 to the identity provider (state cookie set)
    GET /__auth/oidc/callback?code=&state=   -> the code is exchanged, the ID token checked

The ID token's signature is checked against the issuer's JWKS, and its ``iss``, ``aud``,
``exp``, ``iat`` and ``nonce`` by Authlib (``CodeIDToken``). Authlib and its JOSE library
are imported on first use, so a service without single sign-on never loads them; the HTTP
calls are :mod:`.oidc_http`'s. When the issuer cannot be reached at start, the
service runs on (local logins keep working) and discovery is retried in the background.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, cast

from platform_services.auth import audit
from platform_services.auth.oidc_http import OidcError, fetch_json
from platform_services.auth.settings import OidcSettings

STATE_COOKIE = "dagster_oidc_state"
STATE_COOKIE_PATH = "/__auth/oidc"
#: How long a login may take at the identity provider.
PENDING_SECONDS = 600
PENDING_LIMIT = 1000
#: ID tokens' exp and iat are allowed this much clock difference.
LEEWAY_SECONDS = 60
JWKS_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class Pending:
    nonce: str
    verifier: str
    next_path: str
    expires: float


@dataclass(frozen=True)
class Login:
    user: str
    groups: tuple[str, ...]


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc only): the one-off imports of the first
    single sign-on leave freed memory behind, which would otherwise count against the service all along."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def groups_of(value: Any) -> tuple[str, ...]:
    """The groups claim as names: a list of strings, or one string."""
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(str(item) for item in value if isinstance(item, str | int) and str(item))
    return ()


class Provider:
    """The identity provider, as discovered from its issuer URL."""

    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None
        self._jwks_fetched = 0.0
        self.problem: str | None = "the identity provider has not answered yet"
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._trimmed = False

    @property
    def available(self) -> bool:
        return self._metadata is not None

    # --- discovery -------------------------------------------------------------------
    def discover(self) -> bool:
        """Fetch the issuer's metadata and keys; False (with :attr:`problem`) when that fails."""
        issuer = self.settings.issuer
        try:
            metadata = fetch_json(f"{issuer}/.well-known/openid-configuration")
            if not isinstance(metadata, dict):
                raise OidcError("its discovery document is not a JSON object")
            if str(metadata.get("issuer", "")).rstrip("/") != issuer:
                raise OidcError(
                    f"it calls itself {metadata.get('issuer')!r}: set OIDC_ISSUER_URL to exactly that issuer"
                )
            missing = [key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not metadata.get(key)]
            if missing:
                raise OidcError(f"its discovery document lacks {', '.join(missing)}")
            jwks = fetch_json(metadata["jwks_uri"])
        except OidcError as error:
            self.problem = f"the identity provider at {issuer} is not usable: {error}"
            return False
        with self._lock:
            self._metadata, self._jwks, self._jwks_fetched = metadata, jwks, time.monotonic()
        self.problem = None
        return True

    def start(self) -> None:
        """Discover in the background (the service answers meanwhile); until that works, log which
        setting to check, and try again every ``retry_seconds``."""
        threading.Thread(target=self._discover_until_available, name="oidc-discovery", daemon=True).start()

    def _discover_until_available(self) -> None:
        last = None
        while not self.discover():
            if self.problem != last:
                audit.log(
                    "sso_unavailable",
                    message=f"{self.problem}; check OIDC_ISSUER_URL (and the network to it). Local logins still "
                    f"work; trying again every {self.settings.retry_seconds:g} s",
                )
                last = self.problem
            if self._stop.wait(self.settings.retry_seconds):
                return
        audit.log("sso", message=f"single sign-on through {self.settings.issuer} is available")

    def stop(self) -> None:
        self._stop.set()

    # --- the flow --------------------------------------------------------------------
    def begin(self, next_path: str) -> tuple[str, str]:
        """The identity provider's URL to send the browser to, and the state to bind to it by cookie."""
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        metadata = self._metadata
        if metadata is None:
            raise OidcError(self.problem or "single sign-on is unavailable")
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        with self._lock:
            now = time.monotonic()
            for key in [key for key, pending in self._pending.items() if pending.expires <= now]:
                del self._pending[key]
            while len(self._pending) >= PENDING_LIMIT:
                del self._pending[next(iter(self._pending))]
            self._pending[state] = Pending(nonce, verifier, next_path, now + PENDING_SECONDS)
        query = {
            "response_type": "code",
            "client_id": self.settings.client_id,
            "redirect_uri": self.settings.redirect_uri,
            "scope": self.settings.scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        endpoint = str(metadata["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urllib.parse.urlencode(query)}", state

    def finish(self, params: dict[str, str], cookie_state: str | None) -> tuple[Login, str]:
        """The person the identity provider vouches for, and where they were going."""
        state = params.get("state", "")
        with self._lock:
            pending = self._pending.pop(state, None) if state else None
        if params.get("error"):  # reported whatever the state: it logs no one in
            description = params.get("error_description") or ""
            raise OidcError(f"the identity provider refused: {params['error']} {description}".strip())
        if pending is None or pending.expires <= time.monotonic():
            raise OidcError("this login is unknown or took too long: start again from the login page")
        if not cookie_state or not hmac.compare_digest(cookie_state, state):
            raise OidcError("this login was started in another browser: start again from the login page")
        if not params.get("code"):
            raise OidcError("the identity provider sent no authorization code")
        token = self._exchange(params["code"], pending.verifier)
        claims = self._validate(token, pending.nonce)
        if not self._trimmed:
            self._trimmed = True
            trim_heap()
        return self._login(claims, token), pending.next_path

    def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        assert self._metadata is not None
        settings = self.settings
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": settings.redirect_uri,
            "code_verifier": verifier,
        }
        headers = {}
        methods = self._metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        if not settings.client_secret:
            form["client_id"] = settings.client_id
        elif "client_secret_basic" in methods:
            pair = f"{urllib.parse.quote_plus(settings.client_id)}:{urllib.parse.quote_plus(settings.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": settings.client_id, "client_secret": settings.client_secret}
        try:
            token = fetch_json(str(self._metadata["token_endpoint"]), data=form, headers=headers)
        except OidcError as error:
            if "invalid_client" in str(error):
                raise OidcError(f"{error}: check OIDC_CLIENT_ID and the client secret (OIDC_CLIENT_SECRET)") from None
            raise
        if not isinstance(token, dict) or not token.get("id_token"):
            raise OidcError("the identity provider's token answer has no ID token (is `openid` in OIDC_SCOPES?)")
        return token

    def _keys(self, refresh: bool) -> Any:
        from joserfc.jwk import KeySet

        with self._lock:
            stale = time.monotonic() - self._jwks_fetched > JWKS_REFRESH_SECONDS
        if refresh and stale and self._metadata is not None:
            jwks = fetch_json(str(self._metadata["jwks_uri"]))
            with self._lock:
                self._jwks, self._jwks_fetched = jwks, time.monotonic()
        return KeySet.import_key_set(cast(Any, self._jwks or {"keys": []}))

    def _validate(self, token: dict[str, Any], nonce: str) -> dict[str, Any]:
        from authlib.oidc.core import CodeIDToken
        from joserfc import jwt
        from joserfc.errors import InvalidKeyIdError, JoseError
        from joserfc.jws import JWSRegistry

        assert self._metadata is not None
        algorithms = self._metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        registry = JWSRegistry(algorithms=[alg for alg in algorithms if alg != "none"], strict_check_header=False)
        try:
            try:
                decoded = jwt.decode(token["id_token"], self._keys(refresh=False), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys
                decoded = jwt.decode(token["id_token"], self._keys(refresh=True), registry=registry)
            claims = CodeIDToken(
                decoded.claims,
                decoded.header,
                {
                    "iss": {"essential": True, "value": self.settings.issuer},
                    "aud": {"essential": True, "value": self.settings.client_id},
                },
                {"nonce": nonce, "client_id": self.settings.client_id, "access_token": token.get("access_token")},
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as error:
            raise OidcError(f"the ID token is not valid ({type(error).__name__}: {error})") from None
        return dict(claims)

    def _login(self, claims: dict[str, Any], token: dict[str, Any]) -> Login:
        settings = self.settings
        wanted = (settings.username_claim, settings.groups_claim)
        userinfo_endpoint = self._metadata.get("userinfo_endpoint") if self._metadata else None
        if any(claim not in claims for claim in wanted) and userinfo_endpoint and token.get("access_token"):
            info = fetch_json(str(userinfo_endpoint), headers={"Authorization": f"Bearer {token['access_token']}"})
            if isinstance(info, dict) and info.get("sub") == claims.get("sub"):
                claims = {**info, **claims}
        user = next((str(claims[name]) for name in (settings.username_claim, "email", "sub") if claims.get(name)), "")
        if not user:
            raise OidcError("the ID token names no user (no username claim, email or sub)")
        return Login(user, groups_of(claims.get(settings.groups_claim)))
