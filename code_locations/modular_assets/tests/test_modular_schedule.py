"""all_assets_daily_schedule: run keys per tick, and its settings from the environment."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from modular_assets.schedules import (
    ScheduleSettingError,
    all_assets_daily_schedule,
    build_daily_schedule,
    schedule_settings,
)


def run_requests(schedule: dg.ScheduleDefinition, when: datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(scheduled_execution_time=when)
    return list(schedule.evaluate_tick(context).run_requests or [])


def test_the_schedule_runs_all_assets_job_and_is_on_by_default() -> None:
    assert all_assets_daily_schedule.name == "all_assets_daily_schedule"
    assert all_assets_daily_schedule.job_name == "all_assets_job"
    assert all_assets_daily_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    expected = schedule_settings(os.environ)  # the module read the same variables at import
    assert (all_assets_daily_schedule.cron_schedule, all_assets_daily_schedule.execution_timezone) == expected


def test_one_run_per_scheduled_time_with_a_run_key_from_that_time() -> None:
    tick = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    [first] = run_requests(all_assets_daily_schedule, tick)
    [again] = run_requests(all_assets_daily_schedule, tick)
    [next_day] = run_requests(all_assets_daily_schedule, tick + timedelta(days=1))

    assert first.run_key == "all_assets_daily_schedule:2026-03-01T06:00:00+00:00"
    assert again.run_key == first.run_key, "a re-evaluated tick must not start a second run"
    assert next_day.run_key != first.run_key
    assert first.tags["scheduled_for"] == "2026-03-01T06:00:00+00:00"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ("0 6 * * *", "UTC")),
        ({"SCHEDULE_CRON": "", "SCHEDULE_TIMEZONE": "  "}, ("0 6 * * *", "UTC")),
        ({"SCHEDULE_CRON": " */15 * * * * ", "SCHEDULE_TIMEZONE": "Europe/Berlin"}, ("*/15 * * * *", "Europe/Berlin")),
    ],
)
def test_schedule_settings_come_from_the_environment(environ: dict[str, str], expected: tuple[str, str]) -> None:
    assert schedule_settings(environ) == expected


def test_a_valid_custom_setting_is_used() -> None:
    schedule = build_daily_schedule("30 2 * * 1-5", "Europe/Berlin")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 2 * * 1-5", "Europe/Berlin")


@pytest.mark.parametrize(
    ("cron", "timezone", "named"),
    [
        ("every day at six", "UTC", "SCHEDULE_CRON='every day at six'"),
        ("0 6 * *", "UTC", "SCHEDULE_CRON='0 6 * *'"),
        ("0 0 6 * * *", "UTC", "SCHEDULE_CRON='0 0 6 * * *'"),
        ("0 6 * * *", "Mars/Olympus_Mons", "SCHEDULE_TIMEZONE='Mars/Olympus_Mons'"),
        ("0 6 * * *", "../etc/passwd", "SCHEDULE_TIMEZONE='../etc/passwd'"),
    ],
)
def test_an_invalid_setting_names_the_variable_the_value_and_an_example(cron: str, timezone: str, named: str) -> None:
    with pytest.raises(ScheduleSettingError) as raised:
        build_daily_schedule(cron, timezone)
    message = str(raised.value)
    assert named in message
    assert "SCHEDULE_CRON='0 6 * * *'" in message or "SCHEDULE_TIMEZONE=Europe/Berlin" in message


def test_an_invalid_setting_fails_the_load_of_the_definitions() -> None:
    env = {**os.environ, "SCHEDULE_CRON": "61 6 * * *", "SOURCE_API_URL": "http://127.0.0.1:1", "EXPORTS_DIR": "/tmp"}
    loaded = subprocess.run(
        [sys.executable, "-c", "import modular_assets.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert loaded.returncode != 0
    assert "ScheduleSettingError: SCHEDULE_CRON='61 6 * * *'" in loaded.stderr
