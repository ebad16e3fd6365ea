"""Secrets (issue 10, items 1 and 2): a key read with a trailing newline or holding a
control character, a transport library quoting a header, and a hostile server echoing the
Authorization header in error bodies, in headers and mid-stream. The key must never reach
an error's str/repr/args/body/traceback or any log record of httpx, httpcore or
ailib_anyio. Both backends, real HTTP on loopback."""

from __future__ import annotations

import json
import logging
import traceback
from collections import deque
from collections.abc import Callable

import httpx
import pytest
from hostile import Answer, HostileServer, Seen

from ailib_anyio import (
    AiLibError,
    AuthenticationError,
    ConfigurationError,
    ServerError,
    TransportError,
    open_client,
)
from ailib_anyio._core._retry import RetryConfig
from ailib_anyio._core._secrets import (
    LOGGERS,
    SECRETS,
    RedactingFilter,
    get_logger,
    install_log_redaction,
)
from ailib_anyio._protocol._credentials import resolve_credential
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio._protocol._registry import ProtocolRegistry

pytestmark = pytest.mark.anyio

KEY = "sk-live-SECRET0123456789abcdef"
FAST_RETRY = RetryConfig(max_retries=1, min_delay=0.01, max_delay=0.01)


def openai_manifest() -> ProviderManifest:
    return ProtocolRegistry().get("openai")


# ------------------------------------------------------------------ the echo server

