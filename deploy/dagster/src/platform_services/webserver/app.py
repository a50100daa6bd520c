"""dagster-webserver, answering only requests the gateway vouches for, with every mutation audited."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from dagster_webserver.external_assets import (
    handle_report_asset_check_request,
    handle_report_asset_materialization_request,
    handle_report_asset_observation_request,
)
from dagster_webserver.webserver import DagsterWebserver
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from platform_services.access import identity as assertion
from platform_services.access.identity import HEADER, IdentityError
from platform_services.access.roles import Role
from platform_services.webserver.audit import ALLOWED, FAILED, REFUSED, AuditLog, AuditRecord, targets_of
from platform_services.webserver.context import SCOPE_KEY, PermissionCheck, TeamProcessContext, TeamRequestContext

log = logging.getLogger("dagster.webserver")
#: Result types of Dagster's mutations that mean "not done" without being a refusal.
ERROR_SUFFIXES = ("Error", "NotFound", "Invalid")


class IdentityMiddleware:
    """Refuses every request without a valid identity assertion, and hands the identity on."""

    def __init__(self, app: ASGIApp, key: bytes) -> None:
        self.app = app
        self.key = key
        self.header = HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        value = next((v.decode("latin-1") for k, v in scope["headers"] if k == self.header), None)
        try:
            scope[SCOPE_KEY] = assertion.verify(value, self.key)
        except IdentityError as error:
            log.warning("refused %s %s: %s", scope["type"], scope.get("path"), error)
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            response = PlainTextResponse(f"refused: {error}\n", status_code=401)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _outcome(result: Any, checks: list[PermissionCheck]) -> tuple[str, str]:
    """(outcome, detail) of a mutation: refused when its last permission check said no.

    Dagster answers a refusal with an UnauthorizedError mostly, with a TerminateRunFailure for a
    termination; and an UnauthorizedError also means "no such dynamic partitions definition".
    """
    results = [result]
    for value in vars(result).values() if hasattr(result, "__dict__") else ():
        if isinstance(value, list):
            results += value
    names = [type(item).__name__.removeprefix("Graphene") for item in results if item is not None]
    if checks and not checks[-1].allowed:
        return REFUSED, f"{checks[-1].permission} on {checks[-1].location or 'the deployment'}"
    failed = [name for name in names if name.endswith(ERROR_SUFFIXES) or name.endswith("Failure")]
    return (FAILED, ",".join(sorted(set(failed)))) if failed else (ALLOWED, "")


class AuditMiddleware:
    """A GraphQL middleware: one audit record per root field of a mutation."""

    def __init__(self, audit: AuditLog) -> None:
        self.audit = audit

    def resolve(self, next_: Callable[..., Any], root: Any, info: Any, **arguments: Any) -> Any:
        if info.parent_type.name != "Mutation" or info.path.prev is not None:
            return next_(root, info, **arguments)
        context = info.context
        first = len(context.checks) if isinstance(context, TeamRequestContext) else 0
        try:
            result = next_(root, info, **arguments)
        except Exception as error:
            self._record(context, info.field_name, arguments, first, FAILED, type(error).__name__)
            raise
        if inspect.isawaitable(result):
            return self._await(result, context, info.field_name, arguments, first)
        self._record(context, info.field_name, arguments, first, *_outcome(result, _checks(context, first)))
        return result

    async def _await(self, result: Awaitable[Any], context: Any, name: str, arguments: Any, first: int) -> Any:
        try:
            value = await result
        except Exception as error:
            self._record(context, name, arguments, first, FAILED, type(error).__name__)
            raise
        self._record(context, name, arguments, first, *_outcome(value, _checks(context, first)))
        return value

    def _record(self, context: Any, operation: str, arguments: Any, first: int, outcome: str, detail: str) -> None:
        self.audit.write(audit_record(context, operation, list(targets_of(arguments)), first, outcome, detail))


def _checks(context: Any, first: int) -> list[PermissionCheck]:
    return context.checks[first:] if isinstance(context, TeamRequestContext) else []


def audit_record(
    context: Any, operation: str, targets: list[str], first: int, outcome: str, detail: str
) -> AuditRecord:
    """The audit record of one mutation served with ``context``."""
    identity = context.identity if isinstance(context, TeamRequestContext) else None
    checks = _checks(context, first)
    locations = sorted({c.location for c in checks if c.location} | set(_named_locations(context, targets)))
    team = context.team_of(locations[0]) if locations else None
    if identity is None:
        role = Role.VIEWER.value
    elif locations:
        role = context.role_for_location(locations[0]).value
    else:
        role = identity.describe_role()
    return AuditRecord(
        user=identity.user if identity else "(none)",
        via=identity.via if identity else "(none)",
        role=role,
        team=team,
        operation=operation,
        outcome=outcome,
        locations=locations,
        targets=targets,
        detail=detail,
    )


def _named_locations(context: Any, targets: list[str]) -> Iterator[str]:
    """The locations a mutation's arguments name, directly or through a run id."""
    for target in targets:
        key, _, value = target.partition("=")
        if key in ("repositoryLocationName", "locationName"):
            yield value
        elif key in ("runId", "runIds") and isinstance(context, TeamRequestContext):
            run = context.instance.get_run_by_id(value)
            if run is not None and run.remote_job_origin is not None:
                yield run.remote_job_origin.location_name


class TeamWebserver(DagsterWebserver[TeamProcessContext, TeamRequestContext]):
    """The webserver of the stack: Dagster's, with the gateway's identity and an audit log."""

    def __init__(self, process_context: TeamProcessContext, *, key: bytes, audit: AuditLog, **kwargs: Any) -> None:
        self._key = key
        self._audit = audit
        super().__init__(process_context, **kwargs)

    def build_middleware(self) -> list[Middleware]:
        return [Middleware(IdentityMiddleware, key=self._key), *super().build_middleware()]

    def build_graphql_middleware(self) -> list:
        return [AuditMiddleware(self._audit), *super().build_graphql_middleware()]

    async def _report(
        self, request: Request, operation: str, handle: Callable[..., Awaitable[JSONResponse]]
    ) -> JSONResponse:
        with self.request_context(request) as context:
            response = await handle(context, request)
        outcome = ALLOWED if response.status_code < 400 else REFUSED if response.status_code in (401, 403) else FAILED
        asset = request.path_params.get("asset_key", "")
        self._audit.write(audit_record(context, operation, [f"asset={asset}"], 0, outcome, str(response.status_code)))
        return response

    async def report_asset_materialization_endpoint(self, request: Request) -> JSONResponse:
        return await self._report(request, "reportAssetMaterialization", handle_report_asset_materialization_request)

    async def report_asset_check_endpoint(self, request: Request) -> JSONResponse:
        return await self._report(request, "reportAssetCheck", handle_report_asset_check_request)

    async def report_asset_observation_endpoint(self, request: Request) -> JSONResponse:
        return await self._report(request, "reportAssetObservation", handle_report_asset_observation_request)
