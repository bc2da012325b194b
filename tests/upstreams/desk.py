"""The support desk's two upstreams together: a loopback Intercom and a loopback GPT Trainer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tests.upstreams.gpt_trainer import TrainerState, gpt_trainer_app
from tests.upstreams.intercom import IntercomState, intercom_app
from tests.upstreams.server import Upstream, serve_upstream


@asynccontextmanager
async def serve_desk(
    intercom: IntercomState, trainer: TrainerState
) -> AsyncIterator[tuple[Upstream, Upstream]]:
    """``(intercom, gpt_trainer)`` servers for these states, on free loopback ports."""
    intercom_server, intercom_recorder = intercom_app(intercom)
    trainer_server, trainer_recorder = gpt_trainer_app(trainer)
    async with (
        serve_upstream(intercom_server, intercom_recorder) as ic,
        serve_upstream(trainer_server, trainer_recorder) as gt,
    ):
        yield ic, gt
