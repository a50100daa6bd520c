"""The daily schedule: cron and time zone from the environment, run keys from the tick time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from simple_ops.schedules import ScheduleSettingError, build_data_extraction_schedule


@pytest.mark.parametrize(
    ("environ", "cron", "timezone"),
    [
        ({}, "0 6 * * *", "UTC"),
        ({"SCHEDULE_CRON": "", "SCHEDULE_TIMEZONE": "  "}, "0 6 * * *", "UTC"),
        (
            {"SCHEDULE_CRON": "30 2 * * 1-5", "SCHEDULE_TIMEZONE": "Europe/Berlin"},
            "30 2 * * 1-5",
            "Europe/Berlin",
        ),
        (
            {"SCHEDULE_CRON": " @daily ", "SCHEDULE_TIMEZONE": "America/Sao_Paulo"},
            "@daily",
            "America/Sao_Paulo",
        ),
    ],
    ids=["defaults", "empty-means-default", "weekdays-berlin", "alias-sao-paulo"],
)
def test_cron_and_timezone_come_from_the_environment(
    environ: dict[str, str], cron: str, timezone: str
) -> None:
    schedule = build_data_extraction_schedule(environ)

    assert schedule.name == "data_extraction_schedule"
    assert schedule.cron_schedule == cron
    assert schedule.execution_timezone == timezone
    assert schedule.job_name == "data_extraction_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize("cron", ["every day", "0 6 * *", "61 6 * * *", "0 6 * * * *"])
def test_an_invalid_cron_fails_at_load_naming_variable_value_and_example(cron: str) -> None:
    with pytest.raises(ScheduleSettingError) as raised:
        build_data_extraction_schedule({"SCHEDULE_CRON": cron})

    assert str(raised.value) == (
        f"SCHEDULE_CRON='{cron}' is not a valid cron expression; "
        "set five fields such as '0 6 * * *' (every day at 06:00)."
    )


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "utc+2", "Europe", "../etc/passwd"])
def test_an_invalid_timezone_fails_at_load_naming_variable_value_and_example(timezone: str) -> None:
    with pytest.raises(ScheduleSettingError) as raised:
        build_data_extraction_schedule({"SCHEDULE_TIMEZONE": timezone})

    assert str(raised.value) == (
        f"SCHEDULE_TIMEZONE='{timezone}' is not an IANA time zone name; "
        "set it to one such as 'UTC' or 'Europe/Berlin'."
    )


def requests_at(schedule: dg.ScheduleDefinition, when: datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(scheduled_execution_time=when)
    return list(schedule.evaluate_tick(context).run_requests or [])


def test_each_tick_requests_one_run_keyed_by_its_scheduled_time() -> None:
    schedule = build_data_extraction_schedule({"SCHEDULE_TIMEZONE": "Europe/Berlin"})
    berlin = ZoneInfo("Europe/Berlin")

    [request] = requests_at(schedule, datetime(2026, 1, 2, 6, 0, tzinfo=berlin))

    assert request.run_key == "data_extraction_job:2026-01-02T06:00+0100"
    assert request.tags["dagster/schedule_name"] == "data_extraction_schedule"


def test_a_re_evaluated_tick_has_the_same_run_key_and_the_next_day_a_new_one() -> None:
    schedule = build_data_extraction_schedule({})
    tick = datetime(2026, 7, 1, 6, 0, tzinfo=ZoneInfo("UTC"))

    [first] = requests_at(schedule, tick)
    [again] = requests_at(schedule, tick)
    [next_day] = requests_at(schedule, tick.replace(day=2))

    assert first.run_key == again.run_key == "data_extraction_job:2026-07-01T06:00+0000"
    assert next_day.run_key == "data_extraction_job:2026-07-02T06:00+0000"
