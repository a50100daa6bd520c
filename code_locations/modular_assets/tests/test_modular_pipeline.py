"""The whole location against a real sample-api process: exports, jobs, one asset alone, failures."""

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from modular_assets.analytics import rank_top_authors
from modular_assets.checks import CHECKS
from modular_assets.definitions import ASSETS
from testkit.sample_api import SampleApi

LOCATION_KEYS = {key.to_user_string() for a in ASSETS for key in a.keys}
CSV_COLUMNS = {
    "users.csv": [
        "user_id",
        "name",
        "username",
        "email",
        "phone",
        "website",
        "street",
        "city",
        "zipcode",
        "lat",
        "lng",
        "company_name",
    ],
    "posts_enriched.csv": [
        "post_id",
        "user_id",
        "title",
        "body",
        "author_name",
        "author_username",
        "author_email",
        "author_company",
        "author_city",
    ],
    "user_stats.csv": [
        "user_id",
        "name",
        "username",
        "total_posts",
        "avg_title_length",
        "avg_body_length",
        "min_body_length",
        "max_body_length",
    ],
    "top_authors.csv": [
        "rank",
        "user_id",
        "name",
        "username",
        "total_posts",
        "avg_title_length",
        "avg_body_length",
    ],
}
RunJob = Callable[[str], dg.ExecuteInProcessResult]
EXPECTED_ROWS = {"users.csv": 10, "posts_enriched.csv": 100, "user_stats.csv": 10, "top_authors.csv": 5}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {event.materialization.asset_key.to_user_string() for event in result.get_asset_materialization_events()}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def latest_metadata(instance: dg.DagsterInstance, asset: str) -> Mapping[str, dg.MetadataValue]:
    """The metadata of ``asset``'s latest materialization."""
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    materialization = event.asset_materialization if event else None
    assert materialization is not None, f"{asset} was never materialized"
    return materialization.metadata


