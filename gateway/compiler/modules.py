"""Import plugin modules from plugins/, one version per content, with their helper modules.

A module is imported under a name derived from its content hash
(``gateway_plugins.<name>_<digest>``), so a reload re-imports only what changed and an
unchanged plugin keeps its module object. ``import helper`` inside a plugin finds
``plugins/helper.py`` next to it (imported the same way); a plugin is imported again when a
helper it imported changed. Only the two newest versions of each module stay in
``sys.modules`` (the serving one and the one being compiled): editing a plugin all day does
not grow the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from gateway.config.load import PLUGINS_DIR

__all__ = ["KEPT_VERSIONS", "import_plugin", "loaded_versions"]

KEPT_VERSIONS = 2
_PACKAGE = "gateway_plugins"


@dataclass
class _Version:
    module: ModuleType
    digest: str
    helpers: dict[str, str] = field(default_factory=dict)
    """Helper module name -> its digest when this version imported it."""


_VERSIONS: dict[tuple[str, str], list[_Version]] = {}  # (plugins dir, name) -> oldest first
_LOCK = threading.RLock()  # compiles run in worker threads (reloads) and may overlap


def loaded_versions(config_dir: Path, module_name: str) -> list[str]:
    """The ``sys.modules`` names of the versions of ``plugins/<module_name>.py`` loaded."""
    path = str(config_dir / PLUGINS_DIR / f"{module_name}.py")
    prefix = f"{_PACKAGE}.{module_name}_"
    return sorted(
        name
        for name, module in list(sys.modules.items())
        if name.startswith(prefix) and getattr(module, "__file__", None) == path
    )


def import_plugin(config_dir: Path, module_name: str) -> ModuleType | str:
    """The module of ``plugins/<module_name>.py``, or the message saying why it fails."""
    with _LOCK:
        return _import(config_dir / PLUGINS_DIR, module_name, set())


def _digest(folder: Path, module_name: str) -> str | None:
    try:
        return hashlib.sha256((folder / f"{module_name}.py").read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _import(folder: Path, module_name: str, importing: set[str]) -> ModuleType | str:
    digest = _digest(folder, module_name)
    if digest is None:
        return f"plugin module `{module_name}` not found: expected {PLUGINS_DIR}/{module_name}.py"
    key = (str(folder.resolve()), module_name)
    for version in _VERSIONS.get(key, []):
        if version.digest == digest and all(
            _digest(folder, name) == seen for name, seen in version.helpers.items()
        ):
            return version.module
    unique = f"{_PACKAGE}.{module_name}_{digest}"
    spec = importlib.util.spec_from_file_location(unique, folder / f"{module_name}.py")
    if spec is None or spec.loader is None:
        return f"plugin module `{module_name}` cannot be imported from {PLUGINS_DIR}/"
    module = importlib.util.module_from_spec(spec)
    version = _Version(module, digest)
    sys.modules[unique] = module  # dataclasses and msgspec look their module up here
    try:
        with _siblings(folder, version, importing | {module_name}):
            spec.loader.exec_module(module)
    except Exception as exc:  # any import failure refuses the configuration
        del sys.modules[unique]
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        line = getattr(exc, "lineno", None) or (frame.lineno if frame else "?")
        where = f"{PLUGINS_DIR}/{module_name}.py:{line}"
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        return f"plugin `{module_name}` failed to import: {type(exc).__name__}: {reason} ({where})"
    versions = _VERSIONS.setdefault(key, [])
    versions.append(version)
    for old in versions[:-KEPT_VERSIONS]:
        sys.modules.pop(old.module.__name__, None)
    del versions[:-KEPT_VERSIONS]
    return module


@contextlib.contextmanager
def _siblings(folder: Path, version: _Version, importing: set[str]) -> Iterator[None]:
    """While a plugin runs its imports, `import x` finds plugins/x.py (versioned)."""
    finder = _SiblingFinder(folder, version, importing)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in finder.bound:  # the plain names were only for this import
            sys.modules.pop(name, None)


class _SiblingFinder(importlib.abc.MetaPathFinder):
    def __init__(self, folder: Path, version: _Version, importing: set[str]) -> None:
        self.folder = folder
        self.version = version
        self.importing = importing
        self.bound: list[str] = []

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or "." in fullname or fullname in self.importing:
            return None
        if not (self.folder / f"{fullname}.py").is_file():
            return None
        helper = _import(self.folder, fullname, self.importing)
        if isinstance(helper, str):
            raise ImportError(helper)
        self.version.helpers[fullname] = _digest(self.folder, fullname) or ""
        self.bound.append(fullname)
        return importlib.machinery.ModuleSpec(fullname, _Bound(helper))


class _Bound(importlib.abc.Loader):
    """Hands out an already imported module under the plain name being imported."""

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        return None
