"""Response caching: the second identical request is answered from the cache."""

from _run import run, target

from ailib_anyio import open_client
from ailib_anyio.cache import CacheConfig, CacheManager, MemoryCache


async def main() -> None:
    cache = CacheManager(
        config=CacheConfig(default_ttl_seconds=3600), backend=MemoryCache(max_size=1000)
    )
    async with (
        target() as where,
        open_client("openai/gpt-4o", cache=cache, **where.settings) as client,
    ):
        first = await client.chat().user("What is 2+2?").execute()
        second = await client.chat().user("What is 2+2?").execute()  # no HTTP request
        print("same answer:", first.content == second.content)
        if where.mock is not None:
            print("HTTP requests:", len(where.mock.requests))
    stats = cache.stats()
    print(f"hits: {stats.hits}, hit ratio: {stats.hit_ratio:.0%}")


run(main)
