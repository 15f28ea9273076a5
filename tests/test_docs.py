"""`/docs`: the asset table, path-traversal refusal, and Swagger UI really rendering both APIs."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.embedded import free_port
from devtools.processes import running
from gateway.docs import docs_asset
from tests.browser import headless_chromium
from tests.live_services import PROJECT_ROOT, real_gateway, service_env

DOC = json.loads(docs_asset("/openapi.json")[1])  # type: ignore[index]
DOCUMENTED_PATHS = set(DOC["paths"])


def test_page_loads_only_local_assets() -> None:
    content_type, page = docs_asset("/docs") or ("", b"")
    assert content_type.startswith("text/html")
    html = page.decode()
    for asset in ("/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/init.js"):
        assert f'"{asset}"' in html
        served = docs_asset(asset)
        assert served is not None and len(served[1]) > 0
    assert "http://" not in html and "https://" not in html  # no CDN
    init = docs_asset("/docs/init.js")
    assert init is not None
    assert b'url: "/openapi.json"' in init[1]
    assert b"validatorUrl: null" in init[1]  # never send the document to an outside validator


def test_content_types() -> None:
    expected = {
        "/openapi.json": "application/json",
        "/docs/": "text/html",
        "/docs/swagger-ui-bundle.js": "text/javascript",
        "/docs/swagger-ui.css": "text/css",
        "/docs/favicon-32x32.png": "image/png",
        "/docs/LICENSE": "text/plain",
    }
    for path, content_type in expected.items():
        served = docs_asset(path)
        assert served is not None, path
        assert served[0].startswith(content_type)
    assert b"Apache License" in docs_asset("/docs/LICENSE")[1]  # type: ignore[index]


@pytest.mark.parametrize(
    "path",
    [
        "/docs/../shared/config.py",
        "/docs/..%2f..%2fshared%2fconfig.py",
        "/docs/%2e%2e/pyproject.toml",
        "/docs//etc/passwd",
        "/docs/swagger-ui.css/../../../etc/passwd",
        "/docs/./swagger-ui.css",
        "/docs/index.html",
        "/docs/swagger-initializer.js",  # the package's own initializer points at a petstore
        "/docs/swagger-ui-bundle.js.map",
        "/openapi.json/",
        "/docs.json",
        "",
        "/",
    ],
)
def test_anything_outside_the_allow_list_is_none(path: str) -> None:
    assert docs_asset(path) is None


# -- a real browser -------------------------------------------------------------------

DOCS_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from gateway.docs import docs_asset

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        asset = docs_asset(self.path)
        if asset is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", asset[0])
        self.send_header("Content-Length", str(len(asset[1])))
        self.end_headers()
        self.wfile.write(asset[1])

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


@contextlib.contextmanager
def _serving(argv: list[str], port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run a server subprocess until `/docs` answers 200; yield its base URL."""
    base = f"http://127.0.0.1:{port}"
    with running("docs", argv, env, log, base + "/docs", timeout=30):
        yield base


@contextlib.contextmanager
def stdlib_docs_server(log: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    with _serving([sys.executable, "-c", DOCS_SERVER, str(port)], port, env, log) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium that can resolve only loopback: the page must render without a CDN."""
    flags = ("--window-size=1280,2000", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    with headless_chromium(flags) as driver:
        yield driver


def _rendered_paths(driver: object, url: str, screenshot: Path) -> tuple[set[str], str]:
    """Open the docs page; return the operation paths Swagger UI rendered and the title."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)  # type: ignore[attr-defined]
    WebDriverWait(driver, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")) >= 13
    )
    paths = {
        element.get_attribute("data-path")
        for element in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")  # type: ignore[attr-defined]
    }
    title = driver.find_element(By.CSS_SELECTOR, ".info .title").text  # type: ignore[attr-defined]
    driver.save_screenshot(str(screenshot))  # type: ignore[attr-defined]
    return paths, title


@pytest.mark.browser
def test_swagger_ui_renders_both_apis(browser: object, tmp_path: Path) -> None:
    with stdlib_docs_server(tmp_path / "docs.log") as base:
        paths, title = _rendered_paths(browser, base + "/docs", tmp_path / "docs.png")
    assert "Partner APIs" in title
    assert paths == DOCUMENTED_PATHS
    assert "/api/clients/generate-service-id" in paths
    assert "/api/v1/generate-auth-token" in paths


@pytest.mark.browser
def test_docs_through_the_real_gateway(browser: object, tmp_path: Path) -> None:
    # Upstreams are not used by /docs; rate limiting off so no Redis is needed.
    env = service_env("redis://127.0.0.1:1/0", tmp_path / "gateway.env", GATEWAY_RATE_LIMIT="0")
    with real_gateway(env, tmp_path) as base:
        paths, _ = _rendered_paths(browser, base + "/docs", tmp_path / "gateway-docs.png")
        with urllib.request.urlopen(base + "/openapi.json", timeout=5) as answer:
            assert json.loads(answer.read()) == DOC
    assert paths == DOCUMENTED_PATHS
