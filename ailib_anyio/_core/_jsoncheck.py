"""Is a value JSON the wire can carry? The one check, below the types that use it.

``_types`` (a ``ToolDefinition``'s parameters), the request encoders and ``_validate``
all ask here; it imports nothing of the package but the error it raises.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigurationError

__all__ = ["MAX_DEPTH", "check_json", "json_problem"]

#: deeper than this, a value is refused (json.dumps would hit the recursion limit; a value
#: that contains itself gets here too)
MAX_DEPTH = 200

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_problem(value: Any, where: str, *, depth: int = 0) -> str | None:
    """What makes ``value`` not JSON, as ``where[...] is ...``; ``None`` if it is JSON.

    JSON here is what the wire takes: ``None``, booleans, integers, finite floats, strings
    (without lone surrogates, which UTF-8 cannot carry), mappings with string keys, lists
    and tuples.
    """
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{where} is {value!r}: NaN and infinity are not JSON"
    if isinstance(value, str):
        if _SURROGATE.search(value) is None:
            return None
        return f"{where} holds a lone surrogate, which UTF-8 cannot encode"
    if depth >= MAX_DEPTH:
        return f"{where} is nested deeper than {MAX_DEPTH} levels (or contains itself)"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} that is not a string"
            problem = json_problem(item, f"{where}[{key!r}]", depth=depth + 1)
            if problem is not None:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = json_problem(item, f"{where}[{i}]", depth=depth + 1)
            if problem is not None:
                return problem
        return None
    return f"{where} is of type {type(value).__name__}, which is not JSON"


def check_json(name: str, value: Any, **context: Any) -> None:
    """Raise ``ConfigurationError`` (with ``context``: ``provider``, ``model``) unless
    ``value`` is JSON the wire can carry."""
    problem = json_problem(value, name)
    if problem is not None:
        raise ConfigurationError(problem, **context)
