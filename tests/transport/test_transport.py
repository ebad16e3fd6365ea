"""The sealed transport: only ``_transport/`` imports an HTTP library at runtime, and the
library works the same with a lent ``httpx2.AsyncClient`` as with httpx's (on loopback,
on asyncio and trio): answers, streams, error mapping, bounded bodies, unclean
connections never reused, the lent client left open.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest
from hostile import Answer, HostileServer, Seen

import ailib_anyio
from ailib_anyio import (
    ContentDelta,
    MalformedResponseError,
    ReadTimeoutError,
    TransportError,
    open_client,
)
from ailib_anyio._client._client import Client
from ailib_anyio._core._errors import (
    ConfigurationError,
    ConnectTimeoutError,
    WriteTimeoutError,
)
from ailib_anyio._core._errors import TimeoutError as AiTimeoutError
from ailib_anyio._transport._http import (
    HttpResponse,
    Transport,
    default_ssl_context,
    http_timeout,
    is_timeout,
    translate_transport_error,
    transport_errors,
)
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

KEY = "sk-test-secret-123"
PACKAGE = Path(ailib_anyio.__file__).parent
HTTP_LIBRARIES = ("httpx", "httpx2", "httpcore", "httpcore2")

HAVE_HTTPX2 = importlib.util.find_spec("httpx2") is not None
needs_httpx2 = pytest.mark.skipif(
    not HAVE_HTTPX2, reason="httpx2 is not installed (pip install 'ailib-anyio[httpx2]')"
)

# ------------------------------------------------------------------ the seal


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_http_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of an HTTP library outside ``if TYPE_CHECKING:``
    blocks, at any depth (function-level imports count)."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.partition(".")[0] in HTTP_LIBRARIES:
                found.append((node.lineno, name))  # type: ignore[attr-defined]
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found


def test_the_import_check_sees_runtime_imports_and_allows_type_checking_ones() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import typing\n"
        "if TYPE_CHECKING:\n"
        "    import httpx\n"
        "if typing.TYPE_CHECKING:\n"
        "    from httpx2 import AsyncClient\n"
        "else:\n"
        "    import httpcore\n"
        "def f():\n"
        "    import httpx2._client\n"
        "    from httpx import Timeout\n"
        "import httpxyz\n"
    )
    assert runtime_http_imports(source) == [(8, "httpcore"), (10, "httpx2._client"), (11, "httpx")]


def test_only_the_transport_imports_an_http_library_at_runtime() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE / "_transport":
            continue
        for line, name in runtime_http_imports(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: import {name}")
    assert offenders == []
    assert runtime_http_imports((PACKAGE / "_transport" / "_http.py").read_text(encoding="utf-8"))


def test_importing_the_library_does_not_import_httpx2() -> None:
    # httpx2 is used only when a client of it is lent: the library never imports it.
    code = "import sys, ailib_anyio, ailib_anyio.sync; print('httpx2' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------------ error mapping

EXPECTED = [
    ("ConnectTimeout", ConnectTimeoutError, "timed out connecting to the provider"),
    ("ReadTimeout", ReadTimeoutError, "timed out waiting for data from the provider"),
    ("WriteTimeout", WriteTimeoutError, "timed out sending the request"),
    ("PoolTimeout", AiTimeoutError, "timed out waiting for a free connection in the pool"),
    ("DecodingError", MalformedResponseError, "could not decode the response body: boom"),
    ("LocalProtocolError", TransportError, "the request could not be sent: boom"),
    ("RemoteProtocolError", TransportError, "connection to the provider failed: boom"),
    ("ConnectError", TransportError, "connection to the provider failed: boom"),
    ("InvalidURL", ConfigurationError, "invalid URL: boom"),
]


def _libraries() -> list[Any]:
    params: list[Any] = [pytest.param("httpx", id="httpx")]
    params.append(pytest.param("httpx2", id="httpx2", marks=needs_httpx2))
    return params


@pytest.mark.parametrize("library", _libraries())
@pytest.mark.parametrize(("name", "cls", "message"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_each_library_error_maps_to_the_same_library_error(
    library: str, name: str, cls: type[Exception], message: str
) -> None:
    lib = pytest.importorskip(library)
    exc = getattr(lib, name)("boom")
    assert isinstance(exc, transport_errors())
    error = translate_transport_error(exc, provider="openai")
    assert type(error) is cls
    assert error.message == message  # type: ignore[attr-defined]
    assert error.provider == "openai"  # type: ignore[attr-defined]
    twin = translate_transport_error(getattr(httpx, name)("boom"))
    assert twin.retryable == error.retryable  # type: ignore[attr-defined]


@needs_httpx2
def test_the_clients_the_transport_opens_share_one_ssl_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading the CA bundle is most of what opening a client costs: it is done once and
    the context shared; SSL_CERT_FILE and SSL_CERT_DIR still count."""
    import certifi

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = default_ssl_context()
    assert default_ssl_context() is context
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()  # certifi's bundle, as httpx loads it
    for _ in range(2):
        transport = Transport(headers={}, params={}, timeout=None, http_client=None)
        assert transport.client._transport._pool._ssl_context is context
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    other = default_ssl_context()
    assert other is not context and other is default_ssl_context()
    assert other.verify_mode is ssl.CERT_REQUIRED and other.get_ca_certs()


