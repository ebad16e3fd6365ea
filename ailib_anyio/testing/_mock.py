"""A real loopback HTTP/1.1 server that impersonates LLM providers in three dialects.

``MockProvider`` listens on 127.0.0.1 and speaks three wire dialects, chosen from the
request path: OpenAI chat completions (``.../chat/completions``), Anthropic Messages
(``.../messages``) and Gemini generateContent (``.../models/{model}:generateContent`` and
``:streamGenerateContent``), each as JSON or as that provider's own stream framing. It can
also replay exact recorded bytes, and it injects faults (slow first byte, slow chunks,
reset or stall mid-stream). It answers embeddings routes too (``.../embeddings``,
Gemini's ``:batchEmbedContents`` and ``:embedContent``) with vectors computed from the
texts (``_embeddings``). It is built only on anyio and h11, so it runs inside a test's
own event loop under asyncio and trio, and it records every request and whether the
client hung up early, which is how tests check that streams really close::

    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="Hello!"), Reply.error(429, "Slow down"))
        # point a client at mock.openai_base_url (or anthropic_/gemini_base_url)
        url = mock.openai_base_url
        async with open_client("openai/gpt-4o", api_key="test", base_url=url) as client:
            reply = await client.chat().user("Hi").execute()
        assert reply.content == "Hello!"
        assert mock.requests[0].json["model"] == "gpt-4o"

How each dialect renders a ``ScriptedReply`` lives in ``_dialects``.
"""

from __future__ import annotations

import collections
import http
import itertools
import json as _json
import random
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import h11

from .._resilience._taskgroups import exit_task_group
from . import _dialects
from ._batches import MockBatches
from ._embeddings import (
    BadEmbeddingsRequest,
    EmbeddingsRoute,
    ScriptedEmbeddings,
    embeddings_route,
    render_embeddings,
)
from ._script import HeadersSpec, ScriptedReply, ScriptedToolCall, non_negative, positive

__all__ = [
    "MockProvider",
    "RecordedRequest",
    "Reply",
    "ScriptedReply",
    "ScriptedToolCall",
    "serve_forever",
]

#: Framing and encoding headers belong to the server: it frames the body itself.
_HOP_BY_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}
)

#: What a socket raises when the peer has gone away (or we already closed it).
_GONE = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)

_SPLITS = ("whole", "bytes", "random", "lines")
_STREAMING_TYPES = ("text/event-stream", "application/x-ndjson")


def _positive_sizes(_inst: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not value or any(size < 1 for size in value)):
        raise ValueError(f"{attribute.name} must be a non-empty sequence of sizes >= 1")


def _with_defaults(
    defaults: HeadersSpec, given: HeadersSpec | None
) -> dict[str, str | Sequence[str]]:
    """``given`` headers over ``defaults``, names compared case-insensitively."""
    given = given or {}
    names = {name.lower() for name in given}
    merged = {name: value for name, value in defaults.items() if name not in names}
    merged.update(given)
    return merged


# ----------------------------------------------------------------------- replies


