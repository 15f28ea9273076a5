"""The partner reference: `/openapi.json`, the Swagger UI page at `/docs` and its assets.

Stdlib only, so the gateway can import it cheaply; every body is read once at import.
Assets come from the `swagger-ui-py` package (Swagger UI 5, Apache-2.0), never a CDN.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

__all__ = ["DOCS_PATH", "OPENAPI_PATH", "docs_asset"]

OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"

_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_JS = "text/javascript; charset=utf-8"
_CSS = "text/css; charset=utf-8"
_PNG = "image/png"
_TEXT = "text/plain; charset=utf-8"

# Only these files are ever served from the Swagger UI package: a fixed allow-list makes
# path traversal impossible rather than merely checked for.
_VENDOR_FILES = {
    "swagger-ui.css": _CSS,
    "swagger-ui-bundle.js": _JS,
    "favicon-32x32.png": _PNG,
    "favicon-16x16.png": _PNG,
    "LICENSE": _TEXT,
}

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Partner APIs: K2 USSD and Sabong v1.0</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
<style>body { margin: 0; }</style>
</head>
<body>
<noscript>This reference needs JavaScript. The raw document is at
<a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

# A separate script (not inline) so a strict Content-Security-Policy can still allow it.
# validatorUrl null: the default would send the document to an outside validator.
_INIT_JS = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    displayOperationId: false,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""


def _vendor_dir() -> Path | None:
    """The Swagger UI static folder, found without importing the package's Python code."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if folder.is_dir() else None


def _load() -> dict[str, tuple[str, bytes]]:
    """Every servable path mapped to its content type and body."""
    assets = {
        OPENAPI_PATH: (_JSON, resources.files("shared").joinpath("openapi.json").read_bytes()),
        DOCS_PATH: (_HTML, _PAGE.encode("utf-8")),
        DOCS_PATH + "/": (_HTML, _PAGE.encode("utf-8")),
        DOCS_PATH + "/init.js": (_JS, _INIT_JS.encode("utf-8")),
    }
    vendor = _vendor_dir()
    if vendor is not None:
        for name, content_type in _VENDOR_FILES.items():
            assets[f"{DOCS_PATH}/{name}"] = (content_type, (vendor / name).read_bytes())
    return assets


_ASSETS = _load()


def docs_asset(path: str) -> tuple[str, bytes] | None:
    """(content type, body) for `/openapi.json`, `/docs` or `/docs/<asset>`; None otherwise."""
    return _ASSETS.get(path)
