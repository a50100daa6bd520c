"""Who a request is: the credentials it carries, checked, and the identity the access rules give it.

In order: an ``Authorization`` header (``Bearer`` API token, or ``Basic`` local login),
else the session cookie. Every login, failed login, logout and refused token is logged
(:mod:`.audit`); a successful /verify is not (the webserver's audit log has it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from platform_services.access.identity import Identity
from platform_services.auth import audit
from platform_services.auth.live_rules import LiveRules
from platform_services.auth.oidc import Login, OidcError, Provider
from platform_services.auth.passwords import Passwords
from platform_services.auth.sessions import COOKIE, Sessions, cookie_value
from platform_services.auth.tokens import TokenIndex, TokenRefused, fingerprint

REALM = "Dagster"
BASIC_CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'
#: For a browser whose session ended: not Basic, so that it shows no password dialog of its own.
SESSION_CHALLENGE = f'Session realm="{REALM}", login="/__auth/login"'
#: Failed logins through the login page, per client, before it must wait (about a minute).
LOGIN_FAILURES = 10
LOGIN_WINDOW_SECONDS = 60.0
#: Failed passwords or tokens on requests (scripts), per client: ~10 guesses a second at most.
CREDENTIAL_FAILURES = 10
CREDENTIAL_WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class Verdict:
    """An identity, or why there is none (``reason``) and the ``WWW-Authenticate`` challenge to send."""

    identity: Identity | None
    reason: str = ""
    challenge: str = BASIC_CHALLENGE
    #: Refused without a look at the credentials: too many failed ones from this client just now.
    throttled: bool = False


class LoginRefused(Exception):
    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Throttle:
    """At most :data:`LOGIN_FAILURES` failed logins per client in a window of :data:`LOGIN_WINDOW_SECONDS`."""

    def __init__(self, limit: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW_SECONDS) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        recent = [at for at in self._failures.get(client, []) if at > now - self.window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def blocked(self, client: str) -> bool:
        with self._lock:
            return len(self._recent(client, time.monotonic())) >= self.limit

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            if len(self._failures) > 10_000:  # a bound on memory under a spray of addresses
                self._failures = {key: value for key, value in self._failures.items() if value[-1] > now - self.window}
            self._failures.setdefault(client, []).append(now)


class Service:
    def __init__(
        self,
        *,
        rules: LiveRules,
        passwords: Passwords,
        tokens: Callable[[], TokenIndex],
        sessions: Sessions,
        provider: Provider | None,
        insecure: str | None,
    ) -> None:
        self.rules = rules
        self.passwords = passwords
        self.tokens = tokens
        self.sessions = sessions
        self.provider = provider
        self.insecure = insecure
        self.throttle = Throttle()
        self.guesses = Throttle(CREDENTIAL_FAILURES, CREDENTIAL_WINDOW_SECONDS)

    # --- every request -----------------------------------------------------------------
    def authenticate(
        self, authorization: str | None, cookie: str | None, client: str, uri: str | None = None
    ) -> Verdict:
        """The identity of a request's Authorization and Cookie headers, from ``client``, asking for ``uri``."""
        authorization = (authorization or "").strip()
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() in ("bearer", "basic") and self.guesses.blocked(client):
            return Verdict(None, "too many failed logins from this address: wait a second", throttled=True)
        if scheme.lower() == "bearer":
            verdict = self._token(credentials.strip(), client, uri)
            if verdict.identity is None:
                self.guesses.failed(client)
            return verdict
        if scheme.lower() == "basic":
            user, tried = self.passwords.check_basic(authorization)
            if user is not None:
                return Verdict(self.rules.current.for_user(user, "password"))
            self.guesses.failed(client)
            reason = "wrong user name or password"
            audit.attempt(
                "login_failed", user=tried, via="password", client=client, outcome="refused", reason=reason, uri=uri
            )
            return Verdict(None, reason)
        if authorization:
            return Verdict(None, f"unsupported Authorization scheme {scheme!r}: use Basic or Bearer")
        session_id = cookie_value(cookie, COOKIE)
        if session_id:
            session = self.sessions.get(session_id)
            if session is not None and session.stamp and session.stamp != self.passwords.stamp(session.user):
                self.sessions.delete(session_id)  # the password changed, or the user is gone
                session = None
            if session is not None:
                return Verdict(self.rules.current.for_user(session.user, session.via, session.groups))
            return Verdict(None, "the session has ended: log in again", SESSION_CHALLENGE)
        return Verdict(None, "no credentials: log in, or send a Basic login or a Bearer token")

    def _token(self, token: str, client: str, uri: str | None) -> Verdict:
        try:
            if self.insecure:
                raise TokenRefused("API tokens are refused: the gateway is published without TLS")
            name = self.tokens().check(token)
        except TokenRefused as refused:
            user = refused.name or (fingerprint(token) if token else None)
            audit.attempt(
                "token_refused",
                user=user,
                via="token",
                client=client,
                outcome="refused",
                reason=refused.reason,
                uri=uri,
            )
            challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{refused.reason}"'
            return Verdict(None, refused.reason, challenge)
        return Verdict(self.rules.current.for_token(name))

    # --- the login page ----------------------------------------------------------------
    def login(self, user: str, password: str, client: str) -> str:
        """A new session's id for a good local login; :class:`LoginRefused` otherwise."""
        if self.throttle.blocked(client):
            reason = "too many failed logins from this address: wait a minute and try again"
            audit.attempt("login_failed", user=user, via="session", client=client, outcome="throttled", reason=reason)
            raise LoginRefused(reason, 429)
        if not user or not password or not self.passwords.check(user, password):
            self.throttle.failed(client)
            reason = "wrong user name or password"
            audit.attempt("login_failed", user=user, via="session", client=client, outcome="refused", reason=reason)
            raise LoginRefused(reason)
        audit.attempt("login", user=user, via="session", client=client, outcome="ok")
        return self.sessions.create(user, "session", stamp=self.passwords.stamp(user))

    def logout(self, session_id: str | None, client: str) -> None:
        session = self.sessions.delete(session_id)
        if session is not None:
            audit.attempt("logout", user=session.user, via=session.via, client=client, outcome="ok")

    # --- single sign-on ------------------------------------------------------------------
    def sso_finish(self, params: dict[str, str], cookie_state: str | None, client: str) -> tuple[str, str]:
        """A new session's id and where to go, for a good single sign-on; :class:`LoginRefused` otherwise."""
        assert self.provider is not None
        try:
            login, next_path = self.provider.finish(params, cookie_state)
        except OidcError as error:
            audit.attempt("login_failed", user=None, via="sso", client=client, outcome="refused", reason=str(error))
            raise LoginRefused(f"single sign-on failed: {error}") from None
        return self._sso_session(login, client), next_path

    def _sso_session(self, login: Login, client: str) -> str:
        audit.attempt("login", user=login.user, via="sso", client=client, outcome="ok", groups=list(login.groups))
        return self.sessions.create(login.user, "sso", login.groups)


def safe_next(value: str | None, default: str) -> str:
    """Where to go after login: a path on this site, never another site (``//host``) or the login pages."""
    if (
        not value
        or not value.startswith("/")
        or value.startswith(("//", "/\\", "/__auth/"))
        or len(value) > 2048
        or any(ord(char) < 0x20 or char == "\\" for char in value)
    ):
        return default
    return quote(value, safe="!#$%&'()*+,/:;=?@[]~-._")  # a Location header is ASCII
