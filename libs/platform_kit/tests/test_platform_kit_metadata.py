"""Metadata people read in the UI: a preview that stays a table, a schema, a row count."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from platform_kit.metadata import column_schema, frame_metadata, markdown_preview


def test_preview_is_a_markdown_table_of_the_first_rows() -> None:
    frame = pd.DataFrame({"id": range(1, 9), "name": [f"user {i}" for i in range(1, 9)]})

    lines = markdown_preview(frame).split("\n")

    assert lines[:3] == ["| id | name |", "| --- | --- |", "| 1 | user 1 |"]
    assert lines[-1] == "| 5 | user 5 |"
    assert len(lines) == 2 + 5
    assert len(markdown_preview(frame, rows=2).split("\n")) == 2 + 2


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("a|b", "a\\|b"),
        ("line one\nline two", "line one line two"),
        ("windows\r\nline", "windows line"),
        ("old mac\rline", "old mac line"),
        ("Zoë 東京", "Zoë 東京"),
        (None, ""),
        (float("nan"), ""),
    ],
    ids=["pipe", "newline", "crlf", "cr", "unicode", "none", "nan"],
)
def test_preview_cells_cannot_break_the_table(value: object, cell: str) -> None:
    frame = pd.DataFrame({"id": [1], "text": pd.Series([value], dtype=object)})

    lines = markdown_preview(frame).splitlines()

    assert lines == ["| id | text |", "| --- | --- |", f"| 1 | {cell} |"]


def test_preview_escapes_column_names_too() -> None:
    frame = pd.DataFrame({"a|b": [1]})

    assert markdown_preview(frame).split("\n")[0] == "| a\\|b |"


def test_preview_of_an_empty_frame_is_its_header() -> None:
    assert markdown_preview(pd.DataFrame({"id": []})) == "| id |\n| --- |"


def test_column_schema_lists_columns_and_dtypes() -> None:
    frame = pd.DataFrame({"id": [1], "score": [0.5]}).astype({"id": "int64"})
    frame["name"] = pd.Series(["x"], dtype="string")

    assert column_schema(frame) == dg.TableSchema(
        columns=[
            dg.TableColumn(name="id", type="int64"),
            dg.TableColumn(name="score", type="float64"),
            dg.TableColumn(name="name", type="string"),
        ]
    )


def test_frame_metadata_has_row_count_schema_and_preview() -> None:
    frame = pd.DataFrame({"id": [1, 2, 3]})

    metadata = frame_metadata(frame)

    assert metadata["dagster/row_count"] == 3
    assert metadata["dagster/column_schema"] == column_schema(frame)
    assert metadata["preview"] == dg.MetadataValue.md(markdown_preview(frame))
