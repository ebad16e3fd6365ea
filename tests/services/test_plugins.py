"""Plugins (issue 13, item 6): hooks on the middleware seam, against the loopback mock
provider on asyncio and trio; a plugin that raises is named and leaves nothing behind."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import pytest

from ailib_anyio import (
    ChatRequest,
    ContentDelta,
    MiddlewareError,
    ServerError,
    open_client,
)
from ailib_anyio.plugins import (
    HookManager,
    HookType,
    Plugin,
    PluginContext,
    PluginRegistry,
    discover_plugins,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

KEY = "sk-plugins-test-key"


def client(mock: MockProvider, **settings: Any) -> Any:
    return open_client("openai/gpt-4o", api_key=KEY, base_url=mock.openai_base_url, **settings)


class Recorder(Plugin):
    """Records every hook it sees."""

    def __init__(self, label: str = "recorder") -> None:
        self.label = label
        self.seen: list[tuple[str, Any]] = []

    def name(self) -> str:  # the reference library's spelling: a method
        return self.label

    async def on_before_request(self, ctx: PluginContext) -> None:
        self.seen.append(("before", ctx.model))
        ctx.metadata.setdefault("order", []).append(self.label)

    async def on_after_response(self, ctx: PluginContext) -> None:
        self.seen.append(("after", ctx.response.content if ctx.response else None))

    async def on_error(self, ctx: PluginContext) -> None:
        self.seen.append(("error", type(ctx.error).__name__))

    def on_stream_event(self, ctx: PluginContext) -> None:
        if isinstance(ctx.event, ContentDelta):
            self.seen.append(("event", ctx.event.text))


async def test_hooks_run_around_a_call(mock: MockProvider) -> None:
    recorder = Recorder()
    mock.enqueue(ScriptedReply(content="hello"))
    async with client(mock, plugins=[recorder]) as c:
        assert (await c.chat().user("hi").execute()).content == "hello"
    assert recorder.seen == [("before", "gpt-4o"), ("after", "hello")]


async def test_stream_events_reach_the_plugin(mock: MockProvider) -> None:
    recorder = Recorder()
    mock.enqueue(ScriptedReply(content="abc", chunk_size=1))
    async with client(mock, plugins=[recorder]) as c, c.chat().user("hi").stream() as stream:
        text = "".join([e.text async for e in stream if isinstance(e, ContentDelta)])
    assert text == "abc"
    assert recorder.seen[:2] == [("before", "gpt-4o"), ("after", None)]
    assert [v for k, v in recorder.seen if k == "event"] == ["a", "b", "c"]


async def test_errors_reach_on_error_and_propagate_unchanged(mock: MockProvider) -> None:
    recorder = Recorder()
    mock.enqueue(Reply.error(500, "boom", type="server_error"))
    async with client(mock, plugins=[recorder], max_retries=0) as c:
        with pytest.raises(ServerError):
            await c.chat().user("hi").execute()
    assert recorder.seen == [("before", "gpt-4o"), ("error", "ServerError")]


class Rewriter(Plugin):
    name = "rewriter"

    async def on_before_request(self, ctx: PluginContext) -> None:
        assert isinstance(ctx.request, ChatRequest)
        ctx.request = attrs.evolve(ctx.request, temperature=0.25)

    async def on_after_response(self, ctx: PluginContext) -> None:
        assert ctx.response is not None
        ctx.response = attrs.evolve(ctx.response, content=ctx.response.content.upper())


async def test_a_plugin_replaces_the_request_and_the_response(mock: MockProvider) -> None:
    mock.enqueue(ScriptedReply(content="quiet"))
    async with client(mock, plugins=[Rewriter()]) as c:
        reply = await c.chat().user("hi").execute()
    assert reply.content == "QUIET"
    assert mock.requests[0].json["temperature"] == 0.25


class Broken(Plugin):
    name = "broken"

    def __init__(self, where: str) -> None:
        self.where = where

    async def on_before_request(self, ctx: PluginContext) -> None:
        if self.where == "before":
            raise ValueError("before failed")

    async def on_after_response(self, ctx: PluginContext) -> None:
        if self.where == "after":
            raise ValueError("after failed")

    def on_stream_event(self, ctx: PluginContext) -> None:
        if self.where == "event":
            raise ValueError("event failed")


@pytest.mark.parametrize("where", ["before", "after"])
async def test_a_raising_plugin_is_named_and_leaves_nothing_behind(
    mock: MockProvider, where: str
) -> None:
    mock.enqueue(ScriptedReply(content="x"))
    async with client(mock, plugins=[Broken(where)]) as c:
        with pytest.raises(MiddlewareError, match="middleware broken failed") as info:
            await c.chat().user("hi").execute()
        assert info.value.middleware == "broken"
        assert isinstance(info.value.__cause__, ValueError)
        assert c.current_inflight == 0
    assert len(mock.requests) == (0 if where == "before" else 1)


@pytest.mark.parametrize("where", ["after", "event"])
async def test_a_raising_plugin_closes_the_stream(mock: MockProvider, where: str) -> None:
    mock.enqueue(ScriptedReply(content="abcdef", chunk_size=1))
    async with client(mock, plugins=[Broken(where)]) as c:
        with pytest.raises(MiddlewareError, match="broken"):
            async with c.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
        assert c.current_inflight == 0


async def test_a_registry_runs_its_plugins_in_order(mock: MockProvider) -> None:
    first, second = Recorder("first"), Recorder("second")
    registry = PluginRegistry()
    await registry.register(first)
    await registry.register(second)
    assert [p.display_name for p in registry.plugins] == ["first", "second"]
    order: list[str] = []

    class Tail(Plugin):
        name = "tail"

        async def on_before_request(self, ctx: PluginContext) -> None:
            order.extend(ctx.metadata["order"])

    await registry.register(Tail())
    mock.enqueue(ScriptedReply(content="ok"))
    async with client(mock, plugins=[registry]) as c:
        await c.chat().user("hi").execute()
    assert order == ["first", "second"]
    assert first.seen == second.seen == [("before", "gpt-4o"), ("after", "ok")]
    await registry.unregister("second")
    assert registry.get("second") is None and len(registry) == 2


async def test_a_failing_plugin_in_a_registry_is_named(mock: MockProvider) -> None:
    registry = PluginRegistry([Recorder(), Broken("before")])
    async with client(mock, plugins=[registry]) as c:
        with pytest.raises(MiddlewareError, match="plugin broken: ValueError: before failed"):
            await c.chat().user("hi").execute()


async def test_registry_refuses_duplicates_and_non_plugins() -> None:
    from ailib_anyio import ConfigurationError

    registry = PluginRegistry([Recorder("a")])
    with pytest.raises(ConfigurationError, match="already registered"):
        await registry.register(Recorder("a"))
    with pytest.raises(ConfigurationError, match="not a Plugin"):
        await registry.register(object())  # type: ignore[arg-type]


async def test_triggers_run_by_hand_as_in_the_reference() -> None:
    recorder = Recorder()
    registry = PluginRegistry([recorder])
    ctx = PluginContext(model="gpt-4o", request={"messages": []})
    await registry.trigger_before_request(ctx)
    await registry.trigger_after_response(ctx)
    assert recorder.seen == [("before", "gpt-4o"), ("after", None)]


async def test_hook_manager(mock: MockProvider) -> None:
    seen: list[str] = []
    hooks = HookManager()
    hooks.register(HookType.BEFORE_REQUEST, "log", lambda ctx: seen.append(f"start {ctx.model}"))

    async def after(ctx: PluginContext) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(f"done {ctx.response.content if ctx.response else None}")

    hooks.register(HookType.AFTER_RESPONSE, "done", after)
    hooks.register(HookType.ON_STREAM_EVENT, "events", lambda ctx: seen.append("event"))
    assert hooks.hooks(HookType.BEFORE_REQUEST) == ("log",)
    mock.enqueue(ScriptedReply(content="ok"))
    async with client(mock, plugins=[hooks]) as c:
        await c.chat().user("hi").execute()
    assert seen == ["start gpt-4o", "done ok"]
    hooks.unregister(HookType.BEFORE_REQUEST, "log")
    assert hooks.hooks(HookType.BEFORE_REQUEST) == ()


async def test_hook_manager_refuses_async_stream_hooks() -> None:
    from ailib_anyio import ConfigurationError

    async def per_event(ctx: PluginContext) -> None: ...

    with pytest.raises(ConfigurationError, match="must be plain functions"):
        HookManager().register(HookType.ON_STREAM_EVENT, "x", per_event)


def test_a_plugin_without_a_stream_hook_costs_nothing_per_event() -> None:
    from ailib_anyio._client._middleware import MiddlewareChain

    assert MiddlewareChain([Rewriter()]).event_hooks == ()
    assert len(MiddlewareChain([Recorder()]).event_hooks) == 1
    assert len(MiddlewareChain([HookManager()]).event_hooks) == 1


def test_plugins_are_discovered_through_entry_points(tmp_path: Path) -> None:
    dist = tmp_path / "acme_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[ailib_anyio.plugins]\nacme = acme_plugin:AcmePlugin\nbad = acme_plugin:not_a_plugin\n"
    )
    (tmp_path / "acme_plugin.py").write_text(
        textwrap.dedent(
            """
            from ailib_anyio.plugins import Plugin

            class AcmePlugin(Plugin):
                name = "acme"

            def not_a_plugin():
                return 42
            """
        )
    )
    sys.path.insert(0, str(tmp_path))
    try:
        from ailib_anyio import ConfigurationError

        with pytest.raises(ConfigurationError, match=r"'bad'.*gave 42, not a Plugin"):
            discover_plugins()
        (dist / "entry_points.txt").write_text(
            "[ailib_anyio.plugins]\nacme = acme_plugin:AcmePlugin\n"
        )
        (found,) = discover_plugins()
        assert found.display_name == "acme"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("acme_plugin", None)
