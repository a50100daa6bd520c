"""Is a stored run what its code location serves? Its origins against that location's own server.

The stored run comes from the shared Postgres storage, which every code location can
write: its origins are only what some location wrote. The workspace reaches each code
server by its network name, so what a loaded location reports is the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.errors import DagsterUserCodeUnreachableError

if TYPE_CHECKING:
    from dagster._core.origin import RepositoryPythonOrigin
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

# Everything of a RepositoryPythonOrigin: the run worker loads and runs the code these describe.
ORIGIN_FIELDS = ("code_pointer", "executable_path", "entry_point", "container_image", "container_context")


def run_location(run: dg.DagsterRun) -> str | None:
    """The code location a run was launched from (its remote job origin)."""
    return run.remote_job_origin.location_name if run.remote_job_origin else None


def origin_violations(
    workspace: BaseWorkspaceRequestContext | None,
    run: dg.DagsterRun,
    is_release: Callable[[str], bool] = lambda image: False,
) -> list[str]:
    """What the stored run claims about its code that its code location's own server does not serve.

    ``is_release`` says which images are the location's releases (the launch policy's): a run
    queued before a deploy names the image of the release it was planned with, which may differ
    from the one the location serves now.

    Raises ``DagsterUserCodeUnreachableError`` when the location is not loaded: the queued run
    coordinator daemon re-queues a run on that error (``run_queue.max_user_code_failure_retries``
    times) instead of failing it, so a run submitted while its server redeploys is verified later.
    """
    remote, code = run.remote_job_origin, run.job_code_origin
    if workspace is None:
        return ["no workspace to verify the run's code against (runs launch from the daemon or the webserver)"]
    if remote is None or code is None:
        return ["no job origin is recorded on the run"]
    location, repository_name = remote.location_name, remote.repository_origin.repository_name
    if not workspace.has_code_location(location):
        raise DagsterUserCodeUnreachableError(
            f"Code location {location!r} is not loaded, so run {run.run_id} cannot be verified against it"
        )
    code_location = workspace.get_code_location(location)
    violations = [
        f"job name {name!r} (the run's remote job origin names {remote.job_name!r})"
        for name in sorted({run.job_name, code.job_name} - {remote.job_name})
    ]
    if not code_location.has_repository(repository_name):
        served = ", ".join(code_location.get_repository_names())
        return [*violations, f"repository {repository_name!r} (code location {location!r} serves {served})"]
    repository = code_location.get_repository(repository_name)
    if not repository.has_job(remote.job_name):
        violations.append(f"job {remote.job_name!r} (not in code location {location!r})")
    genuine = repository.get_python_origin()
    for field in ORIGIN_FIELDS:
        claimed, served = getattr(code.repository_origin, field), getattr(genuine, field)
        if field == "container_image" and _is_image(claimed, is_release) and _is_image(served, is_release):
            continue
        if not _same(claimed, served):
            violations.append(f"{field} {claimed!r} (code location {location!r} serves {served!r})")
    owner = _serving_location(workspace, code.repository_origin) if violations else None
    if owner not in (None, location):
        violations.append(f"the job code origin of code location {owner!r}, not of {location!r}")
    return violations


def _same(claimed: Any, served: Any) -> bool:
    # Serialized, since code pointers compare as plain tuples: ModuleCodePointer("m", "defs")
    # == FileCodePointer("m", "defs"). serialize_value names every class and sorts dict keys.
    return dg.serialize_value(claimed) == dg.serialize_value(served)


def _serving_location(workspace: BaseWorkspaceRequestContext, origin: RepositoryPythonOrigin) -> str | None:
    """The loaded code location one of whose repositories has exactly this origin, if any."""
    for code_location in workspace.code_locations:
        for repository in code_location.get_repositories().values():
            if _same(repository.get_python_origin(), origin):
                return code_location.name
    return None


def _is_image(value: object, is_release: Callable[[str], bool]) -> bool:
    return isinstance(value, str) and is_release(value)
