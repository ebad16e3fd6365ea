"""Services the package's facade wires into the client by name.

``Client.count_tokens`` and ``Client.health`` call services of the layer above the client
(``_services/``) without importing it: ``ailib_anyio/__init__`` provides them here when it
is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["SERVICES", "provide"]

#: the services provided so far, by name
SERVICES: dict[str, Callable[..., Any]] = {}


def provide(name: str, service: Callable[..., Any]) -> None:
    """Make ``service`` the client's ``name`` service (done by ``ailib_anyio/__init__``)."""
    SERVICES[name] = service