@attrs.frozen
class Reply:
    """An exact HTTP response: status, headers and body bytes, plus how to deliver them.

    The body reaches the client byte for byte; ``split`` (or ``chunk_sizes``) only decides
    how it is cut into writes, each write being one HTTP chunk when chunked::

        recorded = b'data: {"choices": []}\\n\\ndata: [DONE]\\n\\n'  # what a provider sent
        Reply(body=recorded, headers={"content-type": "text/event-stream"}, split="bytes")
        Reply.sse([{"choices": []}], delay_between_chunks=0.05)
        Reply.error(429, "Rate limit reached", headers={"retry-after": "2"})

    Faults: ``delay_before_headers`` (slow first byte), ``delay_between_chunks``,
    ``close_after_bytes`` (send at most N body bytes, then close the connection without
    finishing the message) and ``stall_after_bytes`` (send at most N body bytes, then go
    silent until the client hangs up or the server stops).
    """

    status: int = 200
    headers: HeadersSpec = attrs.field(factory=dict)
    body: bytes = b""
    split: Literal["whole", "bytes", "random", "lines"] = attrs.field(
        default="whole", validator=attrs.validators.in_(_SPLITS)
    )
    seed: int | None = None
    max_chunk: int = attrs.field(default=64, validator=positive)
    chunk_sizes: Sequence[int] | None = attrs.field(default=None, validator=_positive_sizes)
    delay_before_headers: float = attrs.field(default=0, validator=non_negative)
    delay_between_chunks: float = attrs.field(default=0, validator=non_negative)
    close_after_bytes: int | None = attrs.field(default=None, validator=non_negative)
    stall_after_bytes: int | None = attrs.field(default=None, validator=non_negative)
    chunked: bool | None = None

    @classmethod
    def json(
        cls,
        obj: Any,
        status: int = 200,
        headers: HeadersSpec | None = None,
        **kw: Any,
    ) -> Reply:
        """A compact JSON body with ``content-type: application/json``."""
        merged = _with_defaults(_dialects.JSON_HEADERS, headers)
        return cls(status=status, headers=merged, body=_dialects.dumps(obj).encode(), **kw)

    @classmethod
    def sse(
        cls,
        events: Sequence[str | Mapping[str, Any]],
        *,
        done: bool = True,
        headers: HeadersSpec | None = None,
        **kw: Any,
    ) -> Reply:
        """A server-sent-events body: each mapping becomes ``data: <json>\\n\\n``.

        Strings are sent as they are, so they must already be framed (``"event: x\\n..."``).
        ``data: [DONE]`` ends the stream unless ``done=False``.
        """
        parts = [e if isinstance(e, str) else f"data: {_dialects.dumps(e)}\n\n" for e in events]
        if done:
            parts.append("data: [DONE]\n\n")
        merged = _with_defaults(_dialects.SSE_HEADERS, headers)
        return cls(headers=merged, body="".join(parts).encode(), **kw)

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        headers: HeadersSpec | None = None,
        **kw: Any,
    ) -> Reply:
        """An OpenAI-shaped error: ``{"error": {"message", "type", "param", "code"}}``."""
        body = {"error": {"message": message, "type": type, "param": None, "code": code}}
        return cls.json(body, status=status, headers=headers, **kw)

    @classmethod
    def anthropic_error(
        cls,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        headers: HeadersSpec | None = None,
        **kw: Any,
    ) -> Reply:
        """An Anthropic-shaped error: ``{"type": "error", "error": {"type", "message"}}``.

        ::

            Reply.anthropic_error(529, "Overloaded", type="overloaded_error")
        """
        body = {"type": "error", "error": {"type": type, "message": message}}
        return cls.json(body, status=status, headers=headers, **kw)

    @classmethod
    def gemini_error(
        cls,
        status: int,
        message: str,
        grpc_status: str = "INVALID_ARGUMENT",
        details: Sequence[Mapping[str, Any]] = (),
        headers: HeadersSpec | None = None,
        **kw: Any,
    ) -> Reply:
        """A Gemini-shaped error: ``{"error": {"code", "message", "status", "details"}}``.

        ``details`` are google.rpc detail objects, passed through as they are::

            retry = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
            Reply.gemini_error(429, "Quota", grpc_status="RESOURCE_EXHAUSTED", details=[retry])
        """
        error = {
            "code": status,
            "message": message,
            "status": grpc_status,
            "details": [dict(detail) for detail in details],
        }
        merged = _with_defaults(_dialects.GEMINI_JSON_HEADERS, headers)
        return cls.json({"error": error}, status=status, headers=merged, **kw)


# ------------------------------------------------------------------- recordings


