"""Multimodal: text and an image (by URL, or inline base64) in one user message."""

import base64

from _run import run, target

from ailib_anyio import ContentBlock, Message, open_client

# a 1x1 transparent PNG
PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


async def main() -> None:
    async with target() as where, open_client("openai/gpt-4o", **where.settings) as client:
        by_url = Message.user(
            [
                ContentBlock.from_text("What's in this image?"),
                ContentBlock.image_url("https://example.com/image.jpg"),
            ]
        )
        reply = await client.chat().messages([by_url]).execute()
        print("by url:", reply.content)
        inline = Message.user(
            [
                ContentBlock.from_text("And in this one?"),
                ContentBlock.image_base64(base64.b64encode(PIXEL).decode(), "image/png"),
            ]
        )
        reply = await client.chat().messages([inline]).execute()
        print("inline:", reply.content)
        if where.mock is not None:
            parts = where.mock.requests[0].json["messages"][0]["content"]
            print("parts sent:", [part["type"] for part in parts])


run(main)
