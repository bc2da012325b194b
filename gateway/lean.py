"""Keep two libraries from importing OpenTelemetry for nothing.

With the `otel` extra installed, Litestar tries its OpenTelemetry plugin whenever an app is
built, and redis-py 8 imports OpenTelemetry's metrics API and SDK for its optional metrics:
about 95 modules and 16 MiB per process, tracing on or off, and neither is used
(gateway.tracing sets up its own middleware and exporter; the gateway's metrics are
Prometheus'). Each attempt is guarded by ``except ImportError`` in the library, so marking
those modules as absent before anything imports them makes both skip cleanly. OpenTelemetry's
trace API and SDK stay importable (gateway.tracing, plugins' own spans); its metrics do not.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

__all__ = [
    "UNUSED_MODULES",
    "allow_opentelemetry",
    "litestar_without_pydantic",
    "skip_unused_opentelemetry",
]

UNUSED_MODULES = (
    "litestar.plugins.opentelemetry",
    "opentelemetry.metrics",
    "opentelemetry.sdk.metrics",
)


def skip_unused_opentelemetry() -> None:
    """Before Litestar or redis-py is imported; a module already imported is left alone."""
    for name in UNUSED_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"


def allow_opentelemetry() -> None:
    """Before gateway.tracing imports the OTLP exporter, which records its own metrics: the
    modules marked absent can be imported again (the libraries above have made their choice)."""
    for name in UNUSED_MODULES:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


@contextlib.contextmanager
def litestar_without_pydantic() -> Iterator[None]:
    """While a Litestar app is built: pydantic looks absent, so Litestar adds no pydantic
    plugins (the gateway's handlers use msgspec). Without this, the MCP SDK's dependency on
    pydantic makes every app import Litestar's pydantic plugins: about 100 ms at start and
    their memory, MCP served or not. pydantic stays importable afterwards (the SDK loads it
    on the first MCP request); an already imported pydantic is left alone."""
    hidden = "pydantic" not in sys.modules
    if hidden:
        sys.modules["pydantic"] = None  # type: ignore[assignment]  # None: "not installed"
    try:
        yield
    finally:
        if hidden and sys.modules.get("pydantic", 0) is None:
            del sys.modules["pydantic"]
