"""Built-in rules for a declared response format (``ailib_anyio/_protocol/_defaults.py``):
the spec's own manifests, which declare their format but give no non-streaming rules (and
no usage rule in some stream event maps), run non-streaming chat and report stream usage,
end to end against the loopback mock on asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from compliance_runner import spec_root

from ailib_anyio import ConfigurationError, ContentDelta, Usage, open_client
from ailib_anyio._core._rules import EmitKind
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio.testing import MockProvider, ScriptedReply, ScriptedToolCall

ROOT = spec_root()
needs_spec = pytest.mark.skipif(ROOT is None, reason="../shared/ai-protocol absent")


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


def upstream_v2() -> Path:
    assert ROOT is not None
    return ROOT / "v2" / "providers"


@needs_spec
@pytest.mark.anyio
async def test_non_streaming_chat_with_the_upstream_openai_manifest(mock: MockProvider) -> None:
    mock.enqueue(
        ScriptedReply(
            content="Sunny.",
            tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})],
            usage=(12, 7),
        )
    )
    async with open_client(
        "openai/gpt-4o",
        api_key="sk-test",
        base_url=mock.openai_base_url,
        protocol_path=upstream_v2(),
        max_retries=0,
    ) as client:
        assert client.manifest.source is not None
        assert client.manifest.source.startswith(str(upstream_v2()))
        response = await client.chat().user("weather?").execute()
    assert response.content == "Sunny."
    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 7)
    assert response.finish_reason is not None
    assert response.finish_reason.raw == "tool_calls"


@needs_spec
@pytest.mark.anyio
async def test_stream_usage_with_the_compliance_suites_openai_manifest(
    mock: MockProvider, tmp_path: Path
) -> None:
    # mock-openai.yaml declares `strategy: openai_chat` and an event_map without usage
    assert ROOT is not None
    fixture = ROOT / "tests/compliance/fixtures/providers/mock-openai.yaml"
    (tmp_path / "openai.yaml").write_text(fixture.read_text())
    mock.enqueue(ScriptedReply(content="Hello there", usage=(3, 2), chunk_size=4))
    async with open_client(
        "openai/gpt-4o",
        api_key="sk-test",
        base_url=mock.openai_base_url,
        protocol_path=tmp_path,
        max_retries=0,
    ) as client:
        builder = client.chat().user("hi").extra_body({"stream_options": {"include_usage": True}})
        async with builder.stream() as stream:
            events = [event async for event in stream]
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Hello there"
    usage = [e for e in events if isinstance(e, Usage)]
    assert [(u.input_tokens, u.output_tokens) for u in usage] == [(3, 2)]


@needs_spec
@pytest.mark.anyio
async def test_non_streaming_chat_with_the_upstream_anthropic_manifest(
    mock: MockProvider,
) -> None:
    mock.enqueue(ScriptedReply(content="Bonjour", usage=(5, 1)))
    async with open_client(
        "anthropic/claude-sonnet-4-5",
        api_key="sk-ant-test",
        base_url=mock.anthropic_base_url,
        protocol_path=upstream_v2(),
        max_retries=0,
    ) as client:
        response = await client.chat().user("hi").max_tokens(64).execute()
    assert response.content == "Bonjour"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (5, 1)
    assert response.finish_reason is not None
    assert response.finish_reason.raw == "end_turn"


MANIFEST = """
id: acme
protocol_version: "2.0"
endpoint: {base_url: "http://127.0.0.1:1"}
streaming:
  decoder: {format: sse, strategy: %s}
  event_map:
    - emit: PartialContentDelta
      match: $.choices[0].delta.content
      extract:
        content: $.choices[0].delta.content
"""


def test_a_declared_format_fills_in_only_the_kinds_the_manifest_leaves_out() -> None:
    manifest = load_manifest_text(MANIFEST % "openai_chat")
    assert manifest.streaming is not None
    kinds = [rule.emit for rule in manifest.streaming.event_map]
    # the manifest's own content rule, alone for its kind; the format's for the others
    assert kinds.count(EmitKind.CONTENT) == 1
    assert manifest.streaming.event_map[0].emit is EmitKind.CONTENT
    assert {EmitKind.USAGE, EmitKind.FINISH, EmitKind.TOOL_CALL, EmitKind.ERROR} <= set(kinds)
    assert manifest.response is not None and manifest.response.event_map


def test_an_unknown_or_absent_format_adds_nothing() -> None:
    for strategy in ("sse_ignore_comments", "null"):
        manifest = load_manifest_text(MANIFEST % strategy)
        assert manifest.streaming is not None
        assert [rule.emit for rule in manifest.streaming.event_map] == [EmitKind.CONTENT]
        assert manifest.response is None


@pytest.mark.anyio
async def test_without_a_declared_format_non_streaming_chat_is_refused(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(MANIFEST % "null")
    async with open_client("acme/m", api_key="k", protocol_path=tmp_path) as client:
        with pytest.raises(ConfigurationError, match="has no 'response' rules"):
            await client.chat().user("hi").execute()
