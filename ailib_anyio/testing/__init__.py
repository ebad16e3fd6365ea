"""Test doubles and fuzzing helpers for code that uses ``ailib_anyio``.

``MockProvider`` is a real loopback mock provider speaking three wire dialects, picked
from the request path: OpenAI chat completions, Anthropic Messages and Gemini
generateContent, and embeddings (``ScriptedEmbeddings``, ``mock_embedding``), and their
batch APIs (``mock.batches``: ``MockBatches``, ``ScriptedBatchError``).
``wire_stream``/``wire_response`` encode unified events as a server of
an API family sends them, and ``decode_stream``/``decode_response`` decode bytes with a
manifest as the client does. Hypothesis strategies live in
``ailib_anyio.testing.strategies`` (imported on its own: hypothesis is a test dependency).
"""

from ._batches import MockBatch as MockBatch
from ._batches import MockBatches as MockBatches
from ._batches import ScriptedBatchError as ScriptedBatchError
from ._embeddings import ScriptedEmbeddings as ScriptedEmbeddings
from ._embeddings import mock_embedding as mock_embedding
from ._mock import MockProvider as MockProvider
from ._mock import RecordedRequest as RecordedRequest
from ._mock import Reply as Reply
from ._mock import ScriptedReply as ScriptedReply
from ._mock import ScriptedToolCall as ScriptedToolCall
from ._mock import serve_forever as serve_forever
from ._wire import Decoded as Decoded
from ._wire import decode_response as decode_response
from ._wire import decode_stream as decode_stream
from ._wire import wire_response as wire_response
from ._wire import wire_stream as wire_stream

__all__ = [
    "Decoded",
    "MockBatch",
    "MockBatches",
    "MockProvider",
    "RecordedRequest",
    "Reply",
    "ScriptedBatchError",
    "ScriptedEmbeddings",
    "ScriptedReply",
    "ScriptedToolCall",
    "decode_response",
    "decode_stream",
    "mock_embedding",
    "serve_forever",
    "wire_response",
    "wire_stream",
]