def test_timeouts_of_either_library_are_accepted() -> None:
    import httpx2

    assert is_timeout(httpx.Timeout(1.0)) and is_timeout(httpx2.Timeout(1.0))
    assert not is_timeout(1.0)
    got = http_timeout(httpx2.Timeout(3.0, connect=1.0), None)
    assert isinstance(got, httpx.Timeout)
    assert (got.connect, got.read, got.write, got.pool) == (1.0, 3.0, 3.0, 3.0)
    lent = httpx2.AsyncClient(timeout=httpx2.Timeout(7.0))
    assert http_timeout(None, lent) == httpx.Timeout(7.0)
    transport = Transport(headers={}, params={}, timeout=None, http_client=lent)
    assert transport.library is httpx2
    assert transport.client is lent
    # built without a lent client: httpx
    own = Transport(headers={}, params={}, timeout=None, http_client=None)
    assert own.library is httpx
    with pytest.raises(ConfigurationError, match=r"timeout must be seconds or an httpx\.Timeout"):
        Client("openai/gpt-4o", api_key=KEY, timeout="1")  # type: ignore[arg-type]


# ------------------------------------------------------------------ on loopback, lent httpx2


def client_for(base_url: str, http: Any, **kw: object) -> Client:
    return open_client(  # type: ignore[arg-type]
        "openai/gpt-4o", api_key=KEY, base_url=base_url, http_client=http, max_retries=0, **kw
    )


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


@asynccontextmanager
async def lent_httpx2(**kw: Any) -> AsyncIterator[Any]:
    import httpx2

    async with httpx2.AsyncClient(**kw) as http:
        yield http
    assert http.is_closed


@pytest.mark.anyio
@needs_httpx2
async def test_lent_httpx2_client_answers_and_streams(mock: MockProvider) -> None:
    import httpx2

    mock.enqueue(
        ScriptedReply(content="hello there"),
        ScriptedReply(content="streamed words", chunk_size=3),
    )
    async with lent_httpx2() as http:
        async with client_for(mock.openai_base_url, http) as client:
            assert client.primary.transport is not None
            assert client.primary.transport.library is httpx2
            assert (await client.chat().user("hi").execute()).content == "hello there"
            deltas = []
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        deltas.append(event.text)
            assert "".join(deltas) == "streamed words"
            assert len(deltas) > 1
        assert not http.is_closed  # the library never closes a lent client
    assert [r.headers.get("authorization") for r in mock.requests] == [f"Bearer {KEY}"] * 2


