"""What a cache entry holds, and its bytes: compact JSON through one cattrs converter.

An entry is a ``CachedReply``: the whole ``ChatResponse`` (its ``raw`` body included) and,
for a stream, every event in the order the user received it, plus the provider and model
that answered. Every backend stores these bytes, so an entry written by one process (or
machine) reads back the same in another. A format version leads the document; an entry of
another version, or bytes that do not decode, read as a miss.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs
import cattrs
from cattrs.cols import is_sequence

from ..._core._types import (
    ChatResponse,
    ContentDelta,
    Finished,
    ReasoningDelta,
    RefusalDelta,
    StreamingEvent,
    ToolCallCompleted,
    ToolCallDelta,
    ToolCallStarted,
    Usage,
)

__all__ = ["CachedReply", "decode_reply", "encode_reply"]

#: the entry format; a change of it makes older entries misses, never wrong answers
FORMAT = 1

_EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        ContentDelta,
        ReasoningDelta,
        RefusalDelta,
        ToolCallStarted,
        ToolCallDelta,
        ToolCallCompleted,
        Usage,
        Finished,
    )
}


@attrs.frozen
class CachedReply:
    """One cached answer: ``response``, and ``events`` when it was a stream."""

    response: ChatResponse
    provider: str
    model: str
    events: tuple[StreamingEvent, ...] | None = None


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(omit_if_default=True)

    def tuples(type_: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        # Sequences come back as tuples, as the library builds them (equal, hashable)
        args = getattr(type_, "__args__", None)
        inner = args[0] if args else Any
        hook = converter.get_structure_hook(inner)
        return lambda value, _: tuple(hook(item, inner) for item in value)

    converter.register_structure_hook_factory(is_sequence, tuples)
    # prices (a response's ``pricing``) are Decimals: kept exact, as strings
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, lambda value, _: Decimal(value))
    return converter


_CONVERTER = _converter()


def encode_reply(reply: CachedReply) -> bytes:
    """The entry's bytes. Raises ``TypeError``/``ValueError`` for a response that is not
    JSON (a ``raw`` a middleware made up): such a reply is not cached."""
    unstructure = _CONVERTER.unstructure
    document: dict[str, Any] = {
        "v": FORMAT,
        "provider": reply.provider,
        "model": reply.model,
        "response": unstructure(reply.response),
    }
    if reply.events is not None:
        document["events"] = [[type(e).__name__, unstructure(e)] for e in reply.events]
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def decode_reply(data: bytes) -> CachedReply | None:
    """The entry in ``data``; ``None`` when it is of another format or does not decode."""
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("v") != FORMAT:
            return None
        structure = _CONVERTER.structure
        events: Sequence[Any] | None = document.get("events")
        return CachedReply(
            response=structure(document["response"], ChatResponse),
            provider=str(document["provider"]),
            model=str(document["model"]),
            events=None
            if events is None
            else tuple(structure(body, _EVENT_TYPES[name]) for name, body in events),
        )
    except (ValueError, TypeError, KeyError, RecursionError, cattrs.BaseValidationError):
        return None
