"""A real browser for the end-to-end tests: Debian's headless Chromium, driven by Playwright (no download)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from testkit.stack import Stack

if TYPE_CHECKING:  # playwright is imported only where a browser runs
    from playwright.sync_api import Browser, Page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium on a machine with no internet: keep it from calling home at start.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def log_in(page: Page, stack: Stack, user: str, password: str) -> None:
    """Through the gateway's login page, as a person would: the page it sends a browser to."""
    page.goto(f"{stack.url}/", wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_url(re.compile(r".*/__auth/login.*"), timeout=30_000)
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*__auth/login).*$"), timeout=30_000)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, closed at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def logged_in_page(stack: Stack, user: str | None = None, password: str | None = None) -> Iterator[Page]:
    """A page of headless Chromium, logged in through the gateway's login page (the stack's admin by default)."""
    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()
        log_in(page, stack, user or stack.user, password or stack.password)
        yield page
