"""Browser sessions: a random id in a cookie, the session itself in this process's memory.

The session remembers who logged in and how (``session``: the login page; ``sso``: single
sign-on, with the groups the identity provider gave), never their roles: those are worked
out from the access file on every request, so a change applies at once. A local login's
session ends when that user's password changes or the user is removed. A restart of the
service ends every session (everyone logs in again).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

COOKIE = "dagster_session"
#: Oldest sessions are dropped beyond this many: a bound on memory, far above any real use.
LIMIT = 20_000


@dataclass(frozen=True)
class Session:
    user: str
    via: str
    groups: tuple[str, ...]
    expires: float  # time.time()
    #: A local login's password stamp (:meth:`Passwords.stamp`): when it changes, the session ends.
    stamp: str | None = None


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a Cookie header (lenient: other cookies may be anything)."""
    for part in (header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def set_cookie(name: str, value: str, max_age: int, path: str = "/") -> str:
    """A Set-Cookie value: sent over HTTPS only (browsers also allow http://localhost), never to scripts."""
    return f"{name}={value}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"


def clear_cookie(name: str, path: str = "/") -> str:
    return set_cookie(name, "", 0, path)


class Sessions:
    def __init__(self, lifetime_seconds: int) -> None:
        self.lifetime = lifetime_seconds
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, user: str, via: str, groups: tuple[str, ...] = (), stamp: str | None = None) -> str:
        """A new session's id (a new one at every login: no id chosen before the login survives it)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            while len(self._sessions) >= LIMIT:
                del self._sessions[next(iter(self._sessions))]
            self._sessions[session_id] = Session(user, via, groups, time.time() + self.lifetime, stamp)
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is not None and session.expires <= time.time():
            self.delete(session_id)
            return None
        return session

    def delete(self, session_id: str | None) -> Session | None:
        with self._lock:
            return self._sessions.pop(session_id, None) if session_id else None

    def sweep(self) -> int:
        """Forget expired sessions; how many."""
        now = time.time()
        with self._lock:
            expired = [key for key, session in self._sessions.items() if session.expires <= now]
            for key in expired:
                del self._sessions[key]
        return len(expired)

    def __len__(self) -> int:
        return len(self._sessions)
