"""attrs models of an AI-Protocol provider manifest (v1 and v2), and the one converter.

Only the sections the runtime executes are modelled; every other key is tolerated (and
reported in strict mode). Paths and ``match`` expressions are compiled while structuring,
so a syntax error is reported where it is, at load time, with the rest of the problems.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import cattrs
from cattrs.errors import IterableValidationError, IterableValidationNote

from .._core._classify import DEFAULT_ERROR_RULES, ErrorRules
from .._core._cost import ModelPricing
from .._core._embeddings import EmbeddingRules
from .._core._errors import CapabilityNotDeclaredError
from .._core._jsonpath import JSONPathError, Selector, compile_path
from .._core._jsontemplate import JsonTemplate, TemplateError
from .._core._mapping import DECODER_FORMATS
from .._core._rules import (
    EMIT_ALIASES,
    FIELD_ALIASES,
    EmitKind,
    EventRule,
    FieldSpec,
    Match,
    tool_call_object_fields,
    tool_calls_array_fields,
    usage_object_fields,
)
from .._core._structured import StructuredOutputRules
from ._defaults import RESPONSE_RULES, STREAM_RULES, declared_format

__all__ = [
    "BATCH_OUTCOMES",
    "BATCH_STATUSES",
    "AuthSpec",
    "BatchCall",
    "BatchOutcomeRule",
    "BatchResultFile",
    "BatchSpec",
    "BatchUpload",
    "DecoderSpec",
    "EndpointSpec",
    "ManifestIssues",
    "ModalitiesSpec",
    "ModelInfo",
    "NamedEndpoint",
    "ParameterSpec",
    "Pricing",
    "ProviderManifest",
    "ResponseSpec",
    "RetryPolicySpec",
    "StreamingSpec",
    "TerminationSpec",
    "TokenizerSpec",
    "ToolingSpec",
    "make_converter",
    "manifest_prechecks",
]

#: adapter / API-family spellings -> the request encoder and dialect they select.
API_FAMILIES: Mapping[str, str] = {
    "openai": "openai_chat",
    "openai_chat": "openai_chat",
    "openai_compatible": "openai_chat",
    "chat_completions": "openai_chat",
    "anthropic": "anthropic_messages",
    "anthropic_messages": "anthropic_messages",
    "messages": "anthropic_messages",
    "gemini": "gemini_generate",
    "gemini_generate": "gemini_generate",
    "google": "gemini_generate",
    "generate_content": "gemini_generate",
}

#: adapter spellings of an ``embeddings`` endpoint -> the embeddings API family.
EMBEDDING_FAMILIES: Mapping[str, str] = {
    "openai": "openai_embeddings",
    "openai_embeddings": "openai_embeddings",
    "gemini": "gemini_embed",
    "gemini_embed": "gemini_embed",
    "google": "gemini_embed",
}

#: advanced operations (the spec's runtime method names) -> the capability each needs
OPERATION_CAPABILITIES: Mapping[str, str] = {
    "MCPListTools": "mcp_client",
    "MCPCallTool": "mcp_client",
    "ComputerUse": "computer_use",
    "Reason": "reasoning",
    "VideoGenerate": "video_generation",
    "VideoGet": "video_generation",
}

AUTH_TYPES: Mapping[str, str] = {
    "bearer": "bearer",
    "header": "header",
    "custom_header": "header",
    "api_key": "header",
    "query_param": "query",
    "query": "query",
    "none": "none",
}
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")

#: tiktoken encodings a model's ``tokenizer`` may name (those whose vocabulary the
#: ``tokens`` extra ships; ``o200k_harmony`` is ``o200k_base`` with more special tokens)
TOKENIZER_ENCODINGS = ("cl100k_base", "o200k_base", "o200k_harmony")

#: chat formats with a published token-counting recipe (per-message overhead) that a
#: model's ``tokenizer.messages`` may name: OpenAI's chat completions
MESSAGE_FORMATS = ("openai_chat",)


class ManifestIssues(ValueError):
    """Problems found inside one value; each is (sub-path, message)."""

    def __init__(self, issues: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(m for _, m in issues))
        self.issues = issues


def _one(message: str, *path: str | int) -> ManifestIssues:
    return ManifestIssues([(tuple(path), message)])


# ---------------------------------------------------------------- models


@attrs.frozen
class AuthSpec:
    """How the API key is sent. ``type``: bearer, header, query or none."""

    type: str = "bearer"
    header: str | None = None
    prefix: str | None = None
    token_env: str | None = None
    token_envs: tuple[str, ...] = ()
    param_name: str | None = None
    required: bool = True
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def env_vars(self) -> tuple[str, ...]:
        """The credential chain: environment variables tried in order."""
        first = (self.token_env,) if self.token_env else ()
        return first + tuple(v for v in self.token_envs if v != self.token_env)


@attrs.frozen
class EndpointSpec:
    base_url: str
    chat: str | None = None
    auth: AuthSpec | None = None
    timeout_ms: int | None = None


@attrs.frozen
class NamedEndpoint:
    """An operation's endpoint (``endpoints.<operation>``).

    For operations whose body is the chat body reshaped (``count_tokens``): ``body_keys``
    keeps only those top-level keys of the encoded chat request, ``body_fields`` adds
    fields (``{model}`` in a value is the model id), and ``body_wrap`` then nests the
    whole under that key. ``result`` is the JSONPath of the operation's answer in the
    response (the token count).
    """

    path: str
    method: str = "POST"
    adapter: str | None = None
    stream_path: str | None = None
    result: Selector | None = attrs.field(default=None, eq=False)
    body_keys: tuple[str, ...] | None = None
    body_wrap: str | None = None
    body_fields: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class DecoderSpec:
    format: str = "sse"
    done_signal: str | None = None


@attrs.frozen
class StreamingSpec:
    decoder: DecoderSpec = DecoderSpec()
    event_map: tuple[EventRule, ...] = ()


@attrs.frozen
class ResponseSpec:
    """Rules mapping a whole non-streaming body onto the same unified events."""

    event_map: tuple[EventRule, ...] = ()


@attrs.frozen
class ParameterSpec:
    type: str | None = None
    range: tuple[float, float] | None = None
    min: float | None = None
    max: float | None = None
    default: Any = None
    required: bool = False


@attrs.frozen
class RetryPolicySpec:
    strategy: str = "exponential_backoff"
    max_retries: int = 3
    min_delay_ms: int = 1000
    max_delay_ms: int = 60000
    jitter: str = "full"
    retry_on_http_status: tuple[int, ...] = ()


@attrs.frozen
class TerminationSpec:
    source_field: str | None = None
    mapping: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class ToolingSpec:
    #: give tool calls that arrive without an id a generated one (``call_<hex>``)
    generate_missing_ids: bool = False


@attrs.frozen
class Pricing:
    """Prices per 1M tokens, in ``currency`` (USD unless said): input, output, cache hits
    (``cached_input_per_1m``) and, where a provider prices reasoning tokens apart from
    output, ``reasoning_per_1m``."""

    input_per_1m: float | None = None
    output_per_1m: float | None = None
    cached_input_per_1m: float | None = None
    reasoning_per_1m: float | None = None
    currency: str = "USD"


@attrs.frozen
class TokenizerSpec:
    """How a model tokenizes: ``encoding`` is its tiktoken encoding (counts of text with
    it are exact); ``messages`` names the published chat-format recipe whose per-message
    overhead makes counts of messages exact (``openai_chat``), None when there is none."""

    encoding: str
    messages: str | None = None


@attrs.frozen
class ModalitiesSpec:
    """What a model takes in and gives out (the spec's ``modalities: {input: [text,
    image, ...], output: [text]}``); empty: not declared."""

    input: tuple[str, ...] = ()
    output: tuple[str, ...] = ()


@attrs.frozen
class ModelInfo:
    """One model of ``metadata.models``. ``quality`` is an optional score in [0, 1]
    (higher is better) that the manifest's author declares for quality-based routing;
    no shipped manifest declares one, since no score is made up."""

    context_window: int | None = None
    max_output_tokens: int | None = None
    pricing: Pricing | None = None
    model_capabilities: Mapping[str, Any] = attrs.field(factory=dict)
    tokenizer: TokenizerSpec | None = None
    modalities: ModalitiesSpec | None = None
    quality: float | None = None

    @property
    def supports_chat(self) -> bool:
        """False for a model whose ``model_capabilities`` say ``chat: false`` (an embedding
        model, say): a chat request to it is refused before any I/O."""
        return self.model_capabilities.get("chat") is not False

    @property
    def embeds(self) -> bool:
        """True for a model whose ``model_capabilities`` say ``embeddings: true``."""
        return self.model_capabilities.get("embeddings") is True


#: the one set of batch statuses every provider's are mapped onto (``batch.statuses``)
BATCH_STATUSES = (
    "validating",
    "in_progress",
    "finalizing",
    "ended",
    "failed",
    "expired",
    "cancelled",
)
#: the statuses after which a batch changes no more (its results can be fetched)
BATCH_TERMINAL = frozenset({"ended", "failed", "expired", "cancelled"})
#: what became of one request of a batch (``batch.result.outcomes[].outcome``)
BATCH_OUTCOMES = ("succeeded", "errored", "expired", "cancelled")
#: the provider-side request counts a manifest may point at (``batch.counts``)
BATCH_COUNTS = ("total", "succeeded", "errored", "processing", "expired", "cancelled")


@attrs.frozen
class BatchCall:
    """One call of a batch API: ``path`` (under the base URL; ``{batch_id}``,
    ``{file_id}`` and ``{model}`` are filled in), ``method``, the JSON ``body`` template
    (``None``: no body) and ``id``, where the answer holds the id it creates."""

    path: str
    method: str
    body: JsonTemplate | None = None
    id: FieldSpec | None = None


@attrs.frozen
class BatchUpload:
    """How an input file is uploaded (``input.mode: file``): a multipart form POSTed to
    ``path`` with the text ``fields`` and the JSONL file as ``file_field``; ``id`` is where
    the answer holds the file's id."""

    path: str
    id: FieldSpec
    fields: Mapping[str, str] = attrs.field(factory=dict)
    file_field: str = "file"
    filename: str = "batch.jsonl"
    content_type: str = "application/jsonl"


