"""Postgres stays bounded: the storage janitor deletes finished runs older than
DAGSTER_RUN_RETENTION_DAYS (90), with their event logs, through Dagster's API."""

from __future__ import annotations

from testkit.stack import Stack

RUN_EXISTS = "query ($runId: ID!) { runOrError(runId: $runId) { __typename } }"
#: One sweep now, as the service does every hour (through its entrypoint, which reads the password file).
SWEEP = ("exec", "-T", "storage_janitor", "/opt/dagster/bin/entrypoint.sh", "python", "-m", "platform_services.janitor")


def _sql(stack: Stack, statement: str) -> None:
    """As the superuser, through Postgres' socket (the only way it logs in)."""
    stack.compose("exec", "-T", "postgres", "psql", "-U", "postgres", "-d", "dagster", "-c", statement)


def _exists(stack: Stack, run_id: str) -> bool:
    return stack.graphql(RUN_EXISTS, {"runId": run_id})["runOrError"]["__typename"] == "Run"


def test_the_janitor_deletes_old_runs_and_keeps_each_job_s_latest_success(stack: Stack) -> None:
    old, latest = (stack.launch("data_extraction_job", "simple_ops") for _ in range(2))
    for run_id in (old, latest):
        assert stack.wait_for_run(run_id)["status"] == "SUCCESS"
    # Both 100 days old; `latest` stays as the job's latest success.
    _sql(stack, f"UPDATE runs SET create_timestamp = now() - interval '100 days' WHERE run_id IN ('{old}', '{latest}')")
    try:
        sweep = stack.compose(*SWEEP, "--once").stdout
    finally:  # young again: later tests' runs would make it deletable, and the janitor sweeps at every start
        _sql(stack, f"UPDATE runs SET create_timestamp = now() WHERE run_id = '{latest}'")

    assert "deleted 1 run(s) older than 90 days" in sweep, sweep
    assert not _exists(stack, old)
    assert _exists(stack, latest)
