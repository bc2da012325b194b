"""The heap is frozen after start-up and after each reload (full collections skip what
lives as long as the config), and a reload still frees the snapshot it replaced, cycles
included, although they were frozen with it."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from tests.conftest import run_gateway, write_config

ROUTES = """\
routes:
  - {id: hello, path: /hello, auth: none, static: true, response: {body: '{{ {"n": %d} }}'}}
"""


class Cycle:
    """An object only a reference cycle keeps alive once its snapshot is gone: freed by
    the collector alone, which never frees frozen objects."""

    def __init__(self) -> None:
        self.me = self


async def test_a_reload_refreezes_and_frees_the_replaced_snapshot(tmp_path: Path) -> None:
    write_config(tmp_path, "", {"a": ROUTES % 1})
    async with run_gateway(tmp_path, {}) as gw:
        assert gc.get_freeze_count() > 0
        reloader = gw.state.reloader
        assert reloader is not None
        probe: weakref.ref[Cycle] | None = None
        for number in (2, 3, 4):
            (tmp_path / "routes.d" / "a.yaml").write_text(ROUTES % number)
            if number == 3:
                # Held by the snapshot serving now: frozen with it by this reload, garbage
                # once it is replaced.
                cycle = Cycle()
                probe = weakref.ref(cycle)
                object.__setattr__(gw.state.switch.current, "probe", cycle)
                del cycle
            assert (await reloader.reload("test")).outcome.value == "reloaded"
            async with gw.http.get(f"{gw.url}/hello") as r:
                assert await r.json() == {"n": number}
            assert gc.get_freeze_count() > 0
        assert probe is not None
        assert probe() is None  # the next reload lifted the freeze and collected it
