"""Run a test script in a process of its own, monkey-patched by gevent as a worker is
(patching would change the test process for good); the script prints what it saw."""

from __future__ import annotations

import os
import subprocess
import sys

from shared.config import PROJECT_ROOT

PATCH = "from gevent import monkey\nmonkey.patch_all()\n"


def run_patched(script: str, **env: str) -> str:
    """What `script`, run after gevent's patch_all, printed; fails the test if it failed."""
    done = subprocess.run(
        [sys.executable, "-c", PATCH + script],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        timeout=60,
    )
    return done.stdout
