"""Embeddings: vectors for texts, and the most similar ones to a query."""

from _run import run, target

from ailib_anyio.embeddings import cosine_similarity, find_most_similar, open_embedding_client

TEXTS = ["Hello", "World", "Python", "AI"]


async def main() -> None:
    async with (
        target() as where,
        open_embedding_client("openai/text-embedding-3-small", **where.settings) as embedder,
    ):
        one = await embedder.embed("Hello, world!")
        print("dimensions:", len(one.embeddings[0].vector))
        response = await embedder.embed_batch(TEXTS)
    query, *rest = (e.vector for e in response.embeddings)
    print(f"similarity of the first two: {cosine_similarity(query, rest[0]):.4f}")
    for index, score in find_most_similar(query, rest, top_k=2):
        print(f"{TEXTS[index + 1]}: {score:.4f}")


run(main)
