"""The daily schedule of this location: ``all_assets_daily_schedule`` runs ``all_assets_job``.

Its cron expression and time zone come from ``SCHEDULE_CRON`` (default
``0 6 * * *``) and ``SCHEDULE_TIMEZONE`` (default ``UTC``). They are read when
the definitions load, not at run time like the resources' ``dg.EnvVar``s,
because Dagster needs a schedule's cron and time zone as plain strings in the
definition itself (the daemon computes the ticks from them). An invalid value
therefore fails the load of the location, with a message naming the variable,
the bad value and a good example, instead of a schedule that never fires.
"""

import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg

from modular_assets.jobs import all_assets_job

SCHEDULE_NAME = "all_assets_daily_schedule"
DEFAULT_CRON = "0 6 * * *"
DEFAULT_TIMEZONE = "UTC"


class ScheduleSettingError(ValueError):
    """SCHEDULE_CRON or SCHEDULE_TIMEZONE holds a value Dagster cannot schedule with."""


def schedule_settings(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """(cron, time zone) from SCHEDULE_CRON / SCHEDULE_TIMEZONE; unset or empty means the default."""
    cron = environ.get("SCHEDULE_CRON", "").strip() or DEFAULT_CRON
    timezone = environ.get("SCHEDULE_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    return cron, timezone


def run_request_for_tick(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """One run per scheduled time: the run key is the tick's scheduled time.

    A tick evaluated again (daemon restart, retry) produces the same run key,
    and Dagster does not start a second run for a run key it has seen.
    """
    scheduled_for = context.scheduled_execution_time.isoformat()
    return dg.RunRequest(run_key=f"{SCHEDULE_NAME}:{scheduled_for}", tags={"scheduled_for": scheduled_for})


def build_daily_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    """The schedule for ``cron`` in ``timezone``; a ScheduleSettingError if either is invalid."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleSettingError(
            f"SCHEDULE_TIMEZONE={timezone!r} is not an IANA time zone name; "
            f"use for example SCHEDULE_TIMEZONE=UTC or SCHEDULE_TIMEZONE=Europe/Berlin."
        ) from exc
    try:
        return dg.ScheduleDefinition(
            name=SCHEDULE_NAME,
            job=all_assets_job,
            cron_schedule=cron,
            execution_timezone=timezone,
            execution_fn=run_request_for_tick,
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Materialize all assets of this location at '{cron}' ({timezone}).",
        )
    except dg.DagsterInvalidDefinitionError as exc:
        raise ScheduleSettingError(
            f"SCHEDULE_CRON={cron!r} is not a cron expression Dagster accepts (five fields: "
            f"minute hour day-of-month month day-of-week); use for example "
            f"SCHEDULE_CRON='0 6 * * *' (06:00 every day)."
        ) from exc


all_assets_daily_schedule = build_daily_schedule(*schedule_settings())
