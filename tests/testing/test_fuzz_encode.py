"""Request encoding, fuzzed: every generated request encodes, with every shipped
manifest's options, to a body its API family's JSON schema accepts.

The schemas in tests/schemas/ are written from the providers' public API references
(OpenAI chat completions, Anthropic Messages, Gemini generateContent).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fuzzing import fast
from hypothesis import given
from hypothesis import strategies as st

from ailib_anyio._core._encode import EncoderOptions, encode_request
from ailib_anyio._core._errors import InvalidRequestError
from ailib_anyio._core._structured import StructuredOutputRules
from ailib_anyio._core._types import ChatRequest
from ailib_anyio._protocol._models import ProviderManifest
from ailib_anyio._protocol._registry import ProtocolRegistry
from ailib_anyio.testing import strategies as ast

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
REGISTRY = ProtocolRegistry()
MANIFESTS = {provider: REGISTRY.get(provider) for provider in REGISTRY.providers()}


def validator(family: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"{family}.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


VALIDATORS = {family: validator(family) for family in ast.API_FAMILIES}


def options(manifest: ProviderManifest) -> EncoderOptions:
    """The encoder options the client takes from a manifest."""
    return EncoderOptions(
        parameter_mappings=manifest.parameter_mappings,
        stream_usage=manifest.feature_flag("streaming_usage"),
        defaults={
            name: spec.default
            for name, spec in manifest.parameters.items()
            if spec.required and spec.default is not None
        },
        structured=manifest.structured_output or StructuredOutputRules(),
    )


def check_body(family: str, body: dict[str, Any]) -> None:
    errors = sorted(VALIDATORS[family].iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    json.dumps(body, allow_nan=False)  # sendable as JSON
    if family == "anthropic_messages":
        # what the schema cannot say: the conversation starts with the user, then alternates
        roles = [message["role"] for message in body["messages"]]
        assert roles[0] == "user"
        assert all(a != b for a, b in itertools.pairwise(roles)), roles


def test_each_schema_rejects_a_misspelt_key() -> None:
    bodies = {
        "openai_chat": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        "anthropic_messages": {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
        },
        "gemini_generate": {"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
    }
    for family, body in bodies.items():
        assert VALIDATORS[family].is_valid(body), family
        assert not VALIDATORS[family].is_valid({**body, "temprature": 1}), family


@pytest.mark.parametrize("provider", sorted(MANIFESTS))
@fast(40)
@given(data=st.data())
def test_every_request_the_family_expresses_encodes_to_a_valid_body(
    provider: str, data: st.DataObject
) -> None:
    manifest = MANIFESTS[provider]
    family = manifest.api_family
    request = data.draw(ast.chat_requests(family), label="request")
    check_body(family, encode_request(family, request, options(manifest)))


@pytest.mark.parametrize("family", ast.API_FAMILIES)
@fast(40)
@given(request=ast.chat_requests())
def test_any_request_encodes_to_a_valid_body_or_is_refused(
    family: str, request: ChatRequest
) -> None:
    try:
        body = encode_request(family, request, EncoderOptions(defaults={"max_tokens": 1024}))
    except InvalidRequestError:
        return
    check_body(family, body)
