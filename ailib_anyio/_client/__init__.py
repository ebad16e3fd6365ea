"""The client layer: configuration, the client and its targets, middleware, builders, batch."""
