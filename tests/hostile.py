"""A hostile loopback HTTP server for tests: it records every request it receives and
answers with whatever a function builds from that request (echoing its headers, say).

HTTP/1.1 with h11 over anyio sockets, one request per connection (``connection: close``),
on 127.0.0.1 only.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import anyio
import anyio.abc
import attrs
import h11


@attrs.define
class Seen:
    """A request the server received: ``headers`` has lower-cased names."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


#: (status, headers, body) of the answer to a request.
Answer = tuple[int, list[tuple[str, str]], bytes]


class HostileServer:
    """``async with HostileServer(respond) as server``: ``server.base_url`` is
    ``http://127.0.0.1:<port>``; ``server.requests`` lists what arrived, in order."""

    def __init__(self, respond: Callable[[Seen], Answer]) -> None:
        self._respond = respond
        self.requests: list[Seen] = []
        self._listener: anyio.abc.SocketListener | None = None
        self._group: anyio.abc.TaskGroup | None = None

    @property
    def base_url(self) -> str:
        assert self._listener is not None
        port = self._listener.extra(anyio.abc.SocketAttribute.local_port)
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> HostileServer:
        self._listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        self._group.start_soon(self._listener.serve, self._handle)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._group is not None and self._listener is not None
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(exc_type, exc, tb)
        await self._listener.aclose()

    async def _handle(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            conn = h11.Connection(h11.SERVER)
            request: h11.Request | None = None
            body = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    try:
                        data = await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, (h11.ConnectionClosed, h11.PAUSED)):
                    return
            assert request is not None
            seen = Seen(
                request.method.decode("ascii"),
                request.target.decode("utf-8", "replace"),
                {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers},
                body,
            )
            self.requests.append(seen)
            status, headers, payload = self._respond(seen)
            wire = [*headers, ("content-length", str(len(payload))), ("connection", "close")]
            events = (h11.Response(status_code=status, headers=wire), h11.Data(data=payload))
            out = b"".join(conn.send(e) or b"" for e in (*events, h11.EndOfMessage()))
            try:
                await stream.send(out)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return
