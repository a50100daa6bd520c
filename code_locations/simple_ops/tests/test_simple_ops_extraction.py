"""The shared extraction steps called directly: transform, quality gate, export, summary."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from platform_kit.exports import CsvExportResource
from platform_kit.frames import USER_COLUMNS
from simple_ops import extraction
from simple_ops.checks import CHECKS
from simple_ops.ops import save_to_csv


def user(ident: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": ident,
        "name": f"User {ident}",
        "username": f"user{ident}",
        "email": f"user{ident}@example.com",
        "address": {
            "street": "Main",
            "city": "Town",
            "zipcode": "1",
            "geo": {"lat": "1.5", "lng": "-2"},
        },
        "phone": "555",
        "website": "example.com",
        "company": {"name": "ACME"},
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("records", "column", "expected"),
    [
        ([user(1, name="Zoë Ångström")], "name", ["Zoë Ångström"]),
        ([user(1, address={"city": "Kraków"})], "street", [pd.NA]),
        ([user(1, company=None)], "company_name", [pd.NA]),
        ([user(1), user(1)], "user_id", [1, 1]),
        ([user(1, address={"geo": {"lat": "n/a", "lng": "0"}})], "lng", [0.0]),
    ],
    ids=["unicode-name", "missing-street", "no-company", "duplicate-ids-kept", "geo-as-text"],
)
def test_transform_users_flattens_each_record_into_one_row(
    records: list[dict[str, Any]], column: str, expected: list[object]
) -> None:
    output = extraction.transform_users(records)

    assert list(output.value.columns) == list(USER_COLUMNS)
    assert output.value[column].tolist() == expected
    assert output.metadata["dagster/row_count"].value == len(records)


def frame_of(*records: dict[str, Any]) -> pd.DataFrame:
    return extraction.transform_users(list(records)).value


def test_a_clean_table_passes_the_quality_gate() -> None:
    extraction.require_quality(frame_of(user(1), user(2)))


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (
            [user(1), user(2), user(1)],
            "fails 1 quality rule(s) (user_ids_are_unique: 2 of 3 rows: duplicate user_id values, e.g. 1)",
        ),
        (
            [user(1), user(2, email="not-an-email")],
            "(emails_are_well_formed: 1 of 2 rows: malformed email, e.g. not-an-email)",
        ),
        (
            [user(3, email="x@y"), user(3)],
            "fails 2 quality rule(s) (user_ids_are_unique: 2 of 2 rows",
        ),
    ],
    ids=["duplicate-ids", "malformed-email", "both"],
)
def test_bad_tables_are_refused_with_the_failing_rules(records: list[dict[str, Any]], expected: str) -> None:
    with pytest.raises(extraction.DataQualityError, match=r"^refusing to export users\.csv") as raised:
        extraction.require_quality(frame_of(*records))

    assert expected in str(raised.value)


def test_the_asset_checks_apply_the_same_rules() -> None:
    frame = frame_of(user(1), user(1, email="broken"))

    results: dict[str, dg.AssetCheckResult] = {}
    for check in CHECKS:
        result = check(transformed_user_data=frame)
        assert isinstance(result, dg.AssetCheckResult)
        results[check.check_key.name] = result

    assert {name: result.passed for name, result in results.items()} == {
        "user_ids_are_unique": False,
        "emails_are_well_formed": False,
    }
    assert results["emails_are_well_formed"].metadata["failing_sample"].value == ["broken"]


def test_the_save_op_refuses_malformed_emails_and_keeps_the_old_file(
    exports: CsvExportResource,
) -> None:
    old = exports.write(frame_of(user(1)), extraction.USERS_CSV).path.read_bytes()

    with pytest.raises(extraction.DataQualityError, match="emails_are_well_formed"):
        save_to_csv(exports=exports, transformed=frame_of(user(1, email="@nowhere")))

    assert (exports.directory / extraction.USERS_CSV).read_bytes() == old


def test_export_users_writes_the_csv_and_returns_its_path(exports: CsvExportResource) -> None:
    output = extraction.export_users(exports, frame_of(user(1), user(2)))

    path = Path(output.value)
    assert path == exports.directory / "users.csv"
    assert pd.read_csv(path)["user_id"].tolist() == [1, 2]
    assert output.metadata["dagster/row_count"].value == 2
    assert output.metadata["size_bytes"].value == path.stat().st_size


def test_a_batch_export_is_its_own_file(exports: CsvExportResource) -> None:
    output = extraction.export_batch(exports, frame_of(user(1), user(2)), "request-42")

    assert Path(output.value) == exports.directory / "users_request-42.csv"
    assert pd.read_csv(output.value)["user_id"].tolist() == [1, 2]


@pytest.mark.parametrize("batch", ["../escape", "a/b", "", "x" * 101])
def test_a_batch_name_that_cannot_name_a_file_is_refused(exports: CsvExportResource, batch: str) -> None:
    with pytest.raises(ValueError, match="cannot name a file"):
        extraction.export_batch(exports, frame_of(user(1)), batch)
    assert not exports.directory.exists() or not list(exports.directory.iterdir())


def test_build_summary_describes_the_export_in_utc(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    csv.write_text("user_id\n1\n2\n", encoding="utf-8")
    frame = frame_of(user(1), user(2))
    local_time = datetime(2026, 3, 1, 8, 30, 15, tzinfo=timezone(timedelta(hours=2)))

    summary = extraction.build_summary(frame, str(csv), local_time)

    assert summary == {
        "record_count": 2,
        "columns": list(USER_COLUMNS),
        "file_path": str(csv),
        "size_bytes": 12,
        "generated_at": "2026-03-01T06:30:15+00:00",
    }
