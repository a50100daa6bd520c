"""Daily schedules: cron and time zone from the environment, checked at load; one run key per tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from platform_kit.schedules import ScheduleSettingError, daily_schedule

JOB = dg.define_asset_job(name="nightly_job", selection=dg.AssetSelection.all())
ADVICE = {
    "SCHEDULE_CRON": "is not a valid cron expression; set five fields such as '0 6 * * *' (every day at 06:00).",
    "SCHEDULE_TIMEZONE": "is not an IANA time zone name; set it to one such as 'UTC' or 'Europe/Berlin'.",
}


def run_keys_at(schedule: dg.ScheduleDefinition, when: datetime) -> list[str | None]:
    """The run keys ``schedule`` requests for its tick scheduled at ``when``."""
    result = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=when))
    return [request.run_key for request in result.run_requests or []]


@pytest.mark.parametrize(
    ("environ", "cron", "timezone"),
    [
        ({}, "0 6 * * *", "UTC"),
        ({"SCHEDULE_CRON": "", "SCHEDULE_TIMEZONE": "  "}, "0 6 * * *", "UTC"),
        ({"SCHEDULE_CRON": "30 2 * * 1-5", "SCHEDULE_TIMEZONE": "Europe/Berlin"}, "30 2 * * 1-5", "Europe/Berlin"),
        ({"SCHEDULE_CRON": " @daily ", "SCHEDULE_TIMEZONE": " America/Sao_Paulo "}, "@daily", "America/Sao_Paulo"),
    ],
    ids=["defaults", "blank-means-default", "weekdays-berlin", "alias-stripped"],
)
def test_the_schedule_runs_the_job_on_the_cron_and_time_zone_of_the_environment(
    environ: dict[str, str], cron: str, timezone: str
) -> None:
    schedule = daily_schedule("nightly_schedule", JOB, environ)

    assert schedule.name == "nightly_schedule"
    assert schedule.job_name == "nightly_job"
    assert (schedule.cron_schedule, schedule.execution_timezone) == (cron, timezone)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.description == (
        f"Runs nightly_job at '{cron}' ({timezone}); set SCHEDULE_CRON / SCHEDULE_TIMEZONE to change it."
    )


def test_without_an_environ_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULE_CRON", "15 4 * * *")
    monkeypatch.setenv("SCHEDULE_TIMEZONE", "Asia/Tokyo")

    schedule = daily_schedule("nightly_schedule", JOB)

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("15 4 * * *", "Asia/Tokyo")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        *(("SCHEDULE_CRON", cron) for cron in ("every day", "0 6 * *", "61 6 * * *", "0 6 * * * *")),
        *(("SCHEDULE_TIMEZONE", zone) for zone in ("Mars/Olympus_Mons", "utc+2", "Europe", "../etc/passwd")),
    ],
)
def test_an_invalid_setting_fails_naming_the_variable_the_value_and_an_example(variable: str, value: str) -> None:
    with pytest.raises(ScheduleSettingError) as raised:
        daily_schedule("nightly_schedule", JOB, {variable: value})

    assert str(raised.value) == f"{variable}='{value}' {ADVICE[variable]}"


def test_a_re_evaluated_tick_requests_the_same_run_and_the_next_tick_a_new_one() -> None:
    schedule = daily_schedule("nightly_schedule", JOB, {})
    tick = datetime(2026, 7, 1, 6, 0, tzinfo=UTC)

    first, again, next_day = (run_keys_at(schedule, when) for when in (tick, tick, tick + timedelta(days=1)))

    assert first == again == ["nightly_job:2026-07-01T06:00+0000"]
    assert next_day == ["nightly_job:2026-07-02T06:00+0000"]


def test_run_keys_carry_the_utc_offset_so_they_stay_unique_when_the_clocks_go_back() -> None:
    schedule = daily_schedule("nightly_schedule", JOB, {"SCHEDULE_TIMEZONE": "Europe/Berlin"})
    # 02:30 happens twice that night in Berlin: first in summer time, then in winter time.
    summer, winter = (datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin"), fold=fold) for fold in (0, 1))

    assert run_keys_at(schedule, summer) == ["nightly_job:2026-10-25T02:30+0200"]
    assert run_keys_at(schedule, winter) == ["nightly_job:2026-10-25T02:30+0100"]
