"""The import graph of gateway/ has no circles and no upward imports.

Read from the source (ast), so a lazy import inside a function counts too. Each top-level
module or package of gateway/ is a unit; units sit in layers, and a module may import only
its own unit and units of lower layers. The serving side never imports the config model or
the compiler: it reads compiled snapshots.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "gateway"

LAYERS: list[set[str]] = [
    {"errors", "logs", "filters", "metrics", "lean", "sealed"},  # leaves
    {"plugin"},  # the plugin contract: what a plugin author sees
    {"config"},  # files -> typed config
    {"snapshot"},  # the compiled runtime types
    {"compiler", "store", "diff"},  # config -> snapshot; the store; snapshot diffs
    {"upstream"},  # pooled clients, outbound auth flows, upstream OAuth tokens
    {"host"},  # the plugin host: the contract implemented
    {"queue"},  # the webhook queue, its worker and the scheduler
    {"backend", "oauth"},  # store + queue opened together; the authorization server
    {"reload"},  # load -> compile -> swap after start
    {"serve"},  # the ASGI app
    {"boot"},  # the one boot path
    {"tracing"},  # OpenTelemetry around a booted app (imported only when it is on)
    {"run", "asgi", "workers"},  # `gateway serve`, the ASGI app, `serve --workers N`
    {"cli"},  # the command line
    {"__main__", "__init__"},  # `python -m gateway`, the package's public names
]
SERVING_SIDE = {"snapshot", "store", "upstream", "host", "queue", "backend", "oauth", "serve"}
BUILD_SIDE = {"config", "compiler"}


def module_name(path: Path) -> str:
    parts = ["gateway", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(name: str) -> int:
    found = [index for index, units in enumerate(LAYERS) if name in units]
    assert found, f"unit `{name}` is in no layer: add it to LAYERS"
    return found[0]


def imports(module: str) -> Iterator[str]:
    """The gateway modules ``module`` imports (a package's __init__ for `from pkg import x`
    unless x is a submodule)."""
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}: the gateway uses absolute imports only"
            base = node.module or ""
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("gateway") and target != module:
                yield target


GRAPH = {module: sorted(set(imports(module))) for module in MODULES}


def test_every_unit_has_a_layer() -> None:
    assert sorted({unit(module) for module in MODULES} - set().union(*LAYERS)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_or_sideways_import(module: str) -> None:
    mine = unit(module)
    wrong = [
        target
        for target in GRAPH[module]
        if unit(target) != mine and layer(unit(target)) >= layer(mine)
    ]
    assert wrong == [], f"{module} imports from its own layer or above"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if unit(m) in SERVING_SIDE))
def test_the_serving_side_never_imports_config_or_compiler(module: str) -> None:
    assert [target for target in GRAPH[module] if unit(target) in BUILD_SIDE] == []


def test_no_import_circle() -> None:
    """Depth-first search for a back edge; the message names the whole circle."""
    state: dict[str, str] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in GRAPH[module]:
            if state.get(target) == "open":
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module)
    assert circles == []


def test_the_check_sees_imports() -> None:
    """The graph is real: known edges are found (a broken parser would pass everything)."""
    assert "gateway.snapshot" in GRAPH["gateway.serve.dispatch"]
    assert "gateway.compiler.build" in GRAPH["gateway.compiler"]
    assert "gateway.plugin" in GRAPH["gateway.snapshot.plugins"]
