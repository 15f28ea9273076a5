"""Fixtures of the reliability suite: whole platforms as real processes, and its figures.

Each test reports its figures (requests, errors, recovery time) through `figures`; they
are printed in a "reliability figures" section at the end of the run, so they show in
`make test` output without `-s`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .platform import Platform, running_platform
from .traffic import Partner, sign_in_partner

FIGURES = pytest.StashKey[list[str]]()

StartPlatform = Callable[..., Platform]
Figures = Callable[[str], None]


@pytest.fixture
def start_platform(tmp_path: Path) -> Iterator[StartPlatform]:
    """Start whole platforms (`start_platform(sabong_replicas=2, ...)`); all stopped after."""
    with contextlib.ExitStack() as stack:
        count = 0

        def start(**options: Any) -> Platform:
            nonlocal count
            count += 1
            return stack.enter_context(running_platform(tmp_path / f"platform-{count}", **options))

        yield start


@pytest.fixture(scope="module")
def shared_partner(shared_platform: Platform) -> Partner:
    """A K2 account signed in (login JWT and Service ID) on the shared platform."""
    return sign_in_partner(
        shared_platform, f"fuzz_{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    )


@pytest.fixture(scope="module")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One platform (one replica of each service) for a module whose tests kill nothing."""
    with running_platform(tmp_path_factory.mktemp("shared-platform")) as platform:
        yield platform


def record_figures(config: pytest.Config, line: str) -> None:
    """Keep `line` for the "reliability figures" section at the end of the run."""
    config.stash.setdefault(FIGURES, []).append(line)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """Record one line of figures for the end-of-run summary (and the test's properties)."""

    def record(line: str) -> None:
        record_figures(request.config, line)
        request.node.user_properties.append(("figures", line))

    return record


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print every recorded figures line in one section."""
    lines = config.stash.get(FIGURES, [])
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
