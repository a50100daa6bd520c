"""The user extraction as software-defined assets: one lineage, four data products, and its batches.

``raw_user_data`` → ``transformed_user_data`` → ``user_data_csv`` and
``data_extraction_summary``. Each asset names what it produces; Dagster derives
the graph from the function parameters. ``user_batch_csv`` exports the users once
per named batch (a dynamic partition). The work itself is in
:mod:`simple_ops.extraction`, shared with the ops in :mod:`simple_ops.ops`.
"""

# No `from __future__ import annotations`: Dagster reads the context parameter's annotation.
from typing import Any

import dagster as dg

from platform_kit.exports import CsvExportResource
from platform_kit.frames import DataFrame
from platform_kit.source_api import SourceApiResource
from simple_ops import extraction

GROUP = "user_extraction"
BATCH_GROUP = "user_batches"
OWNERS = ["team:data-extraction"]
#: Named batches of the user export (e.g. one per data request), added in the UI ("Add
#: partition") or by a sensor: a dynamic set of partitions, kept by the instance.
EXTRACTION_BATCHES = dg.DynamicPartitionsDefinition(name="extraction_batches")


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"api", "python"},
    tags={"domain": "users", "layer": "raw"},
)
def raw_user_data(source_api: SourceApiResource) -> dg.Output[list[dict[str, Any]]]:
    """Every user of the source API (GET /users), as validated JSON records.

    The fetch is retried on transient errors and rejected, with a message naming
    the problem, when the API answers with something other than a list of users.
    """
    return extraction.fetch_users(source_api)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas"},
    tags={"domain": "users", "layer": "transformed"},
)
def transformed_user_data(raw_user_data: list[dict[str, Any]]) -> dg.Output[DataFrame]:
    """One typed row per user: identity, contact, address, geo coordinates and company.

    Blocking checks (user_ids_are_unique, emails_are_well_formed) keep bad rows out of the CSV.
    """
    return extraction.transform_users(raw_user_data)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"csv", "pandas"},
    tags={"domain": "users", "layer": "export"},
)
def user_data_csv(exports: CsvExportResource, transformed_user_data: DataFrame) -> dg.Output[str]:
    """``users.csv`` under EXPORTS_DIR/simple_ops/, replaced atomically; the value is its path."""
    return extraction.export_users(exports, transformed_user_data)


@dg.asset(
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python"},
    tags={"domain": "users", "layer": "export"},
)
def data_extraction_summary(
    exports: CsvExportResource, transformed_user_data: DataFrame, user_data_csv: str
) -> dg.Output[dict[str, Any]]:
    """What the last extraction produced: record count, columns, CSV path and size, time (UTC).

    Also written as ``extraction_summary.json`` next to the CSV.
    """
    return extraction.summarize(exports, transformed_user_data, user_data_csv)


@dg.asset(
    group_name=BATCH_GROUP,
    owners=OWNERS,
    kinds={"csv", "pandas"},
    tags={"domain": "users", "layer": "export"},
    partitions_def=EXTRACTION_BATCHES,
)
def user_batch_csv(
    context: dg.AssetExecutionContext, exports: CsvExportResource, transformed_user_data: DataFrame
) -> dg.Output[str]:
    """The users as of one named batch: ``users_<batch>.csv`` under EXPORTS_DIR/simple_ops/, atomically."""
    return extraction.export_batch(exports, transformed_user_data, context.partition_key)


ASSETS = [raw_user_data, transformed_user_data, user_data_csv, data_extraction_summary]
BATCH_ASSETS = [user_batch_csv]
