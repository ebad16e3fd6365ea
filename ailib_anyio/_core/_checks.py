"""Checks of user-given settings shared by every layer: each raises a
``ConfigurationError`` naming the setting, in one message style.

``positive_seconds(name, value)`` checks a plain argument; the others are attrs
validators (``attrs.field(validator=optional_seconds)``).
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from ._errors import ConfigurationError

__all__ = ["flag", "optional_seconds", "positive_seconds"]


def _is_seconds(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and value > 0
        and math.isfinite(value)
    )


def positive_seconds(name: str, value: object) -> float:
    """``value`` as a float if it is a positive, finite number of seconds."""
    if not _is_seconds(value):
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def optional_seconds(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """None, or a positive, finite number of seconds."""
    if value is not None and not _is_seconds(value):
        raise ConfigurationError(
            f"{attribute.name} must be a positive number of seconds or None, got {value!r}"
        )


def flag(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """True or False (not a truthy value)."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{attribute.name} must be True or False, got {value!r}")
