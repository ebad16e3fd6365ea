"""Shared helpers for the conformance corpus (../shared/conformance): loading cases and
comparing what the library produced with the case's ``expect`` block."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from ailib_anyio import AiLibError, ChatResponse


def shared_dir() -> Path | None:
    env = os.environ.get("AILIB_SHARED_DIR")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared"
    return path if path.is_dir() else None


def load_cases(dialect: str) -> list[Any]:
    """pytest params for every case of ``dialect``; a visible skip when the corpus is absent."""
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
        if case["dialect"] == dialect:
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


def model_for(case: dict[str, Any]) -> str:
    """The provider/model the case is driven with: OpenAI's own manifest for OpenAI's
    traffic, the generic OpenAI-compatible one for every other server of the dialect."""
    provider = case["id"].split("/")[0]
    model = case["request"]["body"].get("model", "model")
    manifest = "openai" if provider == "openai" else "openai-compatible"
    return f"{manifest}/{model}"


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
    calls = [
        {"id": c.id, "name": c.name, "arguments": dict(c.arguments)} for c in response.tool_calls
    ]
    assert calls == expect.get("tool_calls", [])
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
