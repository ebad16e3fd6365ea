"""The response cache: ``CacheManager`` over a backend (memory, SQLite, Redis or none)."""
