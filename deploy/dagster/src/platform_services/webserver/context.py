"""Dagster's request context, with the permissions of the identity the gateway asserted.

Dagster OSS already checks a permission per code location before every mutation
(``assert_permission_for_location`` and friends, which map run ids, backfills and asset
keys to their location); it just grants everyone everything, or nothing with
``--read-only``. Here each request gets the permissions its identity's role holds on
the team that owns the location (workspace.yaml), deployment-wide ones for admins only.
Every check is recorded, for the audit log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster._core.workspace.context import WorkspaceProcessContext, WorkspaceRequestContext
from dagster._core.workspace.permissions import (
    LOCATION_SCOPED_PERMISSIONS,
    PermissionResult,
    get_user_permissions,
)

from instance_kit.workspace import read_teams
from platform_services.access.identity import Identity
from platform_services.access.roles import Role, location_permissions

log = logging.getLogger("dagster.webserver")

#: Where the identity middleware leaves the verified identity, in the ASGI scope.
SCOPE_KEY = "dagster.identity"


@dataclass(frozen=True)
class PermissionCheck:
    """One permission Dagster asked about while serving a request, and the answer."""

    permission: str
    location: str | None
    allowed: bool


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a file is edited or replaced (inode, modification time, size); None if it is missing."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class Teams:
    """Each location's team, from workspace.yaml, read again when the file changes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._teams: dict[str, str] = {}

    def get(self) -> Mapping[str, str]:
        stamp = file_stamp(self._path)
        if stamp is None:
            return self._teams  # keep the last list while the file is being replaced
        with self._lock:
            if stamp != self._stamp:
                self._teams = read_teams(self._path)
                self._stamp = stamp
            return self._teams


def _result(enabled: bool, reason: str) -> PermissionResult:
    return PermissionResult(enabled=enabled, disabled_reason=None if enabled else reason)


class TeamRequestContext(WorkspaceRequestContext):
    """A request's context: its identity, and Dagster's permission questions answered by its roles."""

    def __init__(self, *, identity: Identity | None, teams: Mapping[str, str], read_only: bool, **kwargs: Any):
        # Deployment-wide, only an admin may write: a permission granted there counts for every location.
        super().__init__(read_only=read_only or identity is None or not identity.admin, **kwargs)
        self.identity = identity
        self._teams = teams
        self._viewer_only = read_only or identity is None  # the read-only webserver: nobody writes
        self.checks: list[PermissionCheck] = []

    @property
    def user(self) -> str | None:
        """Who is asking (the run coordinator tags launched runs with it)."""
        return self.identity.user if self.identity else None

    def role_for_location(self, location_name: str) -> Role:
        if self._viewer_only or self.identity is None:
            return Role.VIEWER
        return self.identity.role_for(self._teams.get(location_name))

    def team_of(self, location_name: str) -> str | None:
        return self._teams.get(location_name)

    def permissions_for_location(self, *, location_name: str) -> Mapping[str, PermissionResult]:
        role = self.role_for_location(location_name)
        granted = location_permissions(role)
        team = self._teams.get(location_name, "no team")
        reason = f"Your role on the code locations of team {team} is {role.value}, which does not allow this"
        return {str(p): _result(p in granted, reason) for p in LOCATION_SCOPED_PERMISSIONS}

    @property
    def permissions(self) -> Mapping[str, PermissionResult]:
        admin = self.identity is not None and self.identity.admin and not self._viewer_only
        return {
            name: _result(result.enabled, "Only a deployment admin may do this")
            for name, result in get_user_permissions(not admin).items()
        }

    def has_permission(self, permission: str) -> bool:
        allowed = super().has_permission(permission)
        self.checks.append(PermissionCheck(str(permission), None, allowed))
        return allowed

    def has_permission_for_location(self, permission: str, location_name: str) -> bool:
        allowed = super().has_permission_for_location(permission, location_name)
        self.checks.append(PermissionCheck(str(permission), location_name, allowed))
        return allowed


class TeamProcessContext(WorkspaceProcessContext):
    """The webserver's workspace, whose request contexts carry the request's identity and roles.

    A changed workspace.yaml (a location added or removed: make new-location, make remove-location)
    is picked up within ``poll_seconds``, without a restart: Dagster re-reads the file and loads
    each location's snapshot again (``refresh_workspace``: no code server is asked to reload).
    The daemon does the same by itself every 60 s.
    """

    def __init__(self, *args: Any, workspace_file: Path, poll_seconds: float = 2.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.teams = Teams(workspace_file)
        self._workspace_file = workspace_file
        self._stopped = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch_workspace, args=(poll_seconds,), name="workspace-file-watch", daemon=True
        )
        self._watcher.start()

    def _watch_workspace(self, poll_seconds: float) -> None:
        stamp = file_stamp(self._workspace_file)
        while not self._stopped.wait(poll_seconds):
            current = file_stamp(self._workspace_file)
            if current is None or current == stamp:
                continue  # a missing file is a replacement in progress: keep the workspace as it is
            stamp = current
            log.info("%s changed: loading the workspace's code locations again", self._workspace_file)
            try:
                self.refresh_workspace()
            except Exception:  # a broken file: Dagster shows its error per location; keep watching
                log.exception("loading the changed workspace %s failed", self._workspace_file)

    def reload_code_location(self, name: str) -> None:
        """Load the location's code again from its running server (the UI's Reload, a deploy's reload).

        Dagster would first ask the server to reload its code, which a `dagster api grpc` server
        cannot: it only logs that this is not supported. A new release is a new server.
        """
        self.refresh_code_location(name)

    def __exit__(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._stopped.set()
        super().__exit__(exception_type, exception_value, traceback)

    def create_request_context(self, source: object | None = None) -> WorkspaceRequestContext:
        scope = getattr(source, "scope", None)
        identity = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
        return TeamRequestContext(
            identity=identity,
            teams=self.teams.get(),
            read_only=self.read_only,
            instance=self._instance,
            current_workspace=self.get_current_workspace(),
            process_context=self,
            version=self.version,
            source=source,
        )
