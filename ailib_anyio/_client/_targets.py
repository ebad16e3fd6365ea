"""A client's chain of targets, built from its model and its settings.

``chain_of(model, config)`` gives the targets a ``Client`` answers with, in order: the
primary (or a ``ModelArray``'s endpoints, with the array's router), then its
``fallbacks``, each a ``Target`` (``_target.py``). A ``"provider/model"`` fallback keeps
the settings ``ClientConfig.for_fallback`` says and takes its own provider's key when the
client opens; an unopened ``Client`` given as a fallback lends its primary target.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .._core._errors import ConfigurationError
from ._state import State

if TYPE_CHECKING:
    from ._array import ArrayRouter, ModelArray
    from ._client import Client
    from ._config import ClientConfig
    from ._target import Target

__all__ = ["chain_of", "fallback_target", "is_array"]


def chain_of(
    model: str | ModelArray, config: ClientConfig
) -> tuple[ArrayRouter | None, tuple[Target, ...]]:
    """A model array's router (None for one model) and the targets in order: the primary
    (or the array's endpoints), then the fallbacks."""
    # Loaded with the first client, not with the package: the target brings in the
    # transport (httpx), the manifest models and loader, the encoders and decoders.
    from ._target import Target

    router: ArrayRouter | None = None
    members: tuple[Target, ...]
    if isinstance(model, str) or not is_array(model):
        members = (Target(model, config),)  # type: ignore[arg-type]  # refused there
    else:
        from ._array import open_router  # loaded only for model arrays

        router = open_router(model, config)
        members = router.members
    return router, (*members, *(fallback_target(spec, config) for spec in config.fallbacks))


def fallback_target(spec: str | Client, config: ClientConfig) -> Target:
    """A fallback target: a ``"provider/model"`` (its key from its own credential chain,
    resolved when the client opens; the settings ``ClientConfig.for_fallback`` keeps)
    or an unopened ``Client`` without fallbacks, whose primary target it takes (its own
    settings; the chain's body limit if it left its own at the default)."""
    from ._target import Target

    if isinstance(spec, str):
        return Target(spec, config.for_fallback(), defer_credentials=True)
    if spec.state is not State.UNOPENED:
        raise ConfigurationError(f"fallback {spec!r} is already open; pass it unopened")
    if len(spec.targets) > 1:
        raise ConfigurationError(f"fallback {spec!r} has fallbacks of its own")
    return spec.primary.limit_body(config.max_response_bytes)


def is_array(model: object) -> bool:
    """Whether ``model`` is a ``ModelArray`` (whose module is loaded only if one was made)."""
    array = getattr(sys.modules.get(f"{__package__}._array"), "ModelArray", None)
    return array is not None and isinstance(model, array)
