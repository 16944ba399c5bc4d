"""A real headless browser for the console: Playwright driving Debian's
chromium-headless-shell, which scripts/setup-browser.sh installs (idempotently) when the
tests first need it. Playwright's own browser download cannot work offline."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.support.hosts import REPO

ARTIFACTS = REPO / "tests" / "artifacts" / "console"  # screenshots, gitignored


def chromium_executable() -> str:
    """Install the browser if it is missing; return the executable's path."""
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-browser.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/setup-browser.sh failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


# Module scope: Playwright's sync API runs an event loop in this thread while it is open,
# so it is closed before the tests of other folders (some call asyncio.run) start.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=chromium_executable(), args=["--no-sandbox"]
    )
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
