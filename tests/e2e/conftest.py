"""The end-to-end suite's one stack: built and started once per session, torn down with its volumes.

Debugging: E2E_KEEP_STACK=1 leaves the stack running after the tests;
E2E_REUSE_STACK=1 then runs tests against it without rebuilding.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from template_tools.locations import ROOT
from template_tools.scaffolding import copy_repo
from testkit.oidc import IdentityProvider, docker_host_address, run_provider
from testkit.stack import Stack, free_port

ARTIFACTS = ROOT / "test-artifacts"
#: The suite's additions to docker-compose.yml (a webhook sink for the alert tests).
E2E_COMPOSE = Path(__file__).with_name("compose.e2e.yml")
#: The client the stack's auth service is for single sign-on, and its secret (the provider takes any).
SSO_CLIENT_ID, SSO_CLIENT_SECRET = "dagster-e2e", "e2e-client-secret"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    """The stack's single sign-on provider, for the whole session: a real OpenID Connect provider
    process on the host, where the auth service's container and the browser both reach it."""
    port_file = ARTIFACTS / "e2e-stack" / "idp-port"
    reuse = os.environ.get("E2E_REUSE_STACK") and port_file.exists()
    port = int(port_file.read_text()) if reuse else free_port()
    provider = run_provider(port, host=docker_host_address())
    yield provider
    provider.stop()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, identity_provider: IdentityProvider) -> Iterator[Stack]:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode:
        pytest.fail("the end-to-end tests need a running Docker engine with Compose v2 (`docker compose`)")
    workdir = ARTIFACTS / "e2e-stack"
    if os.environ.get("E2E_REUSE_STACK"):
        yield Stack.reattach(workdir)
        return
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    (workdir / "idp-port").write_text(identity_provider.url.rsplit(":", 1)[1])
    # From a copy of the checkout: a test may change the stack's files as a team would (add a
    # location), and an edit in the checkout while the suite runs changes nothing under test.
    root = copy_repo(workdir / "repo")
    stack = Stack(
        project=os.environ.get("E2E_PROJECT", "dagster-e2e"),
        workdir=workdir,
        root=root,
        overrides=(root / E2E_COMPOSE.relative_to(ROOT),),
    )
    stack.write_env(
        {
            "OIDC_ISSUER_URL": identity_provider.url,
            "OIDC_CLIENT_ID": SSO_CLIENT_ID,
            "OIDC_CLIENT_SECRET": SSO_CLIENT_SECRET,
        }
    )
    stack.down()  # leftovers of an aborted run
    failed = True
    try:
        stack.compose("build", timeout=1200)
        stack.up()
        yield stack
        failed = request.session.testsfailed > 0
    finally:
        if failed:
            report = stack.diagnostics()
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "e2e-diagnostics.txt").write_text(report)
            print("\n===== e2e diagnostics =====\n" + report, file=sys.__stderr__)
        if not os.environ.get("E2E_KEEP_STACK"):
            stack.down()
