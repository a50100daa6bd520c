"""A third team's location, scaffolded in a copy of the repo by `make new-location`, joins the running stack.

Last in the suite (it changes the stack): the copy's stack is brought up in the
same compose project, as `make up` would after `make new-location`. That starts
the new code server and recreates what changed with it: the webserver and daemon
(the copy's workspace.yaml) and the services that join the new location's network
or mount its IO volume (Postgres, the sample API, the storage janitor). The new
location loads beside the other two and its job succeeds in its own image, on its
own network. Afterwards the stack is put back as this checkout defines it, which
also removes the third code server.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from template_tools.locations import location_names
from template_tools.scaffolding import copy_repo, lock, new_location
from testkit.stack import Stack, wait_for

NAME = "billing_reports"


@pytest.fixture(scope="module")
def grown(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack, now run from a copy of the repo with a third location."""
    root = copy_repo(tmp_path_factory.mktemp("grown") / "repo")
    scaffolded = new_location(root, NAME, "--team", "billing")
    assert scaffolded.returncode == 0, scaffolded.stderr
    locked = lock(root, tmp_path_factory.mktemp("venv") / "venv")
    assert locked.returncode == 0, locked.stderr
    e2e_override = Path(root, "tests/e2e/compose.e2e.yml")
    grown = dataclasses.replace(stack, root=root, overrides=(e2e_override,))
    try:
        grown.compose("build", NAME, timeout=900)
        grown.up()
        yield grown
    finally:
        stack.compose(
            "up", "--detach", "--no-build", "--remove-orphans", "--wait", "--wait-timeout", "180", timeout=300
        )
        stack.docker("volume", "rm", f"{stack.project}_{NAME}", check=False)  # its IO volume


def test_the_new_location_loads_beside_the_others(grown: Stack) -> None:
    assert grown.location_names == [*location_names(), NAME]

    wait_for(grown.all_locations_loaded, timeout=120, what=f"{', '.join(grown.location_names)} LOADED")


def test_its_job_succeeds_in_its_own_image(grown: Stack) -> None:
    wait_for(lambda: grown.all_locations_loaded([NAME]), timeout=120, what=f"{NAME} LOADED")

    run = grown.wait_for_run(grown.launch(f"{NAME}_job", NAME))

    assert run["status"] == "SUCCESS", grown.failure_text(run)[-3000:]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/image"] == f"{grown.project}-{NAME}:{grown.image_tag}"
    assert tags["dagster/code_location"] == NAME
