"""Monitoring in the running stack: Prometheus scrapes the metrics service, its rules are
valid, a failed run shows in the metrics, and a stopped daemon reaches the webhook as an
alert within the rule's promise. Both UIs are behind the gateway's login."""

from __future__ import annotations

import json
import time

import requests

from testkit.stack import Stack, wait_for

#: What rules.yml promises for DagsterDaemonDown: 60 s without a heartbeat, plus a scrape
#: and an evaluation (15 s each) and Alertmanager's group_wait (10 s), with some slack.
DAEMON_DOWN_PROMISE_SECONDS = 120


def _report(what: str, value: str) -> None:
    print(f"\n[monitoring] {what}: {value}")


def test_promtool_accepts_the_config_the_rules_and_their_unit_tests(stack: Stack) -> None:
    checks = "cd /etc/prometheus && promtool check config prometheus.yml && promtool test rules rules.test.yml"
    result = stack.compose("exec", "-T", "prometheus", "sh", "-c", checks)
    assert "SUCCESS: 10 rules found" in result.stdout + result.stderr
    # The config Alertmanager runs with: the e2e env sets ALERT_WEBHOOK_URL, so the rendered one.
    result = stack.compose("exec", "-T", "alertmanager", "amtool", "check-config", "/tmp/alertmanager.yml")
    assert "SUCCESS" in result.stdout


def test_prometheus_and_alertmanager_are_behind_the_login_and_not_published(stack: Stack) -> None:
    for path in ("/prometheus/-/ready", "/alertmanager/api/v2/status"):
        assert requests.get(stack.url + path, timeout=10).status_code == 401, path
        assert requests.get(stack.url + path, auth=stack.auth, timeout=10).status_code == 200, path
    published = {s["Service"] for s in stack.services() for p in s["Publishers"] or [] if p["PublishedPort"]}
    assert published == {"gateway"}


def test_prometheus_scrapes_every_target_and_sees_the_deployment(stack: Stack) -> None:
    def targets_up() -> dict[str, str] | None:
        up = {r["metric"]["job"]: r["value"][1] for r in stack.prometheus_query("up")}
        return up if up == {"dagster": "1", "prometheus": "1", "alertmanager": "1"} else None

    wait_for(targets_up, timeout=60, interval=3, what="every scrape target up")
    loaded = {r["metric"]["location"]: r["value"][1] for r in stack.prometheus_query("dagster_code_location_loaded")}
    assert loaded == dict.fromkeys(stack.location_names, "1")
    daemons = {r["metric"]["daemon"] for r in stack.prometheus_query("dagster_daemon_heartbeat_age_seconds")}
    assert {"SCHEDULER", "SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING"} <= daemons
    assert stack.prometheus_query("dagster_storage_up")[0]["value"][1] == "1"
    volumes = {r["metric"]["volume"] for r in stack.prometheus_query("dagster_volume_used_ratio")}
    assert volumes == {"storage", "exports", "postgres"}
    # Nothing fires on a healthy stack that would page someone (the rules' live state).
    alerts = requests.get(f"{stack.url}/prometheus/api/v1/alerts", auth=stack.auth, timeout=10).json()
    critical = [a for a in alerts["data"]["alerts"] if a["labels"]["severity"] == "critical" and a["state"] == "firing"]
    assert critical == []


def test_a_failed_run_shows_up_in_the_metrics(stack: Stack) -> None:
    failures = 'sum(dagster_run_duration_seconds_count{job="data_extraction_job",status="FAILURE"}) or vector(0)'
    before = float(stack.prometheus_query(failures)[0]["value"][1])
    stack.failed_run("data_extraction_job", "simple_ops")

    wait_for(
        lambda: float(stack.prometheus_query(failures)[0]["value"][1]) == before + 1,
        timeout=60,
        interval=3,
        what="the failed run in dagster_run_duration_seconds_count",
    )
    in_storage = stack.prometheus_query('dagster_runs{job="data_extraction_job",status="FAILURE"}')
    assert in_storage and in_storage[0]["metric"]["location"] == "simple_ops"


def test_a_stopped_daemon_alerts_the_webhook_within_the_rules_promise(stack: Stack) -> None:
    def daemon_down_alerts() -> list[dict]:
        return [
            r
            for r in stack.webhooks_received()
            if "[FIRING" in json.dumps(r["body"]) and "DagsterDaemonDown" in json.dumps(r["body"])
        ]

    already = len(daemon_down_alerts())
    stack.compose("stop", "daemon")
    stopped = time.monotonic()
    try:
        alerts = wait_for(
            lambda: daemon_down_alerts()[already:],
            timeout=DAEMON_DOWN_PROMISE_SECONDS,
            interval=2,
            what="the DagsterDaemonDown alert at the webhook",
        )
        _report("daemon stopped -> DagsterDaemonDown at the webhook", f"{time.monotonic() - stopped:.0f}s")
    finally:
        stack.up("daemon")
    text = alerts[0]["body"]["attachments"][0]["text"]
    assert "daemon has not heartbeated for" in text and "docker compose logs daemon" in text, text


def test_monitoring_turns_off_with_one_setting_and_the_gateway_says_so(stack: Stack) -> None:
    monitoring = {"metrics", "prometheus", "alertmanager"}
    stack.up(env={"DAGSTER_MONITORING": "0"})
    try:
        assert not monitoring & {s["Service"] for s in stack.services()}
        response = requests.get(f"{stack.url}/prometheus/", auth=stack.auth, timeout=30)
        assert response.status_code == 503 and "DAGSTER_MONITORING" in response.text, response.text
        assert stack.all_locations_loaded()
    finally:
        stack.up()
    assert monitoring <= {s["Service"] for s in stack.services() if s["Health"] == "healthy"}
