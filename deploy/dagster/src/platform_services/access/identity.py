"""Who a request is, as the auth service asserts it to the webserver through the gateway.

The gateway asks the auth service about every request (nginx ``auth_request``) and passes
its answer on in the ``X-Dagster-Identity`` header, overwriting whatever a client sent.
The webserver believes that header only when its signature holds: an HMAC-SHA256, keyed
with a secret that only the auth service and the webserver (and their watchdogs) read, and
a short expiry. A request that reaches the webserver any other way is refused.

    v1.<base64url(JSON)>.<base64url(HMAC-SHA256(key, "v1." + base64url(JSON)))>

The JSON: ``{"user", "via", "teams": {team: role}, "admin", "exp"}``; ``via`` says how the
person logged in (password, session, token, sso; deploy for a deploy's reload), for the audit log.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class Role(enum.StrEnum):
    """A role on a team's code locations (admin: on every location, and deployment-wide).

    Which of Dagster's permissions each holds is in :mod:`.roles`; this module imports no
    Dagster, so that the light processes (the watchdog, the auth service) can use it.
    """

    VIEWER = "viewer"
    LAUNCHER = "launcher"
    EDITOR = "editor"
    ADMIN = "admin"


HEADER = "X-Dagster-Identity"
VERSION = "v1"
#: Long enough for nginx to pass the answer on, short enough that a captured header is soon useless.
LIFETIME_SECONDS = 60.0
KEY_BYTES = 32


class IdentityError(ValueError):
    """An assertion that is missing, malformed, forged or expired; the message says which."""


@dataclass(frozen=True)
class Identity:
    """A person or a token, with a role per team (viewer where none is given) or deployment-wide admin."""

    user: str
    via: str
    teams: Mapping[str, Role] = field(default_factory=dict)
    admin: bool = False

    def role_for(self, team: str | None) -> Role:
        """The role this identity holds on a team's code locations."""
        if self.admin:
            return Role.ADMIN
        return self.teams.get(team, Role.VIEWER) if team else Role.VIEWER

    def describe_role(self) -> str:
        """The roles, as the audit log shows them: ``admin``, or ``billing:editor,analytics:launcher``."""
        if self.admin:
            return Role.ADMIN.value
        return ",".join(f"{team}:{role.value}" for team, role in sorted(self.teams.items())) or Role.VIEWER.value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, signed: str) -> str:
    return _b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())


def sign(identity: Identity, key: bytes, *, now: float | None = None) -> str:
    """The header value asserting ``identity`` for the next :data:`LIFETIME_SECONDS`."""
    payload = {
        "user": identity.user,
        "via": identity.via,
        "teams": {team: role.value for team, role in sorted(identity.teams.items())},
        "admin": identity.admin,
        "exp": round((time.time() if now is None else now) + LIFETIME_SECONDS, 3),
    }
    signed = f"{VERSION}.{_b64(json.dumps(payload, separators=(',', ':'), sort_keys=True).encode())}"
    return f"{signed}.{_signature(key, signed)}"


def verify(value: str | None, key: bytes, *, now: float | None = None) -> Identity:
    """The identity a header value asserts, or :class:`IdentityError` saying why it is not believed."""
    if not value:
        raise IdentityError(f"no {HEADER} header: the request did not come through the gateway")
    parts = value.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise IdentityError(f"a malformed {HEADER} header")
    signed = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_signature(key, signed), parts[2]):
        raise IdentityError(f"a {HEADER} header whose signature does not hold: it was not made by the auth service")
    try:
        payload = json.loads(_unb64(parts[1]))
        expiry = float(payload["exp"])
        identity = Identity(
            user=str(payload["user"]),
            via=str(payload["via"]),
            teams={str(team): Role(role) for team, role in payload["teams"].items()},
            admin=bool(payload["admin"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise IdentityError(f"a signed {HEADER} header with an unreadable payload ({error})") from None
    if (time.time() if now is None else now) > expiry:
        raise IdentityError(f"an expired {HEADER} header (a replayed request?)")
    return identity


def new_key() -> bytes:
    """A fresh signing key (the init service writes one on first start)."""
    import secrets

    return secrets.token_bytes(KEY_BYTES)


def read_key(path: Path) -> bytes:
    """The signing key from its file (hex), or an error naming the file and what writes it."""
    try:
        key = bytes.fromhex(path.read_text(encoding="utf-8").strip())
    except FileNotFoundError:
        raise IdentityError(
            f"the identity key {path} does not exist: the init service writes it on first start "
            "(docker compose up runs it; see `docker compose logs init`)"
        ) from None
    except ValueError:
        raise IdentityError(f"the identity key {path} is not hex: delete it and start the stack again") from None
    if len(key) < KEY_BYTES:
        raise IdentityError(f"the identity key {path} is shorter than {KEY_BYTES} bytes: delete it and start again")
    return key
