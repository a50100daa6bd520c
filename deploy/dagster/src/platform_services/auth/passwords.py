"""Local users: the htpasswd file that init writes (``name:$6$...``, SHA-512-crypt), checked here.

HTTP basic auth sends the password with every request, and SHA-512-crypt is slow on
purpose, so a successful check is remembered for :data:`CACHE_SECONDS`, keyed by the
SHA-256 of the Authorization header (never the password). Any change to the htpasswd
file clears what is remembered, so a changed password or a removed user applies at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from platform_services.auth.watched import WatchedFile

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt  # deprecated, but in the standard library up to Python 3.12: what init hashes with

CACHE_SECONDS = 60.0
CACHE_LIMIT = 4096
#: Checked against when the user does not exist, so that a wrong name takes as long as a wrong password.
_DECOY = crypt.crypt("decoy", "$6$decoydecoydecoy$")


def parse(text: str) -> dict[str, str]:
    """``user -> hash``; lines that are not ``user:$hash`` are skipped (init refuses to write them)."""
    users = {}
    for line in text.splitlines():
        name, _, hashed = line.strip().partition(":")
        if name and hashed.startswith("$"):
            users[name] = hashed
    return users


def decode_basic(header: str) -> tuple[str, str] | None:
    """``(user, password)`` of a ``Basic`` Authorization header, or None if it is not one."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


class Passwords:
    def __init__(self, path: Path, on_error: Callable[[str], None]) -> None:
        self._file: WatchedFile[dict[str, str]] = WatchedFile(path, parse, {}, on_error)
        self._cache: dict[bytes, tuple[str, float]] = {}
        self._cache_generation = -1
        self._lock = threading.Lock()

    def stamp(self, user: str) -> str | None:
        """A short digest of ``user``'s stored hash: it changes with the password; None if no such user."""
        stored = self._file.get().get(user)
        return hashlib.sha256(stored.encode()).hexdigest()[:16] if stored else None

    def check(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s, at the cost of one crypt either way."""
        stored = self._file.get().get(user)
        hashed = crypt.crypt(password, stored or _DECOY)
        return stored is not None and hashed is not None and hmac.compare_digest(hashed, stored)

    def check_basic(self, header: str) -> tuple[str | None, str | None]:
        """``(user, None)`` when the Basic header's login holds, else ``(None, the name it tried)``."""
        self._file.get()
        generation = self._file.generation
        key = hashlib.sha256(header.encode()).digest()
        now = time.monotonic()
        with self._lock:
            if self._cache_generation != generation:
                self._cache.clear()
                self._cache_generation = generation
            cached = self._cache.get(key)
        if cached and cached[1] > now:
            return cached[0], None
        login = decode_basic(header)
        if login is None or not self.check(*login):
            return None, login[0] if login else None
        with self._lock:
            if self._cache_generation != generation or self._file.generation != generation:
                return login[0], None  # the file changed meanwhile: this check is not remembered
            if len(self._cache) >= CACHE_LIMIT:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
            self._cache[key] = (login[0], now + CACHE_SECONDS)
        return login[0], None
