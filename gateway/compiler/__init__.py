"""Compile a loaded configuration into a Snapshot: ``compile_config(load(Path(".")))``."""

from __future__ import annotations

from gateway.compiler.build import compile_config

__all__ = ["compile_config"]
