"""The run queue of dagster.yaml, recording who launched each run from the UI or the API.

Dagster+ tags every run launched by a person with ``user``; Dagster OSS does not know who
asks. The stack's webserver does (platform_services.webserver: its request context carries
the identity the gateway asserted), and every launch and re-execution passes that context
to the run coordinator. So the tag is set here, from the request, over any ``user`` tag the
client sent. Runs from schedules, sensors and backfills are submitted by the daemon, with
no person behind them, and keep their own tags.
"""

from __future__ import annotations

from dagster._core.run_coordinator import QueuedRunCoordinator, SubmitRunContext
from dagster._core.storage.dagster_run import DagsterRun

USER_TAG = "user"


class UserTaggingRunCoordinator(QueuedRunCoordinator):
    """``QueuedRunCoordinator`` that tags each run launched through the webserver with its user."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        user = getattr(context.workspace, "user", None)  # the webserver's request context has one
        if isinstance(user, str) and user:
            run = context.dagster_run
            self._instance.add_run_tags(run.run_id, {USER_TAG: user})
            context = context._replace(dagster_run=run.with_tags({**run.tags, USER_TAG: user}))
        return super().submit_run(context)
