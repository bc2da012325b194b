"""Every environment variable a shipped file reads is named in the README: an operator moving
from one of the original servers finds each setting there."""

from __future__ import annotations

import re

from tests.conftest import REPO

SHIPPED = [REPO / "gateway.yaml", *sorted((REPO / "routes.d").glob("*.yaml"))]
CODE = [*sorted((REPO / "gateway").rglob("*.py")), *sorted((REPO / "plugins").glob("*.py"))]
INTERPOLATED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
READ_IN_CODE = re.compile(
    r"""(?:environ(?:\.get)?\(|environ\[|getenv\()\s*["']([A-Z_][A-Z0-9_]*)["']"""
)


def variables() -> dict[str, str]:
    """Variable -> the first file that reads it."""
    found: dict[str, str] = {}
    for path in SHIPPED:
        for name in INTERPOLATED.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(REPO)))
    for path in CODE:
        for name in READ_IN_CODE.findall(path.read_text()):
            found.setdefault(name, str(path.relative_to(REPO)))
    return found


def test_the_shipped_files_read_variables() -> None:
    found = variables()
    assert {"GATEWAY_STORE_URL", "OPENAI_API_KEY", "GATEWAY_HOST"} <= set(found)


def test_every_variable_a_shipped_file_reads_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    missing = {
        name: where
        for name, where in variables().items()
        if not re.search(rf"`{name}`|\b{name}\b", readme)
    }
    assert missing == {}
