"""The credential chain (``resolve_credential``): explicit key, the manifest's variables
(``endpoint.auth`` the single source over a divergent top-level ``auth``), the conventional
``{PROVIDER_ID}_API_KEY`` fallback, then missing; the report never shows the secret.

Every test passes its environment with ``environ=`` (or ``monkeypatch``), never the real one.
"""

from __future__ import annotations

import attrs
import pytest

import ailib_anyio
from ailib_anyio import (
    ConfigurationError,
    CredentialResolution,
    ProviderManifest,
    open_client,
    resolve_credential,
)
from ailib_anyio._protocol._credentials import REDACTED, conventional_env_var
from ailib_anyio._protocol._loader import load_manifest_text
from ailib_anyio._protocol._models import AuthSpec
from ailib_anyio._transport._http import auth_material

SECRET = "sk-test-secret-0123456789"
OTHER = "sk-other-secret-9876543210"


def manifest(
    endpoint_auth: str | None = None, top_auth: str | None = None, *, provider_id: str = "acme"
) -> ProviderManifest:
    """A manifest with ``endpoint.auth`` and/or a top-level ``auth`` (YAML bodies)."""
    text = f'id: {provider_id}\nprotocol_version: "2.0"\nendpoint:\n  base_url: https://api.example.com/v1\n'
    if endpoint_auth is not None:
        text += "  auth:\n" + "".join(f"    {line}\n" for line in endpoint_auth.splitlines())
    if top_auth is not None:
        text += "auth:\n" + "".join(f"  {line}\n" for line in top_auth.splitlines())
    return load_manifest_text(text, source="t.yaml")


BEARER = manifest("type: bearer\ntoken_env: ACME_TOKEN\ntoken_envs: [ACME_TOKEN_2]")


def shown(report: CredentialResolution) -> str:
    headers, params = report.redacted()
    return "\n".join([repr(report), str(report), *report.diagnostics, repr(headers), repr(params)])


# ---------------------------------------------------------------- the chain, step by step


def test_explicit_key_wins_over_every_variable() -> None:
    env = {"ACME_TOKEN": OTHER, "ACME_TOKEN_2": OTHER, "ACME_API_KEY": OTHER}
    report = resolve_credential(BEARER, api_key=SECRET, environ=env)
    assert (report.status, report.source_kind, report.source_name) == (
        "available",
        "explicit",
        "explicit",
    )
    assert report.secret == SECRET
    assert report.available
    assert report.diagnostics == ()


def test_manifest_variables_in_declared_order() -> None:
    env = {"ACME_TOKEN": SECRET, "ACME_TOKEN_2": OTHER, "ACME_API_KEY": OTHER}
    report = resolve_credential(BEARER, environ=env)
    assert (report.source_kind, report.source_name, report.secret) == (
        "manifest_env",
        "ACME_TOKEN",
        SECRET,
    )
    assert report.required == ("ACME_TOKEN", "ACME_TOKEN_2")
    # an empty variable counts as unset: the next one in the chain is used
    report = resolve_credential(BEARER, environ={"ACME_TOKEN": "", "ACME_TOKEN_2": SECRET})
    assert (report.source_name, report.secret) == ("ACME_TOKEN_2", SECRET)


def test_manifest_variable_wins_over_the_conventional_one() -> None:
    report = resolve_credential(BEARER, environ={"ACME_TOKEN_2": SECRET, "ACME_API_KEY": OTHER})
    assert (report.source_kind, report.source_name) == ("manifest_env", "ACME_TOKEN_2")


def test_conventional_fallback_after_the_manifest_variables() -> None:
    report = resolve_credential(BEARER, environ={"ACME_API_KEY": SECRET})
    assert (report.status, report.source_kind, report.source_name, report.secret) == (
        "available",
        "conventional_env",
        "ACME_API_KEY",
        SECRET,
    )
    assert report.conventional_fallbacks == ("ACME_API_KEY",)
    assert report.required == ("ACME_TOKEN", "ACME_TOKEN_2")


def test_missing_reports_what_to_set() -> None:
    report = resolve_credential(BEARER, environ={"UNRELATED": OTHER})
    assert (report.status, report.source_kind, report.source_name, report.secret) == (
        "missing",
        "none",
        None,
        None,
    )
    assert not report.available
    assert report.diagnostics == (
        "no API key for provider 'acme': pass api_key= or set ACME_TOKEN or ACME_TOKEN_2"
        " (or ACME_API_KEY)",
    )
    assert report.attachment() == ({}, {})
    assert report.redacted() == ({}, {})


