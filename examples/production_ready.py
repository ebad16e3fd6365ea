"""Production-ready configuration: ClientBuilder with every resilience pattern on."""

from _run import run, target

from ailib_anyio import ClientBuilder


async def main() -> None:
    async with target() as where:
        builder = ClientBuilder().model("openai/gpt-4o").production_ready()
        if "base_url" in where.settings:
            builder = builder.base_url(where.settings["base_url"])
        if "api_key" in where.settings:
            builder = builder.api_key(where.settings["api_key"])
        print("config:", builder.config.circuit_breaker, builder.config.max_inflight)
        async with builder.open() as client:
            reply = await client.chat().user("Hello!").execute()
            print("reply:", reply.content)
            stats = client.get_resilience_stats()
            print("inflight:", stats.inflight, "of", stats.max_inflight)
            for name, circuit in stats.circuits.items():
                print("circuit", name, circuit.state.value)


run(main)
