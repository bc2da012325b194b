"""podman as shared/CONTAINER.md runs it here: runc, the hard ulimits, a local Debian base image.

Every call is bounded in time. Names carry a random suffix so parallel runs never collide;
whatever a test creates, it removes (the base image and the Debian-package images of nginx
and Redis are kept: they are caches, named by tag).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian-python:bookworm"
COMPOSE_DIR = REPO / "deploy" / "compose"
PODMAN_COMPOSE = Path(sys.executable).parent / "podman-compose"
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def require(tool: str, path: str | None = None) -> str:
    """The tool's path. Missing: a failure in CI (it must install it), else a skip."""
    found = path if path and Path(path).exists() else shutil.which(tool)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{tool} is missing, and CI must run the container tests: see .ci/run")
    pytest.skip(f"{tool} is not installed (CI installs it: .ci/run)")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def containers_conf(folder: Path) -> str:
    """CONTAINERS_CONF if set (.ci/run writes one), else a private one as CONTAINER.md says."""
    given = os.environ.get("CONTAINERS_CONF")
    if given:
        return given
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 1048576 if hard == resource.RLIM_INFINITY else hard
    path = folder / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )
    return str(path)


class Podman:
    """`podman ...` with the private containers.conf; every call has a timeout."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def run(
        self,
        *args: str,
        timeout: float = 120,
        check: bool = True,
        stdin: bytes | None = None,
        cwd: Path | None = None,
        program: Sequence[str] = ("podman",),
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*program, *args],
            env={**self.env, **(env or {})},
            cwd=cwd,
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join([*program, *args])} exited {done.returncode}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def exists(self, image: str) -> bool:
        return self.run("image", "exists", image, check=False).returncode == 0

    def build(self, tag: str, context: Path, *, dockerfile: Path | None = None) -> None:
        """`--layers=false`: no intermediate images are left behind; docker format keeps the
        HEALTHCHECK (the OCI format has none)."""
        args = ["build", "--layers=false", "--format", "docker", "-q", "-t", tag]
        args += ["--build-arg", f"BASE={BASE_IMAGE}"]
        if dockerfile is not None:
            args += ["-f", str(dockerfile)]
        self.run(*args, str(context), timeout=900)

    def logs(self, name: str) -> str:
        done = self.run("logs", name, check=False)
        return done.stdout + done.stderr


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 or one-line sources)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        for line in sources.read_text().splitlines():
            match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if match:
                return match.group(1)
    return DEFAULT_MIRROR


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """One process at a time makes a cached image (parallel runs wait, then find it)."""
    with open(Path(tempfile.gettempdir()) / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_base_image(podman: Podman) -> None:
    """The base image of CONTAINER.md, made with mmdebstrap once and kept by its tag."""
    if podman.exists(BASE_IMAGE):
        return
    mmdebstrap = require("mmdebstrap")
    with _locked("gateway-base-image"):
        if podman.exists(BASE_IMAGE):
            return
        with tempfile.TemporaryDirectory(prefix="gateway-base-") as folder:
            rootfs = Path(folder) / "rootfs"
            hook = (
                'cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"'
                ' 2>/dev/null; chroot "$1" update-ca-certificates'
            )
            podman.run(
                "--variant=minbase",
                "--include=python3,python3-venv,python3-pip,ca-certificates",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                f"--customize-hook={hook}",
                "bookworm",
                str(rootfs),
                debian_mirror(),
                program=(mmdebstrap,),
                timeout=900,
            )
            tar = subprocess.run(
                ["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True, timeout=300
            )
            done = subprocess.run(
                ["podman", "import", "--change", 'CMD ["/bin/bash"]', "-", BASE_IMAGE],
                input=tar.stdout,
                env=podman.env,
                capture_output=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr.decode()


def ensure_debian_image(podman: Podman, name: str) -> str:
    """deploy/compose/<name>.Dockerfile built on the base, kept under a tag naming its content
    (a changed Dockerfile is a new tag; the older tags are removed)."""
    dockerfile = COMPOSE_DIR / f"{name}.Dockerfile"
    digest = hashlib.sha256(dockerfile.read_bytes()).hexdigest()[:12]
    repository = f"localhost/gateway-{name}"
    tag = f"{repository}:bookworm-{digest}"
    if podman.exists(tag):
        return tag
    with _locked(f"gateway-{name}-image"):
        if not podman.exists(tag):
            old = podman.run(
                "images", "--format", "{{.Repository}}:{{.Tag}}", repository, check=False
            ).stdout.split()
            podman.build(tag, COMPOSE_DIR, dockerfile=dockerfile)
            for stale in old:
                podman.run("rmi", stale, check=False)
    return tag


def get(url: str, timeout: float = 2.0) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body); a refused or reset connection is status 0."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (http only)
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, dict(refused.headers), refused.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}, b""


def poll(url: str, *, until: float, accept: int = 200) -> float:
    """Seconds until ``url`` answered ``accept``; fails after ``until`` seconds."""
    start = time.monotonic()
    while time.monotonic() - start < until:
        if get(url, timeout=1.0)[0] == accept:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {accept} within {until} s")
