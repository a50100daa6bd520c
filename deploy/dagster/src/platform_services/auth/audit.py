"""The auth service's log: one JSON line per event on stdout, for people and log shippers alike.

Logins, failed logins, logouts and refused tokens carry who (``user``), how (``via``),
from where (``client``), the ``outcome`` and a ``reason`` (at /verify, also the ``uri``
asked for; at an SSO login, the ``groups``); the service's own events (start,
a refused access file, single sign-on unavailable) carry a ``message``. A password, a
token, a cookie or a session id is never written.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

_lock = threading.Lock()
_stream: TextIO | None = None


def use_stream(stream: TextIO | None) -> None:
    """Write to ``stream`` instead of the process's stdout (tests)."""
    global _stream
    _stream = stream


def _now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def log(event: str, **fields: Any) -> None:
    """One line: ``{"time", "event", ...fields}``; fields that are None are left out."""
    record = {"time": _now(), "event": event, **{key: value for key, value in fields.items() if value is not None}}
    line = json.dumps(record, ensure_ascii=False, default=str)
    with _lock:
        stream = _stream or sys.stdout
        stream.write(line + "\n")
        stream.flush()


def attempt(
    event: str, *, user: str | None, via: str, client: str, outcome: str, reason: str | None = None, **more: Any
) -> None:
    """A login, failed login, logout or refused token (``more``: e.g. the ``uri`` it was for)."""
    log(event, user=user or "-", via=via, client=client, outcome=outcome, reason=reason, **more)
