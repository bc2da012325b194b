"""A webhook handler that does nothing: the benchmark measures receiving and queueing."""

from gateway.plugin import Context, PluginRequest


async def accept(ctx: Context, request: PluginRequest) -> None:
    return None
