"""Exports layer: CSV files and a JSON summary under ``$EXPORTS_DIR/modular_assets/``.

Every file is written atomically by ``CsvExportResource`` (temporary file in
the same folder, then a rename): readers see the old file or the new one,
never half a file. Because the blocking checks upstream stop a run before
these assets, bad data never replaces a good export.
"""

import os
from typing import Any

import dagster as dg

from modular_assets.constants import OWNERS
from platform_kit.exports import CsvExportResource
from platform_kit.frames import DataFrame
from platform_kit.metadata import markdown_preview

GROUP = "exports"
TAGS = {"layer": GROUP}

#: The CSV files this layer writes: asset name -> file name.
CSV_FILES = {
    "users_csv": "users.csv",
    "posts_enriched_csv": "posts_enriched.csv",
    "user_stats_csv": "user_stats.csv",
    "top_authors_csv": "top_authors.csv",
}
SUMMARY_FILE = "export_summary.json"


def _export(exports: CsvExportResource, frame: DataFrame, asset_name: str) -> dg.Output[str]:
    """Write ``frame`` to the asset's CSV file; the value is the file's path.

    Metadata: export_path, size_bytes, dagster/row_count, dagster/column_schema, preview.
    """
    written = exports.write(frame, CSV_FILES[asset_name])
    return dg.Output(str(written.path), metadata=written.metadata(frame))


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"csv"}, tags=TAGS)
def users_csv(users_cleaned: DataFrame, exports: CsvExportResource) -> dg.Output[str]:
    """``users.csv``: the cleaned users, one row per user. The value is the file's path."""
    return _export(exports, users_cleaned, "users_csv")


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"csv"}, tags=TAGS)
def posts_enriched_csv(posts_with_user_info: DataFrame, exports: CsvExportResource) -> dg.Output[str]:
    """``posts_enriched.csv``: every post with its author's details. The value is the file's path."""
    return _export(exports, posts_with_user_info, "posts_enriched_csv")


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"csv"}, tags=TAGS)
def user_stats_csv(user_activity_stats: DataFrame, exports: CsvExportResource) -> dg.Output[str]:
    """``user_stats.csv``: activity per user, users without posts included. The value is the file's path."""
    return _export(exports, user_activity_stats, "user_stats_csv")


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"csv"}, tags=TAGS)
def top_authors_csv(top_authors: DataFrame, exports: CsvExportResource) -> dg.Output[str]:
    """``top_authors.csv``: the 5 most active authors, ranked. The value is the file's path."""
    return _export(exports, top_authors, "top_authors_csv")


def summary_payload(files: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    """The content of export_summary.json: the files, their totals and the dataset statistics."""
    return {
        "files": files,
        "files_written": len(files),
        "total_rows": sum(f["rows"] for f in files),
        "total_bytes": sum(f["size_bytes"] for f in files),
        "data_summary": data,
    }


def _exported_file(instance: dg.DagsterInstance, asset_name: str, path: str) -> dict[str, Any]:
    """One CSV for the summary: rows from its asset's latest materialization, size from disk."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset_name))
    materialization = event.asset_materialization if event else None
    row_count = materialization.metadata.get("dagster/row_count") if materialization else None
    rows = row_count.value if isinstance(row_count, dg.IntMetadataValue) else None
    if rows is None or not os.path.isfile(path):
        raise dg.Failure(
            f"{path} ({asset_name}) is missing or has no recorded row count; "
            f"run exports_job (or all_assets_job) to write the CSV files again."
        )
    return {"asset": asset_name, "path": path, "rows": rows, "size_bytes": os.path.getsize(path)}


@dg.asset(group_name=GROUP, owners=OWNERS, kinds={"python", "json"}, tags=TAGS)
def export_summary(
    context: dg.AssetExecutionContext,
    users_csv: str,
    posts_enriched_csv: str,
    user_stats_csv: str,
    top_authors_csv: str,
    data_summary: dict[str, Any],
    exports: CsvExportResource,
) -> dg.Output[dict[str, Any]]:
    """What the export wrote: each CSV's path, row count and size, their totals, and the dataset
    statistics (data_summary). Also written atomically to ``export_summary.json`` next to the CSVs.

    Row counts come from each CSV asset's latest materialization (its
    ``dagster/row_count``, so no CSV is read again), sizes from the files on disk.
    """
    csv_paths = {
        "users_csv": users_csv,
        "posts_enriched_csv": posts_enriched_csv,
        "user_stats_csv": user_stats_csv,
        "top_authors_csv": top_authors_csv,
    }
    files = [_exported_file(context.instance, name, path) for name, path in csv_paths.items()]
    payload = summary_payload(files, data_summary)
    written = exports.write_json(payload, SUMMARY_FILE)
    import pandas as pd

    table = pd.DataFrame(files)[["asset", "rows", "size_bytes", "path"]]
    return dg.Output(
        payload,
        metadata={
            # not "path": the filesystem IO manager writes its own "path" over it
            "export_path": dg.MetadataValue.path(str(written)),
            "files_written": payload["files_written"],
            "total_rows": payload["total_rows"],
            "total_bytes": payload["total_bytes"],
            "files": dg.MetadataValue.md(markdown_preview(table, rows=len(table))),
        },
    )


ASSETS = [users_csv, posts_enriched_csv, user_stats_csv, top_authors_csv, export_summary]
