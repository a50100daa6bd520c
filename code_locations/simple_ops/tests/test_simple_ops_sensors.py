"""The run-failure sensor on a real failed run, alerting a real local webhook."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import dagster as dg
import pytest

from simple_ops.jobs import data_extraction_job
from simple_ops.sensors import run_failure_alert_sensor
from testkit.sample_api import SampleApi

if TYPE_CHECKING:
    from .conftest import Webhook


@pytest.fixture
def failed_run(
    api: SampleApi, run_resources: dict[str, object]
) -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]:
    """data_extraction_job failed against an API that answers 503 to everything."""
    api.configure(error_rate=1.0, error_status=503, retry_after=0)
    instance = dg.DagsterInstance.ephemeral()
    result = data_extraction_job.execute_in_process(resources=run_resources, instance=instance, raise_on_error=False)
    assert not result.success
    return instance, result


@pytest.fixture
def sensor_context(
    failed_run: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult],
    caplog: pytest.LogCaptureFixture,
) -> dg.RunStatusSensorContext:
    """The context the daemon would build for the failed run; its log is captured."""
    instance, result = failed_run
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
    )
    context.log.addHandler(caplog.handler)
    return context


def test_a_failed_run_is_posted_with_its_error_and_link(
    sensor_context: dg.RunStatusSensorContext,
    failed_run: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult],
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("DAGSTER_WEBSERVER_URL", "http://dagster.example:3000/")
    run_id = failed_run[1].run_id

    run_failure_alert_sensor(sensor_context)

    [payload] = webhook.received
    text = payload["text"]
    assert "job data_extraction_job in location unknown" in text  # in-process runs have no origin
    assert f"Run: http://dagster.example:3000/runs/{run_id}" in text
    assert "Error: fetch_data_from_api: platform_kit.source_api.SourceApiError: GET " in text
    assert "gave up after 3 failed attempt(s) (HTTP 503, HTTP 503, HTTP 503)" in text


def test_without_a_webhook_url_the_sensor_logs_the_failure(
    sensor_context: dg.RunStatusSensorContext,
    failed_run: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("DAGSTER_WEBSERVER_URL", raising=False)

    run_failure_alert_sensor(sensor_context)

    [record] = [r for r in caplog.records if "ALERT_WEBHOOK_URL" in r.message]
    assert record.levelno == logging.WARNING
    assert f"run {failed_run[1].run_id} of job data_extraction_job" in record.message
    assert "HTTP 503" in record.message
    assert "ALERT_WEBHOOK_URL is not set" in record.message


def test_a_failing_webhook_never_fails_the_sensor(
    sensor_context: dg.RunStatusSensorContext,
    webhook: Webhook,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    webhook.status = 503
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)

    run_failure_alert_sensor(sensor_context)

    assert len(webhook.received) == 1
    assert (
        "Could not deliver the alert to ALERT_WEBHOOK_URL (the webhook answered HTTP 503 Service Unavailable)"
    ) in caplog.text


def test_the_sensor_is_a_run_status_sensor_that_starts_running() -> None:
    assert run_failure_alert_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert run_failure_alert_sensor.minimum_interval_seconds == 30
    assert isinstance(run_failure_alert_sensor, dg.RunStatusSensorDefinition)
