"""The op job against the real sample API: same steps, same files as the assets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd

from simple_ops.definitions import defs
from testkit.sample_api import SampleApi


def test_the_op_job_exports_every_user_and_a_summary(
    api: SampleApi, run_ops: Callable[[], dg.ExecuteInProcessResult], exports_dir: Path
) -> None:
    result = run_ops()

    assert result.success
    csv = exports_dir / "users.csv"
    assert result.output_for_node("save_to_csv") == str(csv)
    assert pd.read_csv(csv)["user_id"].tolist() == list(range(1, 11))
    summary = json.loads((exports_dir / "extraction_summary.json").read_text(encoding="utf-8"))
    assert summary == result.output_for_node("generate_summary")
    assert summary["record_count"] == 10
    assert summary["size_bytes"] == csv.stat().st_size


def test_ops_and_assets_write_the_same_csv(
    api: SampleApi,
    run_assets: Callable[[], dg.ExecuteInProcessResult],
    run_ops: Callable[[], dg.ExecuteInProcessResult],
    exports_dir: Path,
) -> None:
    assert run_assets().success
    from_assets = (exports_dir / "users.csv").read_bytes()

    assert run_ops().success

    assert (exports_dir / "users.csv").read_bytes() == from_assets


def test_the_op_job_runs_with_the_resources_configured_from_the_environment(api: SampleApi, exports_dir: Path) -> None:
    result = defs.resolve_job_def("data_extraction_job").execute_in_process()

    assert result.success
    assert (exports_dir / "users.csv").exists()
    assert result.dagster_run.tags["style"] == "ops"
