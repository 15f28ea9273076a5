"""Whether this process runs on gevent: which standard modules gevent has patched."""

from __future__ import annotations

import sys
from typing import Any


def patched_by_gevent(module: str) -> Any | None:
    """gevent's `monkey` module when it has patched `module` (e.g. "select") in this
    process, else None. Never imports gevent: a process that did not patch is not on it."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched(module):
        return None
    return monkey
