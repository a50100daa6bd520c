"""The roles, and exactly which of Dagster's ``Permissions`` each holds (docs/security.md, "Roles").

A role is held per team, and a team's role applies to the team's code locations
(workspace.yaml). Everyone is a viewer of every location unless granted more. Admin is
deployment-wide. Dagster applies a permission granted deployment-wide to every location,
so a team's people are read-only deployment-wide and granted their permissions per
location (``WorkspaceRequestContext.permissions_for_location``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

from dagster._core.workspace.permissions import EDITOR_PERMISSIONS, LOCATION_SCOPED_PERMISSIONS, Permissions

from platform_services.access.identity import Role

__all__ = ["LOCATION_PERMISSIONS", "MUTATIONS", "Role", "Scope", "location_permissions"]


#: Launch, re-execute and terminate runs and backfills of the team's locations.
LAUNCHER: frozenset[Permissions] = frozenset(
    {
        Permissions.LAUNCH_PIPELINE_EXECUTION,
        Permissions.LAUNCH_PIPELINE_REEXECUTION,
        Permissions.TERMINATE_PIPELINE_EXECUTION,
        Permissions.LAUNCH_PARTITION_BACKFILL,
        Permissions.CANCEL_PARTITION_BACKFILL,
    }
)
#: Launcher, plus schedules, sensors and their cursors, dynamic partitions, wiping and reporting
#: the team's assets, deleting its runs and reloading its locations.
EDITOR: frozenset[Permissions] = LAUNCHER | {
    Permissions.START_SCHEDULE,
    Permissions.STOP_RUNNING_SCHEDULE,
    Permissions.SCHEDULE_DRY_RUN,
    Permissions.EDIT_SENSOR,
    Permissions.SENSOR_DRY_RUN,
    Permissions.UPDATE_SENSOR_CURSOR,
    Permissions.EDIT_DYNAMIC_PARTITIONS,
    Permissions.WIPE_ASSETS,
    Permissions.REPORT_RUNLESS_ASSET_EVENTS,
    Permissions.DELETE_PIPELINE_RUN,
    Permissions.RELOAD_REPOSITORY_LOCATION,
    Permissions.REFRESH_COMPONENT_STATE,
}
#: Everything Dagster OSS lets an editor do, deployment-wide: also reloading the workspace,
#: concurrency limits and pausing auto-materialization. (Dagster OSS grants no one
#: EDIT_APP_MANAGED_COMPONENTS, a Dagster+ feature.)
ADMIN: frozenset[Permissions] = frozenset(Permissions(p) for p, enabled in EDITOR_PERMISSIONS.items() if enabled)

#: Per role, the location-scoped permissions it holds on its team's locations.
LOCATION_PERMISSIONS: Mapping[Role, frozenset[Permissions]] = {
    Role.VIEWER: frozenset(),
    Role.LAUNCHER: LAUNCHER,
    Role.EDITOR: EDITOR,
    Role.ADMIN: ADMIN & LOCATION_SCOPED_PERMISSIONS,
}


class Scope(enum.StrEnum):
    LOCATION = "location"  # checked against the location the mutation acts on
    DEPLOYMENT = "deployment"  # checked deployment-wide: admin only
    NONE = "none"  # no permission: harmless to the deployment (the UI's own bookkeeping)


class Check(NamedTuple):
    """How a mutation is authorized: the permission Dagster checks, and where."""

    scope: Scope
    permissions: frozenset[Permissions] = frozenset()


def _location(*permissions: Permissions) -> Check:
    return Check(Scope.LOCATION, frozenset(permissions))


def _deployment(*permissions: Permissions) -> Check:
    return Check(Scope.DEPLOYMENT, frozenset(permissions))


#: Every mutation of the pinned dagster-graphql, classified. A test fails when the schema
#: has a mutation this table does not name, so a new one is classified before it is used.
MUTATIONS: Mapping[str, Check] = {
    "launchRun": _location(Permissions.LAUNCH_PIPELINE_EXECUTION),
    "launchPipelineExecution": _location(Permissions.LAUNCH_PIPELINE_EXECUTION),
    "launchMultipleRuns": _location(Permissions.LAUNCH_PIPELINE_EXECUTION),
    "launchRunReexecution": _location(Permissions.LAUNCH_PIPELINE_REEXECUTION),
    "launchPipelineReexecution": _location(Permissions.LAUNCH_PIPELINE_REEXECUTION),
    "terminateRun": _location(Permissions.TERMINATE_PIPELINE_EXECUTION),
    "terminatePipelineExecution": _location(Permissions.TERMINATE_PIPELINE_EXECUTION),
    "terminateRuns": _location(Permissions.TERMINATE_PIPELINE_EXECUTION),
    "deleteRun": _location(Permissions.DELETE_PIPELINE_RUN),
    "deletePipelineRun": _location(Permissions.DELETE_PIPELINE_RUN),
    "launchPartitionBackfill": _location(Permissions.LAUNCH_PARTITION_BACKFILL),
    "reexecutePartitionBackfill": _location(Permissions.LAUNCH_PARTITION_BACKFILL),
    "resumePartitionBackfill": _location(Permissions.LAUNCH_PARTITION_BACKFILL),
    "cancelPartitionBackfill": _location(Permissions.CANCEL_PARTITION_BACKFILL),
    "startSchedule": _location(Permissions.START_SCHEDULE),
    "stopRunningSchedule": _location(Permissions.STOP_RUNNING_SCHEDULE),
    "resetSchedule": _location(Permissions.START_SCHEDULE, Permissions.STOP_RUNNING_SCHEDULE),
    "scheduleDryRun": _location(Permissions.SCHEDULE_DRY_RUN),
    "startSensor": _location(Permissions.EDIT_SENSOR),
    "stopSensor": _location(Permissions.EDIT_SENSOR),
    "resetSensor": _location(Permissions.EDIT_SENSOR),
    "setSensorCursor": _location(Permissions.UPDATE_SENSOR_CURSOR),
    "sensorDryRun": _location(Permissions.SENSOR_DRY_RUN),
    "addDynamicPartition": _location(Permissions.EDIT_DYNAMIC_PARTITIONS),
    "deleteDynamicPartitions": _location(Permissions.EDIT_DYNAMIC_PARTITIONS),
    "wipeAssets": _location(Permissions.WIPE_ASSETS),
    "reportRunlessAssetEvents": _location(Permissions.REPORT_RUNLESS_ASSET_EVENTS),
    "reportAssetCheckEvaluations": _location(Permissions.REPORT_RUNLESS_ASSET_EVENTS),
    "reloadRepositoryLocation": _location(Permissions.RELOAD_REPOSITORY_LOCATION),
    "shutdownRepositoryLocation": _location(Permissions.RELOAD_REPOSITORY_LOCATION),
    "refreshComponentState": _location(Permissions.REFRESH_COMPONENT_STATE),
    "setAppManagedComponent": _location(Permissions.EDIT_APP_MANAGED_COMPONENTS),
    "deleteAppManagedComponent": _location(Permissions.EDIT_APP_MANAGED_COMPONENTS),
    "reloadWorkspace": _deployment(Permissions.RELOAD_WORKSPACE),
    "setConcurrencyLimit": _deployment(Permissions.EDIT_CONCURRENCY_LIMIT),
    "deleteConcurrencyLimit": _deployment(Permissions.EDIT_CONCURRENCY_LIMIT),
    "freeConcurrencySlots": _deployment(Permissions.EDIT_CONCURRENCY_LIMIT),
    "freeConcurrencySlotsForRun": _deployment(Permissions.EDIT_CONCURRENCY_LIMIT),
    "setAutoMaterializePaused": _deployment(Permissions.TOGGLE_AUTO_MATERIALIZE),
    "logTelemetry": Check(Scope.NONE),  # telemetry is off (dagster.yaml); the UI calls it anyway
    "setNuxSeen": Check(Scope.NONE),  # the UI's first-visit dialog
}


def location_permissions(role: Role) -> frozenset[Permissions]:
    return LOCATION_PERMISSIONS[role]
