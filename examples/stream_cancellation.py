"""Stream cancellation: stop a stream from another task; the partial text is kept."""

import anyio
from _run import run, target

from ailib_anyio import (
    CancellableStream,
    CancelReason,
    ContentDelta,
    create_cancel_pair,
    open_client,
)
from ailib_anyio.testing import ScriptedReply


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        if where.mock is not None:  # a slow stream
            where.mock.enqueue(
                ScriptedReply(content="word " * 200, chunk_size=5, delay_between_chunks=0.01)
            )
        token, handle = create_cancel_pair()
        async with anyio.create_task_group() as tg:

            async def stop_soon() -> None:
                await anyio.sleep(0.2)
                handle.cancel(CancelReason.USER_REQUEST)

            tg.start_soon(stop_soon)
            stream_request = client.chat().user("Write a long story").stream()
            async with CancellableStream(stream_request, token) as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        print(event.text, end="", flush=True)
        print()
        print("cancelled:", stream.cancel_reason)
        print("kept:", len(stream.response.content or ""), "characters")


run(main)
