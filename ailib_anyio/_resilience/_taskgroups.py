"""Task groups entered by hand (``__aenter__``/``__aexit__`` of a class), done right."""

from __future__ import annotations

import sys
from types import TracebackType

import anyio.abc

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["exit_task_group"]


async def exit_task_group(
    task_group: anyio.abc.TaskGroup,
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> bool | None:
    """Leave a task group entered by hand in ``__aenter__``, keeping the block's own
    exception as it is: anyio wraps it in an exception group even when no background task
    failed, and a caller's ``except KeyError`` must still see a ``KeyError``."""
    try:
        return await task_group.__aexit__(exc_type, exc, tb)
    except BaseExceptionGroup as group:
        if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
            return None  # falsy: the original exception propagates unchanged
        raise
