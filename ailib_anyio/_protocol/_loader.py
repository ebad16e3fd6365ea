"""Load manifests from YAML, reporting every problem at once with its location.

ruamel.yaml's round-trip loader keeps the line and column of every key and value. The
document is converted to plain Python data plus an index ``path -> (line, col)``; cattrs
structures the data with detailed validation; each validation error's path is then looked
up in the index, so each problem reads ``file:line:col: $.path: message``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from .._core._errors import ProtocolError
from ._models import ManifestIssues, ProviderManifest, make_converter, manifest_prechecks

__all__ = ["format_path", "load_manifest", "load_manifest_text"]

PathT = tuple[str | int, ...]

_CONVERTERS: dict[bool, cattrs.Converter] = {}


def _converter(strict: bool) -> cattrs.Converter:
    conv = _CONVERTERS.get(strict)
    if conv is None:
        conv = _CONVERTERS[strict] = make_converter(strict=strict)
    return conv


def format_path(path: Iterable[str | int]) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out


class _RecursiveAlias(Exception):
    """An alias inside the node it names: the document is not a tree."""

    def __init__(self, path: PathT) -> None:
        super().__init__(path)
        self.path = path


class ManifestIndex:
    """Positions (0-based line, col) of every value and key in a ruamel document."""

    def __init__(self) -> None:
        self.values: dict[PathT, tuple[int, int]] = {}
        self.keys: dict[PathT, tuple[int, int]] = {}
        self._open: set[int] = set()  # the collections being converted, by id

    def plain(self, node: Any, path: PathT = ()) -> Any:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        if isinstance(node, (CommentedMap, CommentedSeq)):
            if id(node) in self._open:
                raise _RecursiveAlias(path)
            self._open.add(id(node))
            try:
                if isinstance(node, CommentedMap):
                    return self._mapping(node, path)
                return self._sequence(node, path)
            finally:
                self._open.discard(id(node))
        if isinstance(node, str):
            return str(node)
        if isinstance(node, bool):
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        return node

    def _mapping(self, node: Any, path: PathT) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in node.items():
            sub = (*path, key if isinstance(key, (str, int)) else str(key))
            try:
                self._note(self.keys, sub, node.lc.key(key))
                self._note(self.values, sub, node.lc.value(key))
            except (KeyError, TypeError, AttributeError):
                pass
            out[str(key) if not isinstance(key, str) else key] = self.plain(value, sub)
        return out

    def _sequence(self, node: Any, path: PathT) -> list[Any]:
        items = []
        for i, value in enumerate(node):
            sub = (*path, i)
            try:
                self._note(self.values, sub, node.lc.item(i))
            except (KeyError, TypeError, AttributeError):
                pass
            items.append(self.plain(value, sub))
        return items

    @staticmethod
    def _note(where: dict[PathT, tuple[int, int]], path: PathT, position: Any) -> None:
        # ruamel has no position for some nodes (the entries a merge key `<<` brings in)
        if isinstance(position, (tuple, list)) and len(position) == 2:
            where[path] = (int(position[0]), int(position[1]))

    def locate(self, path: PathT, *, key: bool = False) -> tuple[int, int]:
        probe = path
        if key and probe in self.keys:
            return self.keys[probe]
        while probe:
            if probe in self.values:
                return self.values[probe]
            if probe in self.keys:
                return self.keys[probe]
            probe = probe[:-1]
        return (0, 0)


_TYPE_NAMES: dict[Any, str] = {
    float: "a number",
    int: "an integer",
    str: "a string",
    bool: "true or false",
}


def _leaf_message(exc: BaseException, expected: Any) -> str:
    if isinstance(exc, ManifestIssues):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required key is missing"
    if isinstance(exc, (ValueError, TypeError)):
        if attrs.has(expected) or getattr(expected, "__origin__", None) in (dict, Mapping):
            return "expected a mapping"
        name = _TYPE_NAMES.get(expected) or getattr(expected, "__name__", None)
        return f"expected {name}" if name else f"invalid value ({exc})"
    if isinstance(exc, AttributeError) and "items" in str(exc):
        return "expected a mapping"
    return f"invalid value ({exc})"


def _collect(
    exc: BaseException, path: PathT, out: list[tuple[PathT, str, bool]], expected: Any = None
) -> None:
    """Flatten cattrs' exception groups into (path, message, points-at-key) triples."""
    if isinstance(exc, IterableValidationError):
        items, rest = exc.group_exceptions()
        for sub, item in items:
            _collect(sub, (*path, item.index), out, item.type)
        for sub in rest:
            _collect(sub, path, out)
    elif isinstance(exc, ClassValidationError):
        attributes, leftover = exc.group_exceptions()
        for sub, attribute in attributes:
            _collect(sub, (*path, attribute.name), out, attribute.type)
        for sub in leftover:
            _collect(sub, path, out)
    elif isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            out.append(((*path, key), f"unknown key {key!r}", True))
    elif isinstance(exc, ManifestIssues):
        for subpath, message in exc.issues:
            at_key = message.startswith(("unknown key", "unknown field"))
            out.append(((*path, *subpath), message, at_key))
    else:
        out.append((path, _leaf_message(exc, expected), False))


