"""Find the manifest for ``"provider/model"``.

Directories are searched in order: those passed as ``protocol_path=``, then those in
``AI_PROTOCOL_PATH`` (``os.pathsep``-separated), then the manifests shipped with the
package. In each directory a provider is found by file name (``<id>.yaml``), else by any
manifest's ``id`` or ``aliases``: every manifest file found is loaded, and one that does
not load is reported (``ProtocolError``) when nothing else matches, never skipped
silently. Loaded manifests are cached by file path and modification time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from .._core._errors import ConfigurationError, ProtocolError
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

    @staticmethod
    def _files_in(d: Path) -> list[Path]:
        if d.is_file():
            return [d]
        if not d.is_dir():
            return []
        return [p for p in sorted(d.iterdir()) if p.suffix in _SUFFIXES and p.is_file()]

    def _files(self) -> Iterable[Path]:
        for d in self.dirs:
            yield from self._files_in(d)

    def _load_all(self, files: Iterable[Path]) -> list[ProviderManifest | ProtocolError]:
        out: list[ProviderManifest | ProtocolError] = []
        for path in files:
            try:
                out.append(_load_cached(path, self.strict))
            except ProtocolError as exc:
                out.append(exc)
        return out

    def get(self, provider: str) -> ProviderManifest:
        """The manifest for ``provider`` (an id or an alias).

        Directories are searched in order; in each, ``<provider>.yaml`` first, then every
        manifest file's ``id`` and ``aliases``. A manifest file that does not load raises
        its problems (``ProtocolError``) where it declares ``provider``; one that does not
        declare it does not hide another that matches, and when nothing matches, every
        such file's problems are raised together.
        """
        broken: list[tuple[Path, ProtocolError]] = []
        for d in self.dirs:
            files = self._files_in(d)
            named = [p for p in files if p.stem == provider]
            if named:
                return _load_cached(named[0], self.strict)  # raises its problems
            for path, loaded in zip(files, self._load_all(files), strict=True):
                if isinstance(loaded, ProviderManifest):
                    if provider == loaded.id or provider in loaded.aliases:
                        return loaded
                elif provider in _declared_names(path):
                    raise loaded  # it is the one asked for (and would shadow later ones)
                else:
                    broken.append((path, loaded))
        known = ", ".join(self.providers()) or "none"
        unknown = f"unknown provider {provider!r} (available: {known})"
        if broken:
            issues = [issue for _, error in broken for issue in error.issues]
            head = (
                f"{unknown}; {len(broken)} manifest file(s) could not be loaded"
                " (one of them may be it)"
            )
            raise ProtocolError(issues, head=head)
        raise ConfigurationError(unknown)

    def providers(self) -> list[str]:
        """Ids of every manifest that loads, sorted (a file that does not is left out:
        :meth:`get` reports its problems)."""
        loaded = self._load_all(self._files())
        return sorted({m.id for m in loaded if isinstance(m, ProviderManifest)})

    def resolve(self, model: str) -> ResolvedModel:
        provider, model_id = split_model(model)
        return ResolvedModel(self.get(provider), provider, model_id)


def _declared_names(path: Path) -> tuple[str, ...]:
    """The ``id`` and ``aliases`` a manifest file that does not load declares, if it can
    be read that far (so its own problems can be reported when it is asked for)."""
    try:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - unreadable: it declares nothing
        return ()
    if not isinstance(data, dict):
        return ()
    names = [data.get("id")]
    aliases = data.get("aliases")
    if isinstance(aliases, list):
        names.extend(aliases)
    return tuple(n for n in names if isinstance(n, str))
