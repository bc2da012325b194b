"""The memory store's webhook queue is bounded: beyond `queue.memory_limit` unfinished
events a webhook is answered 503 with Retry-After, queues nothing, and is taken again once
there is room."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import GatewayFactory, write_config

GATEWAY = "queue: {memory_limit: 2, consume: false}\n"
HOOKS = """\
webhooks:
  - {id: parked, path: /hooks/parked, handler: parked:keep}
"""
PLUGIN = """\
async def keep(ctx, request):
    return None
"""


async def test_a_full_memory_queue_answers_503_and_queues_nothing(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    folder = write_config(tmp_path, GATEWAY, {"hooks": HOOKS})
    (folder / "plugins").mkdir()
    (folder / "plugins" / "parked.py").write_text(PLUGIN)
    async with gateway(folder, {}) as gw:
        statuses = []
        for n in range(3):
            async with gw.http.post(f"{gw.url}/hooks/parked", json={"n": n}) as response:
                statuses.append(response.status)
                if response.status == 503:
                    assert response.headers["Retry-After"] == "5"
                    assert (await response.json())["detail"] == (
                        "the event queue is full; retry later"
                    )
        assert statuses == [200, 200, 503]
        queue = gw.state.backend.queue
        assert await queue.pending() == 2
        # Room again once the held events are handled: the sender's retry is taken.
        for delivery in await queue.read(2, block=0.1):
            await queue.ack(delivery)
        async with gw.http.post(f"{gw.url}/hooks/parked", json={"n": 3}) as response:
            assert response.status == 200
