"""The public surface stays honest: every `__all__` names real members, once each.

(Their order is ruff's RUF022 rule, checked by `ruff check` in CI.)
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import gateway

MODULES = sorted(
    name
    for _, name, _ in pkgutil.walk_packages(gateway.__path__, "gateway.")
    # __main__ runs the CLI and gateway.asgi builds an app from the working directory on import.
    if name not in ("gateway.__main__", "gateway.asgi")
)


@pytest.mark.parametrize("name", ["gateway", *MODULES])
def test_all_names_real_members_once(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(getattr(module, "__all__", []))
    assert [member for member in exported if not hasattr(module, member)] == []
    assert len(exported) == len(set(exported))


def test_package_exports_the_pipeline() -> None:
    assert {"load", "compile_config", "Snapshot", "ConfigErrors"} <= set(gateway.__all__)
