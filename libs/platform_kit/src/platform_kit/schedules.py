"""Daily schedules whose cron and time zone come from the environment.

Dagster needs a schedule's cron string and time zone as plain strings in the
definition (the daemon computes the ticks from them), so SCHEDULE_CRON and
SCHEDULE_TIMEZONE are read when the definitions load, not when a tick runs like
the resources' ``dg.EnvVar``. An invalid value therefore stops the code location
from loading, with a message naming the variable, the bad value and a good
example, instead of leaving a schedule that never fires.

Each tick requests its run with a run key made of the job name and the scheduled
time: a tick evaluated again (daemon restart, retry) asks for the same key, and
Dagster starts no second run for a run key the schedule has already used.
"""

from __future__ import annotations

import os
import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import dagster as dg

DEFAULT_CRON = "0 6 * * *"  # every day at 06:00
DEFAULT_TIMEZONE = "UTC"


class ScheduleSettingError(ValueError):
    """SCHEDULE_CRON or SCHEDULE_TIMEZONE holds a value Dagster cannot schedule with."""


def schedule_settings(environ: Mapping[str, str]) -> tuple[str, str]:
    """(cron, time zone) from SCHEDULE_CRON / SCHEDULE_TIMEZONE in ``environ``; unset or blank means the default."""
    cron = environ.get("SCHEDULE_CRON", "").strip() or DEFAULT_CRON
    timezone = environ.get("SCHEDULE_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    return cron, timezone


def run_key(job_name: str, scheduled_time: datetime) -> str:
    """The run key of ``job_name``'s run scheduled at ``scheduled_time`` (to the minute).

    The key holds the UTC offset, so the two ticks at the same wall-clock time
    on the night the clocks go back get different keys.
    """
    return f"{job_name}:{scheduled_time:%Y-%m-%dT%H:%M%z}"


def daily_schedule(name: str, job: Any, environ: Mapping[str, str] = os.environ) -> dg.ScheduleDefinition:
    """The schedule ``name`` of ``job`` on SCHEDULE_CRON in SCHEDULE_TIMEZONE from ``environ``, on by default.

    ``job`` is what ``dg.ScheduleDefinition`` accepts: a ``@dg.job`` or the result
    of ``dg.define_asset_job`` (a class dagster does not export, hence ``Any``).
    Raises ScheduleSettingError when the cron or the time zone is invalid.
    """
    cron, timezone = schedule_settings(environ)
    try:
        zoneinfo.ZoneInfo(timezone)
    except (KeyError, ValueError, OSError) as exc:  # not found is a KeyError, a folder such as 'Europe' an OSError
        raise ScheduleSettingError(
            f"SCHEDULE_TIMEZONE={timezone!r} is not an IANA time zone name; "
            "set it to one such as 'UTC' or 'Europe/Berlin'."
        ) from exc

    def request_run(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """One run per tick, keyed by the job and the tick's scheduled time."""
        return dg.RunRequest(run_key=run_key(job.name, context.scheduled_execution_time))

    try:
        return dg.ScheduleDefinition(
            name=name,
            job=job,
            cron_schedule=cron,
            execution_timezone=timezone,
            execution_fn=request_run,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=(
                f"Runs {job.name} at '{cron}' ({timezone}); set SCHEDULE_CRON / SCHEDULE_TIMEZONE to change it."
            ),
        )
    except dg.DagsterInvalidDefinitionError as exc:
        raise ScheduleSettingError(
            f"SCHEDULE_CRON={cron!r} is not a valid cron expression; "
            f"set five fields such as '{DEFAULT_CRON}' (every day at 06:00)."
        ) from exc
