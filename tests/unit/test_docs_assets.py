"""The docs pages' pinned assets (gateway/serve/assets/): every copied file is the one
VERSIONS names (package, version, sha256), each package brings its license, the package
data ships them all, and nothing served asks another host for anything."""

from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

from gateway.serve.docs_pages import docs_assets
from tests.conftest import REPO

ASSETS = REPO / "gateway" / "serve" / "assets"
VENDORED = {"swagger-ui": "swagger-ui-dist", "redoc": "redoc"}
# Fetched at run time by a page, or a font: what an offline page must not name.
OFF_HOST = re.compile(
    rb"cdn\.redoc\.ly|cdn\.redocly\.com|fonts\.googleapis|fonts\.gstatic|unpkg\.com"
)


def versions() -> dict[str, tuple[str, str, str]]:
    """VERSIONS as file -> (package, version, sha256); `-` lines give the tarballs."""
    found = {}
    for line in (ASSETS / "VERSIONS").read_text().splitlines():
        if line and not line.startswith("#"):
            package, version, file, digest = line.split(" ")
            found[file if file != "-" else f"{package}.tgz"] = (package, version, digest)
    return found


def test_every_copied_file_is_the_pinned_one() -> None:
    listed = versions()
    copied = sorted(
        str(path.relative_to(ASSETS)) for folder in VENDORED for path in (ASSETS / folder).iterdir()
    )
    assert copied == sorted(file for file in listed if not file.endswith(".tgz"))
    for file in copied:
        package, version, digest = listed[file]
        assert package == VENDORED[file.split("/")[0]], file
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), file  # exact, never a range
        assert hashlib.sha256((ASSETS / file).read_bytes()).hexdigest() == digest, file
    for package in VENDORED.values():
        assert listed[f"{package}.tgz"][2].startswith("sha512-")
    assert {listed[file][:2] for file in copied} == {
        ("swagger-ui-dist", "5.35.0"),
        ("redoc", "2.5.4"),
    }


def test_each_package_brings_its_license() -> None:
    assert "Apache License" in (ASSETS / "swagger-ui" / "LICENSE").read_text()
    assert "MIT License" in (ASSETS / "redoc" / "LICENSE").read_text()
    for bundle in ("swagger-ui/swagger-ui-bundle.js", "redoc/redoc.standalone.js"):
        assert (ASSETS / f"{bundle}.LICENSE.txt").is_file()


def test_the_package_data_ships_every_asset() -> None:
    """Every file under assets/ matches a `[tool.setuptools.package-data]` pattern (the
    wheel, and so the container image, carries them)."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["gateway"]
    files = [
        str(path.relative_to(REPO / "gateway")) for path in ASSETS.rglob("*") if path.is_file()
    ]
    assert [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)] == []
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not [rule for rule in ignored if fnmatch.fnmatch("gateway/serve/assets/x.js", rule)]


def test_nothing_served_names_another_host() -> None:
    assets = docs_assets()
    assert sorted(assets.files) == [
        "docs.css",
        "redoc-init.js",
        "redoc.standalone.js",
        "swagger-init.js",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    ]
    for name, asset in assets.files.items():
        assert OFF_HOST.findall(asset.body) == [], name
    # The one change made to a copied file when it is served.
    original = (ASSETS / "redoc" / "redoc.standalone.js").read_bytes()
    assert OFF_HOST.findall(original) == [b"cdn.redoc.ly"]
    assert len(assets.files["redoc.standalone.js"].body) == len(original) - len(
        "https://cdn.redoc.ly/redoc/logo-mini.svg"
    )


def test_the_version_names_the_content() -> None:
    assets = docs_assets()
    assert re.fullmatch(r"[0-9a-f]{12}", assets.version)
    assert assets.base == f"/docs/assets/{assets.version}"
    for asset in assets.files.values():
        assert asset.etag == f'"{hashlib.sha256(asset.body).hexdigest()[:32]}"'


def test_the_refresh_script_pins_the_shipped_versions() -> None:
    script = (REPO / "tools" / "update_docs_assets.sh").read_text()
    assert "swagger=${1:-5.35.0}" in script
    assert "redoc=${2:-2.5.4}" in script
    assert Path(REPO / "tools" / "update_docs_assets.sh").stat().st_mode & 0o111
