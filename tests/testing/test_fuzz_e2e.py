"""End to end through the mock provider with random faults, on asyncio and trio.

Each example serves one reply in one of the three wire dialects: a valid stream or body
(cut into random writes, maybe after a slow first byte), the same cut off mid-body or
stalled, corrupted, or an error status with any error body. The client request must end
in the right response (for a valid reply) or a typed ``AiLibError`` (for the others),
never another exception; afterwards the client holds no in-flight slot and, once it is
closed, the mock has no open connection.
"""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ailib_anyio import AiLibError, ChatResponse, RemoteError, open_client
from ailib_anyio._core._types import Finished, StreamingEvent
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.testing import MockProvider, Reply, wire_response, wire_stream
from ailib_anyio.testing import strategies as ast
from ailib_anyio.testing._check import accumulated, comparable
from ailib_anyio.testing._dialects import dumps

pytestmark = pytest.mark.anyio

# provider/model, and the mock's base URL for it, per API family
TARGETS = {
    "openai_chat": ("openai/gpt-4o", "openai_base_url"),
    "anthropic_messages": ("anthropic/claude-sonnet-4-5", "anthropic_base_url"),
    "gemini_generate": ("gemini/gemini-2.5-flash", "gemini_base_url"),
}
MANIFESTS = {
    family: ProtocolRegistry().get(model.split("/")[0]) for family, (model, _) in TARGETS.items()
}
# short: a stall ends in a read timeout at once
TIMEOUT = httpx.Timeout(2.0, read=0.3)
FAULTS = ["none", "none", "none", "close", "stall", "corrupt", "error"]


@attrs.frozen
class Case:
    family: str
    stream: bool
    fault: str
    events: list[StreamingEvent]
    reply: Reply


@st.composite
def cases(draw: st.DrawFn) -> Case:
    family = draw(st.sampled_from(sorted(TARGETS)))
    stream = draw(st.booleans())
    manifest = MANIFESTS[family]
    features = (ast.stream_features if stream else ast.response_features)(manifest)
    # a reply that ends as the dialect ends one: with a finish reason
    events = draw(
        ast.stream_events(family, features).filter(
            lambda events: any(isinstance(e, Finished) for e in events)
        )
    )
    body = wire_stream(family, events) if stream else wire_response(family, events)
    content_type = "text/event-stream" if stream else "application/json"
    fault = draw(st.sampled_from(FAULTS))
    status = 200
    if fault == "corrupt":
        body = draw(ast.corruptions(body))
    elif fault == "error":
        status = draw(st.sampled_from([400, 401, 403, 404, 408, 429, 500, 502, 503, 529]))
        error = draw(ast.error_bodies())
        body = error.encode() if isinstance(error, str) else dumps(error).encode()
        content_type = "application/json"
    cut = draw(st.integers(0, len(body)))
    reply = Reply(
        status=status,
        headers={"content-type": content_type},
        body=body,
        split="random",
        seed=draw(st.integers(0, 2**16)),
        max_chunk=draw(st.sampled_from([1, 7, 64, 4096])),
        delay_before_headers=draw(st.sampled_from([0, 0, 0, 0.01])),
        close_after_bytes=cut if fault == "close" else None,
        stall_after_bytes=cut if fault == "stall" else None,
    )
    return Case(family, stream, fault, events, reply)


async def request(client: Any, stream: bool) -> ChatResponse:
    builder = client.chat().user("fuzz")
    if not stream:
        return await builder.execute()  # type: ignore[no-any-return]
    async with builder.stream() as events:
        async for _ in events:
            pass
    return events.response  # type: ignore[no-any-return]


@settings(max_examples=max(10, settings.default.max_examples // 5))
@given(case=cases())
async def test_faulty_replies_end_in_a_response_or_a_typed_error(case: Case) -> None:
    model, base_url = TARGETS[case.family]
    async with MockProvider() as mock:
        mock.enqueue(case.reply)
        async with open_client(
            model,
            api_key="fuzz-key",
            base_url=getattr(mock, base_url),
            timeout=TIMEOUT,
            max_retries=0,
        ) as client:
            try:
                response: ChatResponse | None = await request(client, case.stream)
                error: AiLibError | None = None
            except AiLibError as exc:
                response, error = None, exc
            assert client.current_inflight == 0
        with anyio.fail_after(5):
            while mock.open_connections:  # noqa: ASYNC110 - the mock counts, it has no event
                await anyio.sleep(0.01)
        assert mock.errors == []

    if case.fault == "none":
        assert error is None, repr(error)
        assert response is not None
        got = attrs.evolve(comparable(response), model=None, request_id=None, rate_limits=None)
        assert got == accumulated(case.events)
    elif case.fault in ("close", "stall"):
        assert error is not None, "a cut or stalled reply must fail"
    elif case.fault == "error":
        assert isinstance(error, RemoteError), repr(error)


DEEP = b"[" * 100_000 + b"]" * 100_000  # past the JSON parser's nesting depth


@pytest.mark.parametrize("status", [200, 500])
async def test_a_body_nested_past_the_json_parser_depth_is_a_typed_error(status: int) -> None:
    async with MockProvider() as mock:
        mock.enqueue(Reply(status=status, headers={"content-type": "application/json"}, body=DEEP))
        async with open_client(
            "openai/gpt-4o", api_key="fuzz-key", base_url=mock.openai_base_url, max_retries=0
        ) as client:
            with pytest.raises(AiLibError):
                await client.chat().user("deep").execute()
