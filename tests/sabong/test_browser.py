"""The whole login-link flow in a real headless Chromium against a real server."""

from __future__ import annotations

import contextlib
import http.server
import threading
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


@contextlib.contextmanager
def attacker_site(host: str, target: str) -> Iterator[str]:
    """Another origin (its own port) whose page auto-submits a form POST to `target`."""
    page = (
        "<!doctype html><title>Win a prize</title>"
        f'<form id="f" method="post" action="{target}"><input name="x" value="1"></form>'
        '<script>document.getElementById("f").submit();</script>'
    ).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def sign_in(browser: Any, live_sabong: LiveSabong, client_id: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    issued = live_sabong.post_signed(valid_fields(clientId=client_id, displayName="Csrf Cleo"))
    assert issued.status == 200
    browser.get(issued.json()["data"]["loginLink"])
    WebDriverWait(browser, 15).until(lambda d: d.current_url == live_sabong.url + "/me")


# 127.0.0.1 on another port is another origin but the same site (the cookie goes along:
# only the Origin check stops it); localhost is another site (no cookie, but the response's
# Set-Cookie used to be applied anyway).
@pytest.mark.parametrize("attacker_host", ["127.0.0.1", "localhost"])
@pytest.mark.parametrize("target_path", ["/logout", "/logout/all"])
def test_cross_site_post_cannot_log_the_player_out(
    browser: Any, live_sabong: LiveSabong, redis_url: str, attacker_host: str, target_path: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in(browser, live_sabong, "BROWSER-CSRF")
    cookie_before = browser.get_cookie("sabong_session")
    assert cookie_before is not None

    with attacker_site(attacker_host, live_sabong.url + target_path) as evil_page:
        browser.get(evil_page)
        WebDriverWait(browser, 15).until(lambda d: d.current_url == live_sabong.url + target_path)
    assert "another site" in browser.find_element(By.TAG_NAME, "body").text

    cookie_after = browser.get_cookie("sabong_session")
    assert cookie_after is not None and cookie_after["value"] == cookie_before["value"]
    browser.get(live_sabong.url + "/me")
    assert browser.current_url == live_sabong.url + "/me"
    assert "Csrf Cleo" in browser.find_element(By.TAG_NAME, "body").text


def test_the_sign_out_button_still_signs_out_for_good(
    browser: Any, live_sabong: LiveSabong, redis_url: str
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    sign_in(browser, live_sabong, "BROWSER-OUT")
    cookie = browser.get_cookie("sabong_session")
    assert cookie is not None
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    WebDriverWait(browser, 15).until(lambda d: "/login/" in d.current_url)
    assert "You have been signed out" in browser.find_element(By.TAG_NAME, "body").text
    # The old cookie, replayed from anywhere, is dead on the server.
    replay = live_sabong.request(
        "GET", "/api/v1/me", headers={"Cookie": f"sabong_session={cookie['value']}"}
    )
    assert replay.status == 401
