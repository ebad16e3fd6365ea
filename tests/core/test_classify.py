"""Tests for error classification: (status, headers, body) -> AI-Protocol error kind.

The rules under test are the conformance corpus README's ("Errors"), applied through the
shipped OpenAI manifest's ``error_classification`` and through ``DEFAULT_ERROR_RULES``.
Error bodies are untrusted input, so classification is also fuzzed with arbitrary JSON.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ailib_anyio._core._classify import (
    DEFAULT_ERROR_RULES,
    ErrorInfo,
    ErrorRules,
    classify_error,
    parse_retry_after,
)
from ailib_anyio._core._errors import (
    CapabilityNotDeclaredError,
    ConfigurationError,
    MiddlewareError,
    ProtocolError,
    RateLimitedError,
)
from ailib_anyio._core._rules import FieldSpec
from ailib_anyio._protocol._registry import ProtocolRegistry

#: the AI-Protocol standard error names (conformance README, "Errors").
STANDARD_KINDS = {
    "rate_limited",
    "quota_exhausted",
    "authentication",
    "permission_denied",
    "invalid_request",
    "request_too_large",
    "not_found",
    "overloaded",
    "server_error",
    "timeout",
    "content_filter",
}
RETRYABLE = {"rate_limited", "overloaded", "server_error", "timeout"}


@functools.cache
def openai_rules() -> ErrorRules:
    return ProtocolRegistry().get("openai").error_classification


def rules_for(name: str) -> ErrorRules:
    return openai_rules() if name == "openai" else DEFAULT_ERROR_RULES


RULES = ["openai", "default"]


def openai_error(message: str, type: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


# -- the status table (rule 4) ------------------------------------------------------------------


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request"),
        (413, "invalid_request"),
        (422, "invalid_request"),
        (401, "authentication"),
        (403, "permission_denied"),
        (404, "not_found"),
        (408, "timeout"),
        (429, "rate_limited"),
        (500, "server_error"),
        (502, "server_error"),
        (503, "overloaded"),
        (529, "overloaded"),
        (504, "timeout"),
    ],
)
def test_status_table(rules: str, status: int, kind: str) -> None:
    body = openai_error("Something is wrong.")
    info = classify_error(rules_for(rules), status, {}, body)
    assert info == ErrorInfo(
        kind=kind,
        message="Something is wrong.",
        status=status,
        retryable=kind in RETRYABLE,
    )


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize(("status", "kind"), [(418, "invalid_request"), (507, "server_error")])
def test_unlisted_statuses_fall_back_by_class(rules: str, status: int, kind: str) -> None:
    info = classify_error(rules_for(rules), status, {}, None)
    assert info.kind == kind
    assert info.message == f"HTTP {status}"
    assert info.retryable is (kind in RETRYABLE)


@pytest.mark.parametrize("rules", RULES)
def test_status_wins_over_a_disagreeing_type(rules: str) -> None:
    # OpenAI's 503 "no capacity" says invalid_request_error.
    body = openai_error("The server is overloaded or not ready yet.", type="invalid_request_error")
    info = classify_error(rules_for(rules), 503, {}, body)
    assert info == ErrorInfo(
        kind="overloaded",
        message="The server is overloaded or not ready yet.",
        status=503,
        type="invalid_request_error",
        retryable=True,
    )


# -- codes (rules 1 and 2) ---------------------------------------------------------------------


def test_insufficient_quota_is_not_rate_limited() -> None:
    body = openai_error(
        "You exceeded your current quota, please check your plan and billing details.",
        type="insufficient_quota",
        code="insufficient_quota",
    )
    info = classify_error(openai_rules(), 429, {"retry-after": "20"}, body)
    assert info.kind == "quota_exhausted"
    assert info.retryable is False
    assert info.code == "insufficient_quota"
    assert info.status == 429


def test_rate_limit_exceeded_is_retryable() -> None:
    body = openai_error(
        "Rate limit reached for gpt-4o on tokens per min (TPM). Please try again in 26.604s.",
        type="tokens",
        code="rate_limit_exceeded",
    )
    headers = {"retry-after": "27", "x-ratelimit-remaining-tokens": "0"}
    info = classify_error(openai_rules(), 429, headers, body)
    assert info == ErrorInfo(
        kind="rate_limited",
        message=body["error"]["message"],
        status=429,
        code="rate_limit_exceeded",
        type="tokens",
        retryable=True,
        retry_after=27.0,
    )


@pytest.mark.parametrize("rules", RULES)
def test_context_length_exceeded_code(rules: str) -> None:
    body = openai_error(
        "Your input exceeds the context window of this model.",
        type="invalid_request_error",
        code="context_length_exceeded",
    )
    info = classify_error(rules_for(rules), 400, {}, body)
    assert info == ErrorInfo(
        kind="request_too_large",
        message="Your input exceeds the context window of this model.",
        status=400,
        code="context_length_exceeded",
        type="invalid_request_error",
        retryable=False,
        context_length=True,
    )


@pytest.mark.parametrize("rules", RULES)
@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            400,
            "This model's maximum context length is 128000 tokens. However, your messages"
            " resulted in 130000 tokens. Please reduce the length of the messages.",
        ),
        (400, "prompt is too long: 210000 tokens > 200000 maximum"),
        (413, "Too many input tokens for this model"),
    ],
)
def test_context_overflow_said_only_in_the_message(rules: str, status: int, message: str) -> None:
    info = classify_error(rules_for(rules), status, {}, openai_error(message, code=None))
    assert info.kind == "request_too_large"
    assert info.context_length is True
    assert info.retryable is False
    assert info.message == message


@pytest.mark.parametrize("rules", RULES)
def test_context_words_on_other_statuses_do_not_count(rules: str) -> None:
    info = classify_error(
        rules_for(rules), 500, {}, openai_error("error computing maximum context length")
    )
    assert info.kind == "server_error"
    assert info.context_length is False


def test_error_codes_from_the_manifest() -> None:
    rules = openai_rules()
    body = openai_error(
        "Incorrect API key provided: sk-abc***", "invalid_request_error", "invalid_api_key"
    )
    assert classify_error(rules, 401, {}, body).kind == "authentication"
    body = openai_error(
        "The model `gpt-9` does not exist", "invalid_request_error", "model_not_found"
    )
    assert classify_error(rules, 404, {}, body).kind == "not_found"


# -- errors inside a 200 stream (rule 5) ----------------------------------------------------------


@pytest.mark.parametrize("rules", RULES)
def test_mid_stream_error_uses_the_status_in_the_body(rules: str) -> None:
    body = {
        "error": {
            "message": "tool call validation failed: attempted to call tool 'x'",
            "type": "invalid_request_error",
            "code": "tool_use_failed",
            "failed_generation": "...",
            "status_code": 400,
        }
    }
    info = classify_error(rules_for(rules), 200, {}, body, mid_stream=True)
    assert info == ErrorInfo(
        kind="invalid_request",
        message="tool call validation failed: attempted to call tool 'x'",
        status=200,  # the status on the wire
        code="tool_use_failed",
        type="invalid_request_error",
        retryable=False,
    )


def test_mid_stream_error_by_type() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    rules = ErrorRules(by_error_type={"overloaded_error": "overloaded"})
    for r in (rules, openai_rules()):
        info = classify_error(r, 200, {}, body, mid_stream=True)
        assert info == ErrorInfo(
            kind="overloaded",
            message="Overloaded",
            status=200,
            type="overloaded_error",
            retryable=True,
        )


def test_mid_stream_error_without_any_hint_is_a_server_error() -> None:
    info = classify_error(DEFAULT_ERROR_RULES, 200, {}, {"error": "boom"}, mid_stream=True)
    assert info == ErrorInfo(kind="server_error", message="boom", status=200, retryable=True)


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "header", "retryable"),
    [
        (500, "false", False),
        (400, "true", True),
        (429, "false", False),
        (503, "true", True),
        (500, "maybe", True),  # anything else: the kind decides
        (400, "TRUE", False),
    ],
)
def test_x_should_retry_overrides_the_kind(status: int, header: str, retryable: bool) -> None:
    info = classify_error(openai_rules(), status, {"x-should-retry": header}, None)
    assert info.retryable is retryable


def test_retry_after_from_a_body_path() -> None:
    # Gemini's RetryInfo, read through a manifest path, when no header says anything.
    rules = ErrorRules(
        retry_after=FieldSpec.compile(
            "$.error.details[?(@['@type'] == 'type.googleapis.com/google.rpc.RetryInfo')]"
            ".retryDelay"
        )
    )
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "42s"},
            ],
        }
    }
    assert classify_error(rules, 429, {}, body).retry_after == 42.0
    assert classify_error(rules, 429, {"retry-after": "7"}, body).retry_after == 7.0


# -- parse_retry_after -----------------------------------------------------------------------------

NOW = 1445412450.0  # 2015-10-21 07:27:30 UTC


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "20"}, 20.0),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after-ms": "-5", "retry-after": "9"}, 9.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 30.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # in the past
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == seconds


@pytest.mark.parametrize(
    "value", ["", "soon", "-1", "nan", "inf", "Infinity", "Wed, 32 Foo 2015 07:28:00 GMT", "12 s"]
)
def test_parse_retry_after_garbage(value: str) -> None:
    assert parse_retry_after({"retry-after": value}, now=NOW) is None


def test_retry_after_in_classification_uses_now() -> None:
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}
    info = classify_error(openai_rules(), 503, headers, None, now=NOW)
    assert info.retry_after == 40.0


# -- odd bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "HTTP 502"),
        ("<html>Bad gateway</html>", "<html>Bad gateway</html>"),
        ("", "HTTP 502"),
        (b"raw bytes", "HTTP 502"),
        ([], "HTTP 502"),
        (42, "HTTP 502"),
        ({"error": {"message": 5, "code": ["x"], "type": 3}}, "HTTP 502"),
        ({"error": {"code": True}}, "HTTP 502"),
    ],
)
@pytest.mark.parametrize("rules", RULES)
def test_odd_bodies_never_raise(rules: str, body: Any, message: str) -> None:
    info = classify_error(rules_for(rules), 502, {}, body)
    assert info.kind == "server_error"
    assert info.message == message
    assert info.status == 502
    assert info.code is None
    assert info.type is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "upstream failed"}, "upstream failed"),
        ({"message": "top-level message"}, "top-level message"),
    ],
)
def test_default_message_paths(body: Any, message: str) -> None:
    info = classify_error(DEFAULT_ERROR_RULES, 502, {}, body)
    assert info == ErrorInfo(kind="server_error", message=message, status=502, retryable=True)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["error", "code", "type", "message", "status_code", "status", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=15,
)
header_values = st.sampled_from(["true", "false", "5", "-1", "soon", "1.5", ""]) | st.text(
    max_size=10
)
headers = st.dictionaries(
    st.sampled_from(["retry-after", "retry-after-ms", "x-should-retry", "x-request-id"]),
    header_values,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    rules=st.sampled_from(RULES),
    status=st.integers(100, 599),
    headers=headers,
    body=json_values,
    mid_stream=st.booleans(),
)
def test_any_error_classifies(
    rules: str, status: int, headers: dict[str, str], body: Any, mid_stream: bool
) -> None:
    info = classify_error(rules_for(rules), status, headers, body, mid_stream=mid_stream, now=NOW)
    assert isinstance(info, ErrorInfo)
    assert isinstance(info.kind, str)
    assert info.kind in STANDARD_KINDS
    assert isinstance(info.message, str)
    assert info.message
    assert info.status == status
    assert type(info.retryable) is bool
    assert info.retry_after is None or info.retry_after >= 0


@pytest.mark.parametrize(
    ("kind", "code", "fallbackable"),
    [
        ("invalid_request", "E1001", False),
        ("authentication", "E1002", True),
        ("permission_denied", "E1003", False),
        ("not_found", "E1004", False),
        ("request_too_large", "E1005", False),
        ("rate_limited", "E2001", True),
        ("quota_exhausted", "E2002", True),
        ("server_error", "E3001", True),
        ("overloaded", "E3002", True),
        ("timeout", "E3003", True),
        ("something_new", "E9999", False),
    ],
)
def test_standard_error_codes_and_fallbackable(kind: str, code: str, fallbackable: bool) -> None:
    from ailib_anyio._core._errors import error_class_for_kind

    info = ErrorInfo(kind=kind, message="m", status=None)
    assert (info.error_code, info.fallbackable) == (code, fallbackable)
    if kind != "something_new":
        error = error_class_for_kind(kind)("m")
        assert (error.error_code, error.fallbackable) == (code, fallbackable)


def test_with_context_builds_a_new_error_filling_only_what_is_unset() -> None:
    original = RateLimitedError("slow down", provider="openai", retry_after=2.0, body={"a": 1})
    error = original.with_context(provider="other", model="gpt-4o", status_code=429)
    assert type(error) is RateLimitedError and error is not original
    assert (error.provider, error.model, error.status_code) == ("openai", "gpt-4o", 429)
    assert (error.retry_after, error.body, error.retryable) == (2.0, {"a": 1}, True)
    assert (original.model, original.status_code) == (None, None)
    with pytest.raises(TypeError, match=r"^with_context\(\) takes no attempts, colour$"):
        original.with_context(colour="red", attempts=())


def test_with_context_keeps_what_other_constructors_take() -> None:
    capability = CapabilityNotDeclaredError("no vision", capability="vision")
    middleware = MiddlewareError("it broke", middleware="Cache")
    protocol = ProtocolError(["a.yaml:1:1: $: bad"], source="a.yaml")
    context = {"provider": "openai", "model": "gpt-4o"}
    assert capability.with_context(**context).capability == "vision"
    assert middleware.with_context(**context).middleware == "Cache"
    rebuilt = protocol.with_context(**context)
    assert (rebuilt.issues, rebuilt.source) == (protocol.issues, "a.yaml")
    assert str(rebuilt) == str(protocol)
    for original in (capability, middleware, protocol, ConfigurationError("bad base_url")):
        copy = original.with_context(**context)
        assert type(copy) is type(original) and copy.message == original.message
        assert (copy.provider, copy.model) == ("openai", "gpt-4o")


def test_errors_doctests() -> None:
    import doctest

    from ailib_anyio._core import _errors

    # The classes say they are ailib_anyio's, so testmod would skip their methods.
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(_errors.AiLibError, module=False, globs=vars(_errors)):
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0
