"""Every chat case of the conformance corpus (OpenAI-compatible, Anthropic and Gemini
dialects), each through its own provider's shipped manifest: in the sans-IO core and end
to end through ``open_client`` against the loopback mock provider on asyncio and trio.

The case's folder names the provider whose traffic was captured; that provider's manifest
decodes, maps and classifies the bytes (the OpenAI-compatible cases of DeepSeek, Groq and
Mistral through their own manifests, Ollama's through ``openai-compatible``). Each case is
fed whole, one byte at a time and in random pieces (three seeds), and must give exactly the
normalized result its ``expect`` block states. Also: every shipped manifest loads in strict
mode and is internally consistent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conformance import (
    PROVIDER_MANIFESTS,
    case_model,
    check,
    core_result,
    load_cases,
    provider_model_for,
    replay_end_to_end,
    shared_dir,
)

from ailib_anyio._core._errors import STANDARD_KINDS
from ailib_anyio._core._mapping import _STANDARD_FINISH, ResponseAccumulator
from ailib_anyio._core._types import RateLimitSnapshot
from ailib_anyio._protocol._decoding import stream_pipeline
from ailib_anyio._protocol._loader import load_manifest
from ailib_anyio._protocol._models import API_FAMILIES
from ailib_anyio._protocol._registry import ProtocolRegistry, builtin_protocol_dir

#: every dialect of chat traffic (the embeddings cases are not chat responses)
CASES = load_cases("openai-chat", "anthropic-messages", "gemini")
SPLITS = ["whole", "bytes", "random-1", "random-2", "random-3"]
MANIFESTS = sorted(builtin_protocol_dir().glob("*.yaml"))


@pytest.mark.parametrize("how", SPLITS)
@pytest.mark.parametrize("case", CASES)
def test_case_through_provider_manifest(case: dict[str, Any], how: str) -> None:
    name, _, seed = how.partition("-")
    model = provider_model_for(case)
    stall = (case.get("replay") or {}).get("stall_after_bytes")
    if stall is not None:
        # The server goes silent after `stall` bytes; the read timeout is the transport's
        # (covered end to end). The core must hold what arrived, and no finish.
        response, error = core_result(case, name, int(seed or 0), model=model, stop_after=stall)
        assert error is None
        assert response is not None
        assert response.content == case["expect"].get("content", "")
        assert response.finish_reason is None
        return
    response, error = core_result(case, name, int(seed or 0), model=model)
    check(case, response, error)


#: the header each dialect's manifest authenticates with
AUTH_HEADERS = {
    "openai-chat": "authorization",
    "anthropic-messages": "x-api-key",
    "gemini": "x-goog-api-key",
}


@pytest.mark.anyio
@pytest.mark.parametrize("split", ["whole", "bytes", "random"])
@pytest.mark.parametrize("case", CASES)
async def test_case_end_to_end_with_provider_manifest(case: dict[str, Any], split: str) -> None:
    """The loopback mock replays the case's exact bytes (whole, one byte per write, or in
    random writes); open_client with the provider's own manifest (auth, endpoint, encoder,
    stream rules, error tables) must give the expected result."""
    sent = await replay_end_to_end(case, provider_model_for(case), split, seed=11)
    assert "test-key" in sent.headers[AUTH_HEADERS[case["dialect"]]]
    assert "test-key" not in sent.path
    if case["dialect"] == "gemini":
        streamed = sent.path.endswith(":streamGenerateContent?alt=sse")
        assert streamed is bool(case["stream"])
        assert f"/models/{case_model(case)}:" in sent.path
    else:
        assert sent.json["model"] == case["request"]["body"]["model"]
        assert sent.json.get("stream", False) is bool(case["stream"])


@pytest.mark.parametrize("case", CASES)
def test_case_model_resolves_to_its_provider(case: dict[str, Any]) -> None:
    provider, _, model = provider_model_for(case).partition("/")
    resolved = ProtocolRegistry().resolve(f"{provider}/{model}")
    assert resolved.manifest.id == provider
    assert resolved.model_id == case_model(case)
    if case["dialect"] == "gemini":  # the model is in the path, not the body
        assert f"/models/{resolved.model_id}:" in case["request"]["path"]


def test_every_case_folder_has_a_manifest() -> None:
    root = shared_dir()
    if root is None:
        pytest.skip("../shared/conformance not found")
    folders = {p.name for p in (root / "conformance" / "cases").iterdir() if p.is_dir()}
    assert folders <= set(PROVIDER_MANIFESTS), folders - set(PROVIDER_MANIFESTS)


# ---------------------------------------------------------------------- the manifests


@pytest.mark.parametrize("path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_manifest_loads_strictly_and_is_consistent(path: Path) -> None:
    manifest = load_manifest(path, strict=True)
    assert manifest.id == path.stem
    assert manifest.protocol_version == "2.0"
    assert manifest.endpoint.base_url.startswith("https://") or manifest.id == "openai-compatible"
    assert manifest.api_family in set(API_FAMILIES.values())
    auth = manifest.auth_spec
    assert auth.type in ("bearer", "header")  # never an API key in the URL
    assert auth.header
    assert auth.env_vars, "a credential environment variable"

    assert manifest.streaming is not None and manifest.streaming.event_map
    assert manifest.response is not None and manifest.response.event_map

    errors = manifest.error_classification
    kinds = {
        *errors.by_http_status.values(),
        *errors.by_error_code.values(),
        *errors.by_error_type.values(),
    }
    assert kinds <= STANDARD_KINDS, kinds - STANDARD_KINDS

    standard_finish = set(_STANDARD_FINISH)
    assert set(manifest.termination_mapping.values()) <= standard_finish

    known_headers = {a.name for a in RateLimitSnapshot.__attrs_attrs__} | {"request_id"}
    assert set(manifest.rate_limit_headers) <= known_headers
    assert manifest.rate_limit_headers.get("retry_after") == "retry-after"

    assert manifest.retry_policy is not None
    assert 429 in manifest.retry_policy.retry_on_http_status

    assert manifest.has_capability("streaming")
    assert manifest.has_capability("tools")
    if manifest.id != "openai-compatible":  # a local server's models are the user's
        assert manifest.metadata is not None and manifest.metadata.models
    for name, info in (manifest.metadata.models if manifest.metadata else {}).items():
        assert info.context_window and info.context_window > 0, name
        if info.max_output_tokens is not None:
            assert 0 < info.max_output_tokens <= info.context_window, name
        assert set(info.model_capabilities) >= {
            "tool_call",
            "vision",
            "reasoning",
            "structured_output",
        }, name
        if info.pricing is not None:
            prices = (
                info.pricing.input_per_1m,
                info.pricing.output_per_1m,
                info.pricing.cached_input_per_1m,
            )
            assert all(p is None or p >= 0 for p in prices), name
            assert info.pricing.input_per_1m is not None, name
            assert info.pricing.output_per_1m is not None, name
            cached = info.pricing.cached_input_per_1m
            assert cached is None or cached <= info.pricing.input_per_1m, name


@pytest.mark.parametrize(
    ("provider", "manifest_id"),
    [
        ("anthropic", "anthropic"),
        ("gemini", "gemini"),
        ("google", "gemini"),
        ("deepseek", "deepseek"),
        ("qwen", "qwen"),
        ("groq", "groq"),
        ("mistral", "mistral"),
        ("openai", "openai"),
        ("ollama", "openai-compatible"),
    ],
)
def test_registry_finds_every_provider(provider: str, manifest_id: str) -> None:
    assert ProtocolRegistry().get(provider).id == manifest_id


def test_gemini_key_never_in_the_url() -> None:
    gemini = ProtocolRegistry().get("gemini")
    auth = gemini.auth_spec
    assert (auth.type, auth.header) == ("header", "x-goog-api-key")
    assert auth.env_vars == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    chat = gemini.chat_endpoint
    assert chat.stream_path is not None and chat.stream_path.endswith("?alt=sse")
    assert "key=" not in chat.path + chat.stream_path


def test_anthropic_sends_its_version_and_a_max_tokens() -> None:
    anthropic = ProtocolRegistry().get("anthropic")
    auth = anthropic.auth_spec
    assert (auth.type, auth.header, auth.token_env) == ("header", "x-api-key", "ANTHROPIC_API_KEY")
    assert auth.extra_headers == {"anthropic-version": "2023-06-01"}
    max_tokens = anthropic.parameters["max_tokens"]
    assert max_tokens.required and max_tokens.default == 4096


def test_anthropic_server_tool_alone_does_not_make_a_tool_calls_finish() -> None:
    """A server tool (web search) ran, the model answered and ended its turn: nothing for
    the caller to execute, so the finish is `stop`, not `tool_calls`."""
    frames = [
        {"type": "message_start", "message": {"model": "m", "id": "msg", "usage": {}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "server_tool_use", "id": "srv", "name": "web_search"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"query": "x"}'},
        },
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text"}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Found it."},
        },
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
        {"type": "message_stop"},
    ]
    body = "".join(f"event: {f['type']}\ndata: {json.dumps(f)}\n\n" for f in frames).encode()
    anthropic = ProtocolRegistry().get("anthropic")
    assert anthropic.streaming is not None
    pipe = stream_pipeline(anthropic)
    acc = ResponseAccumulator()
    for event in [*pipe.feed(body), *pipe.close()]:
        acc.add(event)  # type: ignore[arg-type]
    response = acc.build(mapper=pipe.mapper)
    assert response.content == "Found it."
    assert response.tool_calls == ()
    assert response.finish_reason is not None
    assert response.finish_reason.normalized == "stop"
