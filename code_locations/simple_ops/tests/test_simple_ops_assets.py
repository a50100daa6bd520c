"""The assets against the real sample API: files written, read back and compared with the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import requests

from platform_kit.frames import USER_COLUMNS
from simple_ops.definitions import defs
from testkit.sample_api import SampleApi


def test_materializing_the_assets_exports_every_user(
    api: SampleApi, run_assets: Callable[[], dg.ExecuteInProcessResult], exports_dir: Path
) -> None:
    result = run_assets()

    assert result.success
    assert sorted(p.name for p in exports_dir.iterdir()) == ["extraction_summary.json", "users.csv"]
    users = pd.read_csv(exports_dir / "users.csv", dtype={"zipcode": str})
    source = requests.get(f"{api.url}/users", timeout=10).json()
    assert list(users.columns) == list(USER_COLUMNS)
    assert users["user_id"].tolist() == [record["id"] for record in source]
    assert users["name"].tolist() == [record["name"] for record in source]
    assert users["email"].tolist() == [record["email"] for record in source]
    assert users["city"].tolist() == [record["address"]["city"] for record in source]
    assert users["lat"].tolist() == [float(record["address"]["geo"]["lat"]) for record in source]
    assert users["company_name"].tolist() == [record["company"]["name"] for record in source]


def test_the_summary_describes_the_csv_it_sits_next_to(
    api: SampleApi, run_assets: Callable[[], dg.ExecuteInProcessResult], exports_dir: Path
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    result = run_assets()

    summary = result.output_for_node("data_extraction_summary")
    csv = exports_dir / "users.csv"
    assert json.loads((exports_dir / "extraction_summary.json").read_text(encoding="utf-8")) == summary
    assert summary["record_count"] == 10
    assert summary["columns"] == list(USER_COLUMNS)
    assert summary["file_path"] == str(csv) == result.output_for_node("user_data_csv")
    assert summary["size_bytes"] == csv.stat().st_size
    generated = datetime.fromisoformat(summary["generated_at"])
    assert generated.utcoffset() == timedelta(0)
    assert before <= generated <= datetime.now(UTC)


def test_materializations_carry_the_metadata_people_look_at(
    api: SampleApi, run_assets: Callable[[], dg.ExecuteInProcessResult], exports_dir: Path
) -> None:
    result = run_assets()

    materializations = [e.materialization for e in result.get_asset_materialization_events()]
    metadata = {m.asset_key.to_user_string(): m.metadata for m in materializations}
    assert metadata["raw_user_data"]["dagster/row_count"] == dg.IntMetadataValue(10)
    assert metadata["raw_user_data"]["source"] == dg.MetadataValue.url(f"{api.url}/users")
    assert metadata["transformed_user_data"]["dagster/row_count"] == dg.IntMetadataValue(10)
    assert str(metadata["transformed_user_data"]["preview"].value).startswith("| user_id | name |")
    csv = exports_dir / "users.csv"
    assert metadata["user_data_csv"]["export_path"] == dg.MetadataValue.path(str(csv))
    assert metadata["user_data_csv"]["size_bytes"] == dg.IntMetadataValue(csv.stat().st_size)
    assert metadata["data_extraction_summary"]["export_path"] == dg.MetadataValue.path(
        str(exports_dir / "extraction_summary.json")
    )
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"user_ids_are_unique": True, "emails_are_well_formed": True}


def test_the_asset_job_runs_with_the_resources_configured_from_the_environment(
    api: SampleApi, exports_dir: Path
) -> None:
    result = defs.resolve_job_def("user_assets_job").execute_in_process()

    assert result.success
    assert len(pd.read_csv(exports_dir / "users.csv")) == 10
    assert api.stats()["by_path"] == {"/users": 1}
