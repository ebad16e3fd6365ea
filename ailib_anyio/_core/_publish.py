"""Public objects named after the public module that exports them."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

__all__ = ["publish"]


def publish(
    module: str, namespace: Mapping[str, Any], names: Iterable[str], keep: Collection[str] = ()
) -> None:
    """Make ``module`` the ``__module__`` of each object ``names`` gives in ``namespace``
    that is defined in a private module of the package, so that tracebacks and reprs say
    ``ailib_anyio.cache.CacheManager``; names in ``keep`` (the package's own exports) and
    objects published already keep theirs.

    The string annotations of every attrs class are resolved first, each in its own module
    and before any class is renamed (a subclass's hints are read in its bases' modules); a
    name imported only for type checkers stays unresolved.
    """
    chosen = [namespace[name] for name in names if name not in keep]
    for obj in chosen:
        if isinstance(obj, type) and attrs.has(obj):
            try:
                attrs.resolve_types(obj)
            except NameError:
                pass
    for obj in chosen:
        if getattr(obj, "__module__", "").startswith("ailib_anyio._"):
            try:
                obj.__module__ = module
            except (AttributeError, TypeError):  # an object that will not be renamed
                pass
