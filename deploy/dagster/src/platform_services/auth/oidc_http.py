"""The identity provider's JSON over HTTP(S): discovery, keys, token and userinfo.

With the standard library's http.client, which the server loads anyway: a requests session
(Authlib's usual one) would take the service past its memory budget.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from typing import Any

HTTP_TIMEOUT = 10.0


class OidcError(Exception):
    """A failed single sign-on; the message is shown on the login page and logged."""


_tls: ssl.SSLContext | None = None


def fetch_json(url: str, *, data: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Any:
    """GET (or POST a form) and decode the JSON answer; OidcError says what went wrong."""
    global _tls
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OidcError(f"{url!r} is not an http(s) URL")
    if parts.scheme == "https":
        _tls = _tls or ssl.create_default_context()  # one, reused: each would load the CA certificates again
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=HTTP_TIMEOUT, context=_tls
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=HTTP_TIMEOUT)
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    sent = {"Accept": "application/json", "User-Agent": "dagster-auth", **(headers or {})}
    if body is not None:
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("GET" if body is None else "POST", path, body=body, headers=sent)
        response = connection.getresponse()
        content = response.read(1 << 20)
    except (OSError, http.client.HTTPException) as error:
        raise OidcError(f"{url} cannot be reached ({getattr(error, 'strerror', None) or error})") from None
    finally:
        connection.close()
    if response.status >= 300:
        try:
            answer = json.loads(content)
            detail = f"{answer.get('error')}: {answer.get('error_description') or ''}".strip(": ")
        except (ValueError, AttributeError):
            detail = " ".join(content.decode("utf-8", "replace").split())[:200] or response.reason
        raise OidcError(f"{url} answered {response.status} ({detail})")
    try:
        return json.loads(content)
    except ValueError:
        raise OidcError(f"{url} did not answer JSON") from None