@attrs.frozen
class BatchResultFile:
    """A JSONL document of results fetched once a batch has ended: GET ``path``; with
    ``id``, only when the batch's status names a file there (filled in as ``{file_id}``)."""

    path: str
    id: FieldSpec | None = None


@attrs.frozen
class BatchOutcomeRule:
    """A result record matching ``match`` (every record when ``None``) is ``outcome``;
    ``body`` is where the response (succeeded) or the error body (errored) is (the whole
    record when ``None``), ``status`` its HTTP status, ``request_id`` the provider's id."""

    outcome: str
    match: Match | None = None
    body: FieldSpec | None = None
    status: FieldSpec | None = None
    request_id: FieldSpec | None = None


@attrs.frozen
class BatchSpec:
    """A provider's batch API (the manifest's ``batch`` section).

    - ``mode``: ``file`` (the items are lines of a JSONL file uploaded first, ``upload``)
      or ``inline`` (they go in the create call's body, slot ``{items}``); ``item`` is one
      request's envelope, with slots ``{custom_id}`` and ``{body}`` (the request body the
      live chat call would send).
    - ``max_requests`` / ``max_bytes``: what one batch may hold (``None``: no stated
      limit); a job is split into batches under both.
    - ``create``, ``get`` (the status), ``cancel``: the calls; ``status`` is where the
      status is and ``statuses`` maps the provider's names onto ``BATCH_STATUSES``.
    - ``counts``: the provider's request counts (``BATCH_COUNTS``), ``failure`` why a
      failed batch failed.
    - results: ``result_files`` (JSONL documents) or ``inline_results`` (a path to the
      records in the status itself); ``custom_id`` is where a record names its request
      and ``outcomes`` say what each record is, first match wins.
    - ``price_factor``: batch prices are the model's prices times this.
    """

    mode: str
    item: JsonTemplate
    create: BatchCall
    get: BatchCall
    status: FieldSpec
    statuses: Mapping[str, str]
    custom_id: FieldSpec
    outcomes: tuple[BatchOutcomeRule, ...]
    price_factor: float = 1.0
    max_requests: int | None = None
    max_bytes: int | None = None
    upload: BatchUpload | None = None
    cancel: BatchCall | None = None
    counts: Mapping[str, FieldSpec] = attrs.field(factory=dict)
    failure: FieldSpec | None = None
    result_files: tuple[BatchResultFile, ...] = ()
    inline_results: FieldSpec | None = None


@attrs.frozen
class MetadataSpec:
    models: Mapping[str, ModelInfo] = attrs.field(factory=dict)


