"""The ``modular_assets`` code location (team analytics): what Dagster loads.

Assembly only: each collection comes from the module named for it, and the
assets from the four layer modules, in lineage order.
"""

import dagster as dg

from modular_assets import analytics, exports, sources, transforms
from modular_assets.checks import CHECKS
from modular_assets.jobs import JOBS
from modular_assets.resources import RESOURCES
from modular_assets.schedules import SCHEDULES
from modular_assets.sensors import SENSORS
from platform_kit.executors import run_executor

ASSETS = [*sources.ASSETS, *transforms.ASSETS, *analytics.ASSETS, *exports.ASSETS]

defs = dg.Definitions(
    assets=ASSETS,
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