OK_BODY = {
    "id": "c1",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def sse(*frames: object) -> bytes:
    return b"".join(f"data: {json.dumps(f)}\n\n".encode() for f in frames) + b"data: [DONE]\n\n"


def echo(modes: deque[str]) -> Callable[[Seen], Answer]:
    """Answers built from the request's own Authorization header (and x-api-key)."""

    def respond(seen: Seen) -> Answer:
        auth = seen.headers.get("authorization") or seen.headers.get("x-api-key", "")
        echoed = [("x-echo-authorization", auth), ("x-request-id", f"req-{auth}")]
        mode = modes.popleft() if modes else "ok"
        if mode == "ok":
            return (
                200,
                [("content-type", "application/json"), *echoed],
                json.dumps(OK_BODY).encode(),
            )
        if mode == "json401":
            body = {
                "error": {
                    "message": f"Incorrect API key provided: {auth}",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                    "echo": {"headers": {"authorization": auth}, auth: [auth]},
                }
            }
            return 401, [("content-type", "application/json"), *echoed], json.dumps(body).encode()
        if mode == "text502":
            long = "x" * 495  # the key straddles the classifier's 500-character cut
            text = f"{long}Bad gateway; upstream refused Authorization: {auth}"
            return 502, [("content-type", "text/plain"), *echoed], text.encode()
        if mode == "garbage200":
            return 200, [("content-type", "application/json"), *echoed], f"<{auth}>".encode()
        if mode == "sse":
            frames = sse(
                {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            )
            return 200, [("content-type", "text/event-stream"), *echoed], frames
        if mode == "sse_error":
            frames = sse(
                {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
                {"error": {"message": f"proxy saw {auth}", "type": "server_error"}},
            )
            return 200, [("content-type", "text/event-stream"), *echoed], frames
        raise AssertionError(mode)

    return respond


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger at DEBUG, formatted with its exception text."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "ailib_anyio"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(r) for r in caplog.records)


def assert_masked(err: BaseException) -> None:
    """The key is nowhere in what the error shows, its chain and its traceback."""
    shown = [
        str(err),
        repr(err),
        repr(err.args),
        "".join(traceback.format_exception(err)),
    ]
    if isinstance(err, AiLibError):
        shown.append(repr(err.body))
        shown.extend(str(a) + repr(a) + repr(a.body) for a in err.attempts)
    for text in shown:
        assert KEY not in text, text
        assert KEY[3:20] not in text, text  # no piece either


# ------------------------------------------------------------------ credentials


def test_surrounding_whitespace_is_stripped() -> None:
    manifest = openai_manifest()
    explicit = resolve_credential(manifest, api_key=f"  {KEY}\n")
    assert explicit.secret == KEY
    env = resolve_credential(manifest, environ={"OPENAI_API_KEY": f"{KEY}\r\n"})
    assert env.secret == KEY
    assert env.source_name == "OPENAI_API_KEY"


def test_whitespace_only_values_count_as_unset() -> None:
    manifest = openai_manifest()
    report = resolve_credential(manifest, environ={"OPENAI_API_KEY": " \n"})
    assert report.status == "missing"
    report = resolve_credential(manifest, api_key="\t\n")
    assert report.status == "missing"
    assert report.diagnostics[0].startswith("no API key for provider 'openai': api_key= is empty")


@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x7f", "\x1b", "\x85"])
def test_control_character_inside_the_key_is_refused(char: str) -> None:
    bad = f"{KEY[:12]}{char}{KEY[12:]}"
    for kwargs, source in (
        ({"api_key": bad}, "api_key="),
        ({"environ": {"OPENAI_API_KEY": bad}}, "OPENAI_API_KEY"),
    ):
        with pytest.raises(ConfigurationError) as info:
            resolve_credential(openai_manifest(), **kwargs)  # type: ignore[arg-type]
        err = info.value
        assert str(err) == (
            f"the API key from {source} contains a control character (a line break, NUL or"
            " similar) inside it, which no HTTP header can carry; surrounding whitespace is"
            " stripped, so check how the key was copied (openai)"
        )
        for text in (str(err), repr(err), repr(err.args), "".join(traceback.format_exception(err))):
            assert KEY[:12] not in text
            assert KEY[12:] not in text
        assert char not in str(err) + repr(err) + repr(err.args)


def test_open_client_refuses_a_key_with_a_newline_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"{KEY[:10]}\n{KEY[10:]}\n")
    with pytest.raises(ConfigurationError, match="from OPENAI_API_KEY contains a control"):
        open_client("openai/gpt-4o")


async def test_a_key_read_from_a_file_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", f"  {KEY}\n")
    async with HostileServer(echo(deque(["ok"]))) as server:
        client = open_client("openai/gpt-4o", base_url=server.base_url)
        async with client:
            reply = await client.chat().user("hi").execute()
    assert reply.content == "ok"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert reply.request_id == "req-<redacted>"  # the server echoed the key into it


# ------------------------------------------------------------------ echoing servers


async def test_key_echoed_in_a_json_error_body_and_headers(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    async with (
        HostileServer(echo(deque(["json401"]))) as server,
        open_client(
            "openai/gpt-4o", api_key=KEY, base_url=server.base_url, max_retries=0
        ) as client,
    ):
        with pytest.raises(AuthenticationError) as info:
            await client.chat().user("hi").execute()
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was echoed
    err = info.value
    assert_masked(err)
    assert err.message == "authentication: Incorrect API key provided: <redacted>"
    assert err.body["error"]["echo"] == {
        "headers": {"authorization": "<redacted>"},
        "<redacted>": ["<redacted>"],
    }
    assert "request_id=req-<redacted>" in str(err)
    logs = log_text(all_logs)
    assert KEY not in logs
    assert "x-echo-authorization', b'<redacted>'" in logs  # httpcore's header log


async def test_key_echoed_in_a_text_body_through_retries_and_a_fallback(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    modes = deque(["text502", "text502", "json401"])
    async with HostileServer(echo(modes)) as server:
        fallback = open_client(
            "anthropic/claude-x", api_key=KEY + "-2", base_url=server.base_url, max_retries=0
        )
        async with open_client(
            "openai/gpt-4o",
            api_key=KEY,
            base_url=server.base_url,
            retry=FAST_RETRY,
            fallbacks=[fallback],
        ) as client:
            with pytest.raises(AiLibError) as info:
                await client.chat().user("hi").execute()
    assert len(server.requests) == 3
    assert server.requests[2].headers["x-api-key"] == KEY + "-2"
    err = info.value
    assert [type(a) for a in err.attempts] == [ServerError, ServerError, AuthenticationError]
    assert_masked(err)
    first = err.attempts[0]
    assert isinstance(first.body, str)
    assert first.body.endswith("upstream refused Authorization: <redacted>")
    assert KEY[:8] not in first.message  # masked before the classifier cut it at 500
    assert KEY not in log_text(all_logs)


async def test_key_echoed_in_a_malformed_success_body() -> None:
    async with (
        HostileServer(echo(deque(["garbage200"]))) as server,
        open_client(
            "openai/gpt-4o", api_key=KEY, base_url=server.base_url, max_retries=0
        ) as client,
    ):
        with pytest.raises(AiLibError) as info:
            await client.chat().user("hi").execute()
    assert_masked(info.value)
    assert "'<<redacted>>'" in str(info.value)
    cause = info.value.__cause__
    assert isinstance(cause, json.JSONDecodeError)
    assert cause.doc == "<<redacted>>"


async def test_key_echoed_mid_stream(all_logs: pytest.LogCaptureFixture) -> None:
    async with (
        HostileServer(echo(deque(["sse", "sse_error"]))) as server,
        open_client(
            "openai/gpt-4o", api_key=KEY, base_url=server.base_url, max_retries=0
        ) as client,
    ):
        async with client.chat().user("hi").stream() as stream:
            text = "".join([getattr(e, "text", "") async for e in stream])
        assert text == "hi"
        with pytest.raises(AiLibError) as info:
            async with client.chat().user("hi").stream() as stream:
                async for _ in stream:
                    pass
    err = info.value
    assert_masked(err)
    assert "proxy saw <redacted>" in str(err)
    assert KEY not in log_text(all_logs)


async def test_a_transport_library_quoting_the_key_is_masked(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    """h11 refuses a header value with a newline and quotes it whole; httpcore and httpx
    chain their own copies. The key must be masked in all of them, and an illegal request
    is not retried. (Keys are checked at open_client; here a header is forced into the
    transport afterwards, as a custom transport or a later change could.)"""
    async with (
        HostileServer(echo(deque())) as server,
        open_client(
            "openai/gpt-4o", api_key=KEY, base_url=server.base_url, retry=FAST_RETRY
        ) as client,
    ):
        assert client.primary.transport is not None
        client.primary.transport._headers["x-forced"] = f"{KEY}\n"
        with pytest.raises(TransportError) as info:
            await client.chat().user("hi").execute()
    assert server.requests == []
    err = info.value
    assert err.retryable is False
    assert err.attempts == (err,)  # not retried
    assert_masked(err)
    assert err.message.startswith("the request could not be sent: ")
    assert "<redacted>" in err.message
    chain = err.__cause__
    assert isinstance(chain, httpx.LocalProtocolError)
    while chain is not None:
        assert KEY not in str(chain)
        chain = chain.__cause__ or chain.__context__
    assert KEY not in log_text(all_logs)


async def test_a_full_run_logs_no_secret(all_logs: pytest.LogCaptureFixture) -> None:
    """Chat, stream, an error and a retry at DEBUG on every logger: httpcore prints each
    response's headers (which echo the key); every record is masked."""
    header_key = "hdr-SECRET-abcdef0123456789"
    modes = deque(["ok", "sse", "json401", "text502", "ok"])
    async with (
        HostileServer(echo(modes)) as server,
        open_client(
            "openai/gpt-4o",
            api_key=KEY,
            base_url=server.base_url,
            retry=FAST_RETRY,
            headers={"X-Gateway-Token": header_key},
        ) as client,
    ):
        await client.chat().user("hi").execute()
        async with client.chat().user("hi").stream() as stream:
            async for _ in stream:
                pass
        with pytest.raises(AuthenticationError):
            await client.chat().user("hi").execute()
        await client.chat().user("hi").execute()  # a 502, retried, then ok
        logging.getLogger("ailib_anyio").debug("the key is %s", KEY)
        get_logger("ailib_anyio.child").debug("header %s", header_key)
    assert len(server.requests) == 5
    assert server.requests[0].headers["x-gateway-token"] == header_key
    logs = log_text(all_logs)
    httpcore_records = [r for r in all_logs.records if r.name.startswith("httpcore.")]
    assert len(httpcore_records) > 20
    assert logs.count("b'<redacted>'") >= 5
    assert "the key is <redacted>" in logs
    assert [line for line in logs.splitlines() if KEY in line or header_key in line] == []
    assert SECRETS.pattern is None  # the client's secrets left with its block


def test_the_filter_is_on_the_loggers_that_make_records() -> None:
    install_log_redaction()
    for name in LOGGERS:
        assert any(isinstance(f, RedactingFilter) for f in logging.getLogger(name).filters)


def test_the_filter_masks_arguments_and_exception_text() -> None:
    SECRETS.add([KEY])
    try:
        try:
            raise ValueError(f"bad {KEY}")
        except ValueError:
            record = logging.LogRecord(
                "httpcore.http11",
                logging.DEBUG,
                __file__,
                1,
                "h=%r",
                ([(b"a", KEY.encode())],),
                None,
            )
            import sys

            record.exc_info = sys.exc_info()
        assert RedactingFilter().filter(record) is True
        assert record.getMessage() == "h=[(b'a', b'<redacted>')]"
        assert record.exc_text is not None and "ValueError: bad <redacted>" in record.exc_text
        assert KEY not in record.exc_text
    finally:
        SECRETS.discard([KEY])
    assert SECRETS.pattern is None


def test_secrets_are_counted_and_masked_in_their_encoded_forms() -> None:
    secret = "k+y/z=="
    SECRETS.add([secret])
    SECRETS.add([secret])
    try:
        assert SECRETS.mask("a k+y/z== b k%2By%2Fz%3D%3D c") == "a <redacted> b <redacted> c"
        SECRETS.discard([secret])
        assert SECRETS.mask(secret) == "<redacted>"  # the other holder still has it
    finally:
        SECRETS.discard([secret])
    assert SECRETS.mask(secret) == secret


def test_short_values_are_not_masked_in_free_text() -> None:
    SECRETS.add(["x", "Bearer x"])
    try:
        assert SECRETS.mask("max x: Bearer x") == "max x: <redacted>"
    finally:
        SECRETS.discard(["x", "Bearer x"])
    assert SECRETS.pattern is None
