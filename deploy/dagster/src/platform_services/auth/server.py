"""The auth service's HTTP endpoints (plain HTTP, inside the stack; the gateway is in front).

GET  /verify                nginx auth_request, for every request: 200 with X-Dagster-Identity
                            and X-Dagster-User, or 401 with WWW-Authenticate and X-Auth-Error
GET  /health                200 while the service answers
GET  /__auth/login          the login page (?next=<path>)
POST /__auth/login          user name and password: a session cookie, then back to next
GET|POST /__auth/logout     ends the session, back to the login page
GET  /__auth/oidc/login     single sign-on: off to the identity provider (?next=<path>)
GET  /__auth/oidc/callback  ... and back
GET  /__auth/whoami         the identity of the request's credentials, as JSON
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from platform_services.access import identity as assertion
from platform_services.auth import oidc, pages
from platform_services.auth.service import LoginRefused, Service, safe_next
from platform_services.auth.sessions import COOKIE, clear_cookie, cookie_value, set_cookie

IDENTITY_HEADER = assertion.HEADER  # X-Dagster-Identity
USER_HEADER = "X-Dagster-User"
ERROR_HEADER = "X-Auth-Error"
#: Marks the heartbeat's own requests.
HEARTBEAT_HEADER = "X-Auth-Heartbeat"
MAX_FORM_BYTES = 16 * 1024
TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
Headers = Sequence[tuple[str, str]]


def header_safe(text: str) -> str:
    """``text`` as a header value: printable ASCII as is, anything else (a name from single sign-on) %-encoded."""
    return quote(text, safe="".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%"))


#: Set on a 401 refused for too many failed credentials from the client.
THROTTLED_HEADER = "X-Auth-Throttled"


def writes_monitoring(method: str | None, uri: str | None) -> bool:
    """A request that changes Alertmanager (a silence): the UI's roles do not reach it, so admins only."""
    return (method or "GET") not in ("GET", "HEAD") and (uri or "").startswith("/alertmanager/")


class AuthServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the gateway opens many connections at once when a page loads

    def __init__(self, address: tuple[str, int], service: Service, key: bytes, landing_path: str) -> None:
        super().__init__(address, Handler)
        self.service = service
        self.key = key
        self.landing_path = landing_path


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the gateway asks on every request
    server_version = "dagster-auth"
    sys_version = ""
    timeout = 120  # an idle kept-alive connection is closed after this
    # Each answer leaves in one write, flushed after the request (headers and body written apart,
    # Nagle's algorithm and the client's delayed ACK would hold the body back ~40 ms).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: AuthServer

    def version_string(self) -> str:
        return self.server_version

    # --- plumbing ------------------------------------------------------------------------
    @property
    def client(self) -> str:
        """The client's address: the last X-Forwarded-For entry (the one the gateway added), else the peer."""
        forwarded = self.headers.get("X-Forwarded-For")
        return forwarded.rsplit(",", 1)[-1].strip() if forwarded else str(self.client_address[0])

    def reply(self, status: int, body: bytes = b"", content_type: str = TEXT, headers: Headers = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def page(self, status: int, body: bytes, headers: Headers = ()) -> None:
        self.reply(status, body, HTML, [*pages.HEADERS.items(), *headers])

    def redirect(self, location: str, headers: Headers = (), status: int = 303) -> None:
        self.reply(status, b"", TEXT, [("Location", location), ("Cache-Control", "no-store"), *headers])

    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query))

    def next_param(self) -> str | None:
        """``?next=``. nginx cannot escape a URI into a parameter, so the gateway may send its raw
        ``$request_uri``: a ``next=`` that holds an unescaped ``?`` or ``&`` is taken whole."""
        query = urlsplit(self.path).query
        if query.startswith("next=") and ("?" in query[5:] or "&" in query[5:]):
            return query[5:]
        return self.query().get("next")

    def form(self) -> dict[str, str] | None:
        """The urlencoded body, or None after answering why it is refused."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self.reply(411, b"a Content-Length is required\n")
            return None
        if int(length) > MAX_FORM_BYTES:
            self.close_connection = True
            self.reply(413, b"the form is too large\n")
            return None
        return dict(parse_qsl(self.rfile.read(int(length)).decode("utf-8", "replace")))

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the gateway keeps one, and the events that matter are in the audit log."""

    # --- routing -------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        route = {
            "/verify": self.verify,
            "/health": lambda: self.reply(200, b"ok\n"),
            "/__auth/login": self.login_page,
            "/__auth/logout": self.logout,
            "/__auth/oidc/login": self.sso_login,
            "/__auth/oidc/callback": self.sso_callback,
            "/__auth/whoami": self.whoami,
        }.get(path)
        if route is None:
            self.reply(404, b"not found\n")
        else:
            route()

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        route = {"/__auth/login": self.login, "/__auth/logout": self.logout}.get(path)
        if route is None:
            self.reply(405 if path in ("/verify", "/health") else 404, b"not found, or not for POST\n")
        elif self.headers.get("Sec-Fetch-Site") == "cross-site":
            self.reply(403, b"cross-site request refused\n")
        else:
            route()

    # --- /verify and whoami --------------------------------------------------------------
    def verify(self) -> None:
        asked = self.headers
        verdict = self.server.service.authenticate(
            asked.get("Authorization"), asked.get("Cookie"), self.client, asked.get("X-Original-URI")
        )
        if verdict.identity is None:
            headers = [(ERROR_HEADER, verdict.reason), ("Cache-Control", "no-store")]
            if verdict.throttled:  # the gateway answers 429 (a subrequest can only say yes, 401 or 403)
                headers.append((THROTTLED_HEADER, "1"))
            if "Sec-Fetch-Mode" not in asked:  # a script; a browser gets the login page, not a password dialog
                headers.append(("WWW-Authenticate", verdict.challenge))
            self.reply(401, f"{verdict.reason}\n".encode(), TEXT, headers)
            return
        if not verdict.identity.admin and writes_monitoring(
            asked.get("X-Original-Method"), asked.get("X-Original-URI")
        ):
            self.reply(403, b"only a deployment admin may change Alertmanager (silences)\n", TEXT)
            return
        self.reply(
            200,
            b"",
            TEXT,
            [
                (IDENTITY_HEADER, assertion.sign(verdict.identity, self.server.key)),
                (USER_HEADER, header_safe(verdict.identity.user)),
                ("Cache-Control", "no-store"),
            ],
        )

    def whoami(self) -> None:
        verdict = self.server.service.authenticate(
            self.headers.get("Authorization"), self.headers.get("Cookie"), self.client
        )
        if verdict.identity is None:
            self.reply(401, f"{verdict.reason}\n".encode(), TEXT, [("WWW-Authenticate", verdict.challenge)])
            return
        who = verdict.identity
        body = {
            "user": who.user,
            "via": who.via,
            "admin": who.admin,
            "teams": dict(who.teams),
            "roles": who.describe_role(),
        }
        self.reply(200, json.dumps(body).encode(), "application/json", [("Cache-Control", "no-store")])

    # --- the login page ------------------------------------------------------------------
    def _next(self, value: str | None) -> str:
        return safe_next(value, self.server.landing_path)

    def _sso(self) -> pages.Sso | None:
        provider = self.server.service.provider
        return None if provider is None else pages.Sso(provider.available, provider.problem)

    def login_page(self) -> None:
        query = self.query()
        next_path = self._next(self.next_param())
        service = self.server.service
        if service.sessions.get(cookie_value(self.headers.get("Cookie"), COOKIE)) is not None:
            self.redirect(next_path)  # logged in already
            return
        notice = pages.NOTICES.get(query.get("notice", ""))
        self.page(200, pages.login_page(next_path, sso=self._sso(), notice=notice))

    def login(self) -> None:
        form = self.form()
        if form is None:
            return
        next_path = self._next(form.get("next"))
        user = form.get("username", "").strip()
        try:
            session_id = self.server.service.login(user, form.get("password", ""), self.client)
        except LoginRefused as refused:
            body = pages.login_page(next_path, sso=self._sso(), error=refused.reason.capitalize() + ".", user=user)
            self.page(refused.status, body, [("Retry-After", "60")] if refused.status == 429 else [])
            return
        self.redirect(
            next_path, [("Set-Cookie", set_cookie(COOKIE, session_id, self.server.service.sessions.lifetime))]
        )

    def logout(self) -> None:
        if self.command == "POST" and self.form() is None:
            return
        self.server.service.logout(cookie_value(self.headers.get("Cookie"), COOKIE), self.client)
        self.redirect("/__auth/login?notice=logged_out", [("Set-Cookie", clear_cookie(COOKIE))])

    # --- single sign-on ------------------------------------------------------------------
    def sso_login(self) -> None:
        provider = self.server.service.provider
        next_path = self._next(self.next_param())
        if provider is None:
            self.reply(404, b"single sign-on is not configured (OIDC_ISSUER_URL)\n")
            return
        try:
            location, state = provider.begin(next_path)
        except oidc.OidcError:
            self.page(503, pages.login_page(next_path, sso=self._sso()))
            return
        state_cookie = set_cookie(oidc.STATE_COOKIE, state, oidc.PENDING_SECONDS, oidc.STATE_COOKIE_PATH)
        self.redirect(location, [("Set-Cookie", state_cookie)], status=302)

    def sso_callback(self) -> None:
        service = self.server.service
        if service.provider is None:
            self.reply(404, b"single sign-on is not configured (OIDC_ISSUER_URL)\n")
            return
        cleared = ("Set-Cookie", clear_cookie(oidc.STATE_COOKIE, oidc.STATE_COOKIE_PATH))
        cookie_state = cookie_value(self.headers.get("Cookie"), oidc.STATE_COOKIE)
        try:
            session_id, next_path = service.sso_finish(self.query(), cookie_state, self.client)
        except LoginRefused as refused:
            body = pages.login_page(self.server.landing_path, sso=self._sso(), error=refused.reason.capitalize() + ".")
            self.page(refused.status, body, [cleared])
            return
        session_cookie = ("Set-Cookie", set_cookie(COOKIE, session_id, service.sessions.lifetime))
        self.redirect(next_path, [cleared, session_cookie])
