"""Logging with the request id on every line.

The id lives in a context variable set by the serving layer for the duration of a request,
so plugin and library log lines carry it too without being handed it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re
import sys
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LOG_FORMATS",
    "REQUEST_ID",
    "UPSTREAM_TIMING",
    "UpstreamTiming",
    "configure_logging",
    "logger",
    "printable",
]

LOG_FORMATS = ("text", "json")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
logger = logging.getLogger("gateway")


@dataclass(slots=True)
class UpstreamTiming:
    """What a request's upstream calls took, for its access line: filled in by the
    upstream caller (gateway.upstream.call) through ``UPSTREAM_TIMING``."""

    calls: int = 0
    status: int | None = None
    """The last attempt's status (None: it got no answer)."""
    seconds: float = 0.0
    """All attempts together."""

    def add(self, status: int | None, seconds: float) -> None:
        self.calls += 1
        self.status = status
        self.seconds += seconds


UPSTREAM_TIMING: contextvars.ContextVar[UpstreamTiming | None] = contextvars.ContextVar(
    "upstream_timing", default=None
)
"""Set by the serving layer around a route when access lines are on; None otherwise."""


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with line breaks and control characters escaped (`\\n`, `\\x1b`): a value
    from a caller (a path with `%0A`) cannot forge a log line or drive a terminal."""
    return _CONTROL.sub(lambda found: _ESCAPES.get(found[0], f"\\x{ord(found[0]):02x}"), text)


class _RequestIdFilter(logging.Filter):
    """Adds the request id; escapes control characters in the values a line is built from
    (the format string is ours, the values may come from callers and upstreams)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                printable(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, and an access
    line's fields (``extra={"access": {...}}``: method, path, status, duration_ms, route or
    webhook, upstream_status, upstream_duration_ms, client_ip). Values are JSON-escaped, so
    no value can forge a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            line.update(access)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """``fmt``: `text` (one readable line) or `json` (one object per line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
