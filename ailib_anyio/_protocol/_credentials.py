"""The credential chain: which API key a provider's requests carry, and where it came from.

Pure (no anyio, no httpx, no I/O beyond reading the environment mapping it is given).
:func:`resolve_credential` walks the chain the AI-Protocol compliance suite defines
(``09-credential-resolution``), first hit wins:

1. ``explicit``: the ``api_key=`` the application passed;
2. ``manifest_env``: the environment variables the manifest declares, in order
   (``token_env``/``key_env``, then ``token_envs``). When a manifest has both
   ``endpoint.auth`` and a different top-level (v1) ``auth`` block, ``endpoint.auth`` is
   the single source of truth: the shadowed block's variables are never read, and a
   diagnostic names the block and its variables so the manifest can be cleaned up;
3. ``conventional_env``: the compatibility fallback ``{PROVIDER_ID}_API_KEY`` (the
   provider id upper-cased, every other character than A-Z and 0-9 turned into ``_``),
   tried only when the manifest does not already declare it (nor shadow it);
4. ``none``: nothing found; ``status`` is ``"missing"`` and the diagnostics say what to
   set.

With ``host_supplied=True`` (an embedding host hands the credential over, as a WASM
runner does) only step 1 runs: no environment is read, and an explicit credential is
reported with ``source_name`` ``"host_supplied"``. The library never reads a keyring.

A manifest with ``auth.type: none`` needs no credential: the resolution's status is
``"not_required"`` (source ``none``) and nothing is read. A manifest with
``auth.required: false`` (local OpenAI-compatible servers) may resolve to ``"missing"``:
``optional`` is then true and requests go out without credentials.

Every value found is cleaned first: surrounding whitespace is stripped (a key read from a
file ends with a newline), so a value of only whitespace counts as unset (an empty
``api_key=``); a control character left inside (a line break, NUL, DEL) cannot travel in
an HTTP header and raises ``ConfigurationError`` naming where the key came from, never
showing any of it.

The result, :class:`CredentialResolution`, is a report safe to print or log: the secret
lives in a field kept out of its repr and equality, and the diagnostics only ever name
variables. :meth:`CredentialResolution.attachment` builds the headers and query parameters
a request carries; :meth:`CredentialResolution.redacted` is the same with the secret
replaced by ``"<redacted>"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Literal

import attrs

from .._core._errors import ConfigurationError
from .._core._secrets import REDACTED
from ._models import AuthSpec, ProviderManifest

__all__ = [
    "REDACTED",
    "CredentialResolution",
    "conventional_env_var",
    "resolve_credential",
]

CredentialStatus = Literal["available", "missing", "not_required"]
SourceKind = Literal["explicit", "manifest_env", "conventional_env", "none"]

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")
#: C0 controls, DEL and C1 controls: never valid in an HTTP header value.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean_credential(value: str, source: str, provider: str) -> str:
    """``value`` without surrounding whitespace; ``ConfigurationError`` (naming ``source``,
    showing none of the value) when a control character is left inside it."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"the API key from {source} must be a string, got {type(value).__name__}",
            provider=provider,
        )
    stripped = value.strip()
    if _CONTROL.search(stripped):
        raise ConfigurationError(
            f"the API key from {source} contains a control character (a line break, NUL or"
            " similar) inside it, which no HTTP header can carry; surrounding whitespace is"
            " stripped, so check how the key was copied",
            provider=provider,
        )
    return stripped


def conventional_env_var(provider_id: str) -> str:
    """The compatibility variable ``{PROVIDER_ID}_API_KEY``:
    ``"openai-compatible"`` -> ``"OPENAI_COMPATIBLE_API_KEY"``."""
    return f"{_NOT_ALNUM.sub('_', provider_id.upper())}_API_KEY"


