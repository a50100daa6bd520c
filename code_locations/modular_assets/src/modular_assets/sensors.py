"""Sensors of this location: react to the upstream export and to changes of the source API.

Both start ``all_assets_job`` and keep a cursor, and both derive each run key
from what they saw, so an evaluation repeated (daemon restart, a tick whose
cursor was not saved) never starts a second run for the same change.
"""

import hashlib
import json
from datetime import UTC, datetime

import dagster as dg
import requests

from modular_assets.constants import UPSTREAM_USERS_EXPORT
from modular_assets.jobs import all_assets_job
from platform_kit.source_api import SourceApiError, SourceApiResource

#: Sensor ticks are cheap; every 30 s is enough for a daily dataset.
INTERVAL_SECONDS = 30


@dg.asset_sensor(
    asset_key=UPSTREAM_USERS_EXPORT,
    job=all_assets_job,
    name="upstream_user_extract_sensor",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Runs all_assets_job when simple_ops materializes user_data_csv "
        "(team data-extraction's user export): one run per materialization."
    ),
)
def upstream_user_extract_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry) -> dg.RunRequest:
    """One all_assets_job run per new materialization of user_data_csv.

    The asset sensor keeps the last seen event's storage id as its cursor, so
    an event is handled once; several materializations between two ticks
    start one run, for the latest. The run key names that event (its run and
    timestamp), so a repeated evaluation of the same event is deduplicated.
    """
    upstream_run = asset_event.run_id or "runless"
    context.log.info(f"user_data_csv was materialized by run {upstream_run}")
    return dg.RunRequest(
        run_key=f"user_data_csv:{upstream_run}:{asset_event.timestamp:.6f}",
        tags={"upstream_asset": UPSTREAM_USERS_EXPORT.to_user_string(), "upstream_run": upstream_run},
    )


#: The endpoints whose fingerprints make up the source's fingerprint.
WATCHED_PATHS = ("/users", "/posts")

#: Limits of the sensor's requests: a tick must end well within Dagster's 60 s
#: sensor deadline, even when the API hangs; the next tick tries again anyway.
PROBE_TIMEOUT_SECONDS = 5.0
PROBE_MAX_ATTEMPTS = 2
PROBE_MAX_TOTAL_SECONDS = 12.0


def probe_client(source_api: SourceApiResource) -> SourceApiResource:
    """``source_api`` with limits no looser than the sensor's (see PROBE_*)."""
    return SourceApiResource(
        base_url=source_api.base_url,
        timeout_seconds=min(source_api.timeout_seconds, PROBE_TIMEOUT_SECONDS),
        max_attempts=min(source_api.max_attempts, PROBE_MAX_ATTEMPTS),
        backoff_seconds=min(source_api.backoff_seconds, 1.0),
        max_backoff_seconds=min(source_api.max_backoff_seconds, 2.0),
        max_total_seconds=min(source_api.max_total_seconds, PROBE_MAX_TOTAL_SECONDS),
    )


def source_fingerprint(source_api: SourceApiResource) -> str:
    """The combined change marker of the watched endpoints, e.g. ``/users=10:10 /posts=100:100``."""
    return " ".join(f"{path}={source_api.fingerprint(path)}" for path in WATCHED_PATHS)


def read_cursor(cursor: str | None) -> tuple[str | None, str, int]:
    """(last fingerprint, baseline id, changes seen since the baseline) from the cursor.

    ``(None, "", 0)`` when there is no usable cursor (first tick, or a reset sensor).
    """
    try:
        state = json.loads(cursor or "")
        return str(state["fingerprint"]), str(state["baseline"]), int(state["changes"])
    except (ValueError, TypeError, KeyError):
        return None, "", 0


def write_cursor(fingerprint: str, baseline: str, changes: int) -> str:
    """The cursor: the last fingerprint, when the baseline was taken, changes seen since."""
    return json.dumps({"fingerprint": fingerprint, "baseline": baseline, "changes": changes}, sort_keys=True)


@dg.sensor(
    job=all_assets_job,
    name="source_change_sensor",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Polls the source API cheaply (count and last id of /users and /posts) and runs "
        "all_assets_job when they change."
    ),
)
def source_change_sensor(
    context: dg.SensorEvaluationContext, source_api: SourceApiResource
) -> dg.SensorResult | dg.SkipReason:
    """Run all_assets_job when the source API's data changes.

    - First evaluation (no cursor): records the fingerprint as a baseline and
      starts nothing; the daily schedule covers the first run.
    - Fingerprint changed: one run. The run key combines the baseline's time
      and the change's number (both kept in the cursor) with the new
      fingerprint, so a repeated evaluation of the same change is
      deduplicated, while a return to an earlier fingerprint (A -> B -> A) or
      a change after a sensor reset still starts a run.
    - Unchanged: skip.
    - API unreachable or answering garbage: skip with the problem, cursor
      untouched; the next tick tries again. Never raises for these.
    """
    previous, baseline, changes = read_cursor(context.cursor)
    try:
        current = source_fingerprint(probe_client(source_api))
    except (SourceApiError, requests.RequestException) as exc:
        return dg.SkipReason(f"Could not read the source API's fingerprint, will retry next tick: {exc}")

    if previous is None:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"Recorded the baseline fingerprint ({current}); no run requested on the first "
                "evaluation: the daily schedule covers the first run."
            ),
            cursor=write_cursor(current, datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), 0),
        )
    if current == previous:
        return dg.SkipReason(f"The source is unchanged ({current}).")

    changes += 1
    digest = hashlib.sha256(current.encode()).hexdigest()[:16]
    context.log.info(f"The source changed: {previous} -> {current}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"source_change:{baseline}:{changes}:{digest}",
                tags={"source_fingerprint": current[:200]},
            )
        ],
        cursor=write_cursor(current, baseline, changes),
    )


SENSORS = [upstream_user_extract_sensor, source_change_sensor]
