"""The daily schedule of ``data_extraction_job``.

Its cron and time zone come from SCHEDULE_CRON and SCHEDULE_TIMEZONE; the
defaults, the validation and the run key per tick are the platform's
(:mod:`platform_kit.schedules`).
"""

from platform_kit.schedules import daily_schedule
from simple_ops.jobs import data_extraction_job

# Read at import, on purpose: Dagster needs the cron and time zone when the definitions load.
data_extraction_schedule = daily_schedule("data_extraction_schedule", data_extraction_job)

SCHEDULES = [data_extraction_schedule]
