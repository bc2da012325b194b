"""Access lines written without a LogRecord are the lines logging writes for the same call,
in text and in JSON: the same message (caller values made printable), fields and order."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from gateway import logs
from gateway.logs import REQUEST_ID, JsonFormatter, TurnBufferedHandler, log_access

ARGS = ("GET", "/items/\x1b[31mred\nnext", 200, 1.25, "listItems")
LINE = "%s %s %d %.1fms route=%s"
ACCESS: dict[str, Any] = {"method": "GET", "path": "/items", "status": 200, "duration_ms": 1.2}
TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


class Recorded:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Recorded]]:
    """configure_logging as `gateway serve` calls it, writing to a recorded stream; the
    root logger's handlers and level are put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging._srcfile

    def configure(fmt: str) -> Recorded:
        stream = Recorded()
        monkeypatch.setattr(logs.sys, "stderr", stream)
        logs.configure_logging("INFO", fmt)
        return stream

    yield configure
    root.handlers[:], logging._srcfile = saved[0], saved[2]
    root.setLevel(saved[1])
    logs._ACCESS_HANDLER = None


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_the_fast_line_is_the_logged_line(
    fmt: str, served: Callable[[str], Recorded]
) -> None:
    stream = served(fmt)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, TurnBufferedHandler)
    token = REQUEST_ID.set("req-1")
    try:
        log_access(LINE, ARGS, dict(ACCESS))  # the fast way
        logs.logger.info(LINE, *ARGS, extra={"access": dict(ACCESS)})  # logging's own
        await asyncio.sleep(0)
    finally:
        REQUEST_ID.reset(token)
    fast, logged = stream.text.splitlines()
    if fmt == "text":
        assert TIME.match(fast)
        assert TIME.sub("", fast) == TIME.sub("", logged)
        assert TIME.sub("", fast) == (
            "INFO gateway [req-1] GET /items/\\x1b[31mred\\nnext 200 1.2ms route=listItems"
        )
    else:
        fast_fields, logged_fields = json.loads(fast), json.loads(logged)
        assert fast_fields.pop("time")[:10] == logged_fields.pop("time")[:10]
        assert list(fast_fields.items()) == list(logged_fields.items())
        assert fast_fields["message"] == "GET /items/\\x1b[31mred\\nnext 200 1.2ms route=listItems"
    assert isinstance(handler.formatter, JsonFormatter) == (fmt == "json")


def test_without_the_served_handler_the_line_goes_through_logging(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway"):
        log_access(LINE, ARGS, dict(ACCESS))
    (record,) = [r for r in caplog.records if r.name == "gateway"]
    assert record.getMessage().startswith("GET /items/")
    assert record.access == ACCESS  # type: ignore[attr-defined]
