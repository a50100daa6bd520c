"""Alert on every failed run of the deployment, whichever code location it belongs to.

ALERT_WEBHOOK_URL and DAGSTER_WEBSERVER_URL are read at each evaluation, so
they can change without reloading the location.
"""

from __future__ import annotations

import os

import dagster as dg

from simple_ops.alerts import RunFailure, run_url, send_failure_alert


def _step_error(event: dg.DagsterEvent) -> str:
    """``<step>: <exception>: <message>`` of the error that failed the step.

    Dagster wraps an exception raised in user code in its own; the innermost
    cause is the one that says what went wrong.
    """
    error = event.step_failure_data.error
    if error is None:
        return f"{event.step_key}: no error recorded"
    while error.cause is not None:
        error = error.cause
    return f"{event.step_key}: {error.message.strip()}"


def describe_failure(context: dg.RunFailureSensorContext, webserver_url: str | None) -> RunFailure:
    """The failed run's job, id, location, error and UI link."""
    run = context.dagster_run
    step_errors = [_step_error(event) for event in context.get_step_failure_events()]
    origin = run.remote_job_origin
    return RunFailure(
        job_name=run.job_name,
        run_id=run.run_id,
        location=origin.location_name if origin is not None else "unknown",
        error="; ".join(step_errors) or context.failure_event.message or "no error message",
        run_url=run_url(webserver_url, run.run_id),
    )


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=True,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Posts a Slack-compatible message to ALERT_WEBHOOK_URL for every failed run in the "
        "deployment (all code locations); logs the failure when the URL is not set."
    ),
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext) -> None:
    failure = describe_failure(context, os.environ.get("DAGSTER_WEBSERVER_URL"))
    send_failure_alert(failure, os.environ.get("ALERT_WEBHOOK_URL"), context.log)


SENSORS = [run_failure_alert_sensor]
