"""Issue 10, items 11-14: transport failures retried by kind under a manifest's status
filter; every manifest file found is loaded and its problems reported; a lent
``http_client``'s timeout, ``AI_HTTP_TIMEOUT_SECS`` and ``<PROVIDER>_BASE_URL``; fallbacks
with their own settings and credentials resolved per fallback."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from ailib_anyio import (
    ConfigurationError,
    ProtocolError,
    ReadTimeoutError,
    TransportError,
    open_client,
)
from ailib_anyio._core._retry import RetryConfig, RetryPolicy
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply

pytestmark = pytest.mark.anyio

# ------------------------------------------------------------------ item 11: retries


def test_a_status_filter_does_not_judge_a_status_that_is_no_error() -> None:
    policy = RetryPolicy(RetryConfig(retry_on_status=[429, 503]))

    def retries(kind: str, status: int | None) -> bool:
        decision = policy.decide(
            kind=kind, retryable=True, status=status, attempt=1, retry_after=None, random=lambda: 0
        )
        return decision.should_retry

    assert retries("transport", 200)  # the body was cut after a 200
    assert retries("timeout", 204)
    assert retries("transport", None)
    assert retries("rate_limited", 429)
    assert not retries("server_error", 500)


@pytest.mark.parametrize("stream", [False, True], ids=["execute", "stream"])
async def test_a_200_cut_before_its_first_event_is_retried_by_the_manifest_policy(
    stream: bool,
) -> None:
    """The shipped OpenAI manifest's policy (``retry_on_http_status`` without 200): the
    connection closes right after the 200 headers, the retry gets the answer."""
    async with MockProvider() as mock:
        mock.enqueue(
            ScriptedReply(content="lost", close_after_bytes=0),
            ScriptedReply(content="second try"),
        )
        async with open_client("openai/gpt-4o", api_key="k", base_url=mock.openai_base_url) as c:
            builder = c.chat().user("hi")
            if stream:
                async with builder.stream() as s:
                    content = "".join([e.text async for e in s if hasattr(e, "text")])
            else:
                content = (await builder.execute()).content
            stats = c.get_resilience_stats()
        assert content == "second try"
        assert stats.retries == 1
        assert len(mock.requests) == 2


async def test_a_cut_200_is_still_reported_when_retries_run_out() -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="lost", close_after_bytes=0))
        async with open_client(
            "openai/gpt-4o", api_key="k", base_url=mock.openai_base_url, max_retries=0
        ) as c:
            with pytest.raises(TransportError) as info:
                await c.chat().user("hi").execute()
    assert info.value.retryable is True
    assert info.value.status_code == 200


# ------------------------------------------------------------------ item 12: manifests

ACME = (
    'id: acme\nprotocol_version: "2.0"\nname: Acme\nendpoint:\n  base_url: http://127.0.0.1:9/v1\n'
)


@pytest.fixture
def no_env_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_PROTOCOL_PATH", raising=False)


@pytest.mark.usefixtures("no_env_path")
def test_a_broken_manifest_not_named_for_its_id_reports_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "my-acme.yaml"
    path.write_text('id: acme\nprotocol_version: "2.0"\nname: Acme\n', encoding="utf-8")
    with pytest.raises(ProtocolError) as info:
        ProtocolRegistry([tmp_path]).get("acme")
    assert str(info.value) == (
        f"1 problem(s) in manifest {path}:\n{path}:1:1: $.endpoint: required key is missing"
    )
    with pytest.raises(ProtocolError):
        open_client("acme/model-1", api_key="k", protocol_path=tmp_path)


@pytest.mark.usefixtures("no_env_path")
def test_a_broken_override_is_not_replaced_by_the_builtin_silently(tmp_path: Path) -> None:
    path = tmp_path / "company-openai.yaml"
    path.write_text("id: openai\naliases: [oai]\nprotocol_version: [\n", encoding="utf-8")
    registry = ProtocolRegistry([tmp_path])
    # the YAML does not parse: its id cannot be read, so it is reported with the others
    with pytest.raises(ProtocolError) as info:
        registry.get("nope")
    shipped = ", ".join(ProtocolRegistry().providers())
    assert str(info.value).startswith(
        f"unknown provider 'nope' (available: {shipped}); 1 manifest file(s) could not be"
        f" loaded (one of them may be it):\n{path}:"
    )
    assert len(info.value.issues) == 1
    path.write_text("id: openai\naliases: [oai]\nprotocol_version: 2\n", encoding="utf-8")
    for name in ("openai", "oai"):
        with pytest.raises(ProtocolError) as info:
            registry.get(name)
        assert info.value.source == str(path)


@pytest.mark.usefixtures("no_env_path")
def test_available_providers_are_ids_not_file_names(tmp_path: Path) -> None:
    (tmp_path / "vendor-file.yaml").write_text(ACME, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("id: broken\n", encoding="utf-8")
    registry = ProtocolRegistry([tmp_path])
    available = registry.providers()
    assert "acme" in available
    assert "vendor-file" not in available
    assert "broken" not in available
    assert registry.get("acme").source == str(tmp_path / "vendor-file.yaml")
    with pytest.raises(ProtocolError) as info:  # asked for by its id: its problems
        registry.get("broken")
    assert info.value.source == str(tmp_path / "broken.yaml")


@pytest.mark.usefixtures("no_env_path")
def test_directories_are_searched_in_order_by_id_too(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text(ACME.replace("acme", "openai"), encoding="utf-8")
    manifest = ProtocolRegistry([tmp_path]).get("openai")
    assert manifest.source == str(tmp_path / "mine.yaml")
    assert manifest.name == "Acme"


@pytest.mark.usefixtures("no_env_path")
def test_an_unknown_provider_without_broken_files_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as info:
        ProtocolRegistry().get("nope")
    assert str(info.value).startswith("unknown provider 'nope' (available: anthropic, ")


# ------------------------------------------------------------------ item 13: settings


async def test_a_lent_clients_timeout_is_honoured() -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
        async with (
            httpx.AsyncClient(timeout=0.2) as http,
            open_client(
                "openai/gpt-4o",
                api_key="k",
                base_url=mock.openai_base_url,
                http_client=http,
                max_retries=0,
            ) as client,
        ):
            with pytest.raises(ReadTimeoutError):
                await client.chat().user("hi").execute()


async def test_timeout_overrides_a_lent_clients_timeout() -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="in time", delay_before_headers=0.5))
        async with (
            httpx.AsyncClient(timeout=0.05) as http,
            open_client(
                "openai/gpt-4o",
                api_key="k",
                base_url=mock.openai_base_url,
                http_client=http,
                timeout=30,
                max_retries=0,
            ) as client,
        ):
            assert (await client.chat().user("hi").execute()).content == "in time"


async def test_ai_http_timeout_secs_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_HTTP_TIMEOUT_SECS", "0.2")
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(content="late", delay_before_headers=30))
        async with open_client(
            "openai/gpt-4o", api_key="k", base_url=mock.openai_base_url, max_retries=0
        ) as client:
            with pytest.raises(ReadTimeoutError):
                await client.chat().user("hi").execute()


@pytest.mark.parametrize("raw", ["soon", "0", "-3", "nan", "inf"])
def test_a_bad_ai_http_timeout_secs_is_named(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("AI_HTTP_TIMEOUT_SECS", raw)
    with pytest.raises(ConfigurationError) as info:
        open_client("openai/gpt-4o", api_key="k")
    assert str(info.value) == (
        f"AI_HTTP_TIMEOUT_SECS must be a positive number of seconds, got {raw!r}"
    )
    # an explicit timeout does not need the variable
    open_client("openai/gpt-4o", api_key="k", timeout=5)


async def test_provider_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with MockProvider() as mock:
        monkeypatch.setenv("OPENAI_BASE_URL", mock.openai_base_url)
        async with open_client("openai/gpt-4o", api_key="k") as client:
            assert (await client.chat().user("hi").execute()).content
        assert len(mock.requests) == 1
        # an explicit base_url wins over the variable
        monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        async with open_client("openai/gpt-4o", api_key="k", base_url=mock.openai_base_url) as c:
            assert (await c.chat().user("hi").execute()).content
        assert len(mock.requests) == 2


def test_base_url_variables_by_alias_then_id(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("OLLAMA_BASE_URL", "OPENAI_COMPATIBLE_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    assert open_client("ollama/qwen3:8b").base_url == "http://127.0.0.1:8000/v1"
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:1234/v1/")
    assert open_client("ollama/qwen3:8b").base_url == "http://127.0.0.1:1234/v1"
    monkeypatch.setenv("OLLAMA_BASE_URL", "http://127.0.0.1:11434/v1")
    assert open_client("ollama/qwen3:8b").base_url == "http://127.0.0.1:11434/v1"
    assert open_client("ollama/m", base_url="http://h:1/v1").base_url == "http://h:1/v1"
    monkeypatch.setenv("OLLAMA_BASE_URL", "localhost:11434")
    with pytest.raises(ConfigurationError) as info:
        open_client("ollama/qwen3:8b")
    assert str(info.value) == (
        "OLLAMA_BASE_URL must start with http:// or https://, got 'localhost:11434'"
    )


# ------------------------------------------------------------------ item 14: fallbacks

CLAUDE = "anthropic/claude-sonnet-4-5"


@pytest.fixture
def no_anthropic_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.mark.usefixtures("no_anthropic_key")
async def test_a_fallback_client_brings_its_own_key_and_base_url() -> None:
    async with MockProvider() as primary, MockProvider() as backup:
        primary.enqueue(Reply.error(503, "overloaded"))
        backup.enqueue(ScriptedReply(content="from the fallback"))
        fallback = open_client(CLAUDE, api_key="fallback-key", base_url=backup.anthropic_base_url)
        async with open_client(
            "openai/gpt-4o",
            api_key="primary-key",
            base_url=primary.openai_base_url,
            max_retries=0,
            fallbacks=[fallback],
        ) as client:
            reply = await client.chat().user("hi").execute()
        assert reply.content == "from the fallback"
        assert primary.requests[0].headers["authorization"] == "Bearer primary-key"
        assert backup.requests[0].headers["x-api-key"] == "fallback-key"
        assert backup.requests[0].path == "/v1/messages"


@pytest.mark.usefixtures("no_anthropic_key")
async def test_a_string_fallback_needs_no_key_to_construct_and_names_itself_at_open() -> None:
    client = open_client("openai/gpt-4o", api_key="k", fallbacks=[CLAUDE])  # no error here
    with pytest.raises(ConfigurationError) as info:
        async with client:
            pass  # pragma: no cover - the block is never entered
    assert str(info.value) == (
        f"fallback {CLAUDE!r}: no API key for provider 'anthropic': pass api_key= or set"
        " ANTHROPIC_API_KEY (to give a fallback its own key or base_url:"
        f" fallbacks=[open_client({CLAUDE!r}, api_key=...)]) ({CLAUDE})"
    )
    assert info.value.provider == "anthropic"


async def test_a_string_fallback_reads_its_key_when_the_client_opens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    async with MockProvider() as mock:
        mock.enqueue(Reply.error(503, "overloaded"), ScriptedReply(content="fallback"))
        monkeypatch.setenv("ANTHROPIC_BASE_URL", mock.anthropic_base_url)
        client = open_client(
            "openai/gpt-4o",
            api_key="k",
            base_url=mock.openai_base_url,
            max_retries=0,
            fallbacks=[CLAUDE],
        )
        monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")  # set after construction
        async with client:
            assert (await client.chat().user("hi").execute()).content == "fallback"
        assert mock.requests[1].headers["x-api-key"] == "env-key"
    assert "env-key" not in repr(client.targets[1])


@pytest.mark.usefixtures("no_anthropic_key")
async def test_an_error_event_before_the_first_event_of_a_200_stream_is_retried_by_kind() -> None:
    """Anthropic's overloaded error arriving as the first event of a 200 stream: its kind is
    retryable, and the manifest's status filter (no 200 in it) does not veto it."""
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    async with MockProvider() as mock:
        mock.enqueue(
            Reply.sse([f"event: error\ndata: {json.dumps(overloaded)}\n\n"]),
            ScriptedReply(content="recovered"),
        )
        async with (
            open_client(CLAUDE, api_key="k", base_url=mock.anthropic_base_url) as client,
            client.chat().user("hi").stream() as stream,
        ):
            async for _ in stream:
                pass
        assert stream.response.content == "recovered"
        assert client.get_resilience_stats().retries == 1
