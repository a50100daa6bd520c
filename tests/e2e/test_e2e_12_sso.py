"""Single sign-on end to end, in a real browser against a real OpenID Connect provider process.

The stack's auth service is configured with the session's provider (conftest). A person of the
analytics-devs group logs in through it: the group becomes the analytics team's launcher role,
the UI disables the other team's launch button, the person launches their own team's job (the
run carries their name), and logging out ends the session.
"""

from __future__ import annotations

import json
import re

import pytest

from testkit.browser import CHROMIUM, chromium
from testkit.oidc import IdentityProvider
from testkit.stack import Stack

ACCESS = {"groups": {"analytics-devs": {"analytics": "launcher"}}}
LAUNCH_BUTTON = re.compile(r"Launch Run$")  # its name starts with its icon's


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make test-deps` installs it)")
def test_a_single_sign_on_login_gets_its_groups_role_and_ends_with_logout(
    stack: Stack, identity_provider: IdentityProvider
) -> None:
    from playwright.sync_api import expect

    previous = stack.access_file.read_text()
    stack.set_access(json.dumps(ACCESS))
    identity_provider.set_user("ana-sub", preferred_username="ana", email="ana@example.com", groups=["analytics-devs"])
    try:
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
            page.goto(f"{stack.url}/", wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_url(re.compile(r".*/__auth/login.*"))
            page.get_by_role("link", name=re.compile("single sign-on", re.IGNORECASE)).click()
            page.wait_for_url(re.compile(re.escape(identity_provider.url) + ".*"))  # the provider's own page
            page.fill("input[name=sub]", "ana-sub")
            page.locator("button[type=submit], input[type=submit]").first.click()
            page.wait_for_url(re.compile(re.escape(stack.url) + r"/(?!__auth).*"), timeout=60_000)

            who = json.loads(page.goto(f"{stack.url}/__auth/whoami").text())  # type: ignore[union-attr]
            assert (who["user"], who["teams"]) == ("ana", {"analytics": "launcher"})

            # The other team's job: Dagster's own UI disables its launchpad and schedule toggle for this role.
            page.goto(f"{stack.url}/locations/simple_ops/jobs/data_extraction_job")
            expect(page.get_by_role("tab", name="Launchpad")).to_be_disabled(timeout=60_000)
            expect(page.get_by_role("checkbox").first).to_be_disabled()
            # The own team's job launches, and the run carries who launched it.
            page.goto(f"{stack.url}/locations/modular_assets/jobs/sources_job/playground")
            launch = page.get_by_role("button", name=LAUNCH_BUTTON)
            expect(launch).to_be_enabled(timeout=60_000)
            launch.click()
            page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}.*"), timeout=60_000)
            run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]

            page.goto(f"{stack.url}/__auth/logout")
            page.wait_for_url(re.compile(r".*/__auth/login.*"))
            page.goto(f"{stack.url}/runs")
            page.wait_for_url(re.compile(r".*/__auth/login.*"))  # the session is over
    finally:
        stack.set_access(previous)

    run = stack.wait_for_run(run_id)
    assert {t["key"]: t["value"] for t in run["tags"]}["user"] == "ana"
    assert run["status"] == "SUCCESS"
