"""Sans-IO decoder for newline-delimited JSON (NDJSON / JSON Lines) response bodies.

Some providers (Ollama's native API, for one) stream one JSON document per line instead
of server-sent events. :class:`NDJSONDecoder` has the same ``feed``/``flush`` shape as
:class:`~ailib_anyio._core._sse.SSEDecoder` and yields the same :class:`Frame` type, with
``event`` always ``None``; the JSON itself is parsed by the caller.
"""

from __future__ import annotations

from collections.abc import Callable

from ._errors import MalformedResponseError
from ._frames import Frame

__all__ = ["NDJSONDecoder"]

_BOM = b"\xef\xbb\xbf"
_LF = 0x0A
_CR = 0x0D

# NamedTuple's generated __new__ is a Python function; tuple.__new__ is twice as fast.
_new_frame: Callable[[type[Frame], tuple[str | None, str]], Frame] = tuple.__new__


class NDJSONDecoder:
    """Incremental NDJSON decoder: one ``Frame(None, line)`` per non-blank line.

    Lines end with LF (a CR before it is dropped); whitespace-only lines are skipped; a
    UTF-8 BOM at the start of the stream is dropped (``json.loads`` would reject it).
    Invalid UTF-8 is replaced with U+FFFD rather than raising.

    >>> decoder = NDJSONDecoder()
    >>> decoder.feed(b'{"a": 1}\\r\\n\\n{"b"')
    [Frame(event=None, data='{"a": 1}')]
    >>> decoder.flush()
    [Frame(event=None, data='{"b"')]

    If a line grows beyond ``max_buffer`` bytes without ending,
    :class:`~ailib_anyio.MalformedResponseError` is raised.
    """

    __slots__ = ("_at_start", "_max_buffer", "_pending", "_pending_size")

    def __init__(self, *, max_buffer: int = 16 * 1024 * 1024) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be positive, not {max_buffer}")
        self._max_buffer = max_buffer
        # Pieces of the current unfinished line, joined once its LF arrives so a long
        # line fed in small chunks is not copied over and over.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._at_start = True

    def feed(self, data: bytes) -> list[Frame]:
        """Decode the next chunk of the body; return the lines it completed (often none)."""
        pending = self._pending
        # An int operand makes `in` a plain memchr (a bytes one is several times slower).
        if _LF not in data:
            if data:
                pending.append(data)
                self._pending_size += len(data)
                if self._pending_size > self._max_buffer:
                    raise self._overflow()
            return []
        if pending:
            pending.append(data)
            data = b"".join(pending)
            pending.clear()
        if self._at_start:
            # The buffer holds a whole first line here, so a BOM cannot be cut short.
            self._at_start = False
            if data.startswith(_BOM):
                data = data[3:]

        lines = data.split(b"\n")
        tail = lines.pop()  # the unfinished last line, or b"" after a final LF
        if tail:
            pending.append(tail)
        self._pending_size = len(tail)
        if self._pending_size > self._max_buffer:
            raise self._overflow()

        frames: list[Frame] = []
        for line in lines:
            if not line or line.isspace():
                continue
            if line[-1] == _CR:
                line = line[:-1]
            frames.append(_new_frame(Frame, (None, line.decode("utf-8", "replace"))))
        return frames

    def flush(self) -> list[Frame]:
        """End of stream: return the last line if the body did not end with a newline."""
        return self.feed(b"\n")

    def _overflow(self) -> MalformedResponseError:
        size = self._pending_size
        # Drop the buffer: the stream is unusable now, and it may be large.
        self._pending = []
        self._pending_size = 0
        return MalformedResponseError(
            f"NDJSON stream: {size} bytes received without a line end"
            f" (max_buffer is {self._max_buffer})"
        )