@attrs.define
class RecordedRequest:
    """One request the mock received, and how the exchange ended.

    ``headers`` has lower-cased names, repeated ones joined with ``", "``; ``json`` is the
    parsed body or ``None``. ``client_disconnected`` is set when the client closed the
    connection before the whole response was written (it broke out of a stream, timed
    out, was cancelled); ``finished`` once the exchange ended in any way.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    completed: bool = False
    client_disconnected: bool = False
    disconnected_at: float | None = None
    finished: bool = False
    _disconnected_event: anyio.Event | None = attrs.field(
        default=None, init=False, repr=False, eq=False
    )
    _finished_event: anyio.Event | None = attrs.field(
        default=None, init=False, repr=False, eq=False
    )

    async def wait_disconnected(self) -> None:
        """Return once the server has noticed the client hang up early."""
        if self.client_disconnected:
            await anyio.lowlevel.checkpoint()
            return
        # Created lazily: an anyio.Event needs a running event loop.
        if self._disconnected_event is None:
            self._disconnected_event = anyio.Event()
        await self._disconnected_event.wait()

    async def wait_finished(self) -> None:
        """Return once the exchange ended: completed, disconnected, dropped or aborted."""
        if self.finished:
            await anyio.lowlevel.checkpoint()
            return
        if self._finished_event is None:
            self._finished_event = anyio.Event()
        await self._finished_event.wait()

    def _mark_disconnected(self, at: float) -> None:
        if self.client_disconnected or self.completed:
            return
        self.client_disconnected = True
        self.disconnected_at = at
        if self._disconnected_event is not None:
            self._disconnected_event.set()

    def _mark_finished(self) -> None:
        self.finished = True
        if self._finished_event is not None:
            self._finished_event.set()


# ----------------------------------------------------------------------- server


@attrs.define
class _Exchange:
    """Per-response state shared by the writer and the disconnect watcher."""

    completed: bool = False
    disconnected_at: float | None = None
    # Bytes the client sent while we were answering (a pipelined next request).
    pending: bytearray = attrs.field(factory=bytearray)

    def client_gone(self) -> None:
        if self.disconnected_at is None:
            self.disconnected_at = anyio.current_time()


class MockProvider:
    """A loopback LLM provider living inside an ``async with`` block.

    ::

        import httpx

        async with MockProvider() as mock:
            mock.enqueue(ScriptedReply(content="Hi"), Reply.error(500, "boom"))
            async with httpx.AsyncClient(base_url=mock.openai_base_url) as http:
                r = await http.post("/chat/completions", json={"model": "m", "messages": []})

    The request path picks the dialect a ``ScriptedReply`` is rendered in, never a
    provider name: ``POST .../chat/completions`` is OpenAI chat completions,
    ``POST .../messages`` Anthropic Messages, ``POST .../models/{model}:generateContent``
    and ``:streamGenerateContent?alt=sse`` Gemini (any other path renders as OpenAI).
    The token-counting endpoints ``POST .../messages/count_tokens`` and
    ``.../models/{model}:countTokens`` answer ``{"input_tokens": N}`` and
    ``{"totalTokens": N}``: N is the prompt's words, the input usage the mock reports for
    the same request (a queued ``ScriptedReply(usage=(N, ...))`` sets it).
    Embeddings routes (``POST .../embeddings``, ``:batchEmbedContents``,
    ``:embedContent``) are answered with ``mock_embedding`` vectors of the request's texts
    (a queued ``ScriptedEmbeddings`` adds fault knobs).
    The batch APIs (``POST .../files`` and ``.../batches``, ``.../messages/batches``,
    ``:batchGenerateContent``, and the status, cancel and results routes of what they
    create) are answered by ``batches`` (``MockBatches``), which the test steers.
    ``anthropic_base_url`` and ``gemini_base_url`` are the base URLs those SDKs expect.

    Every request except ``GET /_mock/health`` is recorded in ``requests`` and takes the
    next queued reply. With the queue empty, a POST to one of the dialect endpoints gets
    a default ``ScriptedReply`` (``"Mock reply to: <last user text>"``; the
    ``x-mock-chunks: N`` request header makes it N deltas of ``"tok "``,
    ``x-mock-delay-ms`` spaces them out), a POST to an embeddings route a default
    ``ScriptedEmbeddings`` (``x-mock-delay-ms`` delays its headers) and any other route
    a 404 OpenAI-shaped error.
    Replies carry a request id header unless they set one: ``request-id: req_mock_<n>``
    on Anthropic routes, ``x-request-id: req_mock_<n>`` elsewhere.

    The server's tasks run in a task group entered by ``__aenter__``, so enter and exit
    it (or call ``aclose()``) from the same task. Leaving the block cancels every handler
    and closes every socket; ``aclose()`` is idempotent and nothing reopens after it.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        #: Every request received (health checks aside), in arrival order.
        self.requests: list[RecordedRequest] = []
        #: TCP connections currently open.
        self.open_connections = 0
        #: TCP connections accepted since start (or since ``reset_stats()``).
        self.connections_accepted = 0
        #: Requests currently being answered.
        self.active_requests = 0
        #: Peak of ``active_requests`` since start (or since ``reset_stats()``).
        self.max_active_requests = 0
        #: Unexpected exceptions from handlers (bugs, not disconnects); a 500 was sent.
        self.errors: list[Exception] = []
        self._queue: collections.deque[Reply | ScriptedReply | ScriptedEmbeddings] = (
            collections.deque()
        )
        self._request_ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        self._listeners: list[anyio.abc.SocketListener] = []
        #: the batch APIs (files, batches, message batches, batchGenerateContent), under
        #: the test's control: see ``MockBatches``
        self.batches = MockBatches(lambda: self.base_url, self._next_call_id)
        self._task_group: anyio.abc.TaskGroup | None = None
        self._state: Literal["new", "running", "closed"] = "new"

    # -- public surface

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` with the real port once started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``: what an OpenAI client's ``base_url`` should be."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url + "/v1"``: Anthropic's base path, under which ``/messages`` lives."""
        return self.base_url + "/v1"

    @property
    def gemini_base_url(self) -> str:
        """``base_url + "/v1beta"``: Gemini's base path, above ``/models/{model}:...``."""
        return self.base_url + "/v1beta"

    def enqueue(self, *replies: Reply | ScriptedReply | ScriptedEmbeddings) -> None:
        """Queue replies; each recorded request takes the oldest one (FIFO)."""
        self._queue.extend(replies)

    def reset_stats(self) -> None:
        """Restart the peak and accept counters from the current state."""
        self.max_active_requests = self.active_requests
        self.connections_accepted = 0

    async def __aenter__(self) -> MockProvider:
        if self._state != "new":
            raise RuntimeError("a MockProvider can only be started once")
        multi = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        listeners = [sub for sub in multi.listeners if isinstance(sub, anyio.abc.SocketListener)]
        self._listeners = listeners
        self.port = multi.extra(anyio.abc.SocketAttribute.local_port)
        task_group = anyio.create_task_group()
        try:
            await task_group.__aenter__()
        except BaseException:
            await self._close_listeners()
            raise
        self._task_group = task_group
        self._state = "running"
        for listener in listeners:
            task_group.start_soon(self._accept_loop, listener, task_group)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._stop(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Stop serving, cancel handlers and close every socket. Idempotent."""
        await self._stop(None, None, None)

    async def _stop(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._state != "running" or self._task_group is None:
            self._state = "closed"
            return None
        self._state = "closed"
        task_group, self._task_group = self._task_group, None
        task_group.cancel_scope.cancel()
        try:
            return await exit_task_group(task_group, exc_type, exc, tb)
        finally:
            await self._close_listeners()

    async def _close_listeners(self) -> None:
        with anyio.CancelScope(shield=True):
            for listener in self._listeners:
                try:
                    await listener.aclose()
                except _GONE:
                    pass

    # -- connections

    async def _accept_loop(
        self, listener: anyio.abc.SocketListener, task_group: anyio.abc.TaskGroup
    ) -> None:
        # The task group is passed in: _stop() may already have cleared self._task_group
        # by the time this task first runs.
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError:
                # EMFILE or a connection reset before accept: back off, keep serving.
                await anyio.sleep(0.01)
                continue
            task_group.start_soon(self._handle_connection, stream)

    async def _handle_connection(self, stream: anyio.abc.SocketStream) -> None:
        self.open_connections += 1
        self.connections_accepted += 1
        try:
            # anyio's accept already sets TCP_NODELAY; do it anyway so every small SSE
            # write leaves at once whatever the anyio version (Nagle would batch them).
            raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
            if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await self._serve_connection(stream)
        except (*_GONE, h11.ProtocolError):
            pass  # the client went away or spoke garbage: just drop the connection
        except Exception as exc:  # noqa: BLE001 - a bug here must not kill the test's tasks
            self.errors.append(exc)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await stream.aclose()
                except _GONE:
                    pass
            self.open_connections -= 1

    async def _serve_connection(self, stream: anyio.abc.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            try:
                received = await _read_request(conn, stream)
            except h11.RemoteProtocolError as exc:
                await _send_bad_request(conn, stream, exc)
                return
            if received is None:
                return
            request, body = received
            try:
                keep_alive = await self._answer(conn, stream, request, body)
            except _GONE:
                return
            except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the server
                self.errors.append(exc)
                if conn.our_state is h11.SEND_RESPONSE:
                    await _send_simple(
                        conn, stream, Reply.error(500, f"mock bug: {exc!r}"), close=True
                    )
                return
            if not keep_alive:
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # Connection: close, or HTTP/1.0
            conn.start_next_cycle()

    async def _answer(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        request: h11.Request,
        body: bytes,
    ) -> bool:
        """Answer one request; return whether the connection can serve another."""
        method = request.method.decode("ascii", "replace")
        target = request.target.decode("utf-8", "replace")
        route = target.split("?", 1)[0]
        if method == "GET" and route.endswith("/_mock/health"):
            return await _send_simple(conn, stream, Reply.json({"ok": True}))

        headers: dict[str, str] = {}
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        parsed = _parse_json(body)
        record = RecordedRequest(method, target, headers, body, parsed)
        self.requests.append(record)
        number = next(self._request_ids)

        self.active_requests += 1
        self.max_active_requests = max(self.max_active_requests, self.active_requests)

        def end_exchange() -> None:
            if not record.finished:
                self.active_requests -= 1
                record._mark_finished()

        try:
            endpoint = _dialects.endpoint_for(target)
            embeddings = embeddings_route(target) if method == "POST" else None
            item: Reply | ScriptedReply | ScriptedEmbeddings
            if self._queue:
                item = self._queue.popleft()
            elif (batch := self.batches.answer(method, target, body, headers)) is not None:
                status, payload, extra = batch
                if isinstance(payload, bytes):
                    item = Reply(status=status, headers=dict(extra), body=payload)
                else:
                    item = Reply.json(payload, status=status, headers=dict(extra) or None)
            elif embeddings is not None:
                item = ScriptedEmbeddings(delay_before_headers=_delay(headers))
            elif method == "POST" and endpoint is not None:
                item = _default_reply(endpoint.dialect, parsed, headers)
            elif method == "POST" and (vectors := _dialects.embeddings_body(route, parsed)):
                item = Reply.json(vectors)
            else:
                item = Reply.error(404, f"Unknown route: {method} {route}", code="unknown_url")
            if endpoint is None:
                endpoint = _dialects.CHAT_COMPLETIONS
            if isinstance(item, ScriptedEmbeddings):
                reply = _render_embeddings(item, parsed, embeddings)
            elif isinstance(item, ScriptedReply):
                reply = _render_scripted(item, parsed, endpoint, number, self._next_call_id)
            else:
                reply = item
            id_header = "request-id" if endpoint.dialect == "messages" else "x-request-id"
            if not any(name.lower() == id_header for name in reply.headers):
                request_id = f"req_mock_{number}"
                reply = attrs.evolve(reply, headers={**reply.headers, id_header: request_id})
            return await self._deliver(conn, stream, reply, record, end_exchange)
        finally:
            end_exchange()

    def _next_call_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._call_ids)}"

    async def _deliver(
        self,
        conn: h11.Connection,
        stream: anyio.abc.SocketStream,
        reply: Reply,
        record: RecordedRequest,
        end_exchange: Callable[[], None],
    ) -> bool:
        """Write ``reply`` while watching the socket for the client hanging up."""

        def before_last_write() -> None:
            # Settle the record before the client can possibly see the whole response,
            # so a test reading it right after its request returns sees it final.
            record.completed = True
            end_exchange()

        exchange = _Exchange()
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(
                    _watch_for_disconnect, stream, task_group.cancel_scope, exchange
                )
                try:
                    exchange.completed = await _write_reply(conn, stream, reply, before_last_write)
                except _GONE:
                    exchange.client_gone()
                task_group.cancel_scope.cancel()
        finally:
            # A client may read the whole response and hang up while the last write is
            # still yielding; once that write returned, the response counts as completed.
            if not exchange.completed:
                record.completed = False  # the last write failed, or never happened
                if exchange.disconnected_at is not None:
                    record._mark_disconnected(exchange.disconnected_at)
        if not exchange.completed:
            return False
        if exchange.pending:
            conn.receive_data(bytes(exchange.pending))
        return True


async def _watch_for_disconnect(
    stream: anyio.abc.SocketStream, scope: anyio.CancelScope, exchange: _Exchange
) -> None:
    """Read while the response is written: EOF means the client hung up.

    This is what notices a client breaking out of a stream while the server sleeps
    between chunks or stalls, when no write would fail yet.
    """
    try:
        while True:
            exchange.pending += await stream.receive()
    except _GONE:  # EndOfStream on a clean close, BrokenResourceError on a reset
        exchange.client_gone()
        scope.cancel()


async def _read_request(
    conn: h11.Connection, stream: anyio.abc.SocketStream
) -> tuple[h11.Request, bytes] | None:
    """Read one whole request; ``None`` when the client closed an idle connection."""
    request: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                await stream.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            try:
                data = await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request, bytes(body)
        else:  # ConnectionClosed (or PAUSED, which a server reading requests never sees)
            return None


async def _write_reply(
    conn: h11.Connection,
    stream: anyio.abc.SocketStream,
    reply: Reply,
    before_last_write: Callable[[], None],
) -> bool:
    """Write ``reply``; return True if the message was finished, False if it was cut."""
    pieces = _split_body(reply)
    chunked = reply.chunked
    if chunked is None:
        content_type = next(
            (
                (value if isinstance(value, str) else ", ".join(value)).lower()
                for name, value in reply.headers.items()
                if name.lower() == "content-type"
            ),
            "",
        )
        chunked = (
            content_type.startswith(_STREAMING_TYPES)
            or reply.close_after_bytes is not None
            or reply.stall_after_bytes is not None
        )
    limits = [n for n in (reply.close_after_bytes, reply.stall_after_bytes) if n is not None]
    limit = min(limits) if limits else None
    if limit is not None:
        kept: list[bytes] = []
        room = limit
        for piece in pieces:
            if room <= 0:
                break
            kept.append(piece[:room])
            room -= len(kept[-1])
        pieces = kept

    writes = [conn.send(_response_head(reply.status, _wire_headers(reply, chunked)))]
    writes += [conn.send(h11.Data(data=piece)) for piece in pieces]
    if limit is None:
        # The end of the message rides on the last write, so the moment the client can
        # see the whole response is exactly one write, which before_last_write precedes.
        writes[-1] += conn.send(h11.EndOfMessage())

    if reply.delay_before_headers:
        await anyio.sleep(reply.delay_before_headers)
    for index, data in enumerate(writes):
        if index > 1 and reply.delay_between_chunks:
            await anyio.sleep(reply.delay_between_chunks)
        if limit is None and index == len(writes) - 1:
            before_last_write()
        await stream.send(data)

    if limit is None:
        return True
    if reply.stall_after_bytes == limit:
        # Keep the socket open and silent; the watcher ends this when the client leaves.
        await anyio.sleep_forever()
    return False  # close_after_bytes: the caller drops the connection mid-message


def _response_head(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    try:
        reason = http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        reason = b""
    return h11.Response(status_code=status, headers=headers, reason=reason)


def _wire_headers(reply: Reply, chunked: bool) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for name, value in reply.headers.items():
        if name.lower() in _HOP_BY_HOP:
            continue
        for item in (value,) if isinstance(value, str) else value:
            headers.append((name.encode("latin-1"), item.encode("latin-1")))
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(len(reply.body)).encode("ascii")))
    return headers


def _split_body(reply: Reply) -> list[bytes]:
    body = reply.body
    if not body:
        return []
    if reply.chunk_sizes is not None:
        return list(_cut(body, itertools.cycle(reply.chunk_sizes)))
    if reply.split == "bytes":
        return [body[i : i + 1] for i in range(len(body))]
    if reply.split == "lines":
        return body.splitlines(keepends=True)
    if reply.split == "random":
        rng = random.Random(reply.seed)
        return list(_cut(body, iter(lambda: rng.randint(1, reply.max_chunk), None)))
    return [body]


def _cut(body: bytes, sizes: Iterator[int]) -> Iterator[bytes]:
    start = 0
    for size in sizes:
        if start >= len(body):
            return
        yield body[start : start + size]
        start += size


async def _send_simple(
    conn: h11.Connection, stream: anyio.abc.SocketStream, reply: Reply, *, close: bool = False
) -> bool:
    """Write a small unrecorded reply in one write; return whether keep-alive holds."""
    headers = _wire_headers(reply, False)
    if close:
        # Say so, or a pooling client may send its next request into a closing socket.
        headers.append((b"connection", b"close"))
    data = conn.send(_response_head(reply.status, headers))
    if reply.body:
        data += conn.send(h11.Data(data=reply.body))
    await stream.send(data + conn.send(h11.EndOfMessage()))
    return True


async def _send_bad_request(
    conn: h11.Connection, stream: anyio.abc.SocketStream, exc: h11.RemoteProtocolError
) -> None:
    # h11 lets a server answer a malformed request with an error before closing.
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    try:
        error = Reply.error(exc.error_status_hint, str(exc))
        await _send_simple(conn, stream, error, close=True)
    except h11.LocalProtocolError:
        pass


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return _json.loads(body)
    except (ValueError, RecursionError):
        return None


# ------------------------------------------------------------- default replies


def _delay(headers: Mapping[str, str]) -> float:
    """The ``x-mock-delay-ms`` request header, in seconds (0 when absent or not a number)."""
    try:
        return max(0.0, float(headers.get("x-mock-delay-ms", "0")) / 1000)
    except ValueError:
        return 0.0


def _default_reply(
    dialect: _dialects.Dialect, request: Any, headers: Mapping[str, str]
) -> ScriptedReply:
    delay = _delay(headers)
    chunks = headers.get("x-mock-chunks")
    if chunks is not None and chunks.strip().isdigit():
        return ScriptedReply(content="tok " * int(chunks), chunk_size=4, delay_between_chunks=delay)
    text = _dialects.last_user_text(dialect, request)
    return ScriptedReply(content=f"Mock reply to: {text}", delay_between_chunks=delay)


def _render_embeddings(
    scripted: ScriptedEmbeddings, request: Any, route: EmbeddingsRoute | None
) -> Reply:
    """A ``ScriptedEmbeddings`` answered on ``route``: the vectors, or a 400 in the shape
    the route's provider uses when the request is malformed or not an embeddings one."""
    knobs: dict[str, Any] = {
        "headers": scripted.headers,
        "delay_before_headers": scripted.delay_before_headers,
        "close_after_bytes": scripted.close_after_bytes,
    }
    if route is None:
        return Reply.error(400, "ScriptedEmbeddings answers embeddings routes only", **knobs)
    try:
        body = render_embeddings(scripted, request, route)
    except BadEmbeddingsRequest as exc:
        if route == "embeddings":
            return Reply.error(400, str(exc), **knobs)
        return Reply.gemini_error(400, str(exc), **knobs)
    if route == "embeddings":
        return Reply.json(body, **knobs)
    knobs["headers"] = _with_defaults(_dialects.GEMINI_JSON_HEADERS, scripted.headers)
    return Reply.json(body, **knobs)


def _render_scripted(
    scripted: ScriptedReply,
    request: Any,
    endpoint: _dialects.Endpoint,
    number: int,
    next_id: _dialects.NextId,
) -> Reply:
    """Render ``scripted`` in the endpoint's dialect, with its fault knobs."""
    rendered = _dialects.render(scripted, request, endpoint, number, next_id)
    # One SSE event (or JSON body) per write, so delays and faults fall between events.
    return Reply(
        headers=_with_defaults(rendered.headers, scripted.headers),
        body=b"".join(rendered.pieces),
        chunk_sizes=[len(piece) for piece in rendered.pieces],
        chunked=True if rendered.streamed else None,
        delay_before_headers=scripted.delay_before_headers,
        delay_between_chunks=scripted.delay_between_chunks,
        close_after_bytes=scripted.close_after_bytes,
        stall_after_bytes=scripted.stall_after_bytes,
    )


async def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    ready: Callable[[MockProvider], None] | None = None,
) -> None:
    """Run a ``MockProvider`` until cancelled; ``ready(mock)`` is called once listening."""
    async with MockProvider(host=host, port=port) as mock:
        if ready is not None:
            ready(mock)
        await anyio.sleep_forever()
