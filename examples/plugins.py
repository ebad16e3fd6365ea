"""Plugins and hooks: code that runs before each request, after each response, on errors."""

from _run import run, target

from ailib_anyio import open_client
from ailib_anyio.plugins import HookManager, HookType, Plugin, PluginContext


class Audit(Plugin):
    name = "audit"

    async def on_before_request(self, ctx: PluginContext) -> None:
        print("asking", ctx.model)

    async def on_after_response(self, ctx: PluginContext) -> None:
        tokens = ctx.response.usage.output_tokens if ctx.response else "(a stream)"
        print("answered with", tokens, "tokens")


async def main() -> None:
    hooks = HookManager()
    hooks.register(HookType.ON_ERROR, "alert", lambda ctx: print("failed:", ctx.error))
    async with (
        target() as where,
        open_client("openai/gpt-4o", plugins=[Audit(), hooks], **where.settings) as client,
    ):
        reply = await client.chat().user("hi").execute()
        print("reply:", reply.content)


run(main)
