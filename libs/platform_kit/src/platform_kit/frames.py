"""Typed DataFrames from JSONPlaceholder records (pure functions, no I/O).

Both code locations read the same source API; the knowledge of its record
shapes lives here once. Missing nested fields become nulls rather than errors:
:mod:`platform_kit.source_api` has already rejected records that lack the
fields a pipeline cannot do without.

Also :data:`DataFrame`, the type to annotate assets and ops with. pandas is
imported inside the functions that use it, never at module level, so that a
code server (which imports every asset module to serve the definitions, and
never runs an asset) does not load it (docs/decisions.md#no-pandas-in-code-servers).
The run worker imports pandas with its first step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg

if TYPE_CHECKING:
    import pandas as pd
    from pandas import DataFrame
else:

    def _is_data_frame(_context: dg.TypeCheckContext, value: object) -> dg.TypeCheck:
        import pandas as pd

        if isinstance(value, pd.DataFrame):
            return dg.TypeCheck(success=True)
        return dg.TypeCheck(success=False, description=f"Expected a pandas DataFrame, got {type(value).__name__}.")

    #: Annotate asset, op and check functions with this instead of ``pd.DataFrame``
    #: (``def users(raw: DataFrame) -> dg.Output[DataFrame]``). Dagster resolves
    #: those annotations when the module is imported, so ``pd.DataFrame`` there
    #: would import pandas in the code server. This Dagster type makes the same
    #: isinstance check that Dagster makes for ``pd.DataFrame`` (same name in the
    #: UI), importing pandas only when a run checks a value; type checkers and
    #: IDEs see ``pandas.DataFrame`` (the ``TYPE_CHECKING`` branch above).
    DataFrame = dg.DagsterType(
        name="DataFrame",
        description="A pandas DataFrame.",
        type_check_fn=_is_data_frame,
    )

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
    import pandas as pd

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
    import pandas as pd

    rows = [(r["id"], r["userId"], r.get("title"), r.get("body")) for r in records]
    return pd.DataFrame.from_records(rows, columns=list(POST_COLUMNS)).astype(dict(POST_COLUMNS))