@attrs.frozen
class ProviderManifest:
    """A loaded, validated provider manifest."""

    id: str
    protocol_version: str
    endpoint: EndpointSpec
    name: str | None = None
    auth: AuthSpec | None = None
    aliases: tuple[str, ...] = ()
    endpoints: Mapping[str, NamedEndpoint] = attrs.field(factory=dict)
    default_api_family: str | None = None
    #: v1 list of family names, or v1.5 mapping ``{chat: {request_format: anthropic}}``
    api_families: Any = None
    parameters: Mapping[str, ParameterSpec] = attrs.field(factory=dict)
    parameter_mappings: Mapping[str, str] = attrs.field(factory=dict)
    streaming: StreamingSpec | None = None
    response: ResponseSpec | None = None
    error_classification: ErrorRules = DEFAULT_ERROR_RULES
    rate_limit_headers: Mapping[str, str] = attrs.field(factory=dict)
    retry_policy: RetryPolicySpec | None = None
    termination: TerminationSpec | None = None
    tooling: ToolingSpec | None = None
    #: how a JSON response format is sent: ``schema``/``json_mode`` ``native`` or ``tool``,
    #: ``strict`` (left out: the API family's native field where it has one, else a tool)
    structured_output: StructuredOutputRules | None = None
    capabilities: Any = None
    metadata: MetadataSpec | None = None
    embeddings: EmbeddingRules | None = None
    #: the provider's batch API (``BatchSpec``): None when the manifest has none
    batch: BatchSpec | None = None
    source: str | None = attrs.field(default=None, eq=False)

    # ------------------------------------------------------------ derived views

    @property
    def auth_spec(self) -> AuthSpec:
        return self.endpoint.auth or self.auth or AuthSpec()

    @property
    def chat_endpoint(self) -> NamedEndpoint:
        ep = self.endpoints.get("chat")
        if ep is None and self.default_api_family:
            # v1 names operations after the family: `chat_completions_create: /chat/...`
            ep = self.endpoints.get(f"{self.default_api_family}_create")
        if ep is not None:
            return ep
        return NamedEndpoint(path=self.endpoint.chat or "/chat/completions")

    @property
    def api_family(self) -> str:
        adapter = (
            self.chat_endpoint.adapter
            or self.default_api_family
            or self._chat_request_format()
            or "openai_chat"
        )
        return API_FAMILIES.get(adapter, adapter)

    def _chat_request_format(self) -> str | None:
        families = self.api_families
        chat = families.get("chat") if isinstance(families, Mapping) else None
        fmt = chat.get("request_format") if isinstance(chat, Mapping) else None
        return fmt if isinstance(fmt, str) and fmt else None

    @property
    def embeddings_endpoint(self) -> NamedEndpoint | None:
        return self.endpoints.get("embeddings")

    @property
    def embeddings_family(self) -> str | None:
        ep = self.embeddings_endpoint
        if ep is None:
            return None
        adapter = ep.adapter or "openai_embeddings"
        return EMBEDDING_FAMILIES.get(adapter, adapter)

    @property
    def generate_tool_call_ids(self) -> bool:
        return self.tooling is not None and self.tooling.generate_missing_ids

    @property
    def termination_mapping(self) -> Mapping[str, str]:
        return self.termination.mapping if self.termination is not None else {}

    def has_capability(self, name: str) -> bool:
        """True if the manifest lists ``name`` (v2 required/optional lists or v1 flags)."""
        caps = self.capabilities
        if isinstance(caps, Mapping):
            if caps.get(name) is True:
                return True
            for key in ("required", "optional"):
                listed = caps.get(key)
                if isinstance(listed, list) and name in listed:
                    return True
        return isinstance(caps, list) and name in caps

    @property
    def parameter_defaults(self) -> Mapping[str, Any]:
        """Every ``parameters.<name>.default`` the manifest declares."""
        return {n: p.default for n, p in self.parameters.items() if p.default is not None}

    def endpoint_for(self, operation: str) -> NamedEndpoint | None:
        """The manifest's endpoint for a named operation (``endpoints.<operation>``)."""
        return self.endpoints.get(operation)

    def require_capability(self, operation: str) -> None:
        """Raise ``CapabilityNotDeclaredError`` (before any I/O) unless the manifest declares
        the capability an advanced operation needs (``OPERATION_CAPABILITIES``; any other
        name is taken as a capability name itself)."""
        capability = OPERATION_CAPABILITIES.get(operation, operation)
        if not self.has_capability(capability):
            raise CapabilityNotDeclaredError(
                f"{operation} needs the {capability!r} capability, which manifest"
                f" {self.id!r} does not declare",
                capability=capability,
                provider=self.id,
            )

    def feature_flag(self, name: str) -> bool:
        caps = self.capabilities
        if isinstance(caps, Mapping):
            flags = caps.get("feature_flags")
            if isinstance(flags, Mapping):
                return flags.get(name) is True
        return False

    def model_info(self, model: str) -> ModelInfo | None:
        return self.metadata.models.get(model) if self.metadata is not None else None

    def model_pricing(self, model: str) -> ModelPricing | None:
        """The model's prices (``metadata.models.<model>.pricing``) as a ``ModelPricing``;
        None unless the manifest gives both its input and output price."""
        info = self.model_info(model)
        pricing = info.pricing if info is not None else None
        if pricing is None or pricing.input_per_1m is None or pricing.output_per_1m is None:
            return None
        assert info is not None
        return ModelPricing(
            model=model,
            input_per_1m=_decimal(pricing.input_per_1m),
            output_per_1m=_decimal(pricing.output_per_1m),
            cached_input_per_1m=_decimal_or_none(pricing.cached_input_per_1m),
            reasoning_per_1m=_decimal_or_none(pricing.reasoning_per_1m),
            currency=pricing.currency,
            provider=self.id,
            context_window=info.context_window,
            max_output_tokens=info.max_output_tokens,
        )


def _decimal(value: float) -> Decimal:
    # repr: the shortest text that reads back as the float, i.e. the number as written
    return Decimal(repr(value))


def _decimal_or_none(value: float | None) -> Decimal | None:
    return None if value is None else _decimal(value)


# ---------------------------------------------------------------- converter hooks


def _str_hook(value: Any, _: type) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ManifestIssues([((), f"expected a string, got {_describe(value)}")])
    return str(value)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _selector_hook(value: Any, _: type) -> Selector:
    if not isinstance(value, str):
        raise _one(f"expected a JSONPath string, got {_describe(value)}")
    try:
        return compile_path(value)
    except JSONPathError as exc:
        raise _one(f"invalid JSONPath: {exc}") from None


#: field names whose value is not one datum but a whole object (or array) to take apart
_COMPOSITE_FIELDS = frozenset({"usage", "tool_calls", "tool_call"})


def _rule_hook(value: Any, strict: bool) -> EventRule:
    return _rule_list(value, strict)[0]


