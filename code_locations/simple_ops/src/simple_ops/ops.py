"""The user extraction as four ops: the steps, with the wiring left to a job.

The ops call the same steps as the assets (:mod:`simple_ops.extraction`), so the
data and the files they produce are identical. Ops have no asset checks:
``save_to_csv`` refuses bad data itself, with the same quality rules.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from platform_kit.exports import CsvExportResource
from platform_kit.frames import DataFrame
from platform_kit.source_api import SourceApiResource
from simple_ops import extraction

TAGS = {"team": "data-extraction"}


@dg.op(tags=TAGS)
def fetch_data_from_api(source_api: SourceApiResource) -> dg.Output[list[dict[str, Any]]]:
    """Fetch every user from the source API (GET /users), retried and validated."""
    return extraction.fetch_users(source_api)


@dg.op(tags=TAGS)
def transform_data(raw_data: list[dict[str, Any]]) -> dg.Output[DataFrame]:
    """Flatten the user records into one typed row per user."""
    return extraction.transform_users(raw_data)


@dg.op(tags=TAGS)
def save_to_csv(exports: CsvExportResource, transformed: DataFrame) -> dg.Output[str]:
    """Check the quality rules, then write users.csv atomically; output its path."""
    return extraction.export_users(exports, transformed)


@dg.op(tags=TAGS)
def generate_summary(exports: CsvExportResource, transformed: DataFrame, file_path: str) -> dg.Output[dict[str, Any]]:
    """Summarize the extraction and write extraction_summary.json next to the CSV."""
    return extraction.summarize(exports, transformed, file_path)
