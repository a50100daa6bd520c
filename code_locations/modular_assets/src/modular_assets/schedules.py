"""The daily schedule of this location: ``all_assets_daily_schedule`` runs ``all_assets_job``.

Its cron and time zone come from SCHEDULE_CRON and SCHEDULE_TIMEZONE; the
defaults, the validation and the run key per tick are the platform's
(:mod:`platform_kit.schedules`).
"""

from modular_assets.jobs import all_assets_job
from platform_kit.schedules import daily_schedule

# Read at import, on purpose: Dagster needs the cron and time zone when the definitions load.
all_assets_daily_schedule = daily_schedule("all_assets_daily_schedule", all_assets_job)

SCHEDULES = [all_assets_daily_schedule]
