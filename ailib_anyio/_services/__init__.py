"""The services layer: built on the client's public API only."""
