"""bench.cpu: other programs' CPU, per-component CPU, and how evenly workers shared work."""

from __future__ import annotations

import os

import pytest

from bench import cpu


def sample(at: float, busy: float, processes: dict[int, float], own: float = 0.0) -> cpu.CpuSample:
    components = {"svc": sum(processes.values()), "bench+wrk": own}
    return cpu.CpuSample(at, busy, sum(components.values()), components, processes)


def test_other_cores_is_busy_time_not_ours() -> None:
    before = sample(0.0, 100.0, {1: 10.0, 2: 10.0})
    after = sample(2.0, 104.0, {1: 11.0, 2: 11.5}, own=0.5)  # 4 s busy, 3 s ours
    assert cpu.other_cores(before, after) == pytest.approx(0.5)
    assert cpu.component_seconds(before, after) == pytest.approx({"svc": 2.5, "bench+wrk": 0.5})


def test_busiest_share_tells_an_uneven_split() -> None:
    before = sample(0.0, 0.0, {1: 0.0, 2: 0.0, 3: 0.0})
    even = sample(1.0, 0.0, {1: 0.01, 2: 0.5, 3: 0.49})
    piled = sample(1.0, 0.0, {1: 0.01, 2: 0.95, 3: 0.04})
    idle = sample(1.0, 0.0, {1: 0.0, 2: 0.1, 3: 0.0})
    assert cpu.busiest_share(before, even, [1, 2, 3]) == pytest.approx(0.5)
    assert cpu.busiest_share(before, piled, [1, 2, 3]) == pytest.approx(0.95)
    assert cpu.busiest_share(before, idle, [1, 2, 3]) is None  # not measured: too little work


def test_sample_reads_this_machine() -> None:
    now = cpu.sample({"me": [os.getppid()]})
    assert now.busy_s is None or now.busy_s > 0
    assert now.components["bench+wrk"] > 0
