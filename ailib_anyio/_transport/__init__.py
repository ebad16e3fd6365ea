"""The transport layer: the only place an HTTP client library is imported."""