def test_provider_names_the_provider_in_diagnostics_only() -> None:
    # what the user typed (an alias) is named; the fallback follows the manifest's id
    report = resolve_credential(BEARER, provider="acme-alias", environ={})
    assert report.provider == "acme-alias"
    assert report.conventional_fallbacks == ("ACME_API_KEY",)
    assert "provider 'acme-alias'" in report.diagnostics[0]


def test_an_empty_explicit_key_is_missing_and_stops_the_chain() -> None:
    report = resolve_credential(BEARER, api_key="", environ={"ACME_TOKEN": OTHER})
    assert (report.status, report.source_kind) == ("missing", "none")
    assert "api_key= is empty" in report.diagnostics[0]
    assert OTHER not in shown(report)


def test_environ_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_TOKEN", raising=False)
    monkeypatch.delenv("ACME_TOKEN_2", raising=False)
    monkeypatch.setenv("ACME_API_KEY", SECRET)
    report = resolve_credential(BEARER)
    assert (report.source_name, report.secret) == ("ACME_API_KEY", SECRET)


# ---------------------------------------------------------------- conventional naming


@pytest.mark.parametrize(
    ("provider_id", "name"),
    [
        ("openai", "OPENAI_API_KEY"),
        ("openai-compatible", "OPENAI_COMPATIBLE_API_KEY"),
        ("my_proxy", "MY_PROXY_API_KEY"),
        ("v2.local proxy", "V2_LOCAL_PROXY_API_KEY"),
    ],
)
def test_conventional_name(provider_id: str, name: str) -> None:
    assert conventional_env_var(provider_id) == name


def test_conventional_fallback_is_named_after_the_manifest_id() -> None:
    m = manifest("type: bearer\ntoken_env: LOCAL_KEY", provider_id="openai-compatible")
    report = resolve_credential(m, environ={"OPENAI_COMPATIBLE_API_KEY": SECRET})
    assert report.conventional_fallbacks == ("OPENAI_COMPATIBLE_API_KEY",)
    assert (report.source_kind, report.source_name) == (
        "conventional_env",
        "OPENAI_COMPATIBLE_API_KEY",
    )


def test_no_conventional_fallback_when_the_manifest_declares_it() -> None:
    m = manifest("type: bearer\ntoken_env: ACME_API_KEY")
    report = resolve_credential(m, environ={"ACME_API_KEY": SECRET})
    assert report.conventional_fallbacks == ()
    assert (report.source_kind, report.source_name) == ("manifest_env", "ACME_API_KEY")
    missing = resolve_credential(m, environ={})
    assert missing.diagnostics == (
        "no API key for provider 'acme': pass api_key= or set ACME_API_KEY",
    )


def test_a_bare_auth_spec_names_the_fallback_after_provider() -> None:
    auth = AuthSpec(type="bearer", token_env="X_TOKEN")
    report = resolve_credential(auth, provider="my.proxy", environ={"MY_PROXY_API_KEY": SECRET})
    assert (report.source_name, report.secret) == ("MY_PROXY_API_KEY", SECRET)
    with pytest.raises(TypeError, match="provider="):
        resolve_credential(auth)


def test_no_variable_declared_uses_only_the_conventional_one() -> None:
    m = manifest("type: bearer")
    assert resolve_credential(m, environ={}).diagnostics == (
        "no API key for provider 'acme': pass api_key= or set ACME_API_KEY",
    )


# ---------------------------------------------------------------- endpoint.auth: the single source

DUAL = manifest(
    "type: bearer\ntoken_env: DUAL_TOKEN",
    "type: api_key\nkey_env: DUAL_LEGACY_KEY\nheader: X-Legacy-Key",
)


def test_a_shadowed_top_level_block_never_resolves() -> None:
    report = resolve_credential(DUAL, environ={"DUAL_LEGACY_KEY": OTHER})
    assert (report.status, report.source_kind, report.source_name) == ("missing", "none", None)
    assert report.required == ("DUAL_TOKEN",)
    assert report.shadowed_envs == ("DUAL_LEGACY_KEY",)
    assert report.diagnostics[0].startswith(
        "no API key for provider 'acme': pass api_key= or set DUAL_TOKEN (or ACME_API_KEY)"
    )
    shadow = report.diagnostics[1]
    assert "top-level auth block" in shadow
    assert "DUAL_LEGACY_KEY" in shadow
    assert "endpoint.auth" in shadow
    assert "set but ignored: DUAL_LEGACY_KEY" in shadow
    assert OTHER not in shown(report)


