"""How many workers `--workers` means: the cores this process may use, capped by a
container's CPU quota (cgroup v2 cpu.max), and what the memory store allows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.workers import available_cores, worker_count

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),
        ("50000 100000\n", 1),  # half a core: one worker
        ("150000 100000\n", min(AFFINITY, 2)),
        ("6400000 100000\n", AFFINITY),  # a quota above the cores this process may use
        ("garbage", AFFINITY),
    ],
)
def test_cores_are_capped_by_the_containers_quota(
    tmp_path: Path, cpu_max: str, expected: int
) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert available_cores(tmp_path / "cpu.max") == expected


def test_without_a_quota_file_the_affinity_counts(tmp_path: Path) -> None:
    assert available_cores(tmp_path / "missing") == AFFINITY


def test_worker_counts() -> None:
    assert worker_count("3", durable_store=True) == 3
    assert worker_count("1", durable_store=False) == 1
    assert worker_count("auto", durable_store=False) == 1
    assert worker_count("auto", durable_store=True) == available_cores()
    with pytest.raises(ValueError, match=r"^--workers must be at least 1, got 0$"):
        worker_count("0", durable_store=True)
    with pytest.raises(ValueError, match=r"^--workers must be a number or auto, got 'many'$"):
        worker_count("many", durable_store=True)
    with pytest.raises(ValueError, match=r"^--workers 4 needs a shared store"):
        worker_count("4", durable_store=False)
