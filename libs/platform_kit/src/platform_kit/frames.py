"""Typed DataFrames from JSONPlaceholder records (pure functions, no I/O).

Both code locations read the same source API; the knowledge of its record
shapes lives here once. Missing nested fields become nulls rather than errors:
:mod:`platform_kit.source_api` has already rejected records that lack the
fields a pipeline cannot do without.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

#: Column order and dtypes of a flattened user table.
USER_COLUMNS: Mapping[str, str] = {
    "user_id": "int64",
    "name": "string",
    "username": "string",
    "email": "string",
    "phone": "string",
    "website": "string",
    "street": "string",
    "city": "string",
    "zipcode": "string",
    "lat": "float64",
    "lng": "float64",
    "company_name": "string",
}

#: Column order and dtypes of a post table.
POST_COLUMNS: Mapping[str, str] = {
    "post_id": "int64",
    "user_id": "int64",
    "title": "string",
    "body": "string",
}


def _nested(record: Mapping[str, Any], *path: str) -> Any:
    """``record[path[0]][path[1]]...``, or None where any level is missing or not an object."""
    value: Any = record
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def flatten_users(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per user: identity, contact, address, geo (as floats) and company name."""
    rows = [
        (
            record["id"],
            record.get("name"),
            record.get("username"),
            record.get("email"),
            record.get("phone"),
            record.get("website"),
            _nested(record, "address", "street"),
            _nested(record, "address", "city"),
            _nested(record, "address", "zipcode"),
            _nested(record, "address", "geo", "lat"),
            _nested(record, "address", "geo", "lng"),
            _nested(record, "company", "name"),
        )
        for record in records
    ]
    frame = pd.DataFrame.from_records(rows, columns=list(USER_COLUMNS))
    for column in ("lat", "lng"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.astype(dict(USER_COLUMNS))


def posts_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per post: post_id, user_id, title, body."""
    rows = [(r["id"], r["userId"], r.get("title"), r.get("body")) for r in records]
    return pd.DataFrame.from_records(rows, columns=list(POST_COLUMNS)).astype(dict(POST_COLUMNS))
