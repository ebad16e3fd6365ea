"""AI-Protocol v2 ProviderContracts (``v2/contracts/*.contract.yaml``): load and check one.

A contract describes an API style's wire mapping (roles, content blocks, response paths).
The runtime's encoders implement the styles themselves; what it reads from a contract is
its identity and its content-block mapping, which says how a ``document`` block is sent
and what happens to a reference the API cannot fetch (``ref_resolution``). The spec's
schema for contracts (``schemas/v2/provider-contract.json``) is not published, so the
checks are the fields this module reads: required identity keys, a known ``api_style``,
mappings where mappings belong, and a known ``ref_resolution``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._core._errors import ProtocolError
from ._loader import ManifestIndex, format_path, parse_yaml
from ._models import API_FAMILIES

__all__ = ["REF_RESOLUTIONS", "ProviderContract", "load_contract", "load_contract_text"]

#: what a content-block mapping may say about a reference (``upload://...``) the API cannot
#: fetch: fail before encoding (what the encoders do), or leave it to the runtime to resolve
REF_RESOLUTIONS = ("error_before_encode", "resolve_at_runtime")

_REQUIRED = ("contract_version", "provider_id", "api_style")
_SECTIONS = ("request_mapping", "response_mapping", "capability_contracts")


@attrs.frozen
class ProviderContract:
    """A loaded ProviderContract; the sections are kept as the plain data they are."""

    contract_version: str
    provider_id: str
    api_style: str
    api_version: str | None = None
    request_mapping: Mapping[str, Any] = attrs.field(factory=dict)
    response_mapping: Mapping[str, Any] = attrs.field(factory=dict)
    capability_contracts: Mapping[str, Any] = attrs.field(factory=dict)
    source: str | None = attrs.field(default=None, eq=False)

    @property
    def api_family(self) -> str:
        """The request encoder this contract's style selects (``anthropic_messages``...)."""
        return API_FAMILIES.get(self.api_style, self.api_style)

    def content_block_mapping(self, block_type: str) -> Mapping[str, Any] | None:
        """``request_mapping.content_block_mapping.<block_type>`` (``document``, ``image``...)."""
        blocks = self.request_mapping.get("content_block_mapping")
        found = blocks.get(block_type) if isinstance(blocks, Mapping) else None
        return found if isinstance(found, Mapping) else None

    @property
    def document_mapping(self) -> Mapping[str, Any] | None:
        return self.content_block_mapping("document")


def _problems(data: Any) -> list[tuple[tuple[str | int, ...], str]]:
    if not isinstance(data, Mapping):
        return [((), "a contract must be a mapping")]
    issues: list[tuple[tuple[str | int, ...], str]] = []
    for key in _REQUIRED:
        value = data.get(key)
        if value is None:
            issues.append(((key,), "required key is missing"))
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            issues.append(((key,), "expected a string"))
    style = data.get("api_style")
    if isinstance(style, str) and style not in API_FAMILIES:
        issues.append((("api_style",), f"unknown api_style {style!r}"))
    for key in _SECTIONS:
        if data.get(key) is not None and not isinstance(data[key], Mapping):
            issues.append(((key,), "expected a mapping"))
    request = data.get("request_mapping")
    blocks = request.get("content_block_mapping") if isinstance(request, Mapping) else None
    if blocks is not None and not isinstance(blocks, Mapping):
        issues.append((("request_mapping", "content_block_mapping"), "expected a mapping"))
    elif isinstance(blocks, Mapping):
        for name, block in blocks.items():
            where: tuple[str | int, ...] = ("request_mapping", "content_block_mapping", name)
            if not isinstance(block, Mapping):
                issues.append((where, "expected a mapping"))
                continue
            ref = block.get("ref_resolution")
            if ref is not None and ref not in REF_RESOLUTIONS:
                known = ", ".join(REF_RESOLUTIONS)
                issues.append(
                    ((*where, "ref_resolution"), f"unknown ref_resolution {ref!r} (known: {known})")
                )
    return issues


def load_contract_text(text: str, *, source: str = "<string>") -> ProviderContract:
    """Parse and check a contract; raise ``ProtocolError`` listing every problem."""
    index = ManifestIndex()
    data = index.plain(parse_yaml(text, source))
    issues = _problems(data)
    if issues:
        lines = []
        for path, message in issues:
            line, col = index.locate(path)
            lines.append(f"{source}:{line + 1}:{col + 1}: {format_path(path)}: {message}")
        raise ProtocolError(lines, source=source)
    api_version = data.get("api_version")
    return ProviderContract(
        contract_version=str(data["contract_version"]),
        provider_id=str(data["provider_id"]),
        api_style=str(data["api_style"]),
        api_version=None if api_version is None else str(api_version),
        **{key: dict(data.get(key) or {}) for key in _SECTIONS},
        source=source,
    )


def load_contract(path: str | os.PathLike[str]) -> ProviderContract:
    """Load a contract file (YAML or JSON)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProtocolError([f"{p}:0:0: $: cannot read contract: {exc}"], source=str(p)) from exc
    return load_contract_text(text, source=str(p))
