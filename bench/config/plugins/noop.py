"""A webhook handler that does nothing: the benchmark measures receiving and queueing."""


async def accept(ctx, request):  # type: ignore[no-untyped-def]
    return None
