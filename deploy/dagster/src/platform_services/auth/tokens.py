"""API tokens: their format, the file of their hashes, and checking the one a request presents.

A token is ``dgt_`` and 43 random URL-safe characters (256 bits), shown once by
``make ui-token``. Only its SHA-256 is stored, in ``$UI_SECRETS_DIR/tokens.json``, which
the init service writes (``add-token``, ``revoke-token``) and this service reads:

    {"tokens": {"ci-billing": {"sha256": "<hex>", "created": "2026-01-31T12:00:00Z", "revoked": null}}}

A revoked token keeps its entry, with the time it was revoked, so that a request that
still presents it is refused as revoked and logged by the token's name. A token's roles
are its entry under ``tokens:`` in the access file. Standard library only: init imports it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "tokens.json"
PREFIX = "dgt_"
FORMAT = re.compile(r"^dgt_[A-Za-z0-9_-]{43}$")
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TokenEntry:
    sha256: str
    created: str
    revoked: str | None = None


class TokenRefused(Exception):
    """A presented token that is not accepted: ``reason`` for the client, ``name`` for the log (if known)."""

    def __init__(self, reason: str, name: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(token: str) -> str:
    """A short, harmless label of a token for the log: the start of its hash, never of its value."""
    return "sha256:" + digest(token)[:12]


def parse(text: str) -> dict[str, TokenEntry]:
    """The entries of a tokens file; ValueError names what is wrong."""
    document = json.loads(text) if text.strip() else {"tokens": {}}
    tokens = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(tokens, dict):
        raise ValueError('not a tokens file: expected {"tokens": {name: {...}}}')
    entries = {}
    for name, entry in tokens.items():
        if not NAME.match(name) or not isinstance(entry, dict) or not SHA256.match(str(entry.get("sha256"))):
            raise ValueError(f"the entry {name!r} is malformed: revoke it and create the token again")
        revoked = entry.get("revoked")
        entries[name] = TokenEntry(entry["sha256"], str(entry.get("created") or ""), str(revoked) if revoked else None)
    return entries


def render(entries: Mapping[str, TokenEntry]) -> str:
    tokens = {
        name: {"sha256": entry.sha256, "created": entry.created, "revoked": entry.revoked}
        for name, entry in sorted(entries.items())
    }
    return json.dumps({"tokens": tokens}, indent=2) + "\n"


def read(path: Path) -> dict[str, TokenEntry]:
    return parse(path.read_text(encoding="utf-8")) if path.exists() else {}


def active(entries: Mapping[str, TokenEntry]) -> list[str]:
    return [name for name, entry in entries.items() if not entry.revoked]


class TokenIndex:
    """The entries by hash, for one lookup per request."""

    def __init__(self, entries: Mapping[str, TokenEntry]) -> None:
        self.entries = dict(entries)
        self.by_hash = {entry.sha256: name for name, entry in entries.items()}

    def check(self, token: str) -> str:
        """The name of a valid, unrevoked ``token``; :class:`TokenRefused` says why not."""
        if not FORMAT.match(token):
            raise TokenRefused(f"malformed token: an API token is {PREFIX} and 43 characters (make ui-token)")
        name = self.by_hash.get(digest(token))
        if name is None:
            raise TokenRefused("unknown token: it was never issued here, or its file was reset")
        revoked = self.entries[name].revoked
        if revoked:
            raise TokenRefused(f"token revoked at {revoked}", name)
        return name


def parse_index(text: str) -> TokenIndex:
    return TokenIndex(parse(text))
