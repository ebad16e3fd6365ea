"""Every OpenTelemetry name this library emits, in one place: the GenAI semantic conventions
(https://opentelemetry.io/docs/specs/semconv/gen-ai/) and the library's own few attributes.

The GenAI conventions are still in development. As they ask of instrumentations, the names
of v1.36.0 are emitted by default, and the latest ones when ``OTEL_SEMCONV_STABILITY_OPT_IN``
(a comma-separated list) holds ``gen_ai_latest_experimental``. The two differ in:

- the provider: ``gen_ai.system`` (v1.36) / ``gen_ai.provider.name`` (latest);
- captured content (opt-in): span events ``gen_ai.content.prompt`` and
  ``gen_ai.content.completion`` carrying ``gen_ai.prompt`` / ``gen_ai.completion`` as JSON,
  as v1.27.0 defined them (v1.28 to v1.36 moved content to log-based events, which need a
  logs pipeline; span events reach any tracing back-end) / the attributes
  ``gen_ai.input.messages`` and ``gen_ai.output.messages``, JSON in the conventions'
  message schema (latest).

Names that only exist in later versions (``gen_ai.request.stream``,
``gen_ai.response.time_to_first_chunk``, the ``time_to_first_chunk`` metric) are added in
both: they rename nothing.

``error.type`` is the library's exception class name (``RateLimitedError``,
``ServerError``, ``DeadlineExceededError``... see ``ailib_anyio.AiLibError``), or
``cancelled`` when the call was cancelled; any other exception gives its qualified name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import attrs

__all__ = ["Conventions"]

#: the environment variable and the value that select the latest GenAI conventions
OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST = "gen_ai_latest_experimental"
#: the environment variable the OpenTelemetry GenAI instrumentations read for content
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

#: the instrumentation scope (tracer and meter name)
SCOPE = "ailib_anyio"

# ------------------------------------------------------------------ attributes (both)

OPERATION_NAME = "gen_ai.operation.name"
OPERATION_CHAT = "chat"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"
TOKEN_INPUT = "input"
TOKEN_OUTPUT = "output"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

#: ``error.type`` of a call or attempt that was cancelled (the backend's own exception
#: class differs between asyncio and trio)
CANCELLED = "cancelled"

# ------------------------------------------------------------------ attributes (one each)

SYSTEM = "gen_ai.system"  # v1.36
PROVIDER_NAME = "gen_ai.provider.name"  # latest

# v1.36 default: content on span events
PROMPT_EVENT = "gen_ai.content.prompt"
PROMPT = "gen_ai.prompt"
COMPLETION_EVENT = "gen_ai.content.completion"
COMPLETION = "gen_ai.completion"
# latest: content on attributes
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"

#: the output message schema's finish reasons, from the library's normalized ones
OUTPUT_FINISH_REASONS: Mapping[str, str] = {"tool_calls": "tool_call"}

# ------------------------------------------------------------------ the library's own

#: an attempt's number within its call (1, 2, ...: retries, fallbacks and hedges)
ATTEMPT_NUMBER = "ailib.attempt.number"
#: the attempt's target: its place in the client's chain (0: the primary)
ATTEMPT_TARGET = "ailib.attempt.target"
#: how an attempt ended: ``ok``, ``error``, ``cancelled`` (a hedge that lost, or the
#: whole call cancelled) or ``discarded`` (answered, but another attempt won)
ATTEMPT_OUTCOME = "ailib.attempt.outcome"

# ------------------------------------------------------------------ metrics

OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"
#: the bucket boundaries the conventions give (seconds; tokens)
DURATION_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TOKEN_BUCKETS = tuple(float(4**n) for n in range(14))  # 1, 4, 16, ... 67108864


def latest_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the latest GenAI conventions."""
    return LATEST in {part.strip() for part in environ.get(OPT_IN_ENV, "").split(",")}


def capture_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is ``true``."""
    return environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


@attrs.frozen
class Conventions:
    """The names of one version of the conventions (see the module docstring)."""

    latest: bool
    provider: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Conventions:
        latest = latest_requested(environ)
        return cls(latest=latest, provider=PROVIDER_NAME if latest else SYSTEM)
