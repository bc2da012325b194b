"""Log lines logged on the event loop are written once per loop turn; a warning, a line
logged off the loop, and logging's flush write at once, keeping the order."""

from __future__ import annotations

import asyncio
import logging

from gateway.logs import TurnBufferedHandler


class Recorded:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def logger_to(stream: Recorded) -> logging.Logger:
    handler = TurnBufferedHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    found = logging.getLogger(f"test-turn-{id(stream)}")
    found.propagate = False
    found.handlers[:] = [handler]
    found.setLevel(logging.INFO)
    return found


async def test_lines_of_one_turn_are_one_write() -> None:
    stream = Recorded()
    log = logger_to(stream)
    log.info("one")
    log.info("two")
    assert stream.writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert stream.writes == ["INFO one\nINFO two\n"]
    log.info("three")
    log.warning("careful")  # at once, after what was pending
    assert stream.writes == ["INFO one\nINFO two\n", "INFO three\nWARNING careful\n"]
    await asyncio.sleep(0)
    assert len(stream.writes) == 2


async def test_flush_writes_what_is_pending() -> None:
    stream = Recorded()
    log = logger_to(stream)
    log.info("pending")
    for handler in log.handlers:
        handler.flush()
    assert stream.writes == ["INFO pending\n"]


def test_off_the_loop_a_line_is_written_at_once() -> None:
    stream = Recorded()
    logger_to(stream).info("now")
    assert stream.writes == ["INFO now\n"]
