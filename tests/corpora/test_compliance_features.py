"""The library features the AI-Protocol compliance cases needed (issue 10, item 16), tested
on their own: the standard error-code table, capability_profile checks, the ``core:``
wrapper and named endpoints, the capability guard, ProviderContract loading, opt-in
parameter defaults, host-supplied credentials and per-message extra fields; and the
compliance summary of ``tests/conftest.py`` under ``-k``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from compliance_runner import spec_root

from ailib_anyio import (
    CapabilityNotDeclaredError,
    ConfigurationError,
    InvalidRequestError,
    Message,
    MessageRole,
    ProtocolError,
    open_client,
)
from ailib_anyio._core._classify import DEFAULT_ERROR_RULES, ErrorRules, classify_error
from ailib_anyio._core._encode import EncoderOptions, encode_request
from ailib_anyio._core._types import ChatRequest
from ailib_anyio._protocol._contract import load_contract, load_contract_text
from ailib_anyio._protocol._credentials import resolve_credential
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio.testing import MockProvider, ScriptedReply

ROOT = spec_root()
needs_spec = pytest.mark.skipif(ROOT is None, reason="../shared/ai-protocol absent")
HERE = Path(__file__).resolve().parents[1]

QUOTA = {"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}


@pytest.fixture
async def mock() -> AsyncIterator[MockProvider]:
    async with MockProvider() as server:
        yield server


# ---------------------------------------------------------------- error codes


def test_an_exhausted_quota_is_not_a_rate_limit_even_unmapped() -> None:
    info = classify_error(DEFAULT_ERROR_RULES, 429, {}, QUOTA)
    assert (info.kind, info.error_code, info.retryable, info.fallbackable) == (
        "quota_exhausted",
        "E2002",
        False,
        True,
    )
    # a plain 429 is still a rate limit, and a manifest's own mapping of the code wins
    assert classify_error(DEFAULT_ERROR_RULES, 429, {}, {"error": {}}).kind == "rate_limited"
    rules = ErrorRules(by_error_code={"insufficient_quota": "rate_limited"})
    assert classify_error(rules, 429, {}, QUOTA).kind == "rate_limited"


# ---------------------------------------------------------------- manifests

BASE = 'id: acme\nprotocol_version: "2.0"\nendpoint: {base_url: "https://x.example"}\n'


def issues_of(text: str, *, strict: bool = False) -> list[str]:
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml", strict=strict)
    return info.value.issues


def test_capability_profile_is_checked_per_phase() -> None:
    assert issues_of(BASE + "capability_profile: ios_v1\n") == [
        "m.yaml:4:21: $.capability_profile: capability_profile must be object, got str 'ios_v1'"
    ]
    assert issues_of(
        BASE + "capability_profile:\n  phase: ios_v1\n  inputs: {}\n  process: {}\n"
    ) == [
        "m.yaml:7:12: $.capability_profile.process: must NOT have additional properties:"
        " ios_v1 does not allow 'process' (allowed: phase, inputs, outcomes, systems)"
    ]
    assert issues_of(BASE + "capability_profile:\n  phase: ios_v1\n") == [
        "m.yaml:5:3: $.capability_profile: must match at least one schema in anyOf:"
        " ios_v1 needs inputs, outcomes or systems"
    ]
    assert issues_of(BASE + "capability_profile:\n  phase: iospc_v1\n  inputs: {}\n") == [
        "m.yaml:5:3: $.capability_profile: iospc_v1 requires process or contract"
    ]
    for ok in (
        "capability_profile:\n  phase: iospc_v1\n  contract: {}\n",
        "capability_profile:\n  phase: ios_v1\n  systems: {}\n",
        "capability_profile:\n  phase: a_later_phase\n  anything: {}\n",
    ):
        load_manifest_text(BASE + ok, strict=True)


def test_a_core_section_groups_top_level_sections() -> None:
    manifest = load_manifest_text(
        'id: acme\nprotocol_version: "2.0"\ncore:\n'
        '  endpoint:\n    base_url: "https://x.example"\n'
        "    endpoints:\n      computer_use: {path: /cu, method: get}\n"
        "      reasoning: /r\n"
        "  capabilities: [reasoning]\n"
        "capabilities: [computer_use]\n"
        "endpoints:\n  reasoning: {path: /top}\n",
        strict=True,
    )
    assert manifest.endpoint.base_url == "https://x.example"
    cu = manifest.endpoint_for("computer_use")
    assert cu is not None and (cu.path, cu.method) == ("/cu", "GET")
    top = manifest.endpoint_for("reasoning")
    assert top is not None and top.path == "/top"  # the top level wins
    assert manifest.endpoint_for("video_get") is None
    assert manifest.capabilities == ["computer_use"]  # the top level wins
    # a core section is checked like the top level
    assert issues_of('id: acme\nprotocol_version: "2.0"\ncore:\n  endpoint: {base_url: x}\n')[
        0
    ].endswith("$.endpoint.base_url: must start with http:// or https://, got 'x'")


def test_the_capability_guard_refuses_before_any_io() -> None:
    manifest = load_manifest_text(BASE + "capabilities: [mcp_client]\n")
    manifest.require_capability("MCPListTools")
    with pytest.raises(CapabilityNotDeclaredError) as info:
        manifest.require_capability("ComputerUse")
    error = info.value
    assert str(error) == (
        "ComputerUse needs the 'computer_use' capability, which manifest 'acme' does not"
        " declare (acme)"
    )
    assert (error.capability, error.error_code, error.provider) == ("computer_use", "E1005", "acme")
    assert isinstance(error, InvalidRequestError) and error.kind == "invalid_request"
    with pytest.raises(CapabilityNotDeclaredError, match="'vision' capability"):
        manifest.require_capability("vision")  # a capability named directly


# ---------------------------------------------------------------- contracts


@needs_spec
def test_the_shipped_contracts_load() -> None:
    assert ROOT is not None
    anthropic = load_contract(ROOT / "v2/contracts/anthropic-messages.contract.yaml")
    assert (anthropic.provider_id, anthropic.api_family) == ("anthropic", "anthropic_messages")
    assert anthropic.document_mapping is not None
    assert anthropic.document_mapping["ref_resolution"] == "error_before_encode"
    gemini = load_contract(ROOT / "v2/contracts/gemini-generate.contract.yaml")
    assert gemini.api_family == "gemini_generate"
    assert gemini.content_block_mapping("image") is not None
    assert gemini.content_block_mapping("audio") is None


def test_a_contract_reports_every_problem_where_it_is() -> None:
    text = (
        "contract_version: '1.0'\napi_style: telegraph\nrequest_mapping:\n"
        "  content_block_mapping:\n    document: {ref_resolution: pass_through}\n"
    )
    with pytest.raises(ProtocolError) as info:
        load_contract_text(text, source="c.yaml")
    assert info.value.issues == [
        "c.yaml:1:1: $.provider_id: required key is missing",
        "c.yaml:2:12: $.api_style: unknown api_style 'telegraph'",
        "c.yaml:5:32: $.request_mapping.content_block_mapping.document.ref_resolution:"
        " unknown ref_resolution 'pass_through' (known: error_before_encode, resolve_at_runtime)",
    ]
    with pytest.raises(ProtocolError, match="cannot read contract"):
        load_contract("/nonexistent/x.contract.yaml")


# ---------------------------------------------------------------- parameter defaults


@needs_spec
@pytest.mark.anyio
async def test_parameter_defaults_are_sent_only_when_asked(mock: MockProvider) -> None:
    assert ROOT is not None
    upstream = ROOT / "v2" / "providers"  # openai.yaml: temperature default 1
    for _ in range(3):
        mock.enqueue(ScriptedReply(content="ok"))
    common = {"api_key": "sk-test", "base_url": mock.openai_base_url, "max_retries": 0}
    async with open_client("openai/gpt-4o", protocol_path=upstream, **common) as plain:  # type: ignore[arg-type]
        await plain.chat().user("hi").execute()
    async with open_client(
        "openai/gpt-4o",
        protocol_path=upstream,
        parameter_defaults=True,
        **common,  # type: ignore[arg-type]
    ) as client:
        await client.chat().user("hi").execute()
        await client.chat().user("hi").temperature(0.2).execute()
    bodies = [r.json for r in mock.requests]
    assert "temperature" not in bodies[0]
    assert bodies[1]["temperature"] == 1
    assert bodies[2]["temperature"] == 0.2  # the request's own value wins
    with pytest.raises(ConfigurationError, match="parameter_defaults must be True or False"):
        open_client("openai/gpt-4o", api_key="k", parameter_defaults="yes")  # type: ignore[arg-type]


# ---------------------------------------------------------------- host-supplied credentials


@needs_spec
def test_host_supplied_credentials_read_no_environment() -> None:
    assert ROOT is not None
    manifest = load_manifest_text(
        (ROOT / "tests/compliance/fixtures/providers/mock-credential-v1.yaml").read_text()
    )
    env = {"REPLICATE_API_TOKEN": "from-env"}
    host = resolve_credential(manifest, api_key="from-host", environ=env, host_supplied=True)
    assert (host.source_kind, host.source_name, host.secret) == (
        "explicit",
        "host_supplied",
        "from-host",
    )
    assert (host.implicit_env_allowed, host.implicit_keyring_allowed) == (False, False)
    missing = resolve_credential(manifest, environ=env, host_supplied=True)
    assert missing.status == "missing"
    assert missing.diagnostics == (
        "no API key for provider 'replicate': credentials are host-supplied, so no"
        " environment variable is read; the host must pass api_key=",
    )
    usual = resolve_credential(manifest, environ=env)
    assert (usual.source_name, usual.implicit_env_allowed) == ("REPLICATE_API_TOKEN", True)


def test_open_client_with_a_host_supplied_key_ignores_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with pytest.raises(ConfigurationError, match="credentials are host-supplied") as info:
        open_client("openai/gpt-4o", host_supplied_key=True)
    assert "sk-from-env" not in str(info.value)
    open_client("openai/gpt-4o", api_key="sk-host", host_supplied_key=True)
    # a fallback by name would read its own key from the environment
    with pytest.raises(ConfigurationError, match="a 'provider/model' fallback would take"):
        open_client(
            "openai/gpt-4o",
            api_key="sk-host",
            host_supplied_key=True,
            fallbacks="openai/gpt-4o-mini",
        )
    backup = open_client("openai/gpt-4o-mini", api_key="sk-host-2", host_supplied_key=True)
    open_client("openai/gpt-4o", api_key="sk-host", host_supplied_key=True, fallbacks=[backup])


# ---------------------------------------------------------------- per-message extra fields


def test_message_extra_fields_go_on_the_wire_message() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message.user("Hi"),
            Message(MessageRole.ASSISTANT, "def f(", extra={"prefix": True}),
        ],
    )
    body = encode_request("openai_chat", request, EncoderOptions())
    assert body["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "def f(", "prefix": True},
    ]
    for family in ("anthropic_messages", "gemini_generate"):
        with pytest.raises(InvalidRequestError) as info:
            encode_request(family, request, EncoderOptions(defaults={"max_tokens": 8}))
        assert str(info.value) == (
            f"messages[1].extra: per-message extra fields are not supported by {family}"
            " (it merges messages into turns); use the request's extra_body"
        )


# ---------------------------------------------------------------- the summary hook


@needs_spec
def test_the_compliance_summary_survives_deselection() -> None:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(HERE / "corpora" / "test_ai_protocol_compliance.py"),
            "-k",
            "err-001",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE.parent,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "AI-Protocol compliance: 1 passed, 0 spec defects, 0 not implemented (of 1 cases)" in (
        run.stdout
    )