def source_api_error(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """(step, message) of the run's one failed step, which must have raised a SourceApiError."""
    [failure] = result.get_step_failure_events()
    error = failure.step_failure_data.error
    cause = error.cause if error else None
    assert cause is not None and cause.cls_name == "SourceApiError", error
    assert failure.step_key is not None
    return failure.step_key, cause.message


def test_materialize_the_whole_location_writes_every_export(
    run_resources: dict[str, object], exports_dir: Path, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize([*ASSETS, *CHECKS], resources=run_resources, instance=instance)

    assert result.success
    assert materialized(result) == LOCATION_KEYS
    assert len(LOCATION_KEYS) == 13
    assert {(e.check_name, e.passed) for e in result.get_asset_check_evaluations()} == {
        ("user_ids_are_unique", True),
        ("emails_are_well_formed", True),
        ("post_ids_are_unique", True),
        ("titles_are_not_blank", True),
        ("authors_exist", True),
    }
    assert sorted(p.name for p in exports_dir.iterdir()) == sorted([*CSV_COLUMNS, "export_summary.json"])
    frames = {name: pd.read_csv(exports_dir / name) for name in CSV_COLUMNS}
    for name, frame in frames.items():
        assert frame.columns.tolist() == CSV_COLUMNS[name], name
        assert len(frame) == EXPECTED_ROWS[name], name

    stats, top = frames["user_stats.csv"], frames["top_authors.csv"]
    assert stats["total_posts"].tolist() == [10] * 10
    assert top["rank"].tolist() == [1, 2, 3, 4, 5]
    assert top["user_id"].tolist() == rank_top_authors(stats)["user_id"].tolist()
    assert top["avg_body_length"].is_monotonic_decreasing  # all users have 10 posts here

    summary = json.loads((exports_dir / "export_summary.json").read_text(encoding="utf-8"))
    assert {Path(f["path"]).name: f["rows"] for f in summary["files"]} == EXPECTED_ROWS
    for entry in summary["files"]:
        assert entry["size_bytes"] == Path(entry["path"]).stat().st_size
    assert summary["files_written"] == 4
    assert summary["data_summary"]["total_users"] == 10
    assert summary["data_summary"]["total_posts"] == 100
    assert summary["data_summary"]["users_without_posts"] == 0
    assert result.output_for_node("export_summary") == summary


def test_exports_carry_path_size_rows_schema_and_preview(
    run_resources: dict[str, object], exports_dir: Path, instance: dg.DagsterInstance
) -> None:
    dg.materialize([*ASSETS, *CHECKS], resources=run_resources, instance=instance)

    for asset, file_name in [("users_csv", "users.csv"), ("top_authors_csv", "top_authors.csv")]:
        metadata = latest_metadata(instance, asset)
        assert metadata["export_path"].value == str(exports_dir / file_name)
        assert metadata["size_bytes"].value == (exports_dir / file_name).stat().st_size
        assert metadata["dagster/row_count"].value == EXPECTED_ROWS[file_name]
        schema, preview = metadata["dagster/column_schema"], metadata["preview"]
        assert isinstance(schema, dg.TableSchemaMetadataValue)
        assert [c.name for c in schema.value.columns] == CSV_COLUMNS[file_name]
        assert isinstance(preview, dg.MarkdownMetadataValue)
        assert (preview.value or "").startswith("| " + " | ".join(CSV_COLUMNS[file_name][:2]))
    assert latest_metadata(instance, "api_users_raw")["dagster/row_count"].value == 10


def test_group_jobs_run_one_layer_each_from_the_previous_layers_values(
    run_job: RunJob, exports_dir: Path, api: SampleApi
) -> None:
    groups = {
        "sources_job": {"api_users_raw", "api_posts_raw"},
        "transforms_job": {"users_cleaned", "posts_cleaned", "posts_with_user_info"},
        "analytics_job": {"user_activity_stats", "top_authors", "data_summary"},
        "exports_job": {"users_csv", "posts_enriched_csv", "user_stats_csv", "top_authors_csv", "export_summary"},
    }
    for job_name, assets in groups.items():
        api.reset()  # zero the request counters
        result = run_job(job_name)
        assert result.success, job_name
        assert materialized(result) == assets, job_name
        requests = api.stats()["requests"]
        assert (requests > 0) == (job_name == "sources_job"), f"{job_name} made {requests} API requests"
    assert len(pd.read_csv(exports_dir / "posts_enriched.csv")) == 100


def test_transforms_job_runs_the_blocking_checks(run_job: RunJob) -> None:
    run_job("sources_job")
    result = run_job("transforms_job")
    assert {e.check_name for e in result.get_asset_check_evaluations()} == {
        "user_ids_are_unique",
        "emails_are_well_formed",
        "post_ids_are_unique",
        "titles_are_not_blank",
        "authors_exist",
    }


def test_one_asset_alone_reads_its_upstream_value_from_storage(
    run_resources: dict[str, object], exports_dir: Path, instance: dg.DagsterInstance, api: SampleApi
) -> None:
    dg.materialize([*ASSETS, *CHECKS], resources=run_resources, instance=instance)
    (exports_dir / "top_authors.csv").unlink()
    api.reset()

    result = dg.materialize(ASSETS, selection=["top_authors_csv"], resources=run_resources, instance=instance)

    assert result.success
    assert materialized(result) == {"top_authors_csv"}
    assert len(pd.read_csv(exports_dir / "top_authors.csv")) == 5
    assert api.stats()["requests"] == 0


def test_export_summary_alone_fails_clearly_when_a_csv_is_missing(
    run_resources: dict[str, object], exports_dir: Path, instance: dg.DagsterInstance
) -> None:
    dg.materialize([*ASSETS, *CHECKS], resources=run_resources, instance=instance)
    summary_before = (exports_dir / "export_summary.json").read_bytes()
    (exports_dir / "users.csv").unlink()

    result = dg.materialize(
        ASSETS, selection=["export_summary"], resources=run_resources, instance=instance, raise_on_error=False
    )

    assert not result.success
    [failure] = result.get_step_failure_events()
    user_failure = failure.step_failure_data.user_failure_data
    message = (user_failure.description if user_failure else None) or ""
    assert str(exports_dir / "users.csv") in message and "run exports_job" in message
    assert (exports_dir / "export_summary.json").read_bytes() == summary_before


def test_a_failed_request_is_retried(run_job: RunJob, api: SampleApi) -> None:
    api.configure(fail_next=1, retry_after=0, fault_paths=["/posts"])  # 503 with Retry-After: 0
    result = run_job("sources_job")
    assert result.success
    assert api.stats()["by_status"].get("503") == 1


@pytest.mark.parametrize(
    ("mode", "path", "step", "problem"),
    [
        ("malformed", "/users", "api_users_raw", "is not valid JSON"),
        ("truncated", "/posts", "api_posts_raw", "is not valid JSON"),
        ("drift_missing", "/users", "api_users_raw", "missing required field(s) email"),
        ("drift_missing", "/posts", "api_posts_raw", "missing required field(s) userId"),
        ("drift_renamed", "/posts", "api_posts_raw", "missing required field(s)"),
        ("empty", "/posts", "api_posts_raw", "the API returned an empty list"),
        ("wrong_shape", "/users", "api_users_raw", "expected a JSON list of records"),
    ],
)
def test_unusable_source_data_fails_the_run_with_a_clear_error(
    run_job: RunJob, exports_dir: Path, api: SampleApi, mode: str, path: str, step: str, problem: str
) -> None:
    api.configure(mode=mode, fault_paths=[path])

    result = run_job("all_assets_job")

    assert not result.success
    failed_step, message = source_api_error(result)
    assert failed_step == step
    assert f"{path}" in message and problem in message
    assert "SOURCE_API_URL" in message, "the message must say what to check"
    # users.csv needs only the users; everything else needs the posts too
    written = sorted(p.name for p in exports_dir.iterdir()) if exports_dir.exists() else []
    assert written == ([] if path == "/users" else ["users.csv"])


def test_unreachable_api_fails_the_run_naming_the_url(
    run_resources: dict[str, object], exports_dir: Path, monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance
) -> None:
    monkeypatch.setenv("SOURCE_API_URL", "http://127.0.0.1:1")
    result = dg.materialize(
        ASSETS, selection=["api_users_raw"], resources=run_resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    _, message = source_api_error(result)
    assert "http://127.0.0.1:1/users" in message and "gave up after 3 failed attempt(s)" in message


def test_duplicate_ids_fail_the_blocking_checks_and_keep_the_previous_exports(
    run_job: RunJob, exports_dir: Path, api: SampleApi
) -> None:
    assert run_job("all_assets_job").success
    before = snapshot(exports_dir)
    assert len(before) == 5

    api.configure(mode="duplicate_ids")
    result = run_job("all_assets_job")

    assert not result.success
    evaluated = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert evaluated == {
        ("users_cleaned", "user_ids_are_unique"): False,
        ("users_cleaned", "emails_are_well_formed"): True,
        ("posts_cleaned", "post_ids_are_unique"): False,
        ("posts_cleaned", "titles_are_not_blank"): True,
        # authors_exist reads users_cleaned, so it waits for (and is blocked by) the users' checks
    }
    assert {e.step_key for e in result.get_step_failure_events()} == {"users_cleaned_checks", "posts_cleaned_checks"}
    assert materialized(result) == {"api_users_raw", "api_posts_raw", "users_cleaned", "posts_cleaned"}
    assert snapshot(exports_dir) == before, "a blocked run must leave the previous exports byte for byte"
