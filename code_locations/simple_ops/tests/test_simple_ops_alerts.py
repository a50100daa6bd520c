"""Failure alerts posted to a real local webhook: content, no URL, HTTP errors, no listener."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from simple_ops import alerts

if TYPE_CHECKING:
    from .conftest import Webhook

FAILURE = alerts.RunFailure(
    job_name="data_extraction_job",
    run_id="7f3c9e2a-1111-2222-3333-444455556666",
    location="simple_ops",
    error="fetch_data_from_api: SourceApiError: GET http://api/users: gave up after 3 attempts",
    run_url="http://dagster.example:3000/runs/7f3c9e2a-1111-2222-3333-444455556666",
)


@pytest.mark.parametrize(
    ("webserver_url", "expected"),
    [
        ("http://localhost:3000", "http://localhost:3000/runs/abc"),
        ("https://dagster.example.com/ ", "https://dagster.example.com/runs/abc"),
        ("", None),
        (None, None),
    ],
)
def test_run_url_points_at_the_run_page(webserver_url: str | None, expected: str | None) -> None:
    assert alerts.run_url(webserver_url, "abc") == expected


def test_the_payload_names_job_run_location_error_and_link() -> None:
    payload = alerts.failure_payload(FAILURE)

    text = payload["text"]
    for part in (FAILURE.job_name, FAILURE.location, FAILURE.error, FAILURE.run_url):
        assert part in text
    blocks = " ".join(block["text"]["text"] for block in payload["blocks"])
    assert f"<{FAILURE.run_url}|{FAILURE.run_id}>" in blocks
    assert FAILURE.error in blocks


def test_without_a_link_the_payload_shows_the_run_id() -> None:
    payload = alerts.failure_payload(alerts.RunFailure("job", "run-1", "loc", "boom", None))

    assert "Run: run-1" in payload["text"]


def test_slack_control_characters_in_the_error_are_escaped() -> None:
    failure = alerts.RunFailure("job", "run-1", "loc", "<!channel> got <!DOCTYPE html> & more", None)

    payload = alerts.failure_payload(failure)

    escaped = "&lt;!channel&gt; got &lt;!DOCTYPE html&gt; &amp; more"
    assert payload["text"].endswith(f"Error: {escaped}")
    assert payload["blocks"][1]["text"]["text"] == f"```{escaped}```"


def test_a_long_error_is_shortened_to_fit_a_slack_block() -> None:
    failure = alerts.RunFailure("job", "run-1", "loc", "x" * 5000, None)

    payload = alerts.failure_payload(failure)

    assert payload["text"].endswith("x" * (alerts.MAX_ERROR_CHARS - 1) + "…")
    assert all(len(block["text"]["text"]) <= 3000 for block in payload["blocks"])


def test_the_alert_is_posted_as_json(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_alerts")

    with caplog.at_level(logging.INFO, logger="test_alerts"):
        delivered = alerts.send_failure_alert(FAILURE, webhook.url, log)

    assert delivered
    assert webhook.received == [alerts.failure_payload(FAILURE)]
    assert webhook.content_types == ["application/json"]
    assert "Alert sent to ALERT_WEBHOOK_URL" in caplog.text


def test_without_a_webhook_url_the_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_alerts")

    with caplog.at_level(logging.INFO, logger="test_alerts"):
        delivered = alerts.send_failure_alert(FAILURE, "  ", log)

    assert not delivered
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert f"run {FAILURE.run_id} of job data_extraction_job (location simple_ops) failed: " in (record.message)
    assert "ALERT_WEBHOOK_URL is not set" in record.message


def test_a_webhook_answering_500_is_logged_not_raised(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    webhook.status = 500
    log = logging.getLogger("test_alerts")

    with caplog.at_level(logging.INFO, logger="test_alerts"):
        delivered = alerts.send_failure_alert(FAILURE, webhook.url, log)

    assert not delivered
    assert len(webhook.received) == 1
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "the webhook answered HTTP 500" in record.message
    assert FAILURE.run_id in record.message
    assert webhook.url not in caplog.text  # the URL is a secret


@pytest.fixture
def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


def test_an_unreachable_webhook_is_reported_not_raised(closed_port_url: str, caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test_alerts")

    with caplog.at_level(logging.INFO, logger="test_alerts"):
        delivered = alerts.send_failure_alert(FAILURE, closed_port_url, log)

    assert not delivered
    assert "the webhook could not be reached (ConnectionError)" in caplog.text


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A socket that accepts connections but never answers, like a hung webhook."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"


def test_a_webhook_that_never_answers_times_out(silent_listener: str) -> None:
    started = time.monotonic()

    problem = alerts.post_alert(silent_listener, {"text": "t"}, timeout=0.3)

    assert problem == "the webhook could not be reached (ReadTimeout)"
    assert time.monotonic() - started < 2
