"""Shared by the browser tests: Debian's Chromium driven by Playwright, offline (never `playwright install`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying the closed network (see ENV notes in the README).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def chromium_page(profile_dir, width: int, height: int):
    """A page of a fresh headless Chromium with its own profile folder; fails (never skips) without Chromium."""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium; scripts/test.sh does "
                    f"this on CI). Never `playwright install`. which chromium -> {shutil.which('chromium')}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        try:
            yield context.new_page()
        finally:
            context.close()


def wait_text(page, selector: str, text: str, timeout: int = 30000):
    script = "([s, t]) => { const e = document.querySelector(s); return !!e && e.innerText.includes(t); }"
    page.wait_for_function(script, arg=[selector, text], timeout=timeout)
