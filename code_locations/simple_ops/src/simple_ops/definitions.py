"""The ``simple_ops`` code location (team data-extraction): what Dagster loads.

Assembly only: one user extraction as assets and as ops, side by side, and its
export per named batch; each collection comes from the module named for it.
"""

from __future__ import annotations

import dagster as dg

from platform_kit.executors import run_executor
from simple_ops.assets import ASSETS, BATCH_ASSETS
from simple_ops.checks import CHECKS
from simple_ops.jobs import JOBS
from simple_ops.resources import RESOURCES
from simple_ops.schedules import SCHEDULES
from simple_ops.sensors import SENSORS

defs = dg.Definitions(
    assets=[*ASSETS, *BATCH_ASSETS],
    asset_checks=CHECKS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=RESOURCES,
    # In-process: each run already has its own container, and a process per step only
    # adds start-up time (docs/decisions.md#in-process-executor). A run can still ask
    # for the multiprocess executor in its run config (platform_kit.executors).
    executor=run_executor,
)