@pytest.mark.anyio
@needs_httpx2
async def test_lent_httpx2_errors_are_library_errors(mock: MockProvider) -> None:
    import httpx2

    mock.enqueue(
        Reply.json({"id": "x", "choices": []}, close_after_bytes=5),
        ScriptedReply(content="abcdefgh" * 40, chunk_size=4, close_after_bytes=700),
        Reply.json({"id": "x", "choices": []}, stall_after_bytes=5),
    )
    async with (
        lent_httpx2(timeout=httpx2.Timeout(0.5)) as http,
        client_for(mock.openai_base_url, http) as client,
    ):
        with pytest.raises(TransportError) as cut:
            await client.chat().user("hi").execute()
        assert isinstance(cut.value.__cause__, httpx2.HTTPError)
        assert cut.value.provider == "openai"

        got = []
        with pytest.raises(TransportError) as mid:
            async with client.chat().user("hi").stream() as stream:
                async for event in stream:
                    got.append(event)
        assert got  # events came before the cut
        assert isinstance(mid.value.__cause__, httpx2.HTTPError)
        assert mid.value.message.startswith("connection to the provider failed")

        with pytest.raises(ReadTimeoutError) as slow:
            await client.chat().user("hi").execute()
        assert isinstance(slow.value.__cause__, httpx2.ReadTimeout)
        assert client.current_inflight == 0


@pytest.mark.anyio
@needs_httpx2
async def test_lent_httpx2_connect_failure_is_a_transport_error() -> None:
    import httpx2

    with anyio.fail_after(30):
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        await listener.aclose()  # nothing listens there any more
        async with lent_httpx2() as http, client_for(f"http://127.0.0.1:{port}/v1", http) as c:
            with pytest.raises(TransportError) as info:
                await c.chat().user("hi").execute()
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    assert info.value.message.startswith("connection to the provider failed")


# The raw servers below answer with exact bytes (a forged second response, a body over
# the limit) to check the hardened read path with httpx2's connection pool.


def _completion(text: str) -> bytes:
    return json.dumps(
        {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}
    ).encode()


def _reply(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n" + (
        f"content-length: {len(body)}\r\n\r\n".encode() + body
    )


@asynccontextmanager
async def raw_server(
    first: bytes, rest: bytes
) -> AsyncIterator[tuple[str, list[int]]]:  # url, [connections, requests]
    counts = [0, 0]

    async def serve(stream: anyio.abc.SocketStream) -> None:
        counts[0] += 1
        buffer = b""
        async with stream:
            try:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        buffer += await stream.receive()
                    header, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = 0
                    for line in header.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buffer) < length:
                        buffer += await stream.receive()
                    buffer = buffer[length:]
                    counts[1] += 1
                    await stream.send(first if counts[1] == 1 else rest)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        try:
            yield f"http://127.0.0.1:{port}/v1", counts
        finally:
            tg.cancel_scope.cancel()


@pytest.mark.anyio
@needs_httpx2
async def test_lent_httpx2_never_reuses_a_connection_with_bytes_past_the_end() -> None:
    forged = _reply(_completion("first")) + _reply(_completion("INJECTED"))
    async with (
        raw_server(forged, _reply(_completion("second"))) as (url, counts),
        lent_httpx2() as http,
        client_for(url, http) as client,
    ):
        assert (await client.chat().user("hi").execute()).content == "first"
        await anyio.sleep(0.1)  # the forged bytes are in the client's buffer by now
        assert (await client.chat().user("hi").execute()).content == "second"
        assert (await client.chat().user("hi").execute()).content == "second"
    assert counts == [2, 3]  # the dirty connection dropped, the clean one reused


