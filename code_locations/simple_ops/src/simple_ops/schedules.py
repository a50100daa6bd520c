"""The daily schedule of ``data_extraction_job``.

Dagster needs a schedule's cron string and time zone when the definitions load,
so SCHEDULE_CRON and SCHEDULE_TIMEZONE are read then, not when a tick runs; a
bad value stops the location from loading with a message saying what to set.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from datetime import datetime

import dagster as dg

from simple_ops.jobs import data_extraction_job

DEFAULT_CRON = "0 6 * * *"  # every day at 06:00
DEFAULT_TIMEZONE = "UTC"


class ScheduleSettingError(ValueError):
    """SCHEDULE_CRON or SCHEDULE_TIMEZONE holds a value Dagster cannot schedule with."""


def run_key(job_name: str, scheduled_time: datetime) -> str:
    """One run key per job and scheduled minute, so a re-evaluated tick starts no second run."""
    return f"{job_name}:{scheduled_time:%Y-%m-%dT%H:%M%z}"


def build_data_extraction_schedule(environ: Mapping[str, str]) -> dg.ScheduleDefinition:
    """The schedule, with its cron and time zone from ``environ`` (empty means default)."""
    cron = environ.get("SCHEDULE_CRON", "").strip() or DEFAULT_CRON
    timezone = environ.get("SCHEDULE_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        zoneinfo.ZoneInfo(timezone)
    except (KeyError, ValueError, OSError) as exc:  # ZoneInfoNotFoundError is a KeyError
        raise ScheduleSettingError(
            f"SCHEDULE_TIMEZONE={timezone!r} is not an IANA time zone name; "
            f"set it to one such as 'UTC' or 'Europe/Berlin'."
        ) from exc
    try:
        return dg.ScheduleDefinition(
            name="data_extraction_schedule",
            cron_schedule=cron,
            execution_timezone=timezone,
            job=data_extraction_job,
            execution_fn=_request_run,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=(
                f"Runs data_extraction_job on '{cron}' ({timezone}); "
                "set SCHEDULE_CRON / SCHEDULE_TIMEZONE to change it."
            ),
        )
    except dg.DagsterInvalidDefinitionError as exc:
        raise ScheduleSettingError(
            f"SCHEDULE_CRON={cron!r} is not a valid cron expression; "
            f"set five fields such as '{DEFAULT_CRON}' (every day at 06:00)."
        ) from exc


def _request_run(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled_time = context.scheduled_execution_time
    return dg.RunRequest(run_key=run_key(data_extraction_job.name, scheduled_time))


# Read at import, on purpose: Dagster needs the cron and time zone when the definitions load.
data_extraction_schedule = build_data_extraction_schedule(os.environ)
