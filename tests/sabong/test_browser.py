"""The whole login-link flow in a real headless Chromium against a real server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import LiveSabong, valid_fields

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MISSING = "chromium not installed: apt-get install chromium chromium-driver"

pytestmark = pytest.mark.browser


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium via the system chromedriver (selenium never downloads anything)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(MISSING)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="sabong-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


def test_login_link_signs_in_once_in_a_real_browser(
    browser: Any, live_sabong: LiveSabong, redis_url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # redis_url: the session Redis the server uses, emptied for this test.
    issued = live_sabong.post_signed(valid_fields(clientId="BROWSER-1", displayName="Browser Bea"))
    assert issued.status == 200
    link = issued.json()["data"]["loginLink"]
    assert link.startswith(live_sabong.url + "/login/")

    browser.get(link)  # the page submits itself by script and lands on /me
    WebDriverWait(browser, 15).until(lambda d: d.current_url == live_sabong.url + "/me")
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Browser Bea" in text and "BROWSER-1" in text and "USD 0.00" in text
    cookie = browser.get_cookie("sabong_session")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"

    browser.get(link)  # the link worked once: now it is spent
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "This link is invalid or has expired" in text
