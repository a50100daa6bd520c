"""The data endpoints of sample-api: which records a path names, and their JSON body.

``resolve`` maps ``/users``, ``/posts``, ``/comments`` (and their sub-paths and
JSONPlaceholder's slicing parameters) to a listing or a record; ``render`` encodes it,
a batch of records per chunk, altered by the body fault in effect.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, islice
from typing import Any

from sample_api.data import Dataset, Record

RECORDS_PER_CHUNK = 500
DRIFTED_FIELDS = {"users": ("email", "emailAddress"), "posts": ("userId", "user_id"), "comments": ("postId", "post_id")}

_ROUTE = re.compile(r"/(users|posts|comments)(?:/([0-9]{1,18})(?:/(posts|comments))?)?")
_RECORD: dict[str, Callable[[Dataset, int], Record]] = {
    "users": Dataset.user,
    "posts": Dataset.post,
    "comments": Dataset.comment,
}


class HttpError(Exception):
    """Ends a request with ``status`` and the JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Listing:
    """A list response: records of ``kind`` with ``ids``, out of ``total`` before slicing."""

    kind: str
    ids: range
    total: int


@dataclass(frozen=True)
class Item:
    """A single-record response."""

    kind: str
    record: Record


def is_data_path(path: str) -> bool:
    """Whether ``path`` is a data endpoint (the fault knobs apply only to those)."""
    return _ROUTE.fullmatch(path) is not None


def encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _json_array(records: Iterator[Record]) -> Iterator[bytes]:
    """Encode ``records`` as one JSON array, a batch of records per chunk."""
    opener = b"["
    while batch := list(islice(records, RECORDS_PER_CHUNK)):
        yield opener + encode(batch)[1:-1]
        opener = b","
    yield b"]" if opener == b"," else b"[]"


def _drifted(record: Record, kind: str, mode: str) -> Record:
    """``record`` with its drifting field removed (``drift_missing``) or renamed (``drift_renamed``)."""
    field, renamed = DRIFTED_FIELDS[kind]
    if mode == "drift_missing":
        return {key: value for key, value in record.items() if key != field}
    return {(renamed if key == field else key): value for key, value in record.items()}


def _whole_param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise HttpError(400, {"error": f"{name} must be a whole number >= 0, got {raw!r}"})
    return int(raw)


def _id_filter(query: Mapping[str, str], name: str) -> int | None:
    """The value of an id filter such as ``userId``; 0 (matches nothing) if not a number."""
    raw = query.get(name)
    if raw is None:
        return None
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0


def _listing(kind: str, ids: range, query: Mapping[str, str]) -> Listing:
    """Apply JSONPlaceholder's ``_start``/``_end``/``_limit`` slicing to ``ids``."""
    start, end, limit = (_whole_param(query, name) for name in ("_start", "_end", "_limit"))
    start = start or 0
    if end is None and limit is not None:
        end = start + limit
    return Listing(kind, ids[start:end], len(ids))


def resolve(data: Dataset, path: str, query: Mapping[str, str]) -> Listing | Item:
    """The listing or record that a data ``path`` names; raises HttpError if there is none."""
    match = _ROUTE.fullmatch(path)
    if match is None:
        raise HttpError(404, {"error": f"no such endpoint: {path}"})
    kind, ident, child = match.groups()
    if ident is None:
        ids = range(1, data.count(kind) + 1)
        if kind == "posts" and (user_id := _id_filter(query, "userId")) is not None:
            ids = data.post_ids_of_user(user_id)
        if kind == "comments" and (post_id := _id_filter(query, "postId")) is not None:
            ids = data.comment_ids_of_post(post_id)
        return _listing(kind, ids, query)
    number = int(ident)
    if child is None:
        if not 1 <= number <= data.count(kind):
            raise HttpError(404, {})
        return Item(kind, _RECORD[kind](data, number))
    if (kind, child) == ("users", "posts"):
        return _listing("posts", data.post_ids_of_user(number), query)
    if (kind, child) == ("posts", "comments"):
        return _listing("comments", data.comment_ids_of_post(number), query)
    raise HttpError(404, {"error": f"no such endpoint: {path}"})


def render(data: Dataset, result: Listing | Item, mode: str) -> Iterator[bytes]:
    """The JSON body for ``result``, altered by the body fault ``mode`` (except ``malformed``)."""
    drift = mode in ("drift_missing", "drift_renamed")
    if isinstance(result, Item):
        return iter([encode(_drifted(result.record, result.kind, mode) if drift else result.record)])
    make = _RECORD[result.kind]
    records: Iterator[Record] = (make(data, ident) for ident in result.ids)
    if mode == "empty":
        records = iter(())
    elif mode == "duplicate_ids" and result.ids:
        records = chain([make(data, result.ids[0])], records)
    elif drift:
        records = (_drifted(record, result.kind, mode) for record in records)
    chunks = _json_array(records)
    return chain([b'{"data":'], chunks, [b"}"]) if mode == "wrong_shape" else chunks
