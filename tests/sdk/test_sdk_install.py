"""`pip install ./sdk` into a fresh virtualenv: it works offline and brings no server code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.live_services import PROJECT_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVER_MODULES = ("flask", "redis", "gunicorn", "jwt", "dotenv", "shared", "services", "gateway")


def _run(command: list[str], cwd: Path) -> str:
    """Run a command with no PYTHONPATH (nothing of the project may leak in); its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_sdk_installs_alone_into_a_fresh_venv(tmp_path: Path) -> None:
    # A copy, so building leaves no build/ or egg-info in the checkout.
    source = tmp_path / "sdk"
    shutil.copytree(
        PROJECT_ROOT / "sdk", source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    # Built with the dev environment's setuptools (offline: no build isolation, no index).
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--wheel-dir", str(tmp_path / "dist"), str(source)],
        tmp_path,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("partner_auth_sdk-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    # No --no-deps: a declared dependency would make this offline install fail.
    _run([python, "-m", "pip", "install", "--no-index", str(wheel)], tmp_path)
    probe = textwrap.dedent(
        f"""
        import importlib.metadata, importlib.resources, importlib.util
        import partner_sdk
        from partner_sdk import K2Client, SabongClient, Retry, Timeout
        SabongClient("http://127.0.0.1:1", "secret")
        K2Client("http://127.0.0.1:1", "user", "password")
        assert importlib.resources.files("partner_sdk").joinpath("py.typed").is_file()
        assert not importlib.metadata.requires("partner-auth-sdk")
        print(partner_sdk.__file__)
        for name in {SERVER_MODULES!r}:
            if importlib.util.find_spec(name) is not None:
                print("importable:", name)
        """
    )
    output = _run([python, "-c", probe], tmp_path).splitlines()
    assert output[0].startswith(str(venv)), output
    assert output[1:] == []