def _rule_list(value: Any, strict: bool) -> list[EventRule]:
    """One manifest rule -> the compiled rule, plus a sibling when it carries two things.

    The spec's manifests spell some extractions as whole objects: ``usage: $.usage`` (the
    provider's usage object, whose well-known token names are read), ``tool_calls:`` (an
    OpenAI-shaped array of calls) and ``tool_call:`` (a Gemini ``functionCall`` object).
    A usage rule may also carry the finish reason (v1 ``Metadata``) and a finish rule the
    usage object (v2 ``StreamEnd``); each such rule becomes two, with the same conditions.
    """
    if not isinstance(value, Mapping):
        raise _one(f"expected a mapping (an event-map rule), got {_describe(value)}")
    issues: list[tuple[tuple[str | int, ...], str]] = []
    emit_name = value.get("emit")
    kind = EMIT_ALIASES.get(emit_name) if isinstance(emit_name, str) else None
    if emit_name is None:
        issues.append(((), "rule has no 'emit'"))
    elif kind is None:
        known = ", ".join(sorted(EMIT_ALIASES))
        issues.append(((("emit",)), f"unknown emit {emit_name!r} (known: {known})"))

    match: Match | None = None
    if value.get("match") is not None:
        if not isinstance(value["match"], str):
            issues.append((("match",), "expected an expression string"))
        else:
            try:
                match = Match.compile(value["match"])
            except JSONPathError as exc:
                issues.append((("match",), f"invalid match expression: {exc}"))

    each: Selector | None = None
    if value.get("each") is not None:
        try:
            each = _selector_hook(value["each"], Selector)
        except ManifestIssues as exc:
            issues.extend((("each", *p), m) for p, m in exc.issues)

    event = value.get("event")
    if event is not None and not isinstance(event, str):
        issues.append((("event",), "expected an SSE event name"))
        event = None

    key = "extract" if "extract" in value else "fields"
    raw_fields = value.get(key) or {}
    fields: dict[str, FieldSpec] = {}
    composite: dict[str, tuple[str, Any]] = {}
    if not isinstance(raw_fields, Mapping):
        issues.append(((key,), f"expected a mapping of field: path, got {_describe(raw_fields)}"))
    else:
        aliases = FIELD_ALIASES.get(kind, {}) if kind is not None else {}
        for name, spec in raw_fields.items():
            canonical = aliases.get(name)
            if kind is not None and canonical is None:
                # Unknown keys are tolerated, as the spec asks; strict mode reports them.
                if strict:
                    allowed = ", ".join(sorted(set(aliases))) or "none"
                    issues.append(
                        (
                            (key, name),
                            f"unknown field {name!r} for {emit_name} (allowed: {allowed})",
                        )
                    )
                continue
            if canonical in _COMPOSITE_FIELDS:
                composite[canonical] = (name, spec)
                continue
            try:
                fields[canonical or name] = FieldSpec.compile(spec)
            except JSONPathError as exc:
                issues.append(((key, name), f"invalid JSONPath: {exc}"))
            except (TypeError, ValueError):
                issues.append(
                    ((key, name), f"expected a path or a list of paths, got {_describe(spec)}")
                )
    sibling: tuple[EmitKind, dict[str, FieldSpec]] | None = None
    for canonical, (name, spec) in composite.items():
        try:
            if canonical == "usage":
                usage = usage_object_fields(spec)
                if kind is EmitKind.USAGE:
                    for field, field_spec in usage.items():
                        fields.setdefault(field, field_spec)  # explicit fields win
                else:
                    sibling = (EmitKind.USAGE, usage)
            elif each is None:  # tool_calls / tool_call; an explicit `each` wins
                expand = (
                    tool_calls_array_fields
                    if canonical == "tool_calls"
                    else (tool_call_object_fields)
                )
                each, relative = expand(spec)
                for field, field_spec in relative.items():
                    fields.setdefault(field, field_spec)
        except JSONPathError as exc:
            issues.append(((key, name), f"invalid JSONPath: {exc}"))
        except (TypeError, ValueError):
            issues.append(((key, name), f"expected a path, got {_describe(spec)}"))
    if kind is EmitKind.USAGE and "finish_reason" in fields:
        sibling = (EmitKind.FINISH, {"finish_reason": fields.pop("finish_reason")})
    if issues or kind is None:
        raise ManifestIssues(issues)
    rules = [EventRule(emit=kind, fields=fields, match=match, event=event, each=each)]
    if sibling is not None:
        rules.append(EventRule(emit=sibling[0], fields=sibling[1], match=match, event=event))
    return rules


def _field_spec_hook(value: Any, _: type) -> FieldSpec:
    try:
        return FieldSpec.compile(value)
    except JSONPathError as exc:
        raise _one(f"invalid JSONPath: {exc}") from None
    except (TypeError, ValueError):
        raise _one(f"expected a path or a list of paths, got {_describe(value)}") from None


