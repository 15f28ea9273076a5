"""constraints.txt pins every package pyproject.toml asks for, so installs are repeatable."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==[0-9][^\s;]*$")


def canonical(name: str) -> str:
    """The PEP 503 normalised form of a distribution name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names() -> set[str]:
    """Every distribution the project and its dev extra require, without versions or extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {canonical(re.split(r"[\[<>=!~; ]", item, maxsplit=1)[0]) for item in requirements}


def pinned_versions() -> dict[str, str]:
    """The lock's entries: name -> exact version; every non-comment line must be `name==v`."""
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PINNED.match(line.strip())
        assert match, f"constraints.txt line is not an exact pin: {line!r}"
        pins[canonical(match.group(1))] = line.split("==", 1)[1]
    return pins


def test_every_requirement_is_pinned_exactly() -> None:
    missing = requirement_names() - set(pinned_versions())
    assert not missing, f"run `make lock`: not pinned in constraints.txt: {sorted(missing)}"


def test_installs_use_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "-c $(LOCK) -e '.[dev]'" in makefile
    assert "pip install -c constraints.txt ." in dockerfile
