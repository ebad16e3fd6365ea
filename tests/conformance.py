"""Shared helpers for the conformance corpus (../shared/conformance): loading cases, choosing
the manifest a case is driven with, running a case through the sans-IO core with the
client's own decoders (``core_result``), and comparing the result with the case's
``expect`` block."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ailib_anyio import AiLibError, ChatResponse
from ailib_anyio._core._classify import classify_error, error_from_info
from ailib_anyio._core._mapping import DecodeFailure, ResponseAccumulator, StreamFailure
from ailib_anyio._protocol._decoding import response_decoder, stream_pipeline
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio._protocol._registry import ProtocolRegistry, split_model


def shared_dir() -> Path | None:
    env = os.environ.get("AILIB_SHARED_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def load_cases(*dialects: str) -> list[Any]:
    """pytest params for every case of the ``dialects``; a visible skip when the corpus is
    absent."""
    root = shared_dir()
    if root is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI must run beside ../shared (the conformance corpus)")
        return [
            pytest.param(None, marks=pytest.mark.skip(reason="../shared/conformance not found"))
        ]
    out = []
    for path in sorted((root / "conformance" / "cases").glob("*/*.yaml")):
        case = yaml.safe_load(path.read_text(encoding="utf-8"))
        if case["dialect"] in dialects:
            out.append(pytest.param(case, id=case["id"]))
    return out


def body_bytes(case: dict[str, Any]) -> bytes:
    """The exact wire bytes of a case (the corpus README's rule)."""
    resp = case["response"]
    if "body_raw" in resp:
        return str(resp["body_raw"]).encode("utf-8")
    body = resp["body"]
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def response_headers(case: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (case["response"].get("headers") or {}).items():
        out[key.lower()] = ", ".join(value) if isinstance(value, list) else str(value)
    return out


#: case folder (the provider whose traffic was captured) -> the shipped manifest for it
PROVIDER_MANIFESTS: dict[str, str] = {
    "anthropic": "anthropic",
    "gemini": "gemini",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral",
    "openai": "openai",
    "ollama": "openai-compatible",
}

# Gemini names the model in the path: /v1beta/models/gemini-2.5-flash:generateContent
_PATH_MODEL = re.compile(r"/models/([^/:?]+)")


def case_model(case: dict[str, Any]) -> str:
    """The model id of a case: the request body's ``model``, else the one in the path."""
    model = (case["request"].get("body") or {}).get("model")
    if isinstance(model, str) and model:
        return model
    found = _PATH_MODEL.search(case["request"].get("path", ""))
    return found.group(1) if found else "model"


def model_for(case: dict[str, Any]) -> str:
    """The provider/model the case is driven with: OpenAI's own manifest for OpenAI's
    traffic, the generic OpenAI-compatible one for every other server of the dialect."""
    provider = case["id"].split("/")[0]
    manifest = "openai" if provider == "openai" else "openai-compatible"
    return f"{manifest}/{case_model(case)}"


def provider_model_for(case: dict[str, Any]) -> str:
    """The provider/model with the provider's own manifest (by the case's folder)."""
    return f"{PROVIDER_MANIFESTS[case['id'].split('/')[0]]}/{case_model(case)}"


def splits(data: bytes, how: str, seed: int = 0) -> list[bytes]:
    """``data`` whole, one byte at a time, or in random pieces of 1..64 bytes."""
    if how == "whole":
        return [data]
    if how == "bytes":
        return [data[i : i + 1] for i in range(len(data))]
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 64)
        out.append(data[i : i + n])
        i += n
    return out


def core_result(
    case: dict[str, Any],
    how: str,
    seed: int = 0,
    *,
    model: str | None = None,
    stop_after: int | None = None,
) -> tuple[ChatResponse | None, AiLibError | None]:
    """Run a case through the sans-IO core only (no sockets), with the client's own
    decoders (``stream_pipeline``/``response_decoder`` of the manifest of ``model``,
    default ``model_for(case)``; ``error_from_info`` for an error status). ``stop_after``:
    only that many bytes of a stream arrive, and the body never ends (what was received so
    far is returned)."""
    manifest: ProviderManifest = ProtocolRegistry().get(split_model(model or model_for(case))[0])
    status = case["response"]["status"]
    data = body_bytes(case)
    headers = response_headers(case)
    if status >= 400:
        body = json.loads(data)
        info = classify_error(manifest.error_classification, status, headers, body)
        return None, error_from_info(info, body=body)
    if not case["stream"]:
        try:
            return response_decoder(manifest).decode(
                json.loads(data), status=status, headers=headers
            ), None
        except AiLibError as exc:
            return None, exc
    pipe = stream_pipeline(manifest)
    events: list[Any] = []
    for piece in splits(data if stop_after is None else data[:stop_after], how, seed):
        pipe.feed(piece, events)
    if stop_after is None:
        events.extend(pipe.close())
    acc = ResponseAccumulator()
    for event in events:
        if isinstance(event, StreamFailure):
            partial = acc.build(mapper=pipe.mapper)
            return None, pipe.error(event, status=status, headers=headers, partial=partial)
        if isinstance(event, DecodeFailure):  # the client raises it with what came before
            return None, event.error_with(
                status_code=status, response=acc.build(mapper=pipe.mapper)
            )
        acc.add(event)
    return acc.build(mapper=pipe.mapper), None


def check(case: dict[str, Any], response: ChatResponse | None, error: AiLibError | None) -> None:
    """Assert the library's result matches the case's ``expect`` block."""
    expect = case["expect"]
    want_error = expect.get("error")
    if want_error is None:
        assert error is None, f"unexpected error: {error!r}"
    else:
        assert error is not None, "expected an error, got a response"
        assert error.kind == want_error["kind"], (error.kind, want_error)
        assert error.status_code == want_error["status"]
        assert error.retryable is want_error["retryable"]
        if "retry_after_seconds" in want_error:
            assert error.retry_after == pytest.approx(want_error["retry_after_seconds"])
        if "error_class" in want_error:
            assert type(error).__name__ == want_error["error_class"]
        response = error.response
        if not want_error.get("mid_stream"):
            return
    assert response is not None
    mid_stream = bool(want_error and want_error.get("mid_stream"))
    assert response.content == expect.get("content", "")
    assert response.reasoning == expect.get("reasoning", "")
    assert response.refusal == expect.get("refusal")
    # A call the provider sent without an id (expected ``id: null``) gets a generated one
    # when the manifest asks for it (``tooling.generate_missing_ids``), marked as such.
    calls = [
        {
            "id": None if c.id_generated else c.id,
            "name": c.name,
            "arguments": dict(c.arguments),
        }
        for c in response.tool_calls
    ]
    assert calls == expect.get("tool_calls", [])
    for c in response.tool_calls:
        assert c.id is not None or not c.id_generated
    if not mid_stream or "finish_reason" in expect:
        want = expect.get("finish_reason")
        got = response.finish_reason
        assert (None if got is None else {"normalized": got.normalized, "raw": got.raw}) == want
    if not mid_stream or "usage" in expect:
        want_usage = expect.get("usage")
        if want_usage is None:
            assert response.usage is None
        else:
            assert response.usage is not None
            assert response.usage.input_tokens == want_usage["input_tokens"]
            assert response.usage.output_tokens == want_usage["output_tokens"]
            if "reasoning_tokens" in want_usage:
                assert response.usage.reasoning_tokens == want_usage["reasoning_tokens"]


def replay_reply(case: dict[str, Any], split: str, seed: int) -> Any:
    """A mock-provider ``Reply`` replaying the case's exact bytes in ``split`` writes."""
    from ailib_anyio.testing import Reply

    replay = case.get("replay") or {}
    return Reply(
        status=case["response"]["status"],
        headers=case["response"].get("headers") or {},
        body=body_bytes(case),
        split=split,
        seed=seed,
        max_chunk=64,
        stall_after_bytes=replay.get("stall_after_bytes"),
        close_after_bytes=replay.get("close_after_bytes"),
    )


def replay_timeout(case: dict[str, Any]) -> Any:
    """The stalling case needs a short read (idle) timeout; the others a generous one."""
    import httpx

    return (
        httpx.Timeout(30.0, read=0.5) if "stall_after_bytes" in (case.get("replay") or {}) else 30.0
    )


async def client_result(
    client: Any, case: dict[str, Any]
) -> tuple[ChatResponse | None, AiLibError | None]:
    """Run the case's request through a client the way a user would (stream or not)."""
    builder = client.chat().user("conformance")
    try:
        if case["stream"]:
            async with builder.stream() as stream:
                async for _ in stream:
                    pass
            return stream.response, None
        return await builder.execute(), None
    except AiLibError as exc:
        return None, exc


async def replay_end_to_end(case: dict[str, Any], model: str, split: str, seed: int) -> Any:
    """Replay the case's exact bytes from the loopback mock, run its request through
    ``open_client(model)`` (one attempt: the case is one recorded response), check the
    result, and return the request the mock recorded."""
    from ailib_anyio import open_client
    from ailib_anyio.testing import MockProvider

    async with MockProvider() as mock:
        mock.enqueue(replay_reply(case, split, seed=seed))
        async with open_client(
            model,
            api_key="test-key",
            base_url=mock.openai_base_url,
            timeout=replay_timeout(case),
            max_retries=0,
        ) as client:
            response, error = await client_result(client, case)
            assert client.current_inflight == 0
        check(case, response, error)
        return mock.requests[0]