def _kind_map(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _one(f"expected a mapping, got {_describe(value)}", path)
    return {str(k): str(v) for k, v in value.items()}


def _error_rules_hook(value: Any, _: type) -> ErrorRules:
    if not isinstance(value, Mapping):
        raise _one(f"expected a mapping, got {_describe(value)}")
    issues: list[tuple[tuple[str | int, ...], str]] = []
    by_status: dict[int, str] = {}
    try:
        for k, v in _kind_map(value.get("by_http_status"), "by_http_status").items():
            if not k.isdigit():
                issues.append((("by_http_status", k), f"expected an HTTP status code, got {k!r}"))
            else:
                by_status[int(k)] = v
    except ManifestIssues as exc:
        issues.extend(exc.issues)
    kw: dict[str, Any] = {"by_http_status": by_status}
    for name in ("by_error_code", "by_error_type"):
        try:
            kw[name] = _kind_map(value.get(name), name)
        except ManifestIssues as exc:
            issues.extend(exc.issues)
    paths = value.get("paths") or {}
    if not isinstance(paths, Mapping):
        issues.append((("paths",), f"expected a mapping, got {_describe(paths)}"))
        paths = {}
    for name in ("code", "type", "message", "status", "retry_after"):
        if name in paths:
            try:
                kw[name] = _field_spec_hook(paths[name], FieldSpec)
            except ManifestIssues as exc:
                issues.extend((("paths", name, *p), m) for p, m in exc.issues)
    patterns = value.get("context_length_patterns")
    if patterns is not None:
        compiled = list(DEFAULT_ERROR_RULES.context_patterns)
        for i, pat in enumerate(patterns if isinstance(patterns, list) else [patterns]):
            try:
                compiled.append(re.compile(str(pat), re.IGNORECASE))
            except re.error as exc:
                issues.append((("context_length_patterns", i), f"invalid regex: {exc}"))
        kw["context_patterns"] = tuple(compiled)
    if issues:
        raise ManifestIssues(issues)
    return ErrorRules(**kw)


def _endpoint_hook(value: Any, _: type) -> NamedEndpoint:
    if isinstance(value, str):
        return NamedEndpoint(path=value)
    if not isinstance(value, Mapping):
        raise _one(f"expected a mapping or a path, got {_describe(value)}")
    if "path" not in value:
        raise _one("endpoint has no 'path'")
    issues: list[tuple[tuple[str | int, ...], str]] = []
    result: Selector | None = None
    if value.get("result") is not None:
        try:
            result = _selector_hook(value["result"], Selector)
        except ManifestIssues as exc:
            issues.extend((("result", *p), m) for p, m in exc.issues)
    keys = value.get("body_keys")
    if keys is not None and not (
        isinstance(keys, list) and all(isinstance(k, str) and k for k in keys)
    ):
        issues.append((("body_keys",), f"expected a list of key names, got {_describe(keys)}"))
        keys = None
    wrap = value.get("body_wrap")
    if wrap is not None and not (isinstance(wrap, str) and wrap):
        issues.append((("body_wrap",), f"expected a key name, got {_describe(wrap)}"))
    fields = value.get("body_fields")
    if fields is not None and not (
        isinstance(fields, Mapping) and all(isinstance(v, str) for v in fields.values())
    ):
        issues.append(
            (("body_fields",), f"expected a mapping of names to strings, got {_describe(fields)}")
        )
        fields = None
    if issues:
        raise ManifestIssues(issues)
    return NamedEndpoint(
        path=_str_hook(value["path"], str),
        method=str(value.get("method", "POST")).upper(),
        adapter=None if value.get("adapter") is None else str(value["adapter"]),
        stream_path=None if value.get("stream_path") is None else str(value["stream_path"]),
        result=result,
        body_keys=None if keys is None else tuple(keys),
        body_wrap=wrap,
        body_fields={str(k): v for k, v in (fields or {}).items()},
    )


def _price_issues(value: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for name in ("input_per_1m", "output_per_1m", "cached_input_per_1m", "reasoning_per_1m"):
        price = value.get(name)
        if price is None:
            continue
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            issues.append(((name,), f"expected a price (a number), got {_describe(price)}"))
        elif not (0 <= price < float("inf")):
            issues.append(((name,), f"a price must be a finite number >= 0, got {price!r}"))
    currency = value.get("currency")
    if currency is not None and not (
        isinstance(currency, str) and re.fullmatch("[A-Z]{3}", currency)
    ):
        issues.append(
            (("currency",), f"expected an ISO 4217 code such as 'USD', got {_describe(currency)}")
        )
    return issues


def _tokenizer_hook(value: Any, _: type) -> TokenizerSpec:
    if isinstance(value, str):
        value = {"encoding": value}
    if not isinstance(value, Mapping):
        raise _one(f"expected an encoding name or a mapping, got {_describe(value)}")
    issues: list[tuple[tuple[str | int, ...], str]] = []
    encoding = value.get("encoding")
    if encoding not in TOKENIZER_ENCODINGS:
        known = ", ".join(TOKENIZER_ENCODINGS)
        got = "nothing" if encoding is None else repr(encoding)
        issues.append((("encoding",), f"unknown tokenizer encoding {got} (known: {known})"))
    messages = value.get("messages")
    if messages is not None and messages not in MESSAGE_FORMATS:
        known = ", ".join(MESSAGE_FORMATS)
        issues.append((("messages",), f"no counting recipe for {messages!r} (known: {known})"))
    if issues:
        raise ManifestIssues(issues)
    return TokenizerSpec(encoding=str(encoding), messages=messages)


def _extra_headers_hook(value: Any, _: type) -> Mapping[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for i, item in enumerate(value):
            if not (isinstance(item, Mapping) and "name" in item and "value" in item):
                raise _one("expected {name: ..., value: ...}", i)
            out[str(item["name"])] = str(item["value"])
        return out
    raise _one(f"expected a mapping or a list of {{name, value}}, got {_describe(value)}")


# ---------------------------------------------------------------- the batch section

_Issues = list[tuple[tuple[str | int, ...], str]]
_BATCH_KEYS = (
    "price_factor",
    "limits",
    "input",
    "create",
    "get",
    "cancel",
    "status",
    "statuses",
    "counts",
    "failure",
    "results",
    "result",
)
#: the slots each template or path of a batch section may use: (object slots, text slots)
_ITEM_SLOTS = (("body",), ("custom_id",))
_CREATE_SLOTS = {
    "file": ((), ("file_id", "job", "model")),
    "inline": (("items",), ("job", "model")),
}
_REQUIRED_SLOTS = {"item": ("body", "custom_id"), "file": ("file_id",), "inline": ("items",)}


class _Section:
    """Reads one mapping of a manifest section, collecting every problem with its path."""

    def __init__(self, value: Any, path: tuple[str | int, ...], issues: _Issues, strict: bool):
        self.path, self.issues, self.strict = path, issues, strict
        self.ok = isinstance(value, Mapping)
        self.data: Mapping[str, Any] = value if isinstance(value, Mapping) else {}
        if not self.ok:
            self.add(f"expected a mapping, got {_describe(value)}")

    def add(self, message: str, *sub: str | int) -> None:
        self.issues.append(((*self.path, *sub), message))

    def known(self, keys: tuple[str, ...]) -> None:
        if self.strict:
            for key in self.data:
                if key not in keys:
                    self.add(f"unknown key {key!r}", key)

    def sub(self, key: str) -> _Section:
        return _Section(self.data.get(key), (*self.path, key), self.issues, self.strict)

    def required(self, key: str) -> bool:
        if self.data.get(key) is None:
            self.add(f"required key {key!r} is missing")
            return False
        return True

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            self.add(f"expected a non-empty string, got {_describe(value)}", key)
            return default
        return value

    def path_text(self, key: str, allowed: tuple[str, ...]) -> str | None:
        """An endpoint path, checked for the placeholders it may use."""
        value = self.text(key)
        if value is None:
            return None
        for name in re.findall(r"\{([^{}]*)\}", value):
            if name not in allowed:
                known = ", ".join(f"{{{n}}}" for n in allowed) or "none"
                self.add(f"unknown placeholder {{{name}}} (known here: {known})", key)
        if not value.startswith("/"):
            self.add(f"a path must start with '/', got {value!r}", key)
        return value

    def field(self, key: str) -> FieldSpec | None:
        value = self.data.get(key)
        if value is None:
            return None
        try:
            return _field_spec_hook(value, FieldSpec)
        except ManifestIssues as exc:
            self.issues.extend(((*self.path, key, *p), m) for p, m in exc.issues)
            return None

    def limit(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.add(f"expected a positive integer, got {_describe(value)}", key)
            return None
        return value

    def template(
        self, key: str, objects: tuple[str, ...], texts: tuple[str, ...], needs: tuple[str, ...]
    ) -> JsonTemplate | None:
        value = self.data.get(key)
        if value is None:
            return None
        try:
            template = JsonTemplate.compile(value, objects=objects, texts=texts)
        except TemplateError as exc:
            self.add(str(exc), key)
            return None
        missing = [f"{{{n}}}" for n in needs if n not in template.slots]
        if missing:
            self.add(f"the template must use {', '.join(missing)}", key)
            return None
        return template

    def call(
        self,
        key: str,
        method: str,
        paths: tuple[str, ...],
        body: tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]] | None = None,
        id_required: bool = False,
    ) -> BatchCall | None:
        section = self.sub(key)
        if not section.ok:
            return None
        known = ("path", "method", "id") + (("body",) if body is not None else ())
        section.known(known)
        path = section.path_text("path", paths) if section.required("path") else None
        verb = section.text("method", method)
        template = None
        if body is not None:
            template = section.template("body", *body)
            if template is None and section.data.get("body") is None:
                section.add("required key 'body' is missing")
        ident = section.field("id")
        if id_required and ident is None and section.data.get("id") is None:
            section.add("required key 'id' is missing: where the answer holds the batch's id")
        if path is None or verb is None:
            return None
        return BatchCall(path=path, method=verb.upper(), body=template, id=ident)


def _batch_hook(value: Any, strict: bool) -> BatchSpec:
    issues: _Issues = []
    top = _Section(value, (), issues, strict)
    if not top.ok:
        raise ManifestIssues(issues)
    top.known(_BATCH_KEYS)
    for key in ("input", "create", "get", "status", "statuses", "result"):
        top.required(key)

    factor = top.data.get("price_factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1:
        top.add(f"expected a number in (0, 1], got {_describe(factor)}", "price_factor")
        factor = 1.0

    max_requests = max_bytes = None
    if top.data.get("limits") is not None:
        limits = top.sub("limits")
        limits.known(("max_requests", "max_bytes"))
        max_requests, max_bytes = limits.limit("max_requests"), limits.limit("max_bytes")

    mode, item, upload = "inline", None, None
    if top.data.get("input") is not None:
        section = top.sub("input")
        section.known(("mode", "item", "upload"))
        mode = section.text("mode", "inline") or "inline"
        if mode not in _CREATE_SLOTS:
            section.add(f"unknown input mode {mode!r} (known: file, inline)", "mode")
            mode = "inline"
        if section.required("item"):
            item = section.template("item", *_ITEM_SLOTS, _REQUIRED_SLOTS["item"])
        if mode == "file" and section.required("upload"):
            up = section.sub("upload")
            if up.ok:
                up.known(("path", "fields", "file_field", "filename", "content_type", "id"))
                path = up.path_text("path", ()) if up.required("path") else None
                ident = up.field("id") if up.required("id") else None
                fields = up.data.get("fields") or {}
                if not isinstance(fields, Mapping) or not all(
                    isinstance(v, str) for v in fields.values()
                ):
                    up.add(
                        f"expected a mapping of names to strings, got {_describe(fields)}", "fields"
                    )
                    fields = {}
                if path is not None and ident is not None:
                    upload = BatchUpload(
                        path=path,
                        id=ident,
                        fields={str(k): v for k, v in fields.items()},
                        file_field=up.text("file_field", "file") or "file",
                        filename=up.text("filename", "batch.jsonl") or "batch.jsonl",
                        content_type=up.text("content_type", "application/jsonl")
                        or "application/jsonl",
                    )

    objects, texts = _CREATE_SLOTS[mode]
    create = get = cancel = None
    if top.data.get("create") is not None:
        create = top.call(
            "create", "POST", ("model",), (objects, texts, _REQUIRED_SLOTS[mode]), id_required=True
        )
    if top.data.get("get") is not None:
        get = top.call("get", "GET", ("batch_id", "model"))
    if top.data.get("cancel") is not None:
        cancel = top.call("cancel", "POST", ("batch_id", "model"))

    status = top.field("status")
    statuses: dict[str, str] = {}
    raw = top.data.get("statuses")
    if raw is not None:
        if not isinstance(raw, Mapping) or not raw:
            top.add(
                f"expected a mapping of the provider's statuses, got {_describe(raw)}", "statuses"
            )
        else:
            for name, normal in raw.items():
                if normal not in BATCH_STATUSES:
                    known = ", ".join(BATCH_STATUSES)
                    top.add(
                        f"unknown batch status {normal!r} (known: {known})", "statuses", str(name)
                    )
                else:
                    statuses[str(name)] = normal

    counts: dict[str, FieldSpec] = {}
    if top.data.get("counts") is not None:
        section = top.sub("counts")
        for name in section.data:
            if name not in BATCH_COUNTS:
                section.add(f"unknown count {name!r} (known: {', '.join(BATCH_COUNTS)})", name)
            else:
                spec = section.field(name)
                if spec is not None:
                    counts[name] = spec
    failure = top.field("failure")

    files: list[BatchResultFile] = []
    inline_results = None
    if top.data.get("results") is None:
        top.add("required key 'results' is missing: result files or inline results")
    else:
        section = top.sub("results")
        section.known(("files", "inline"))
        inline_results = section.field("inline")
        listed = section.data.get("files")
        if listed is not None and not isinstance(listed, list):
            section.add(f"expected a list of result files, got {_describe(listed)}", "files")
        for i, entry in enumerate(listed if isinstance(listed, list) else []):
            one = _Section(entry, (*section.path, "files", i), issues, strict)
            if not one.ok:
                continue
            one.known(("path", "id"))
            ident = one.field("id")
            allowed = ("batch_id", "model") + (("file_id",) if ident is not None else ())
            path = one.path_text("path", allowed) if one.required("path") else None
            if path is not None:
                files.append(BatchResultFile(path=path, id=ident))
        if section.ok and not files and inline_results is None:
            section.add("expected 'files' or 'inline': where the results are")

    custom_id = None
    outcomes: list[BatchOutcomeRule] = []
    if top.data.get("result") is not None:
        section = top.sub("result")
        section.known(("custom_id", "outcomes"))
        custom_id = section.field("custom_id") if section.required("custom_id") else None
        listed = section.data.get("outcomes")
        if not isinstance(listed, list) or not listed:
            section.add(f"expected a list of outcome rules, got {_describe(listed)}", "outcomes")
            listed = []
        for i, entry in enumerate(listed):
            one = _Section(entry, (*section.path, "outcomes", i), issues, strict)
            if not one.ok:
                continue
            one.known(("match", "outcome", "body", "status", "request_id"))
            outcome = one.text("outcome") if one.required("outcome") else None
            if outcome is not None and outcome not in BATCH_OUTCOMES:
                one.add(
                    f"unknown outcome {outcome!r} (known: {', '.join(BATCH_OUTCOMES)})", "outcome"
                )
                outcome = None
            match = None
            if one.data.get("match") is not None:
                source = one.data["match"]
                if not isinstance(source, str):
                    one.add("expected an expression string", "match")
                else:
                    try:
                        match = Match.compile(source)
                    except JSONPathError as exc:
                        one.add(f"invalid match expression: {exc}", "match")
            body, status_at, request_id = (
                one.field("body"),
                one.field("status"),
                one.field("request_id"),
            )
            if outcome is not None:
                outcomes.append(BatchOutcomeRule(outcome, match, body, status_at, request_id))

    if issues:
        raise ManifestIssues(issues)
    assert item is not None
    assert create is not None
    assert get is not None
    assert status is not None
    assert custom_id is not None
    return BatchSpec(
        mode=mode,
        item=item,
        create=create,
        get=get,
        status=status,
        statuses=statuses,
        custom_id=custom_id,
        outcomes=tuple(outcomes),
        price_factor=float(factor),
        max_requests=max_requests,
        max_bytes=max_bytes,
        upload=upload,
        cancel=cancel,
        counts=counts,
        failure=failure,
        result_files=tuple(files),
        inline_results=inline_results,
    )


def make_converter(*, strict: bool = False) -> cattrs.Converter:
    """The manifest converter; ``strict`` turns unknown keys into reported problems."""
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=strict)

    # cattrs would build a tuple out of any iterable (a string's characters, a mapping's
    # keys) and an attrs class out of anything subscriptable; a manifest section of the
    # wrong shape must instead be reported as such, at the section.
    def tuple_hook_factory(tp: Any) -> Callable[[Any, Any], Any]:
        args = tp.__args__
        variadic = len(args) == 2 and args[1] is Ellipsis
        item_types = (args[0],) if variadic else args

        def hook(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, (list, tuple)):
                raise _one(f"expected a list, got {_describe(value)}")
            if not variadic and len(value) != len(item_types):
                raise _one(f"expected a list of {len(item_types)} items, got {len(value)}")
            out: list[Any] = []
            errors: list[Exception] = []
            for i, item in enumerate(value):
                item_type = item_types[0] if variadic else item_types[i]
                try:
                    if item_type is EventRule:  # one manifest rule may compile to two
                        out.extend(_rule_list(item, strict))
                    else:
                        out.append(conv.structure(item, item_type))
                except Exception as exc:  # noqa: BLE001 - collected, reported with its index
                    note = IterableValidationNote(f"item @ index {i}", i, item_type)
                    exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
                    errors.append(exc)
            if errors:
                raise IterableValidationError("invalid items", errors, tp)
            return tuple(out)

        return hook

    conv.register_structure_hook_factory(
        lambda tp: getattr(tp, "__origin__", None) is tuple, tuple_hook_factory
    )

    def attrs_hook_factory(cls: type) -> Callable[[Any, Any], Any]:
        base: Callable[[Any, Any], Any] = cattrs.gen.make_dict_structure_fn(
            cls, conv, _cattrs_forbid_extra_keys=strict
        )

        def hook(value: Any, _: Any) -> Any:
            if not isinstance(value, Mapping):
                raise _one(f"expected a mapping, got {_describe(value)}")
            return base(value, cls)

        return hook

    conv.register_structure_hook_factory(attrs.has, attrs_hook_factory)
    conv.register_structure_hook(str, _str_hook)
    conv.register_structure_hook(Selector, _selector_hook)
    conv.register_structure_hook(FieldSpec, _field_spec_hook)
    conv.register_structure_hook(EventRule, lambda v, _: _rule_hook(v, strict))
    conv.register_structure_hook(ErrorRules, _error_rules_hook)
    conv.register_structure_hook(NamedEndpoint, _endpoint_hook)
    conv.register_structure_hook(TokenizerSpec, _tokenizer_hook)
    conv.register_structure_hook(BatchSpec, lambda v, _: _batch_hook(v, strict))

    base_pricing = cattrs.gen.make_dict_structure_fn(
        Pricing, conv, _cattrs_forbid_extra_keys=strict
    )

    def pricing_hook(value: Any, cls: type) -> Pricing:
        if not isinstance(value, Mapping):
            raise _one(f"expected a mapping, got {_describe(value)}")
        issues = _price_issues(value)
        if issues:
            raise ManifestIssues(issues)
        pricing: Pricing = base_pricing(value, cls)
        return pricing

    conv.register_structure_hook(Pricing, pricing_hook)

    base_model_info = cattrs.gen.make_dict_structure_fn(
        ModelInfo, conv, _cattrs_forbid_extra_keys=strict
    )

    def model_info_hook(value: Any, cls: type) -> ModelInfo:
        if not isinstance(value, Mapping):
            raise _one(f"expected a mapping, got {_describe(value)}")
        quality = value.get("quality")
        # cattrs would take "0.9" or true for a float: a score must be a number, in [0, 1]
        if quality is not None and (
            isinstance(quality, bool)
            or not isinstance(quality, (int, float))
            or not 0 <= quality <= 1  # NaN fails too
        ):
            raise _one(
                f"a quality score must be a number in [0, 1], got {_describe(quality)}", "quality"
            )
        info: ModelInfo = base_model_info(value, cls)
        return info

    conv.register_structure_hook(ModelInfo, model_info_hook)

    base_auth = cattrs.gen.make_dict_structure_fn(AuthSpec, conv, _cattrs_forbid_extra_keys=strict)

    def auth_hook(value: Any, cls: type) -> AuthSpec:
        if not isinstance(value, Mapping):
            raise _one(f"expected a mapping, got {_describe(value)}")
        data = dict(value)
        extra = data.pop("extra_headers", None)
        key_env = data.pop("key_env", None)  # v1 spelling of token_env
        auth = base_auth(data, cls)
        issues: list[tuple[tuple[str | int, ...], str]] = []
        if isinstance(key_env, str) and key_env:
            if auth.token_env is None:
                auth = attrs.evolve(auth, token_env=key_env)
            elif key_env not in auth.env_vars:
                auth = attrs.evolve(auth, token_envs=(*auth.token_envs, key_env))
        elif key_env is not None:
            issues.append(
                (("key_env",), f"expected an environment variable name, got {_describe(key_env)}")
            )
        kind = AUTH_TYPES.get(auth.type)
        if kind is None:
            issues.append(
                (("type",), f"unknown auth type {auth.type!r} (known: {', '.join(AUTH_TYPES)})")
            )
            kind = auth.type
        try:
            headers = _extra_headers_hook(extra, Mapping)
        except ManifestIssues as exc:
            issues.extend((("extra_headers", *p), m) for p, m in exc.issues)
            headers = {}
        if issues:
            raise ManifestIssues(issues)
        return attrs.evolve(auth, type=kind, extra_headers=headers)

    conv.register_structure_hook(AuthSpec, auth_hook)

    base_decoder = cattrs.gen.make_dict_structure_fn(
        DecoderSpec, conv, _cattrs_forbid_extra_keys=strict
    )

    def decoder_hook(value: Any, cls: type) -> DecoderSpec:
        if not isinstance(value, Mapping):
            raise _one(f"expected a mapping, got {_describe(value)}")
        decoder: DecoderSpec = base_decoder(value, cls)
        if decoder.format not in DECODER_FORMATS:
            known = ", ".join(sorted(DECODER_FORMATS))
            raise _one(f"unknown decoder format {decoder.format!r} (known: {known})", "format")
        return decoder

    conv.register_structure_hook(DecoderSpec, decoder_hook)

    base_embeddings = cattrs.gen.make_dict_structure_fn(
        EmbeddingRules, conv, _cattrs_forbid_extra_keys=strict
    )

    def embeddings_hook(value: Any, cls: type) -> EmbeddingRules:
        if not isinstance(value, Mapping):
            raise _one(f"expected a mapping, got {_describe(value)}")
        limit = value.get("max_inputs_per_request")
        # cattrs would take "10", 2.5 or true for an int: a limit must be one, and positive
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise _one(
                f"expected a positive integer, got {_describe(limit)}", "max_inputs_per_request"
            )
        rules: EmbeddingRules = base_embeddings(value, cls)
        return rules

    conv.register_structure_hook(EmbeddingRules, embeddings_hook)
    # The top level's unknown keys are checked by manifest_prechecks, which knows the
    # spec's keys that the runtime does not model.
    base_manifest = cattrs.gen.make_dict_structure_fn(
        ProviderManifest, conv, _cattrs_forbid_extra_keys=False
    )

    def manifest_hook(value: Any, cls: type) -> ProviderManifest:
        if isinstance(value, Mapping):
            data = hoist_sections(value)
            url = data.get("base_url")
            if "endpoint" not in data and isinstance(url, str):
                data["endpoint"] = {"base_url": url}  # v1: a top-level base_url
            limits = data.get("rate_limit_headers")
            if isinstance(limits, Mapping):
                # `retry_after: null` says the provider sends no such header
                data["rate_limit_headers"] = {k: v for k, v in limits.items() if v is not None}
            value = data
        manifest: ProviderManifest = base_manifest(value, cls)
        family = declared_format(value) if isinstance(value, Mapping) else None
        return _with_format_rules(manifest, family) if family is not None else manifest

    conv.register_structure_hook(ProviderManifest, manifest_hook)

    return conv


_FORMAT_RULES: dict[tuple[str, str], tuple[EventRule, ...]] = {}


def _format_rules(section: str, family: str) -> tuple[EventRule, ...]:
    """The built-in rules of a declared format, compiled once (see ``_defaults``)."""
    rules = _FORMAT_RULES.get((section, family))
    if rules is None:
        table = RESPONSE_RULES if section == "response" else STREAM_RULES
        raw = table.get(family, ())
        rules = _FORMAT_RULES[(section, family)] = tuple(
            rule for item in raw for rule in _rule_list(item, False)
        )
    return rules


def _with_format_rules(manifest: ProviderManifest, family: str) -> ProviderManifest:
    """Complete a manifest that declares its response format (``_defaults`` says how):
    response rules when it has none, and stream rules for the kinds its event map omits."""
    changes: dict[str, Any] = {}
    if manifest.response is None:
        changes["response"] = ResponseSpec(event_map=_format_rules("response", family))
    streaming = manifest.streaming
    if streaming is not None:
        mapped = {rule.emit for rule in streaming.event_map}
        extra = tuple(r for r in _format_rules("stream", family) if r.emit not in mapped)
        if extra:
            changes["streaming"] = attrs.evolve(streaming, event_map=streaming.event_map + extra)
    return attrs.evolve(manifest, **changes) if changes else manifest


def hoist_sections(value: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with its grouping keys flattened (a plain copy when it has none).

    - ``core:`` groups top-level sections (``core: {endpoint: ...}``); a section given both
      there and at the top level is the top level's.
    - ``endpoint.endpoints`` names operations as the top-level ``endpoints`` map does; the
      top level wins for an operation named in both.
    """
    data = dict(value)
    core = data.get("core")
    if isinstance(core, Mapping):
        del data["core"]
        for key, section in core.items():
            data.setdefault(str(key), section)
    endpoint = data.get("endpoint")
    if isinstance(endpoint, Mapping) and isinstance(endpoint.get("endpoints"), Mapping):
        endpoint = dict(endpoint)
        named = endpoint.pop("endpoints")
        top = data.get("endpoints")
        data["endpoint"] = endpoint
        data["endpoints"] = {**named, **top} if isinstance(top, Mapping) else named
    return data


def manifest_prechecks(value: Any, *, strict: bool) -> list[tuple[tuple[str | int, ...], str]]:
    """Checks on the raw document that no field type expresses (run beside structuring)."""
    if not isinstance(value, Mapping):
        return [((), f"a manifest must be a mapping, got {_describe(value)}")]
    if isinstance(value.get("core"), Mapping):
        value = hoist_sections(value)
    issues: list[tuple[tuple[str | int, ...], str]] = []
    if strict:
        known = {a.name for a in attrs.fields(ProviderManifest)} - {"source"} | _SPEC_TOP_LEVEL
        issues.extend(((k,), f"unknown key {k!r}") for k in value if k not in known)
    mid = value.get("id")
    if isinstance(mid, str) and not _ID.match(mid):
        issues.append((("id",), f"invalid provider id {mid!r}: use 2-64 of a-z 0-9 - _"))
    ep = value.get("endpoint")
    url, where = (
        (ep.get("base_url"), ("endpoint", "base_url"))
        if isinstance(ep, Mapping)
        else (
            value.get("base_url"),
            ("base_url",),
        )
    )
    if isinstance(url, str) and not url.startswith(("http://", "https://")):
        issues.append((where, f"must start with http:// or https://, got {url!r}"))
    elif "endpoint" not in value and url is not None and not isinstance(url, str):
        issues.append((where, f"expected a URL string, got {_describe(url)}"))
    if "capability_profile" in value:
        issues.extend(_capability_profile_issues(value["capability_profile"]))
    endpoints = value.get("endpoints")
    count = endpoints.get("count_tokens") if isinstance(endpoints, Mapping) else None
    if isinstance(count, Mapping) and count.get("result") is None:
        issues.append(
            (
                ("endpoints", "count_tokens"),
                "a count_tokens endpoint needs 'result': the JSONPath of the count in the"
                " response (e.g. $.input_tokens)",
            )
        )
    return issues


#: capability_profile phases -> (the dimensions each allows, those it needs one of, and the
#: words for a profile that has none of those). The spec's schema does not define the
#: profile; these are the rules its compliance cases and manifests use (ios_v1: inputs,
#: outcomes and systems only, at least one; iospc_v1 adds process and contract, and needs
#: one of the two). The messages keep the wording the compliance cases check.
_PROFILE_PHASES: Mapping[str, tuple[frozenset[str], tuple[str, ...], str]] = {
    "ios_v1": (
        frozenset({"inputs", "outcomes", "systems"}),
        ("inputs", "outcomes", "systems"),
        "must match at least one schema in anyOf: ios_v1 needs inputs, outcomes or systems",
    ),
    "iospc_v1": (
        frozenset({"inputs", "outcomes", "systems", "process", "contract"}),
        ("process", "contract"),
        "iospc_v1 requires process or contract",
    ),
}


def _capability_profile_issues(profile: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """The staged capability profile: its phase says which dimensions it may declare."""
    where = ("capability_profile",)
    if not isinstance(profile, Mapping):
        return [(where, f"capability_profile must be object, got {_describe(profile)}")]
    phase = profile.get("phase")
    rules = _PROFILE_PHASES.get(phase) if isinstance(phase, str) else None
    if rules is None:
        return []  # a later phase than this runtime knows: tolerated, like unknown keys
    allowed, one_of, missing = rules
    issues: list[tuple[tuple[str | int, ...], str]] = [
        (
            (*where, key),
            f"must NOT have additional properties: {phase} does not allow {key!r}"
            f" (allowed: phase, {', '.join(sorted(allowed))})",
        )
        for key in profile
        if key != "phase" and key not in allowed
    ]
    if not any(key in profile for key in one_of):
        issues.append((where, missing))
    return issues


#: top-level keys the AI-Protocol schema defines that the runtime does not execute;
#: strict mode accepts them, and reports anything else.
_SPEC_TOP_LEVEL = frozenset(
    {
        "$schema",
        "core",
        "base_url",
        "version",
        "status",
        "category",
        "official_url",
        "support_contact",
        "availability",
        "capability_profile",
        "multimodal",
        "computer_use",
        "mcp",
        "api_families",
        "services",
        "guardrails",
        "features",
        "context_policy",
        "provider_contract",
        "pricing",
        "payload_format",
        "response_format",
        "response_paths",
        "experimental_features",
    }
)
