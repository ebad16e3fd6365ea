"""Find the manifest for ``"provider/model"``.

Directories are searched in order: those passed as ``protocol_path=``, then those in
``AI_PROTOCOL_PATH`` (``os.pathsep``-separated), then the manifests shipped with the
package. A provider is found by file name (``<id>.yaml``) or by a manifest's ``aliases``.
Loaded manifests are cached by file path and modification time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from .._errors import ConfigurationError, ProtocolError
from ._loader import load_manifest
from ._models import ProviderManifest

__all__ = ["ProtocolRegistry", "ResolvedModel", "builtin_protocol_dir", "split_model"]

_SUFFIXES = (".yaml", ".yml", ".json")


def builtin_protocol_dir() -> Path:
    """The manifests shipped with the package (``protocols/`` of the source tree)."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_protocols"
    return packaged if packaged.is_dir() else here.parent / "protocols"


def split_model(model: str) -> tuple[str, str]:
    """``"openai/gpt-4o"`` -> ``("openai", "gpt-4o")``; the model id may contain slashes."""
    if not isinstance(model, str) or "/" not in model:
        raise ConfigurationError(
            f"model must be written 'provider/model-id' (e.g. 'openai/gpt-4o'), got {model!r}"
        )
    provider, _, model_id = model.partition("/")
    if not provider or not model_id:
        raise ConfigurationError(f"model must be written 'provider/model-id', got {model!r}")
    return provider, model_id


@attrs.frozen
class ResolvedModel:
    manifest: ProviderManifest
    provider: str
    model_id: str


_CACHE: dict[tuple[str, float, bool], ProviderManifest] = {}


def _load_cached(path: Path, strict: bool) -> ProviderManifest:
    key = (str(path), path.stat().st_mtime, strict)
    manifest = _CACHE.get(key)
    if manifest is None:
        manifest = _CACHE[key] = load_manifest(path, strict=strict)
    return manifest


class ProtocolRegistry:
    """Resolves provider ids to manifests over an ordered list of directories."""

    def __init__(
        self, extra_dirs: Sequence[str | os.PathLike[str]] = (), *, strict: bool = False
    ) -> None:
        dirs: list[Path] = [Path(d) for d in extra_dirs]
        env = os.environ.get("AI_PROTOCOL_PATH", "")
        dirs.extend(Path(d) for d in env.split(os.pathsep) if d)
        dirs.append(builtin_protocol_dir())
        self.dirs = tuple(dirs)
        self.strict = strict

    def _files(self) -> Iterable[Path]:
        for d in self.dirs:
            if d.is_file():
                yield d
            elif d.is_dir():
                for p in sorted(d.iterdir()):
                    if p.suffix in _SUFFIXES and p.is_file():
                        yield p

    def get(self, provider: str) -> ProviderManifest:
        """The manifest for ``provider`` (an id or an alias)."""
        for d in self.dirs:
            if d.is_file():
                if d.stem == provider:
                    return _load_cached(d, self.strict)
                continue
            for suffix in _SUFFIXES:
                candidate = d / f"{provider}{suffix}"
                if candidate.is_file():
                    return _load_cached(candidate, self.strict)
        for path in self._files():
            try:
                manifest = _load_cached(path, self.strict)
            except ProtocolError:
                continue  # a broken unrelated manifest must not hide the one asked for
            if provider == manifest.id or provider in manifest.aliases:
                return manifest
        known = ", ".join(self.providers()) or "none"
        raise ConfigurationError(f"unknown provider {provider!r} (available: {known})")

    def providers(self) -> list[str]:
        """Ids of every manifest found (file names), sorted."""
        return sorted({p.stem for p in self._files()})

    def resolve(self, model: str) -> ResolvedModel:
        provider, model_id = split_model(model)
        return ResolvedModel(self.get(provider), provider, model_id)
