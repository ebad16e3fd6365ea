"""Test doubles for code that uses ``ailib_anyio``: a real loopback mock provider.

``MockProvider`` speaks three wire dialects, picked from the request path: OpenAI chat
completions, Anthropic Messages and Gemini generateContent.
"""

from ._mock import MockProvider as MockProvider
from ._mock import RecordedRequest as RecordedRequest
from ._mock import Reply as Reply
from ._mock import ScriptedReply as ScriptedReply
from ._mock import ScriptedToolCall as ScriptedToolCall
from ._mock import serve_forever as serve_forever

__all__ = [
    "MockProvider",
    "RecordedRequest",
    "Reply",
    "ScriptedReply",
    "ScriptedToolCall",
    "serve_forever",
]
