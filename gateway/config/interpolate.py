"""``${ENV}``, ``${ENV:-default}`` and ``${file:PATH}`` in configuration strings.

A default may itself hold expressions: ``${OAUTH_CLIENT_ID:-${OPENAI_CLIENT_ID:-}}`` reads
the first variable that is set, then falls back to the last default.

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

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Fields whose values are credentials; anything interpolated into them is redacted.
# (`oauth.users_from` holds passwords: `name:password:user_id` entries.)
_SECRET_PATH = re.compile(
    r"(token|secret|password|passwd|keys?|credential|value|jwt|users_from)", re.I
)


@dataclass(frozen=True)
class _Expression:
    """The inside of one `${...}` (its default may hold more expressions)."""

    body: str


def _split(text: str) -> list[str | _Expression]:
    """``text`` as literal pieces and expressions; `$${` is the literal `${`.

    Braces nest: in `${A:-${B:-x}}` the expression is `A:-${B:-x}`. An expression that is
    never closed is an error (it would be sent as written).
    """
    pieces: list[str | _Expression] = []
    literal = ""
    position = 0
    while (found := text.find("$", position)) != -1:
        literal += text[position:found]
        if text.startswith("$${", found):
            literal, position = literal + "${", found + 3
        elif text.startswith("${", found):
            end = _closing(text, found + 2)
            if end is None:
                raise ValueError(
                    f"unclosed `${{` in {text[:60]!r}: expected `${{NAME}}`, `${{NAME:-default}}`"
                    " or `${file:PATH}` (write `$${` for a literal `${`)"
                )
            if literal:
                pieces.append(literal)
            pieces.append(_Expression(text[found + 2 : end]))
            literal, position = "", end + 1
        else:
            literal, position = literal + "$", found + 1
    literal += text[position:]
    return [*pieces, literal] if literal else pieces


def _closing(text: str, position: int) -> int | None:
    """Index of the `}` closing the expression whose inside starts at ``position``."""
    depth = 1
    while position < len(text):
        if text.startswith("$${", position):
            position += 3
            continue
        if text.startswith("${", position):
            depth += 1
            position += 2
            continue
        if text[position] == "}":
            depth -= 1
            if depth == 0:
                return position
        position += 1
    return None


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
        pieces = _split(text)
        whole = len(pieces) == 1 and isinstance(pieces[0], _Expression)
        return self._join(pieces, path), whole

    def _join(self, pieces: list[str | _Expression], path: str) -> str:
        return "".join(
            piece if isinstance(piece, str) else self._replace(piece.body, path) for piece in pieces
        )

    def _replace(self, expression: str, path: str) -> str:
        value, from_outside = self._evaluate(expression, path)
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
        if not has_default:
            self.missing.append(MissingVariable(path, name))
            return "", False
        self.defaulted.append(MissingVariable(path, name))
        # The default may hold expressions itself: `${A:-${B:-x}}` falls back to B, then x.
        before = len(self.missing)
        value = self._join(_split(default), path)
        if len(self.missing) > before:  # nothing in the chain is set: name every variable
            inner = [item.variable for item in self.missing[before:]]
            del self.missing[before:]
            self.missing.append(MissingVariable(path, " or ".join([name, *inner])))
        return value, False
