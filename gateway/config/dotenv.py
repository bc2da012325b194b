"""The config folder's ``.env``: settings the way the original servers read them.

``environment(read_dotenv(folder))`` is the real environment over the folder's `.env`: a
variable the environment sets (even to ``""``) wins over the file. The result is what
``load(folder, environ=...)`` interpolates, so a value from `.env` is a secret exactly where
an environment value would be. The file is python-dotenv's format (``KEY=value``,
``export KEY=value``, quotes, ``# comments``, ``${OTHER}`` expanded from the file's earlier
lines and the environment). A line that is not a binding is skipped with a warning naming
``<file>:<line>``, never the line's text (it may hold a secret).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv.parser import parse_stream
from dotenv.variables import parse_variables

__all__ = ["DOTENV_FILE", "DotEnv", "environment", "read_dotenv"]

DOTENV_FILE = ".env"


@dataclass(frozen=True)
class DotEnv:
    """What one `.env` file set: ``read_dotenv(Path("."))``."""

    path: Path
    values: Mapping[str, str]
    warnings: tuple[str, ...] = ()
    """One line per line that was skipped, each ``<file>:<line>: ...``."""

    def overridden(self, environ: Mapping[str, str]) -> list[str]:
        """The names ``environ`` sets too (its values win)."""
        return sorted(name for name in self.values if name in environ)


def read_dotenv(config_dir: Path, environ: Mapping[str, str] | None = None) -> DotEnv | None:
    """The folder's `.env`, or None when there is none. ``environ`` (default: the process
    environment) is what ``${OTHER}`` in a value may expand from."""
    path = config_dir / DOTENV_FILE
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = "it is not UTF-8" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        return DotEnv(path, {}, (f"{path}: cannot be read ({reason}); ignored",))
    env = os.environ if environ is None else environ
    values: dict[str, str] = {}
    warnings: list[str] = []
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            warnings.append(
                f"{path}:{binding.original.line}: not a `KEY=value` line; ignored"
                " (quote a value with spaces or `#`, close every quote)"
            )
        elif binding.key is not None and binding.value is not None:
            # As python-dotenv does: earlier lines of the file, the environment over them.
            known: dict[str, str | None] = {**values, **env}
            values[binding.key] = "".join(
                atom.resolve(known) for atom in parse_variables(binding.value)
            )
    return DotEnv(path, values, tuple(warnings))


def environment(dotenv: DotEnv | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: the process environment) over the `.env` values."""
    env = os.environ if environ is None else environ
    if dotenv is None:
        return dict(env)
    return {**dotenv.values, **env}
