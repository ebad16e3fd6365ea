"""The frame type shared by the sans-IO stream decoders.

A decoder turns raw response bytes into frames; the event mapping layer turns frames
into unified streaming events. A frame is deliberately a bare ``NamedTuple`` of two
strings: it is built once per streamed chunk, so it must cost next to nothing.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Frame"]


class Frame(NamedTuple):
    """One decoded unit of a streamed response.

    ``event`` is the SSE ``event:`` field, or ``None`` when the event had none (and always
    for NDJSON). ``data`` is the SSE data (several ``data:`` lines joined with ``"\\n"``)
    or one NDJSON line, not yet parsed as JSON.

    >>> Frame("message_start", '{"type": "message_start"}').event
    'message_start'
    """

    event: str | None
    data: str
