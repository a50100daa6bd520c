"""Materialization metadata that people look at in the UI: rows, schema, a preview."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:  # pandas is imported where it runs: see platform_kit.frames.DataFrame
    import pandas as pd

PREVIEW_ROWS = 5


def markdown_preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """The first ``rows`` rows of ``frame`` as a Markdown table (pipes escaped, one line per row)."""
    import pandas as pd

    def cell(value: object) -> str:
        text = "" if pd.api.types.is_scalar(value) and pd.isna(value) else str(value)
        return " ".join(text.replace("|", "\\|").splitlines())

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.head(rows).itertuples(index=False)]
    return "\n".join([header, rule, *body])


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The frame's columns and dtypes as a Dagster table schema."""
    return dg.TableSchema(
        columns=[dg.TableColumn(name=str(name), type=str(dtype)) for name, dtype in frame.dtypes.items()]
    )


def frame_metadata(frame: pd.DataFrame) -> dict[str, dg.RawMetadataValue]:
    """Row count, column schema and a Markdown preview of ``frame``."""
    return {
        "dagster/row_count": len(frame),
        "dagster/column_schema": column_schema(frame),
        "preview": dg.MetadataValue.md(markdown_preview(frame)),
    }
