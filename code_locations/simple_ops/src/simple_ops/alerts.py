"""Run-failure alerts as Slack-compatible webhook messages.

Plain functions, so they can be tested without a sensor: build the message,
POST it, and report (never raise) when the webhook cannot take it. The
webhook URL is a secret: it is never written to a log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

WEBHOOK_TIMEOUT_SECONDS = 5.0
MAX_ERROR_CHARS = 1500  # Slack caps a text block at 3000 characters


@dataclass(frozen=True)
class RunFailure:
    """What an alert says about a failed run."""

    job_name: str
    run_id: str
    location: str
    error: str
    run_url: str | None

    def describe(self) -> str:
        """One line for logs: which run of which job, where, and why."""
        return f"run {self.run_id} of job {self.job_name} (location {self.location}) failed: {self.error}"


def run_url(webserver_url: str | None, run_id: str) -> str | None:
    """The run's page in the Dagster UI, if the UI's address is known."""
    if not webserver_url or not webserver_url.strip():
        return None
    return f"{webserver_url.strip().rstrip('/')}/runs/{run_id}"


def _escape(text: str) -> str:
    """Slack's escaping: ``<``, ``>`` and ``&`` are control characters (links, ``<!channel>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def failure_payload(failure: RunFailure) -> dict[str, Any]:
    """A Slack-compatible message: ``text`` for notifications, ``blocks`` for layout."""
    error = failure.error
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    error, job, location = _escape(error), _escape(failure.job_name), _escape(failure.location)
    run = f"<{failure.run_url}|{failure.run_id}>" if failure.run_url else failure.run_id
    text = (
        f"Dagster run failed: job {job} in location {location}\n"
        f"Run: {failure.run_url or failure.run_id}\n"
        f"Error: {error}"
    )
    return {
        "text": text,
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": (
                        f":red_circle: *Dagster run failed*\n*Job:* `{job}`  *Location:* `{location}`\n*Run:* {run}"
                    ),
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```{error}```"}},
        ],
    }


def post_alert(url: str, payload: Mapping[str, Any], timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> str | None:
    """POST ``payload`` as JSON to ``url``; return None if accepted, else what went wrong."""
    try:
        response = requests.post(url, json=payload, timeout=timeout)
    except requests.RequestException as exc:
        return f"the webhook could not be reached ({type(exc).__name__})"
    if not response.ok:
        return f"the webhook answered HTTP {response.status_code} {response.reason}"
    return None


def send_failure_alert(failure: RunFailure, webhook_url: str | None, log: logging.Logger) -> bool:
    """Alert on ``failure`` through ``webhook_url``; return whether the webhook accepted it.

    Without a URL the failure is logged instead; a webhook that fails is logged too.
    """
    if not webhook_url or not webhook_url.strip():
        log.warning(
            "ALERT_WEBHOOK_URL is not set, so no alert was sent (set it to a Slack-compatible "
            f"incoming-webhook URL to be notified): {failure.describe()}"
        )
        return False
    problem = post_alert(webhook_url.strip(), failure_payload(failure))
    if problem:
        log.error(f"Could not deliver the alert to ALERT_WEBHOOK_URL ({problem}): {failure.describe()}")
        return False
    log.info(f"Alert sent to ALERT_WEBHOOK_URL: {failure.describe()}")
    return True
