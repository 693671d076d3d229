"""Browser fixtures: Debian's Chromium driven by Playwright (executable_path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("SEARCHER_CHROMIUM", "/usr/bin/chromium"))
# Headless flags for a machine with no network but loopback (see README, Tests).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run ./dev test, or set SEARCHER_CHROMIUM")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def new_page(browser):
    """Open pages: new_page(width=1366, scheme="light", javascript=True). Each has its own
    context; the test fails if a page logged an error (a CSP violation, a script error, a
    resource that failed to load)."""
    contexts, errors = [], []
    # A page answered with an error status (a bad query's 400) makes Chromium log
    # "Failed to load resource" for it; the tests check those statuses themselves.
    error_pages: set[str] = set()

    def open_page(width: int = 1366, scheme: str = "light", javascript: bool = True):
        context = browser.new_context(
            viewport={"width": width, "height": 900},
            color_scheme=scheme,
            java_script_enabled=javascript,
            permissions=["clipboard-read", "clipboard-write"],
        )
        contexts.append(context)
        tab = context.new_page()
        tab.on(
            "console",
            lambda message: (
                message.type == "error"
                and errors.append(f"{message.text} ({message.location.get('url')})")
            ),
        )
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.on(
            "response",
            lambda response: (
                response.request.is_navigation_request()
                and response.status >= 400
                and error_pages.add(response.url)
            ),
        )
        return tab

    yield open_page
    for context in contexts:
        context.close()
    unexpected = [
        e
        for e in errors
        if not (e.startswith("Failed to load resource") and e.split(" (")[-1][:-1] in error_pages)
    ]
    assert unexpected == [], unexpected


@pytest.fixture()
def page(new_page):
    """A fresh page at 1366 px, light."""
    return new_page()
