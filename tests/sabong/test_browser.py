"""The whole login-link flow in a real headless Chromium against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import headless_chromium

from .conftest import LiveSabong, valid_fields

pytestmark = pytest.mark.browser


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium via the system chromedriver."""
    with headless_chromium() as driver:
        yield driver


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
