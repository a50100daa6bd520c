"""The user extraction's steps, shared by the assets and the ops.

Each step takes the resources and upstream values it needs and returns a
``dg.Output``: the value plus the metadata shown in the UI. ``assets.py`` and
``ops.py`` only wire these steps together, so both styles run the same code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from platform_kit import checks
from platform_kit.exports import CsvExportResource
from platform_kit.frames import DataFrame, flatten_users
from platform_kit.metadata import frame_metadata
from platform_kit.source_api import SourceApiResource

USERS_CSV = "users.csv"
BATCH_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
SUMMARY_JSON = "extraction_summary.json"


class DataQualityError(Exception):
    """The user table breaks a quality rule, so it must not be exported."""


def fetch_users(source_api: SourceApiResource) -> dg.Output[list[dict[str, Any]]]:
    """The validated user records of the source API."""
    records = source_api.fetch_users()
    return dg.Output(
        records,
        metadata={
            "dagster/row_count": len(records),
            "source": dg.MetadataValue.url(f"{source_api.base_url.rstrip('/')}/users"),
            "first_record": dg.MetadataValue.json(records[0]),
        },
    )


def transform_users(records: list[dict[str, Any]]) -> dg.Output[DataFrame]:
    """One typed row per user (nested address, geo and company flattened)."""
    frame = flatten_users(records)
    return dg.Output(frame, metadata=frame_metadata(frame))


def user_ids_are_unique(frame: DataFrame) -> dg.AssetCheckResult:
    """Each user_id occurs once: duplicates would double-count users downstream."""
    return checks.unique(frame, "user_id")


def emails_are_well_formed(frame: DataFrame) -> dg.AssetCheckResult:
    """Every email looks like name@domain.tld, so exported contacts are usable."""
    return checks.well_formed_emails(frame, "email")


#: The rules a user table must pass before it is exported, by check name.
QUALITY_RULES: dict[str, Callable[[DataFrame], dg.AssetCheckResult]] = {
    "user_ids_are_unique": user_ids_are_unique,
    "emails_are_well_formed": emails_are_well_formed,
}


def require_quality(frame: DataFrame) -> None:
    """Raise :class:`DataQualityError` naming each of ``QUALITY_RULES`` that ``frame`` fails."""
    failures = [
        f"{name}: {result.description}" for name, rule in QUALITY_RULES.items() if not (result := rule(frame)).passed
    ]
    if failures:
        raise DataQualityError(
            f"refusing to export {USERS_CSV}: the user table fails {len(failures)} quality "
            f"rule(s) ({'; '.join(failures)}). The previous export was kept; fix the source data."
        )


def export_users(exports: CsvExportResource, frame: DataFrame) -> dg.Output[str]:
    """Write ``users.csv`` atomically, after checking the quality rules; the value is its path."""
    require_quality(frame)
    exported = exports.write(frame, USERS_CSV)
    return dg.Output(str(exported.path), metadata=exported.metadata(frame))


def export_batch(exports: CsvExportResource, frame: DataFrame, batch: str) -> dg.Output[str]:
    """Write ``users_<batch>.csv`` atomically, after the same quality rules; a batch name with a
    character other than letters, digits, ``-``, ``_`` and ``.`` is refused."""
    if not BATCH_NAME.match(batch):
        raise ValueError(f"batch {batch!r} cannot name a file: use letters, digits, '-', '_' and '.'")
    require_quality(frame)
    exported = exports.write(frame, f"users_{batch}.csv")
    return dg.Output(str(exported.path), metadata=exported.metadata(frame))


def build_summary(frame: DataFrame, csv_path: str, now: datetime) -> dict[str, Any]:
    """What was extracted: record count, columns, the CSV's path and size, and when (UTC)."""
    return {
        "record_count": len(frame),
        "columns": [str(column) for column in frame.columns],
        "file_path": csv_path,
        "size_bytes": Path(csv_path).stat().st_size,
        "generated_at": now.astimezone(UTC).isoformat(timespec="seconds"),
    }


def summarize(exports: CsvExportResource, frame: DataFrame, csv_path: str) -> dg.Output[dict[str, Any]]:
    """Build the extraction summary and write it atomically next to the CSV."""
    summary = build_summary(frame, csv_path, datetime.now(UTC))
    path = exports.write_json(summary, SUMMARY_JSON)
    return dg.Output(
        summary,
        metadata={
            "export_path": dg.MetadataValue.path(str(path)),
            "size_bytes": path.stat().st_size,
            "summary": dg.MetadataValue.json(summary),
        },
    )