def test_endpoint_auth_resolves_and_attaches_with_a_diagnostic() -> None:
    report = resolve_credential(DUAL, environ={"DUAL_TOKEN": SECRET, "DUAL_LEGACY_KEY": OTHER})
    assert (report.source_kind, report.source_name, report.secret) == (
        "manifest_env",
        "DUAL_TOKEN",
        SECRET,
    )
    # the endpoint block's shape (bearer), not the legacy header
    assert report.attachment() == ({"Authorization": f"Bearer {SECRET}"}, {})
    assert len(report.diagnostics) == 1
    assert "DUAL_LEGACY_KEY" in report.diagnostics[0]
    assert "set but ignored" in report.diagnostics[0]


def test_a_shadowed_variable_is_not_a_conventional_fallback() -> None:
    m = manifest("type: bearer\ntoken_env: DUAL_TOKEN", "type: bearer\ntoken_env: ACME_API_KEY")
    report = resolve_credential(m, environ={"ACME_API_KEY": OTHER})
    assert report.status == "missing"
    assert report.conventional_fallbacks == ()
    assert report.shadowed_envs == ("ACME_API_KEY",)


def test_the_same_block_twice_shadows_nothing() -> None:
    block = "type: bearer\ntoken_env: ACME_TOKEN"
    report = resolve_credential(manifest(block, block), environ={"ACME_TOKEN": SECRET})
    assert report.shadowed_envs == ()
    assert report.diagnostics == ()


def test_a_top_level_block_alone_is_the_source() -> None:
    m = manifest(None, "type: query_param\nkey_env: ACME_KEY\nparam_name: api_key")
    report = resolve_credential(m, environ={"ACME_KEY": SECRET})
    assert (report.source_name, report.shadowed_envs, report.diagnostics) == ("ACME_KEY", (), ())
    assert report.attachment() == ({}, {"api_key": SECRET})


# ---------------------------------------------------------------- no credential needed or optional


def test_auth_type_none_needs_no_credential() -> None:
    m = manifest("type: none\nextra_headers:\n  x-client: demo")
    report = resolve_credential(m, environ={"ACME_API_KEY": OTHER})
    assert (report.status, report.source_kind, report.source_name) == (
        "not_required",
        "none",
        None,
    )
    assert (report.required, report.conventional_fallbacks, report.optional) == ((), (), True)
    assert report.attachment() == ({"x-client": "demo"}, {})
    ignored = resolve_credential(m, api_key=SECRET, environ={})
    assert ignored.status == "not_required"
    assert ignored.secret is None
    assert ignored.diagnostics == (
        "api_key= is ignored: provider 'acme' declares no authentication (auth type none)",
    )
    assert auth_material(m, "acme", None, environ={}) == ({"x-client": "demo"}, {})


def test_an_optional_credential_may_be_missing() -> None:
    m = manifest("type: bearer\ntoken_env: LOCAL_KEY\nrequired: false")
    report = resolve_credential(m, environ={})
    assert (report.status, report.optional) == ("missing", True)
    assert report.diagnostics[0].endswith("(optional: requests are sent without credentials)")
    assert auth_material(m, "acme", None, environ={}) == ({}, {})
    assert auth_material(m, "acme", None, environ={"LOCAL_KEY": SECRET}) == (
        {"Authorization": f"Bearer {SECRET}"},
        {},
    )


# ---------------------------------------------------------------- redaction


@pytest.mark.parametrize(
    ("auth", "env"),
    [
        ("type: bearer\ntoken_env: ACME_TOKEN", {"ACME_TOKEN": SECRET}),
        ("type: custom_header\nheader: X-Token\ntoken_env: ACME_TOKEN", {"ACME_TOKEN": SECRET}),
        ("type: query_param\nkey_env: ACME_TOKEN\nparam_name: k", {"ACME_TOKEN": SECRET}),
        ("type: bearer\ntoken_env: ACME_TOKEN", {"ACME_API_KEY": SECRET}),
    ],
)
def test_the_report_never_shows_the_secret(auth: str, env: dict[str, str]) -> None:
    m = manifest(auth, "type: api_key\nkey_env: LEGACY\nheader: X-Legacy")
    for report in (
        resolve_credential(m, environ={**env, "LEGACY": OTHER}),
        resolve_credential(m, api_key=SECRET, environ={"LEGACY": OTHER}),
    ):
        assert report.secret == SECRET
        text = shown(report)
        assert SECRET not in text
        assert OTHER not in text
        assert REDACTED in text
        assert "secret=" not in repr(report)
        assert SECRET in repr(report.attachment())  # the real attachment holds it


