"""Data-quality rules as reusable functions returning ``dg.AssetCheckResult``.

Wrap them in ``@dg.asset_check`` in a code location; pass ``blocking=True`` there
when bad data must stop downstream assets from being built.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # pandas is imported where it runs: see platform_kit.frames.DataFrame
    import pandas as pd

#: A pragmatic shape check: something@something.tld, no spaces.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SAMPLE_SIZE = 10


def _result(failing: pd.Series, what: str, checked: int) -> dg.AssetCheckResult:
    """Pass when no row fails; otherwise report how many rows fail and which values.

    ``failing`` holds one entry per failing row; the sample lists distinct values.
    """
    count = int(failing.size)
    sample = [str(v) for v in failing.drop_duplicates().head(SAMPLE_SIZE).tolist()]
    return dg.AssetCheckResult(
        passed=count == 0,
        description=f"{count} of {checked} rows: {what}, e.g. {', '.join(sample[:3])}" if count else None,
        metadata={
            "rows_checked": checked,
            "failing_rows": count,
            "failing_sample": sample,
        },
    )


def unique(frame: pd.DataFrame, column: str) -> dg.AssetCheckResult:
    """Every value of ``column`` occurs once (every row that shares a value fails)."""
    duplicated = frame.loc[frame[column].duplicated(keep=False), column]
    return _result(duplicated, f"duplicate {column} values", len(frame))


def well_formed_emails(frame: pd.DataFrame, column: str = "email") -> dg.AssetCheckResult:
    """Every value of ``column`` looks like an e-mail address."""
    values = frame[column].astype("string")
    ok = values.str.fullmatch(EMAIL_PATTERN.pattern).fillna(False).astype(bool)
    return _result(values[~ok], f"malformed {column}", len(frame))


def not_blank(frame: pd.DataFrame, column: str) -> dg.AssetCheckResult:
    """No value of ``column`` is null, empty or only white space.

    The sample names the failing rows by the frame's first column (their id).
    """
    values = frame[column].astype("string")
    blank = values.isna() | (values.str.strip() == "")
    return _result(frame.loc[blank.astype(bool), frame.columns[0]], f"blank {column}", len(frame))


def references(child: pd.DataFrame, column: str, parent: pd.DataFrame, parent_column: str) -> dg.AssetCheckResult:
    """Every ``child[column]`` value exists in ``parent[parent_column]``."""
    orphans = child.loc[~child[column].isin(parent[parent_column]), column]
    return _result(orphans, f"{column} not found in {parent_column}", len(child))