@attrs.frozen
class CredentialResolution:
    """Which credential a provider's requests carry, and where it came from.

    The repr shows everything but the secret, so the report is safe to print and log.

    - ``status``: ``"available"``, ``"missing"`` or ``"not_required"`` (``auth.type: none``).
    - ``source_kind``: ``"explicit"``, ``"manifest_env"``, ``"conventional_env"`` or
      ``"none"``.
    - ``source_name``: the variable the key was read from, ``"explicit"``, or ``None``.
    - ``required``: the environment variables the manifest declares, in chain order.
    - ``conventional_fallbacks``: the compatibility variables tried after them.
    - ``shadowed_envs``: variables of a top-level auth block shadowed by ``endpoint.auth``,
      which are never read.
    - ``optional``: the manifest says requests may go without a credential
      (``auth.required: false``), so ``"missing"`` is not an error.
    - ``diagnostics``: actionable messages (what to set, which manifest block is ignored);
      they name variables, never values.
    - ``implicit_env_allowed``: the chain may read the environment (false in
      ``host_supplied`` mode); ``implicit_keyring_allowed`` is always false.
    - ``secret``: the credential itself (``None`` unless available); not in repr or eq.
    """

    provider: str
    status: CredentialStatus
    source_kind: SourceKind
    source_name: str | None
    required: tuple[str, ...] = ()
    conventional_fallbacks: tuple[str, ...] = ()
    shadowed_envs: tuple[str, ...] = ()
    optional: bool = False
    diagnostics: tuple[str, ...] = ()
    implicit_env_allowed: bool = True
    implicit_keyring_allowed: bool = False
    auth: AuthSpec = attrs.field(factory=AuthSpec, repr=False)
    secret: str | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def available(self) -> bool:
        """A credential was found (``status == "available"``)."""
        return self.status == "available"

    def attachment(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, query params) that authenticate a request, the manifest's extra
        headers included. They hold the secret: hand them to the HTTP client, never log
        them (log :meth:`redacted` instead)."""
        return self._attach(self.secret)

    def redacted(self) -> tuple[dict[str, str], dict[str, str]]:
        """:meth:`attachment` with the secret replaced by ``"<redacted>"``."""
        return self._attach(REDACTED if self.secret is not None else None)

    def _attach(self, value: str | None) -> tuple[dict[str, str], dict[str, str]]:
        auth = self.auth
        headers = dict(auth.extra_headers)
        if value is None or self.status != "available":
            return headers, {}
        if auth.type == "bearer":
            prefix = auth.prefix if auth.prefix is not None else "Bearer"
            headers[auth.header or "Authorization"] = f"{prefix} {value}" if prefix else value
        elif auth.type == "header":
            headers[auth.header or "x-api-key"] = f"{auth.prefix} {value}" if auth.prefix else value
        elif auth.type == "query":
            return headers, {auth.param_name or "key": value}
        return headers, {}


def resolve_credential(
    manifest: ProviderManifest | AuthSpec,
    *,
    provider: str | None = None,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
    host_supplied: bool = False,
) -> CredentialResolution:
    """Walk the credential chain for ``manifest`` (see the module docstring).

    ``provider`` names the provider in diagnostics (default: the manifest's id); the
    conventional fallback is named after the manifest's id, or after ``provider`` when a
    bare :class:`AuthSpec` is given (which then has no shadowed block to report).
    ``environ`` defaults to ``os.environ``. Empty variables count as unset; an empty
    ``api_key=`` is an explicit (missing) credential and stops the chain.
    ``host_supplied``: ``api_key`` is the only source; no environment is read.
    """
    if isinstance(manifest, ProviderManifest):
        auth = manifest.auth_spec
        provider_id = manifest.id
        top = manifest.auth
        shadowed_block = top if manifest.endpoint.auth is not None and top is not None else None
        if shadowed_block == manifest.endpoint.auth:
            shadowed_block = None  # the same block written twice shadows nothing
    else:
        if provider is None:
            raise TypeError("resolve_credential() needs provider= with a bare AuthSpec")
        auth, provider_id, shadowed_block = manifest, provider, None
    name = provider if provider is not None else provider_id
    env: Mapping[str, str] = {} if host_supplied else os.environ if environ is None else environ

    if auth.type == "none":
        notes: list[str] = []
        if api_key is not None:
            notes.append(
                f"api_key= is ignored: provider {name!r} declares no authentication"
                " (auth type none)"
            )
        return CredentialResolution(
            provider=name,
            status="not_required",
            source_kind="none",
            source_name=None,
            optional=True,
            diagnostics=tuple(notes),
            implicit_env_allowed=not host_supplied,
            auth=auth,
        )

    declared = auth.env_vars
    shadowed: tuple[str, ...] = ()
    diagnostics: list[str] = []
    if shadowed_block is not None:
        shadowed = tuple(v for v in shadowed_block.env_vars if v not in declared)
        names = ", ".join(shadowed_block.env_vars) or "none"
        note = (
            f"provider {name!r}: endpoint.auth is the single source of truth; the manifest's"
            f" top-level auth block (type {shadowed_block.type}, env {names}) is shadowed and"
            " its variables are not read; remove it from the manifest"
        )
        ignored = [v for v in shadowed if env.get(v)]
        if ignored:
            note += f" (set but ignored: {', '.join(ignored)})"
        diagnostics.append(note)
    conventional = conventional_env_var(provider_id) if provider_id else ""
    fallbacks = (
        (conventional,) if conventional and conventional not in (*declared, *shadowed) else ()
    )

    def report(
        status: CredentialStatus,
        kind: SourceKind,
        source: str | None,
        notes: list[str],
        secret: str | None = None,
    ) -> CredentialResolution:
        return CredentialResolution(
            provider=name,
            status=status,
            source_kind=kind,
            source_name=source,
            required=declared,
            conventional_fallbacks=fallbacks,
            shadowed_envs=shadowed,
            optional=not auth.required,
            diagnostics=tuple(notes),
            implicit_env_allowed=not host_supplied,
            auth=auth,
            secret=secret,
        )

    if api_key is not None:
        api_key = clean_credential(api_key, "api_key=", name)
    if api_key:
        source = "host_supplied" if host_supplied else "explicit"
        return report("available", "explicit", source, diagnostics, api_key)
    if host_supplied:
        missing = (
            f"no API key for provider {name!r}: credentials are host-supplied, so no"
            " environment variable is read; the host must pass api_key="
        )
        if not auth.required:
            missing += " (optional: requests are sent without credentials)"
        return report("missing", "none", None, [missing, *diagnostics])
    if api_key is None:
        for var in declared:
            value = clean_credential(env.get(var) or "", var, name)
            if value:
                return report("available", "manifest_env", var, diagnostics, value)
        for var in fallbacks:
            value = clean_credential(env.get(var) or "", var, name)
            if value:
                return report("available", "conventional_env", var, diagnostics, value)

    chain = " or ".join(declared)
    if fallbacks:
        extra = " or ".join(fallbacks)
        chain = f"{chain} (or {extra})" if chain else extra
    chain = chain or "an environment variable"
    if api_key is None:
        missing = f"no API key for provider {name!r}: pass api_key= or set {chain}"
    else:
        missing = (
            f"no API key for provider {name!r}: api_key= is empty; pass a key,"
            f" or leave api_key= out and set {chain}"
        )
    if not auth.required:
        missing += " (optional: requests are sent without credentials)"
    return report("missing", "none", None, [missing, *diagnostics])