def parse_yaml(text: str, source: str) -> Any:
    # ruamel.yaml is imported on first use: it is a tenth of the package's import time
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt")
    try:
        return yaml.load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise ProtocolError([f"{source}:{line}:{col}: $: {problem}"], source=source) from None
    except YAMLError as exc:
        raise ProtocolError([f"{source}:1:1: $: {exc}"], source=source) from None
    except RecursionError:
        raise ProtocolError([f"{source}:1:1: $: YAML nested too deeply"], source=source) from None
    except Exception as exc:  # noqa: BLE001 - see below
        # ruamel's constructors raise plain errors, without a position, for some tagged or
        # implicitly typed values: ValueError for a timestamp in month 13, AssertionError
        # for a malformed !!omap...
        issue = f"{source}:1:1: $: invalid YAML value: {str(exc) or type(exc).__name__}"
        raise ProtocolError([issue], source=source) from None


def load_manifest_text(
    text: str, *, source: str = "<string>", strict: bool = False
) -> ProviderManifest:
    """Parse and validate a manifest; raise ``ProtocolError`` listing every problem."""
    doc = parse_yaml(text, source)
    index = ManifestIndex()
    try:
        data = index.plain(doc)
    except _RecursiveAlias as exc:
        line, col = index.locate(exc.path)
        issue = f"{format_path(exc.path)}: an alias refers to a node that contains it"
        raise ProtocolError([f"{source}:{line + 1}:{col + 1}: {issue}"], source=source) from None
    except RecursionError:
        raise ProtocolError([f"{source}:1:1: $: YAML nested too deeply"], source=source) from None
    found: list[tuple[PathT, str, bool]] = [
        (path, message, message.startswith("unknown key"))
        for path, message in manifest_prechecks(data, strict=strict)
    ]
    manifest: ProviderManifest | None = None
    if isinstance(data, dict):
        try:
            manifest = _converter(strict).structure(data, ProviderManifest)
        except (ClassValidationError, IterableValidationError, ManifestIssues) as exc:
            _collect(exc, (), found)
    if found or manifest is None:
        issues = []
        for path, message, at_key in sorted(found, key=lambda f: index.locate(f[0], key=f[2])):
            line, col = index.locate(path, key=at_key)
            issues.append(f"{source}:{line + 1}:{col + 1}: {format_path(path)}: {message}")
        raise ProtocolError(issues, source=source)
    return attrs.evolve(manifest, source=source)


def load_manifest(path: str | os.PathLike[str], *, strict: bool = False) -> ProviderManifest:
    """Load a manifest file (YAML or JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolError(
            [f"{p}:0:0: $: cannot read manifest: {exc.strerror}"], source=str(p)
        ) from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            [f"{p}:0:0: $: manifest is not UTF-8 text: {exc.reason}"], source=str(p)
        ) from exc
    return load_manifest_text(text, source=str(p), strict=strict)
