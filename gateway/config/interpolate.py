"""``${ENV}``, ``${ENV:-default}`` and ``${file:PATH}`` in configuration strings.

An unset variable without a default is not an error: the value becomes ``""`` and the
variable is reported as missing, so the compiler can mark what uses it unconfigured.
Values that come from the environment or a file are remembered as secrets when they sit in
a secret-looking place, so that logs, errors and served documents can redact them.
``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Interpolator", "MissingVariable", "is_secret_path"]

_EXPRESSION = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# `${` with no `}` after it (and not the `$${` escape): it would be sent as written.
_UNCLOSED = re.compile(r"(?<!\$)\$\{(?![^}]*\})")
# Fields whose values are credentials; anything interpolated into them is redacted.
_SECRET_PATH = re.compile(r"(token|secret|password|passwd|keys?|credential|value|jwt)", re.I)


def is_secret_path(path: str) -> bool:
    last = path.rsplit(".", 1)[-1]
    return bool(_SECRET_PATH.search(last)) or ".auth" in path


@dataclass(frozen=True)
class MissingVariable:
    """A variable a value needs but the environment does not set."""

    path: str
    variable: str


@dataclass
class Interpolator:
    """Replaces expressions in one file's strings; collects what is missing and secret.

    ``Interpolator(os.environ, base_dir).expand("${TOKEN}", "$.upstream.auth.token")``
    """

    environ: Mapping[str, str]
    base_dir: Path
    missing: list[MissingVariable] = field(default_factory=list)
    defaulted: list[MissingVariable] = field(default_factory=list)
    """Variables that were unset and took their `:-default` (a check an empty default turns
    off can name what to set)."""
    secrets: set[str] = field(default_factory=set)
    outside: set[str] = field(default_factory=set)
    """Every value taken from the environment or a file, wherever it went: config errors
    quote none of them (a secret pasted into the wrong field must not be shown)."""

    @classmethod
    def from_environment(cls, base_dir: Path) -> Interpolator:
        return cls(dict(os.environ), base_dir)

    def expand(self, text: str, path: str) -> tuple[str, bool]:
        """Return the expanded text and whether it was exactly one expression."""
        if "${" in text and _UNCLOSED.search(text.replace("$${", "")):
            raise ValueError(
                f"unclosed `${{` in {text[:60]!r}: expected `${{NAME}}`, `${{NAME:-default}}`"
                " or `${file:PATH}` (write `$${` for a literal `${`)"
            )
        matches = list(_EXPRESSION.finditer(text))
        if not matches:
            return text, False
        whole = (
            len(matches) == 1
            and matches[0].group(0) != "$${"
            and matches[0].span()
            == (
                0,
                len(text),
            )
        )
        expanded = _EXPRESSION.sub(lambda match: self._replace(match, path), text)
        return expanded, whole

    def _replace(self, match: re.Match[str], path: str) -> str:
        if match.group(0) == "$${":
            return "${"
        value, from_outside = self._evaluate(match.group(1), path)
        if value and from_outside:
            self.outside.add(value)
            if is_secret_path(path):
                self.secrets.add(value)
        return value

    def _evaluate(self, expression: str, path: str) -> tuple[str, bool]:
        """The value, and whether it came from the environment or a file (not a default)."""
        if expression.startswith("file:"):
            target = Path(expression[len("file:") :].strip())
            if not target.is_absolute():
                target = self.base_dir / target
            try:
                return target.read_text(encoding="utf-8").rstrip("\r\n"), True
            except OSError:
                self.missing.append(MissingVariable(path, f"file:{target}"))
                return "", False
        name, has_default, default = expression.partition(":-")
        name = name.strip()
        if not _NAME.match(name):
            raise ValueError(
                f"invalid expression `${{{expression}}}`: expected `${{NAME}}`, "
                "`${NAME:-default}` or `${file:PATH}`"
            )
        value = self.environ.get(name, "")
        if value:
            return value, True
        if has_default:
            self.defaulted.append(MissingVariable(path, name))
            return default, False
        self.missing.append(MissingVariable(path, name))
        return "", False
