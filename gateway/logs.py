"""Logging with the request id on every line.

The id lives in a context variable set by the serving layer for the duration of a request,
so plugin and library log lines carry it too without being handed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = [
    "LOG_FORMATS",
    "REQUEST_ID",
    "UPSTREAM_TIMING",
    "UpstreamTiming",
    "configure_logging",
    "log_access",
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


_encode_line = msgspec.json.Encoder(enc_hook=str).encode
"""A JSON line: compact, UTF-8 as it is, anything else written as its str()."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, and an access
    line's fields (``extra={"access": {...}}``: method, path, status, duration_ms, route or
    webhook, upstream_status, upstream_duration_ms, client_ip). Values are JSON-escaped, so
    no value can forge a line."""

    def access_line(self, created: float, message: str, access: dict[str, Any]) -> str:
        """An access line's JSON, as :meth:`format` writes it for its record."""
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": "INFO",
            "logger": "gateway",
            "request_id": REQUEST_ID.get(),
            "message": message,
            **access,
        }
        return _encode_line(line).decode()

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
        return _encode_line(line).decode()


class _TextFormatter(logging.Formatter):
    """The text line, its time written once per second (strftime is a third of a line)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        """`%(asctime)s` of a record created at ``created`` (as logging writes it)."""
        second = int(created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return f"{self._second[1]},{int((created - second) * 1000):03d}"


class TurnBufferedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Lines logged on the event loop are written once per loop turn: a burst of access
    lines under load is one write, not one each. A warning or worse, and anything logged
    off the loop, is written at once (after what is pending, so the order is kept); what
    is pending at exit is written by logging's own shutdown (flush)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        loop = None
        if record.levelno < logging.WARNING:
            with contextlib.suppress(RuntimeError):  # off the loop: at once
                loop = asyncio.get_running_loop()
        if loop is None:
            self._pending.append(line)
            self._write()
            return
        self._pending.append(line)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_turn)

    def add_access(self, message: str, access: dict[str, Any]) -> bool:
        """An INFO line of the `gateway` logger, formatted here without a LogRecord (the
        same text or JSON as through logging, at a fraction of the cost); False when this
        handler's format is not one of ours, or when called off the loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        created = time.time()
        formatter = self.formatter
        if isinstance(formatter, _TextFormatter):
            stamp = formatter.time_text(created)
            line = f"{stamp} INFO gateway [{REQUEST_ID.get()}] {message}{self.terminator}"
        elif isinstance(formatter, JsonFormatter):
            line = formatter.access_line(created, message, access) + self.terminator
        else:
            return False
        self.acquire()
        try:
            self._pending.append(line)
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush_turn)
        finally:
            self.release()
        return True

    def _flush_turn(self) -> None:
        self.acquire()
        try:
            self._scheduled = False
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if not self._pending:
            return
        text, self._pending = "".join(self._pending), []
        with contextlib.suppress(Exception):  # a stream closed at exit: nothing to do
            self.stream.write(text)
            self.stream.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()


_ACCESS_HANDLER: TurnBufferedHandler | None = None
"""The handler `gateway serve` configured (configure_logging); None elsewhere (tests)."""


def log_access(line: str, args: tuple[Any, ...], access: dict[str, Any]) -> None:
    """An access line: ``line % args`` (string args made printable), with its ``access``
    fields in JSON. Straight into the served process's handler when it is the only one and
    the line's level is on; through ``logger.info`` otherwise (another setup, tests)."""
    handler = _ACCESS_HANDLER
    if (
        handler is not None
        and logger.isEnabledFor(logging.INFO)
        and logging.getLogger().handlers == [handler]
        and not logger.handlers
    ):
        message = line % tuple(printable(arg) if isinstance(arg, str) else arg for arg in args)
        if handler.add_access(message, access):
            return
    logger.info(line, *args, extra={"access": access})


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """``fmt``: `text` (one readable line) or `json` (one object per line)."""
    # What no line here shows is not collected for every record (logging's documented
    # optimizations): the caller's file and line (a stack walk), thread and process names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = TurnBufferedHandler(sys.stderr)
    global _ACCESS_HANDLER
    _ACCESS_HANDLER = handler
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else _TextFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
