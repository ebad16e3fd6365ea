"""JSON templates: a manifest's JSON shape with named slots, rendered straight to bytes.

A provider batch API wants each request wrapped in its own envelope (OpenAI:
``{"custom_id", "method", "url", "body"}``; Anthropic: ``{"custom_id", "params"}``;
Gemini: ``{"request", "metadata": {"key"}}``) and the batch itself in another. The
manifests write those envelopes as JSON with slots:

.. code-block:: yaml

    item: {custom_id: "{custom_id}", params: "{body}"}

A string that is exactly ``"{name}"`` of an *object slot* is replaced by raw JSON (an
encoded request body, the list of items); ``{name}`` inside any other string is replaced
by text, JSON-escaped. The template is compiled once into pieces, so rendering a million
items is a join, never a parse or a deep copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs

__all__ = ["JsonTemplate", "TemplateError"]

_SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class TemplateError(ValueError):
    """A template names a slot it may not use, or puts a slot where it cannot go."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# A compiled piece: literal JSON text, ("object", name) or ("text", parts) where parts
# alternate literal text and slot names.
_Piece = str | tuple[str, Any]


@attrs.frozen
class JsonTemplate:
    """A compiled template; ``source`` is the manifest's value, ``slots`` the names used.

    ``render(values)`` gives the JSON bytes: ``values`` maps each object slot to raw JSON
    (``bytes`` or ``str``) and each text slot to its text.
    """

    source: Any
    slots: frozenset[str]
    _pieces: tuple[_Piece, ...] = attrs.field(eq=False, repr=False)

    @classmethod
    def compile(
        cls, source: Any, *, objects: Collection[str], texts: Collection[str]
    ) -> JsonTemplate:
        """Compile ``source``; ``objects`` and ``texts`` are the slot names allowed.
        ``TemplateError`` names the first slot that is not allowed where it is."""
        pieces: list[_Piece] = []
        slots: set[str] = set()
        _compile(source, pieces, slots, frozenset(objects), frozenset(texts))
        merged: list[_Piece] = []
        for piece in pieces:  # adjacent literals joined: fewer pieces to render
            if isinstance(piece, str) and merged and isinstance(merged[-1], str):
                merged[-1] = merged[-1] + piece
            else:
                merged.append(piece)
        return cls(source, frozenset(slots), tuple(merged))

    def render(self, values: Mapping[str, bytes | str]) -> bytes:
        out: list[str] = []
        for piece in self._pieces:
            if isinstance(piece, str):
                out.append(piece)
            elif piece[0] == "object":
                raw = values[piece[1]]
                out.append(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
            else:
                text = "".join(
                    part if i % 2 == 0 else _text(values[part]) for i, part in enumerate(piece[1])
                )
                out.append(_dumps(text))
        return "".join(out).encode("utf-8")

    def renderer(self, **fixed: bytes | str) -> Callable[[Mapping[str, bytes | str]], bytes]:
        """``render`` with some values fixed (the others given per call)."""

        def render(values: Mapping[str, bytes | str]) -> bytes:
            return self.render({**fixed, **values})

        return render


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _compile(
    node: Any,
    out: list[_Piece],
    slots: set[str],
    objects: frozenset[str],
    texts: frozenset[str],
) -> None:
    if isinstance(node, Mapping):
        out.append("{")
        for i, (key, value) in enumerate(node.items()):
            if i:
                out.append(",")
            out.append(_dumps(str(key)) + ":")
            _compile(value, out, slots, objects, texts)
        out.append("}")
    elif isinstance(node, list):
        out.append("[")
        for i, value in enumerate(node):
            if i:
                out.append(",")
            _compile(value, out, slots, objects, texts)
        out.append("]")
    elif isinstance(node, str):
        whole = _SLOT.fullmatch(node)
        if whole is not None and whole.group(1) in objects:
            slots.add(whole.group(1))
            out.append(("object", whole.group(1)))
            return
        parts = _SLOT.split(node)
        if len(parts) == 1:
            out.append(_dumps(node))
            return
        for name in parts[1::2]:
            if name in objects:
                raise TemplateError(
                    f"{{{name}}} stands for a JSON value: it must be the whole string"
                )
            if name not in texts:
                known = ", ".join(f"{{{n}}}" for n in sorted(objects | texts)) or "none"
                raise TemplateError(f"unknown slot {{{name}}} (known here: {known})")
            slots.add(name)
        out.append(("text", tuple(parts)))
    else:
        out.append(_dumps(node))
