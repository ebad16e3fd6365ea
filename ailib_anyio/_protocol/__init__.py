"""The protocol layer: the manifest models and their converter, the loader, the registry,
credential resolution and the pure request checks (no I/O beyond reading manifests)."""
