"""A headless Debian chromium driven by Selenium, for the web UI's browser tests and bench.

The driver and the browser are Debian's (/usr/bin/chromedriver, /usr/bin/chromium,
installed by scripts/setup-browser.sh), given explicitly so Selenium Manager never looks
for one to download. The browser talks to loopback only: every other address goes to a
proxy that does not exist, and its background services (updates, safe browsing, sync,
metrics) are off."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEAD_PROXY

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
_FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
          "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
          "--disable-component-update", "--disable-sync", "--disable-default-apps",
          "--disable-domain-reliability", "--disable-client-side-phishing-detection",
          "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
          "--metrics-recording-only", "--no-pings", "--dns-prefetch-disable",
          f"--proxy-server={DEAD_PROXY}", "--proxy-bypass-list=127.0.0.1;localhost;[::1]",
          "--lang=en-US")


def have_browser() -> bool:
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return False
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


def require_browser() -> None:
    if have_browser():
        return
    why = "no chromium/chromedriver/selenium (scripts/setup-browser.sh installs them)"
    if os.environ.get("GITOPS_REQUIRE_DOCKER"):      # CI: the set-up installs them
        pytest.fail(why)
    pytest.skip(why)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = Path(tempfile.mkdtemp(prefix="gitops-chromium-"))
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in _FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={width},{height}")
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
