"""The bench's yardstick: a bare Flask app that only answers `{"ok": true}`.

SPEC section 6 states the services' CPU per request as a multiple of this app's, served
by the same gunicorn command line (gthread, 2 workers x 16 threads) in the same run, so
the machine's speed of the moment cancels out of the ratio.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/")
def ok() -> dict[str, bool]:
    """The whole app: what any Flask endpoint costs before it does anything."""
    return {"ok": True}
