"""Logging with the request id on every line.

The id lives in a context variable set by the serving layer for the duration of a request,
so plugin and library log lines carry it too without being handed it.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys

__all__ = ["REQUEST_ID", "configure_logging", "logger", "printable"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
logger = logging.getLogger("gateway")


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


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
