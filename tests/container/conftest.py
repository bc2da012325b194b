"""The image under test, built once per session from the work tree, removed at the end."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.container.podman import (
    REPO,
    Podman,
    containers_conf,
    ensure_base_image,
    ensure_debian_image,
    require,
    unique,
)


@dataclass(frozen=True)
class Images:
    gateway: str
    build_seconds: float


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    require("podman")
    folder = tmp_path_factory.mktemp("podman")
    podman = Podman({**os.environ, "CONTAINERS_CONF": containers_conf(folder)})
    ensure_base_image(podman)
    return podman


@pytest.fixture(scope="session")
def images(podman: Podman) -> Iterator[Images]:
    tag = f"localhost/{unique('gateway-test')}:latest"
    start = time.monotonic()
    try:
        podman.build(tag, REPO)
        yield Images(tag, time.monotonic() - start)
    finally:
        podman.run("rmi", "-f", tag, check=False)


@pytest.fixture(scope="session")
def redis_image(podman: Podman) -> str:
    return ensure_debian_image(podman, "redis")


@pytest.fixture(scope="session")
def nginx_image(podman: Podman) -> str:
    return ensure_debian_image(podman, "nginx")
