"""Plugins: hooks before a request, after its response, on its errors and on each stream
event — each plugin a middleware on the client's seam (``ailib_anyio.Middleware``).

::

    from ailib_anyio.plugins import Plugin, PluginContext

    class Audit(Plugin):
        name = "audit"

        async def on_before_request(self, ctx: PluginContext) -> None:
            ctx.metadata["asked"] = ctx.model

        async def on_after_response(self, ctx: PluginContext) -> None:
            assert ctx.response is not None

    async with open_client("openai/gpt-4o", plugins=[Audit()]) as client:
        reply = await client.chat().user("hi").execute()

A plugin stands around the whole call (retries, fallbacks and hedges happen inside it):
``on_before_request`` once, then ``on_after_response`` with the final response — for a
stream, when it has opened (its first event is ready) — or ``on_error`` with the error
that ends the call, and ``on_stream_event`` for each event the user receives (a plain,
synchronous method: it runs on the stream's hot path and must not block).

A plugin may replace the request by setting ``ctx.request`` to another ``ChatRequest`` in
``on_before_request``, and the response by setting ``ctx.response`` in
``on_after_response`` (not for a stream: a stream can be observed, not replaced). An
exception a plugin raises becomes a ``MiddlewareError`` naming the plugin; the request is
not sent (or its connection is closed) and no ``max_inflight`` slot is left behind. The
error the call itself raised always propagates unchanged after ``on_error``.

Plugins are installed per client (``open_client(..., plugins=[...])``, after the
``middleware=`` list, so inside it), as a ``PluginRegistry`` or a ``HookManager``, or
found through the package entry-point group ``ailib_anyio.plugins``
(:func:`discover_plugins`): loading third-party code is always the application's explicit
choice, never automatic.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

import attrs

from .._client._middleware import Call, Middleware, Next
from .._core._errors import ConfigurationError
from .._core._types import ChatRequest, ChatResponse, StreamingEvent

__all__ = [
    "ENTRY_POINT_GROUP",
    "HookManager",
    "HookType",
    "Plugin",
    "PluginContext",
    "PluginRegistry",
    "discover_plugins",
]

#: The entry-point group :func:`discover_plugins` reads.
ENTRY_POINT_GROUP = "ailib_anyio.plugins"


@attrs.define(eq=False)
class PluginContext:
    """What a plugin sees of one call. ``metadata`` is shared by every hook of every
    plugin for the call (a plugin may leave notes for itself or for the next)."""

    model: str
    provider: str | None = None
    request: ChatRequest | Any = None
    response: ChatResponse | None = None
    error: BaseException | None = None
    event: StreamingEvent | None = None
    stream: bool = False
    metadata: dict[str, Any] = attrs.field(factory=dict)


class Plugin(Middleware):
    """Base class of plugins: override the hooks you need (each does nothing by default).

    ``name`` is the plugin's name in a registry and in errors: a class attribute, or a
    method returning it as the reference library spells it; the class name by default.
    """

    name: str | Callable[[], str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if (
            cls.on_stream_event is Plugin.on_stream_event
            and cls.stream_event is Plugin.stream_event
        ):
            cls.on_event = Middleware.on_event  # type: ignore[method-assign]  # no per-event cost

    @property
    def display_name(self) -> str:
        name = self.name() if callable(self.name) else self.name
        return name or type(self).__name__

    async def on_before_request(self, ctx: PluginContext) -> None:
        """Before the call: ``ctx.request`` may be replaced by another ``ChatRequest``."""

    async def on_after_response(self, ctx: PluginContext) -> None:
        """After the call succeeded: ``ctx.response`` (None for a stream, which has just
        opened); it may be replaced by another ``ChatResponse`` (not for a stream)."""

    async def on_error(self, ctx: PluginContext) -> None:
        """The call failed with ``ctx.error`` (raised unchanged afterwards)."""

    def on_stream_event(self, ctx: PluginContext) -> None:
        """One stream event, ``ctx.event`` (synchronous: it runs per event)."""

    # ------------------------------------------------------------ as a middleware

    async def on_call(self, call: Call, next: Next) -> Any:
        ctx = PluginContext(
            model=call.model, provider=call.provider, request=call.request, stream=call.stream
        )
        await self.before(ctx)
        if ctx.request is not call.request:
            if not isinstance(ctx.request, ChatRequest):
                raise TypeError(f"ctx.request must be a ChatRequest, got {ctx.request!r}")
            call = attrs.evolve(call, request=ctx.request)
        try:
            result = await next(call)
        except Exception as exc:
            ctx.error = exc
            await self.failed(ctx)
            raise
        if call.stream:
            await self.after(ctx)
            if ctx.response is not None:
                raise TypeError("a stream can be observed, not replaced: leave ctx.response")
            return result
        ctx.response = result
        await self.after(ctx)
        return ctx.response

    def on_event(self, call: Call, event: StreamingEvent) -> None:
        ctx = PluginContext(
            model=call.model, provider=call.provider, request=call.request, stream=True
        )
        ctx.event = event
        self.stream_event(ctx)

    # The four steps, overridden by the registry and the hook manager to fan out.
    async def before(self, ctx: PluginContext) -> None:
        await self.on_before_request(ctx)

    async def after(self, ctx: PluginContext) -> None:
        await self.on_after_response(ctx)

    async def failed(self, ctx: PluginContext) -> None:
        await self.on_error(ctx)

    def stream_event(self, ctx: PluginContext) -> None:
        self.on_stream_event(ctx)


class PluginRegistry(Plugin):
    """Plugins by name, run in registration order. Installed on a client as one plugin
    (``open_client(..., plugins=[registry])``); its ``trigger_*`` methods run the hooks by
    hand."""

    name = "plugins"

    def __init__(self, plugins: Iterable[Plugin] = ()) -> None:
        self._plugins: dict[str, Plugin] = {}
        for plugin in plugins:
            self._add(plugin)

    def _add(self, plugin: Plugin) -> None:
        if not isinstance(plugin, Plugin):
            raise ConfigurationError(f"not a Plugin: {plugin!r}")
        name = plugin.display_name
        if name in self._plugins:
            raise ConfigurationError(f"a plugin named {name!r} is already registered")
        self._plugins[name] = plugin

    async def register(self, plugin: Plugin) -> None:
        """Add ``plugin`` (its name must be new)."""
        self._add(plugin)

    async def unregister(self, name: str) -> None:
        """Remove the plugin named ``name``; a name not registered is a ``KeyError``."""
        del self._plugins[name]

    def get(self, name: str) -> Plugin | None:
        return self._plugins.get(name)

    @property
    def plugins(self) -> tuple[Plugin, ...]:
        return tuple(self._plugins.values())

    def __len__(self) -> int:
        return len(self._plugins)

    def __repr__(self) -> str:
        return f"<PluginRegistry {list(self._plugins)}>"

    async def trigger_before_request(self, ctx: PluginContext) -> None:
        await self.before(ctx)

    async def trigger_after_response(self, ctx: PluginContext) -> None:
        await self.after(ctx)

    async def trigger_error(self, ctx: PluginContext) -> None:
        await self.failed(ctx)

    def trigger_stream_event(self, ctx: PluginContext) -> None:
        self.stream_event(ctx)

    async def before(self, ctx: PluginContext) -> None:
        for plugin in self.plugins:
            await _named(plugin, plugin.before(ctx))

    async def after(self, ctx: PluginContext) -> None:
        for plugin in self.plugins:
            await _named(plugin, plugin.after(ctx))

    async def failed(self, ctx: PluginContext) -> None:
        for plugin in self.plugins:
            await _named(plugin, plugin.failed(ctx))

    def stream_event(self, ctx: PluginContext) -> None:
        for plugin in self.plugins:
            try:
                plugin.stream_event(ctx)
            except Exception as exc:
                raise _PluginFailure(plugin.display_name, exc) from exc


class _PluginFailure(Exception):
    """A registered plugin's own exception, named (the chain wraps it in a
    ``MiddlewareError``, whose message then names the plugin inside the registry)."""

    def __init__(self, name: str, exc: Exception) -> None:
        super().__init__(f"plugin {name}: {type(exc).__name__}: {exc}")


async def _named(plugin: Plugin, step: Awaitable[None]) -> None:
    try:
        await step
    except Exception as exc:
        raise _PluginFailure(plugin.display_name, exc) from exc


class HookType(enum.Enum):
    BEFORE_REQUEST = "before_request"
    AFTER_RESPONSE = "after_response"
    ON_ERROR = "on_error"
    ON_STREAM_EVENT = "on_stream_event"


Hook = Callable[[PluginContext], Any]


class HookManager(Plugin):
    """Named functions per :class:`HookType`, run in registration order: plain functions
    or coroutine functions (``ON_STREAM_EVENT`` hooks must be plain: they run per event).
    Installed on a client as one plugin."""

    name = "hooks"

    def __init__(self) -> None:
        self._hooks: dict[HookType, dict[str, Hook]] = {kind: {} for kind in HookType}

    def register(self, hook_type: HookType, name: str, hook: Hook) -> None:
        if not isinstance(hook_type, HookType):
            raise ConfigurationError(f"hook_type must be a HookType, got {hook_type!r}")
        if not callable(hook):
            raise ConfigurationError(f"hook {name!r} is not callable: {hook!r}")
        if hook_type is HookType.ON_STREAM_EVENT and inspect.iscoroutinefunction(hook):
            raise ConfigurationError(
                f"hook {name!r}: ON_STREAM_EVENT hooks run per event and must be plain"
                " functions, not coroutine functions"
            )
        self._hooks[hook_type][name] = hook

    def unregister(self, hook_type: HookType, name: str) -> None:
        del self._hooks[hook_type][name]

    def hooks(self, hook_type: HookType) -> tuple[str, ...]:
        return tuple(self._hooks[hook_type])

    async def trigger(self, hook_type: HookType, ctx: PluginContext) -> None:
        for name, hook in list(self._hooks[hook_type].items()):
            try:
                result = hook(ctx)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise _PluginFailure(f"hooks/{name}", exc) from exc

    async def before(self, ctx: PluginContext) -> None:
        await self.trigger(HookType.BEFORE_REQUEST, ctx)

    async def after(self, ctx: PluginContext) -> None:
        await self.trigger(HookType.AFTER_RESPONSE, ctx)

    async def failed(self, ctx: PluginContext) -> None:
        await self.trigger(HookType.ON_ERROR, ctx)

    def stream_event(self, ctx: PluginContext) -> None:
        for name, hook in list(self._hooks[HookType.ON_STREAM_EVENT].items()):
            try:
                hook(ctx)
            except Exception as exc:
                raise _PluginFailure(f"hooks/{name}", exc) from exc


def discover_plugins(group: str = ENTRY_POINT_GROUP) -> list[Plugin]:
    """An instance of each plugin the installed packages declare in the entry-point
    ``group`` (a ``Plugin`` subclass, or a function returning a ``Plugin``). A broken entry
    is a ``ConfigurationError`` naming it."""
    found: list[Plugin] = []
    for entry in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            factory = entry.load()
            plugin = factory()
        except Exception as exc:
            raise ConfigurationError(
                f"plugin entry point {entry.name!r} ({entry.value}) failed to load:"
                f" {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(plugin, Plugin):
            raise ConfigurationError(
                f"plugin entry point {entry.name!r} ({entry.value}) gave {plugin!r}, not a Plugin"
            )
        found.append(plugin)
    return found
