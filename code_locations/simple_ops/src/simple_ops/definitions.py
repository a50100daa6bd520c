"""The simple_ops code location: one user extraction as assets and as ops, side by side."""

from __future__ import annotations

import dagster as dg

from simple_ops.assets import user_assets
from simple_ops.checks import user_checks
from simple_ops.jobs import data_extraction_job, user_assets_job
from simple_ops.resources import resources
from simple_ops.schedules import data_extraction_schedule
from simple_ops.sensors import run_failure_alert_sensor

defs = dg.Definitions(
    assets=user_assets,
    asset_checks=user_checks,
    jobs=[data_extraction_job, user_assets_job],
    schedules=[data_extraction_schedule],
    sensors=[run_failure_alert_sensor],
    resources=resources,
    # In-process on purpose: every run already gets its own container, and the
    # multiprocess executor adds ~20 s of process start-up per run here
    # (see DAGSTER_NOTES.md, "Where run time goes").
    executor=dg.in_process_executor,
)
