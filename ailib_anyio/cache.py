"""Response caching: ``CacheManager`` over a memory, SQLite, Redis or null backend.

::

    from ailib_anyio import open_client
    from ailib_anyio.cache import CacheConfig, CacheManager, DiskCache

    cache = CacheManager(config=CacheConfig(default_ttl_seconds=3600),
                         backend=DiskCache("~/.cache/myapp/llm.sqlite3"))
    async with open_client("openai/gpt-4o", cache=cache) as client:
        reply = await client.chat().user("2+2?").execute()   # a request
        reply = await client.chat().user("2+2?").execute()   # from the cache: no request
    print(cache.stats().hit_ratio)

A client with a cache answers a request it has answered before without any HTTP request
(a stream replays the same events), and identical requests in flight at once share one
upstream call. Backends:

- ``MemoryCache(max_size=)``: in-process LRU with a time to live per entry (cachetools);
- ``DiskCache(path)``: one SQLite file, shared safely by several processes (WAL mode,
  busy timeout, upserts; blocking work in worker threads);
- ``RedisCache(url)``: Redis 6+, shared by processes and machines; extra ``redis``
  (coredis, which runs under asyncio and trio); an unreachable server fails at open;
- ``NullCache()``: stores nothing.

Keys are SHA-256 digests of the canonical request (``CacheManager.generate_key``); they
never include an API key or a header.
"""

from ._core._errors import CacheError as CacheError
from ._core._publish import publish
from ._services._cache._backends import CacheBackend as CacheBackend
from ._services._cache._backends import MemoryCache as MemoryCache
from ._services._cache._backends import NullCache as NullCache
from ._services._cache._disk import DiskCache as DiskCache
from ._services._cache._manager import CacheConfig as CacheConfig
from ._services._cache._manager import CacheManager as CacheManager
from ._services._cache._manager import CacheStats as CacheStats
from ._services._cache._redis import RedisCache as RedisCache

__all__ = [
    "CacheBackend",
    "CacheConfig",
    "CacheError",
    "CacheManager",
    "CacheStats",
    "DiskCache",
    "MemoryCache",
    "NullCache",
    "RedisCache",
]

publish(__name__, globals(), __all__)
