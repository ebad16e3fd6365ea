"""Embeddings and vector similarity (the reference's ``ai_lib_python.embeddings``)::

    from ailib_anyio.embeddings import open_embedding_client, find_most_similar

    async with open_embedding_client("openai/text-embedding-3-small") as embedder:
        response = await embedder.embed_batch(["Hello", "World", "Python", "AI"])
    query, *rest = (e.vector for e in response.embeddings)
    for index, score in find_most_similar(query, rest, top_k=2):
        print(index + 1, f"{score:.4f}")

``EmbeddingClient(client)`` works over any open client whose model embeds; the
similarity functions use numpy when it is installed (extra ``embeddings``), plain Python
otherwise, with the same results.
"""

from . import EmbeddingClient as EmbeddingClient
from . import EmbeddingResponse as EmbeddingResponse
from . import __all__ as _package_names
from ._core._publish import publish
from ._services._embeddings import Embedding as Embedding
from ._services._embeddings import open_embedding_client as open_embedding_client
from ._services._similarity import SimilarityMatch as SimilarityMatch
from ._services._similarity import cosine_similarity as cosine_similarity
from ._services._similarity import find_most_similar as find_most_similar

__all__ = [
    "Embedding",
    "EmbeddingClient",
    "EmbeddingResponse",
    "SimilarityMatch",
    "cosine_similarity",
    "find_most_similar",
    "open_embedding_client",
]

publish(__name__, globals(), __all__, keep=_package_names)