@pytest.mark.anyio
@needs_httpx2
async def test_lent_httpx2_body_over_the_limit_is_malformed() -> None:
    big = _reply(_completion("x" * 5000))
    async with (
        raw_server(big, big) as (url, _counts),
        lent_httpx2() as http,
        client_for(url, http, max_response_bytes=4000) as client,
    ):
        with pytest.raises(MalformedResponseError) as info:
            await client.chat().user("hi").execute()
    assert info.value.message == "the response body is larger than max_response_bytes (4000 bytes)"


@pytest.mark.anyio
async def test_the_response_type_hides_the_http_library(mock: MockProvider) -> None:
    # Transport.send answers the library's own type, with httpx as with httpx2.
    mock.enqueue(Reply.json({"ok": True}, headers={"x-request-id": "r1"}))
    transport = Transport(
        headers={"authorization": f"Bearer {KEY}"}, params={}, timeout=5.0, http_client=None
    )
    try:
        response = await transport.send(
            mock.openai_base_url + "/chat/completions", b"{}", context={}
        )
        try:
            assert type(response) is HttpResponse
            assert response.status_code == 200
            assert response.headers["X-Request-Id"] == "r1"  # case-insensitive
            assert json.loads(await response.aread(context={})) == {"ok": True}
        finally:
            await response.aclose()
    finally:
        await transport.aclose()


@pytest.mark.anyio
@needs_httpx2
async def test_an_httpx_timeout_setting_applies_to_a_lent_httpx2_client(
    mock: MockProvider,
) -> None:
    import httpx2

    mock.enqueue(Reply.json({"id": "x", "choices": []}, stall_after_bytes=5))
    async with (
        lent_httpx2(timeout=httpx2.Timeout(600.0)) as http,
        client_for(mock.openai_base_url, http, timeout=httpx.Timeout(0.5)) as client,
    ):
        with anyio.fail_after(30), pytest.raises(ReadTimeoutError) as info:
            await client.chat().user("hi").execute()
    assert isinstance(info.value.__cause__, httpx2.ReadTimeout)


# ------------------------------------------------------------ a client's own transport


@pytest.mark.anyio
async def test_own_client_requests_carry_the_client_default_headers(
    mock: MockProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A client the library built sends its requests to its transport directly (not
    through ``AsyncClient.send``): what arrives is what the client would have sent, its
    default headers included, and the client's INFO line is still logged."""
    caplog.set_level(logging.INFO, logger="httpx")
    mock.enqueue(ScriptedReply(content="direct"))
    async with open_client(
        "openai/gpt-4o", api_key="sk-direct-0000", base_url=mock.openai_base_url
    ) as client:
        assert (await client.chat().user("hi").execute()).content == "direct"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert line == f'HTTP Request: POST {mock.openai_base_url}/chat/completions "HTTP/1.1 200 OK"'
    headers = mock.requests[-1].headers
    assert headers["accept"] == "*/*"
    assert headers["accept-encoding"] == "gzip, deflate"
    assert headers["connection"] == "keep-alive"
    assert headers["user-agent"].startswith("ailib-anyio/")
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(mock.requests[-1].body)
    assert headers["authorization"] == "Bearer sk-direct-0000"


@pytest.mark.anyio
async def test_a_proxy_named_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``HTTP_PROXY`` set, the client routes through the proxy transport httpx
    mounts for it (the direct path is only for clients without one): here the only way
    to the unresolvable host is the loopback "proxy", which answers itself."""
    reply = json.dumps(
        {
            "id": "chatcmpl-proxy",
            "object": "chat.completion",
            "model": "gpt-4o",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "via proxy"},
                    "finish_reason": "stop",
                }
            ],
        }
    ).encode()

    def respond(seen: Seen) -> Answer:
        return 200, [("content-type", "application/json")], reply

    async with HostileServer(respond) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with open_client(
            "openai/gpt-4o", api_key="sk-proxied-0000", base_url="http://llm.invalid/v1"
        ) as client:
            assert (await client.chat().user("hi").execute()).content == "via proxy"
    (seen,) = proxy.requests
    assert seen.target == "http://llm.invalid/v1/chat/completions"  # absolute form
