"""A real browser (Debian's headless Chromium, driven by Playwright, no browser download)
logs in through the gateway and shows the global asset lineage with both locations' assets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testkit.browser import CHROMIUM, logged_in_page
from testkit.stack import Stack

if TYPE_CHECKING:  # playwright is imported only where a browser runs
    from playwright.sync_api import Response


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make test-deps` installs it)")
def test_global_lineage_shows_assets_of_both_locations(stack: Stack, artifacts: Path) -> None:
    with logged_in_page(stack) as page:
        page.goto(f"{stack.url}/asset-groups", wait_until="domcontentloaded", timeout=60_000)
        # The graph shows one node per asset group: simple_ops' group and the
        # modular location's four layers, in one lineage.
        for group in ("user_extraction", "sources", "transforms", "analytics", "exports"):
            page.get_by_text(group, exact=True).last.wait_for(timeout=60_000)
        # Expanding the two groups joined by the cross-location edge
        # (simple_ops' user_data_csv -> modular_assets' api_users_raw) shows their assets.
        for group in ("user_extraction", "sources"):
            page.get_by_text(group, exact=True).last.dblclick()
        for name in ("raw_user_data", "user_data_csv", "api_users_raw", "api_posts_raw"):
            page.get_by_text(name, exact=True).last.wait_for(timeout=30_000)
        page.screenshot(path=str(artifacts / "global-asset-lineage.png"), full_page=True)
    assert (artifacts / "global-asset-lineage.png").stat().st_size > 10_000


def test_the_ui_refuses_a_browser_without_credentials(stack: Stack) -> None:
    import requests

    assert requests.get(f"{stack.url}/asset-groups", timeout=10).status_code == 401


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make test-deps` installs it)")
def test_a_job_launched_from_the_launchpad_succeeds(stack: Stack, artifacts: Path) -> None:
    """The UI's own mutations (same origin, JSON POST) pass the gateway's CSRF rules, unthrottled."""
    throttled: list[str] = []

    def record_throttled(response: Response) -> None:
        if response.status == 429:
            throttled.append(response.url)

    with logged_in_page(stack) as page:
        page.on("response", record_throttled)
        page.goto(
            f"{stack.url}/locations/simple_ops/jobs/data_extraction_job/playground",
            wait_until="domcontentloaded",
            timeout=60_000,
        )
        launch = page.get_by_role("button", name="Launch Run")
        launch.wait_for(timeout=60_000)
        launch.click()
        page.wait_for_url(re.compile(r".*/runs/[0-9a-f-]{36}.*"), timeout=60_000)
        run_id = re.search(r"/runs/([0-9a-f-]{36})", page.url).group(1)  # type: ignore[union-attr]
        page.screenshot(path=str(artifacts / "launchpad-run.png"), full_page=True)

    assert throttled == [], "the gateway throttled the UI's own requests"
    assert stack.wait_for_run(run_id)["status"] == "SUCCESS"