def test_equality_ignores_the_secret() -> None:
    one = resolve_credential(BEARER, environ={"ACME_TOKEN": SECRET})
    two = resolve_credential(BEARER, environ={"ACME_TOKEN": OTHER})
    assert one == two
    assert attrs.evolve(one, source_name="ACME_TOKEN_2") != two


def test_the_missing_error_never_shows_a_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        auth_material(DUAL, "acme", None, environ={"DUAL_LEGACY_KEY": OTHER})
    message = str(info.value)
    assert "pass api_key= or set DUAL_TOKEN (or ACME_API_KEY)" in message
    assert "DUAL_LEGACY_KEY" in message
    assert OTHER not in message
    assert OTHER not in repr(info.value)
    assert info.value.provider == "acme"


# ---------------------------------------------------------------- attachment per auth type


@pytest.mark.parametrize(
    ("auth", "headers", "params"),
    [
        ("type: bearer\ntoken_env: T", {"Authorization": "Bearer {}"}, {}),
        ("type: bearer\ntoken_env: T\nheader: X-Auth\nprefix: Token", {"X-Auth": "Token {}"}, {}),
        ('type: bearer\ntoken_env: T\nprefix: ""', {"Authorization": "{}"}, {}),
        ("type: header\ntoken_env: T", {"x-api-key": "{}"}, {}),
        (
            "type: custom_header\nheader: X-Provider-Token\ntoken_env: T",
            {"X-Provider-Token": "{}"},
            {},
        ),
        ("type: api_key\nheader: X-Key\nprefix: Key\nkey_env: T", {"X-Key": "Key {}"}, {}),
        ("type: query_param\nkey_env: T\nparam_name: api_key", {}, {"api_key": "{}"}),
        ("type: query\nkey_env: T", {}, {"key": "{}"}),
        (
            "type: header\ntoken_env: T\nextra_headers:\n  anthropic-version: v1",
            {"anthropic-version": "v1", "x-api-key": "{}"},
            {},
        ),
    ],
)
def test_attachment(auth: str, headers: dict[str, str], params: dict[str, str]) -> None:
    report = resolve_credential(manifest(auth), environ={"T": SECRET})

    def fill(d: dict[str, str], value: str) -> dict[str, str]:
        return {k: v.format(value) for k, v in d.items()}

    assert report.attachment() == (fill(headers, SECRET), fill(params, SECRET))
    assert report.redacted() == (fill(headers, REDACTED), fill(params, REDACTED))
    assert auth_material(manifest(auth), "acme", None, environ={"T": SECRET}) == (
        report.attachment()
    )


# ---------------------------------------------------------------- the client's path


def test_auth_material_still_takes_an_auth_spec() -> None:
    auth = AuthSpec(type="bearer", token_env="ACME_TOKEN")
    assert auth_material(auth, "acme", SECRET) == ({"Authorization": f"Bearer {SECRET}"}, {})
    assert auth_material(auth, "acme", None, environ={"ACME_API_KEY": SECRET}) == (
        {"Authorization": f"Bearer {SECRET}"},
        {},
    )
    with pytest.raises(
        ConfigurationError, match=r"pass api_key= or set ACME_TOKEN \(or ACME_API_KEY\)"
    ):
        auth_material(auth, "acme", None, environ={})


def test_the_client_uses_the_conventional_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    # qwen's manifest declares DASHSCOPE_API_KEY; QWEN_API_KEY is the compatibility name
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("QWEN_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match=r"set DASHSCOPE_API_KEY \(or QWEN_API_KEY\)"):
        open_client("qwen/qwen-max")
    monkeypatch.setenv("QWEN_API_KEY", SECRET)
    client = open_client("qwen/qwen-max")
    assert SECRET not in repr(client)
    assert client.manifest.id == "qwen"


def test_exported() -> None:
    assert ailib_anyio.resolve_credential is resolve_credential
    assert ailib_anyio.CredentialResolution is CredentialResolution
    assert CredentialResolution.__module__ == "ailib_anyio"
