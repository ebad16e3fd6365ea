"""Plugins: hooks before a request, after its response, on errors and on stream events,
each plugin a middleware on the client's seam. See :mod:`ailib_anyio._services._plugins`.
"""

from ._services._plugins import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from ._services._plugins import HookManager as HookManager
from ._services._plugins import HookType as HookType
from ._services._plugins import Plugin as Plugin
from ._services._plugins import PluginContext as PluginContext
from ._services._plugins import PluginRegistry as PluginRegistry
from ._services._plugins import discover_plugins as discover_plugins

__all__ = [
    "ENTRY_POINT_GROUP",
    "HookManager",
    "HookType",
    "Plugin",
    "PluginContext",
    "PluginRegistry",
    "discover_plugins",
]
