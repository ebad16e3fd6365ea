"""The lifecycle states of clients, targets and streams, and ``async with`` for streams.

Apart from ``_target.py`` so that ``_client.py`` (and so ``import ailib_anyio``) need not
load the target, and with it the transport, the manifest models and the decoders, before
a client is made.
"""

from __future__ import annotations

import enum
from types import TracebackType

__all__ = ["ClosedOnExit", "State"]


class State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class ClosedOnExit:
    """``async with`` support for streams: ``aclose()`` is idempotent and shielded."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
