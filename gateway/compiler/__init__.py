"""Compile a loaded configuration into a Snapshot: ``compile_config(load(Path(".")))``."""

from __future__ import annotations

from gateway.compiler.build import DEFAULT_SERVED_AT, compile_config

__all__ = ["DEFAULT_SERVED_AT", "compile_config"]
