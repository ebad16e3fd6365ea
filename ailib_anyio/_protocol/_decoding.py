"""The decoders of a manifest: the one place a manifest's rules become a stream pipeline
or a response decoder.

The sans-IO core (``_core/_mapping.py``) knows rules, not manifests: ``StreamPipeline``
and ``ResponseDecoder`` take plain rule tuples and tables. This module, one layer up,
reads them out of a ``ProviderManifest`` — event map, decoder format and done signal,
termination mapping, tool-call id generation, error classification — so that the client,
``ailib_anyio.testing`` and the conformance and compliance suites decode a body the same
way, from the same call.
"""

from __future__ import annotations

from .._core._errors import ConfigurationError
from .._core._mapping import ResponseDecoder, StreamPipeline
from ._models import ProviderManifest

__all__ = ["response_decoder", "stream_pipeline"]


def stream_pipeline(
    manifest: ProviderManifest, *, provider: str | None = None, model: str | None = None
) -> StreamPipeline:
    """A fresh pipeline decoding one streamed body with the manifest's rules.

    ``ConfigurationError`` (naming ``provider``/``model`` when given) if the manifest has
    no streaming rules.
    """
    streaming = manifest.streaming
    if streaming is None or not streaming.event_map:
        raise ConfigurationError(
            f"manifest {manifest.id!r} has no streaming rules", provider=provider, model=model
        )
    return StreamPipeline(
        streaming.event_map,
        decoder_format=streaming.decoder.format,
        done_signal=streaming.decoder.done_signal,
        termination=manifest.termination_mapping,
        generate_ids=manifest.generate_tool_call_ids,
        error_rules=manifest.error_classification,
    )


def response_decoder(
    manifest: ProviderManifest, *, provider: str | None = None, model: str | None = None
) -> ResponseDecoder:
    """The decoder of the manifest's non-streaming bodies.

    ``ConfigurationError`` (naming ``provider``/``model`` when given) if the manifest has
    no response rules.
    """
    rules = manifest.response.event_map if manifest.response is not None else ()
    if not rules:
        raise ConfigurationError(
            f"manifest {manifest.id!r} has no 'response' rules for non-streaming chat",
            provider=provider,
            model=model,
        )
    return ResponseDecoder(
        rules,
        termination=manifest.termination_mapping,
        generate_ids=manifest.generate_tool_call_ids,
        error_rules=manifest.error_classification,
    )
