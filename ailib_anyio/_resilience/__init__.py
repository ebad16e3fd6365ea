"""The resilience layer: retries, breakers, rate limits, fallbacks and hedges on anyio."""
