"""Sans-IO decoder for ``text/event-stream`` (server-sent events) response bodies.

The transport feeds raw body chunks in whatever pieces the network delivers them;
:class:`SSEDecoder` returns the events they complete, following the WHATWG
event-stream parsing rules. This runs once per streamed chunk, so it is written for
speed: it buffers bytes, splits only complete lines, decodes only the data it hands
out, and keeps the common ``data: {...}`` line on a short path.
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import MalformedResponseError
from ._frames import Frame

__all__ = ["SSEDecoder"]

_BOM = b"\xef\xbb\xbf"
_COLON = 0x3A
_LF = 0x0A
_CR = 0x0D

# NamedTuple's generated __new__ is a Python function; calling tuple.__new__ directly
# builds the same Frame in half the time, and a frame is built for every chunk.
_new_frame: Callable[[type[Frame], tuple[str | None, str]], Frame] = tuple.__new__


def _overflow(size: int, limit: int) -> MalformedResponseError:
    return MalformedResponseError(
        f"server-sent event stream: {size} bytes received without completing an event"
        f" (max_buffer is {limit}); the server is not sending SSE line ends"
    )


class SSEDecoder:
    """Incremental server-sent events decoder: bytes in, :class:`Frame` objects out.

    Lines may end with LF, CRLF or a lone CR, and any chunk boundary is allowed (inside
    a line, a UTF-8 character, or a CRLF pair). Comments (``:`` lines) and the ``retry``
    and unknown fields are skipped; an event is dispatched at a blank line if it had at
    least one ``data`` field. ``[DONE]`` is not special here: the caller decides.

    >>> decoder = SSEDecoder()
    >>> decoder.feed(b'event: ping\\ndata: {"a"')
    []
    >>> decoder.feed(b": 1}\\n\\n")
    [Frame(event='ping', data='{"a": 1}')]

    If more than ``max_buffer`` bytes pile up without completing an event,
    :class:`~ailib_anyio.MalformedResponseError` is raised.
    """

    __slots__ = (
        "_at_start",
        "_event",
        "_max_buffer",
        "_parts",
        "_parts_counted",
        "_parts_size",
        "_pending",
        "_pending_size",
        "_skip_lf",
        "last_event_id",
    )

    #: the value of the last ``id`` field seen (``None`` until the stream sends one).
    last_event_id: str | None

    def __init__(self, *, max_buffer: int = 16 * 1024 * 1024) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be positive, not {max_buffer}")
        self._max_buffer = max_buffer
        # Pieces of the current unfinished line. A list, joined only once a line end
        # arrives, so a long line fed in small chunks is not copied over and over.
        self._pending: list[bytes] = []
        self._pending_size = 0
        # The `data` values of the event being built, still undecoded.
        self._parts: list[bytes] = []
        # How many of _parts (and their size) the max_buffer check has already counted,
        # so that check stays linear in the input.
        self._parts_counted = 0
        self._parts_size = 0
        self._event: str | None = None
        # The previous chunk ended with CR: a LF starting the next one belongs to it.
        self._skip_lf = False
        # A BOM is only dropped at the very start of the stream.
        self._at_start = True
        self.last_event_id = None

    def feed(self, data: bytes) -> list[Frame]:
        """Decode the next chunk of the body; return the events it completed (often none)."""
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        pending = self._pending
        # (An int operand makes `in` a plain memchr; a bytes one first tries, and fails,
        # to convert it to an int, which costs more than the search itself.)
        if _LF not in data and _CR not in data:
            # Inside a line (or an empty chunk): nothing to decode yet. The pieces are
            # joined when the line ends.
            if data:
                pending.append(data)
                self._pending_size += len(data)
                size = self._pending_size + self._parts_size
                if size > self._max_buffer:
                    self._reset()
                    raise _overflow(size, self._max_buffer)
            return []
        if pending:
            pending.append(data)
            data = b"".join(pending)
            pending.clear()
            self._pending_size = 0
        if self._at_start:
            # `data` holds a whole first line now, so a BOM cannot be cut short here.
            self._at_start = False
            if data.startswith(_BOM):
                data = data[3:]

        # bytes.splitlines splits on exactly LF, CRLF and CR, as SSE requires (unlike
        # str.splitlines, which also splits on VT, FF, NEL, U+2028...).
        lines = data.splitlines()
        last = data[-1]
        if last == _CR:
            self._skip_lf = True
        elif last != _LF:
            tail = lines.pop()
            pending.append(tail)
            self._pending_size = len(tail)

        frames: list[Frame] = []
        parts = self._parts
        event = self._event
        for line in lines:
            if not line:
                if parts:
                    # Decoding the joined data (never a partial line) means a UTF-8
                    # character split across chunks decodes whole.
                    data_str = (parts[0] if len(parts) == 1 else b"\n".join(parts)).decode(
                        "utf-8", "replace"
                    )
                    frames.append(_new_frame(Frame, (event, data_str)))
                    parts.clear()
                event = None
            elif line[:6] == b"data: ":
                parts.append(line[6:])
            elif line[0] == _COLON:
                continue  # a comment, usually a keep-alive
            else:
                colon = line.find(b":")
                if colon < 0:
                    name = line
                    value = b""
                else:
                    name = line[:colon]
                    value = line[colon + 1 :]
                    if value[:1] == b" ":
                        value = value[1:]
                if name == b"data":
                    parts.append(value)
                elif name == b"event":
                    # An empty event name means the default type, like no name at all.
                    event = value.decode("utf-8", "replace") or None
                elif name == b"id" and 0 not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
                # `retry`, unknown fields and ids containing NUL are ignored.
        self._event = event

        if parts:
            # Events were dispatched in this chunk: every part left is new since then.
            if frames:
                counted, size = 0, 0
            else:
                counted, size = self._parts_counted, self._parts_size
            new = parts[counted:] if counted else parts
            # Count each line as received in the usual form `data: <value>\n`, so
            # even empty `data:` lines (one list slot each) add up.
            size += sum(map(len, new)) + 7 * len(new)
            self._parts_counted = len(parts)
            self._parts_size = size
            size += self._pending_size
            if size > self._max_buffer:
                self._reset()
                raise _overflow(size, self._max_buffer)
        else:
            if self._parts_counted:
                self._parts_counted = self._parts_size = 0
            if pending and self._pending_size > self._max_buffer:
                size = self._pending_size
                self._reset()
                raise _overflow(size, self._max_buffer)
        return frames

    def flush(self) -> list[Frame]:
        """End of stream: return the event left pending by a body lacking its final blank line.

        The end of input counts as a line end followed by a blank line, so a stream cut
        after ``data: x`` (or ``data: x\\n``) still yields that event.
        """
        # A CR at the very end already ended its line; the LF it waited for never comes.
        self._skip_lf = False
        return self.feed(b"\n\n")

    def _reset(self) -> None:
        # Drop what was buffered: after an overflow the stream is unusable anyway, and
        # holding max_buffer bytes until the decoder is collected helps nobody.
        self._pending = []
        self._pending_size = 0
        self._parts = []
        self._parts_counted = self._parts_size = 0
        self._event = None
