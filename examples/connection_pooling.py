"""Connection pooling: clients of one provider share the connections of a ConnectionPool,
which outlives them; get_stats() counts each provider's active and idle connections."""

import anyio
from _run import run, target

from ailib_anyio import Client, ConnectionPool, PoolConfig, open_client

STREAMS = 8


async def main() -> None:
    config = PoolConfig.high_throughput()  # or PoolConfig.low_latency(), PoolConfig(...)
    async with target() as where, ConnectionPool(config) as pool:
        async with (
            open_client("openai/gpt-4o", pool=pool, **where.settings) as big,
            open_client("openai/gpt-4o-mini", pool=pool, **where.settings) as small,
        ):
            started = 0
            finish = anyio.Event()

            async def story(client: Client, n: int) -> None:
                nonlocal started
                async with client.chat().user(f"Tell story {n}").stream() as stream:
                    async for _ in stream:
                        if stream.response.content and not finish.is_set():
                            started += 1
                            await finish.wait()  # hold the connection open meanwhile

            async with anyio.create_task_group() as tg:
                for n in range(STREAMS):
                    tg.start_soon(story, big if n % 2 else small, n)
                while started < STREAMS:  # noqa: ASYNC110 - a demo: poll the counter
                    await anyio.sleep(0.01)
                stats = pool.get_stats()["openai"]
                print(f"while streaming: {stats.active_connections} active,", end=" ")
                print(f"{stats.idle_connections} idle, {stats.clients} clients")
                finish.set()
        # The clients are closed; the pool keeps their connections for the next ones.
        stats = pool.get_stats()["openai"]
        print(f"afterwards: {stats.active_connections} active, {stats.idle_connections} idle")
        print(f"requests served: {stats.requests_served}")
        async with open_client("openai/gpt-4o", pool=pool, **where.settings) as again:
            await again.chat().user("One more").execute()
        stats = pool.get_stats()["openai"]  # an idle connection was reused: no new one
        print(f"one more: {stats.requests_served} served, {stats.idle_connections} idle")
        print("origin:", stats.origin, "providers:", stats.providers)


run(main)
