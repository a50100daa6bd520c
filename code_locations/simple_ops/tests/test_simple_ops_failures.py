"""Bad inputs through both paths: the documented error, and the previous export left intact."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from testkit.sample_api import SampleApi

Run = Callable[[], dg.ExecuteInProcessResult]


def step_errors(result: dg.ExecuteInProcessResult) -> str:
    """Every failed step's error, with the user exception that caused it."""
    return "\n".join(str(event.step_failure_data.error) for event in result.all_events if event.is_step_failure)


def snapshot(folder: Path) -> dict[str, bytes]:
    """The name and exact bytes of every file in ``folder``."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(params=["assets", "ops"])
def run(request: pytest.FixtureRequest) -> Run:
    """Each test using it runs once through the assets and once through the op job."""
    return request.getfixturevalue(f"run_{request.param}")


@pytest.fixture
def previous_export(exports_dir: Path) -> dict[str, bytes]:
    """A previous run's files, which a failed run must leave byte for byte as they are."""
    exports_dir.mkdir(parents=True)
    (exports_dir / "users.csv").write_text("user_id,name\n1,Previous Zoë\n", encoding="utf-8")
    (exports_dir / "extraction_summary.json").write_text('{"record_count": 1}\n', encoding="utf-8")
    return snapshot(exports_dir)


@pytest.mark.parametrize(
    ("knobs", "error"),
    [
        pytest.param({"mode": "malformed"}, "/users: the response is not valid JSON", id="malformed"),
        pytest.param({"mode": "truncated"}, "/users: the response is not valid JSON", id="truncated"),
        pytest.param({"mode": "drift_missing"}, "is missing required field(s) email", id="drift_missing"),
        pytest.param(
            {"mode": "drift_renamed"},
            "is missing required field(s) email; it has address, company, emailAddress",
            id="drift_renamed",
        ),
        pytest.param({"mode": "empty"}, "/users: the API returned an empty list", id="empty"),
        pytest.param(
            {"mode": "wrong_shape"},
            "/users: expected a JSON list of records, got a JSON dict",
            id="wrong_shape",
        ),
        pytest.param(
            {"error_rate": 1.0, "error_status": 503, "retry_after": 0},
            "/users: gave up after 3 failed attempt(s) (HTTP 503, HTTP 503, HTTP 503)",
            id="persistent_503",
        ),
    ],
)
def test_a_bad_source_fails_the_run_and_keeps_the_previous_export(
    api: SampleApi,
    run: Run,
    exports_dir: Path,
    previous_export: dict[str, bytes],
    knobs: dict[str, object],
    error: str,
) -> None:
    api.configure(fault_paths=["/users"], **knobs)

    result = run()

    assert not result.success
    assert "SourceApiError" in step_errors(result)
    assert error in step_errors(result)
    assert snapshot(exports_dir) == previous_export


def test_duplicate_ids_fail_a_blocking_check_before_the_export(
    api: SampleApi, run_assets: Run, exports_dir: Path, previous_export: dict[str, bytes]
) -> None:
    api.configure(mode="duplicate_ids")

    result = run_assets()

    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["user_ids_are_unique"].passed
    assert checks["user_ids_are_unique"].metadata["failing_rows"] == dg.IntMetadataValue(2)
    assert checks["emails_are_well_formed"].passed
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"raw_user_data", "transformed_user_data"}
    assert snapshot(exports_dir) == previous_export


def test_duplicate_ids_make_the_op_job_refuse_to_export(
    api: SampleApi, run_ops: Run, exports_dir: Path, previous_export: dict[str, bytes]
) -> None:
    api.configure(mode="duplicate_ids")

    result = run_ops()

    assert not result.success
    assert [e.step_key for e in result.all_events if e.is_step_failure] == ["save_to_csv"]
    assert (
        "DataQualityError: refusing to export users.csv: the user table fails 1 quality rule(s) "
        "(user_ids_are_unique: 2 of 11 rows: duplicate user_id values, e.g. 1)"
    ) in step_errors(result)
    assert snapshot(exports_dir) == previous_export


@pytest.mark.parametrize(
    "knobs",
    [
        {"fail_next": 2, "error_status": 500},
        {"fail_next": 2, "error_status": 503, "retry_after": 0},
        {"fail_next": 2, "error_status": 429, "retry_after": 0},
    ],
    ids=["5xx-burst", "503-retry-after", "429-retry-after"],
)
def test_transient_errors_are_retried_and_the_run_succeeds(
    api: SampleApi,
    run: Run,
    exports_dir: Path,
    knobs: dict[str, object],
) -> None:
    api.configure(fault_paths=["/users"], **knobs)

    result = run()

    assert result.success
    assert api.stats()["by_status"] == {str(knobs["error_status"]): 2, "200": 1}
    assert (exports_dir / "users.csv").exists()
