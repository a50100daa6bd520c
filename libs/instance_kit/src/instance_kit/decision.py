"""The launch decision both policy launchers take, and how they refuse a run.

A run launches when nothing refuses it: neither its launcher's policy (what it asks for its
container or Job, its image), nor its ``dagster/image`` tag, nor its code (its origins
against what its location's own server reports, :mod:`instance_kit.origin`). A refused run
gets an engine event naming every violation, no retry, and the failed status; nothing is
created for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.errors import DagsterUserCodeUnreachableError
from dagster._core.storage.tags import DOCKER_IMAGE_TAG, MAX_RETRIES_TAG

from instance_kit.origin import origin_violations

if TYPE_CHECKING:
    from dagster._core.workspace.context import BaseWorkspaceRequestContext

    from instance_kit.policy import RunRules


def decide(
    rules: RunRules,
    run: dg.DagsterRun,
    location: str | None,
    policy_violations: Sequence[str],
    workspace: BaseWorkspaceRequestContext | None,
) -> list[str]:
    """Everything that refuses the run (empty: it may launch), given its policy's violations.

    Raises ``DagsterUserCodeUnreachableError`` when nothing else refuses the run but its
    registered location is not loaded (see :func:`instance_kit.origin.origin_violations`): the
    run queue then re-queues it instead of failing it.
    """
    violations = list(policy_violations)
    tagged_image = run.tags.get(DOCKER_IMAGE_TAG)
    if tagged_image:
        violations += [v for v in rules.check_image(tagged_image, location) if v not in violations]
    # An unregistered location is refused by check_image.
    if location is not None and location in rules.registered_locations():
        try:
            violations += origin_violations(workspace, run, lambda image: rules.allows_image(location, image))
        except DagsterUserCodeUnreachableError:
            if not violations:
                raise
            violations.append(f"code location {location!r} is not loaded, so the run's code is unverified")
    return violations


def refuse(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    launcher: type,
    location: str | None,
    violations: Sequence[str],
    nothing_created: str,
) -> str:
    """Fail the run with an engine event that names what it asked for; the message."""
    message = (
        f"Run launch refused by {launcher.__name__} for code location {location!r}: the run asks for more "
        "than the launch policy allows or its code location serves: " + "; ".join(violations) + f". {nothing_created}"
    )
    instance.report_engine_event(message, run, cls=launcher)
    # A retry would be refused again (or, rebuilt from the workspace, launch what was refused).
    instance.add_run_tags(run.run_id, {MAX_RETRIES_TAG: "0"})
    instance.report_run_failed(run, message=message)
    return message
