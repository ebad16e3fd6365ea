"""docs/environment.md lists every environment variable the package reads.

The package's source is read with ``ast``: each ``os.environ.get(NAME)``,
``os.getenv(NAME)``, ``os.environ[NAME]``, ``NAME in os.environ`` and ``.get(NAME)`` on an
environment mapping (``environ``, ``env``) is found, and ``NAME`` resolved (a string, or a
module-level string constant). The library variables must be exactly those of the doc's
library table; a name built at run time is allowed only in the two places that build the
provider variables, whose table is checked against the manifests.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import ailib_anyio
from ailib_anyio._protocol._credentials import conventional_env_var
from ailib_anyio._protocol._registry import ProtocolRegistry

PACKAGE_DIR = Path(ailib_anyio.__file__).parent
DOC = Path(__file__).resolve().parents[2] / "docs" / "environment.md"

#: (module file, function) that read variables whose names are built at run time
DYNAMIC_READERS = {
    ("_transport/_http.py", "base_url_from_env"),  # <PROVIDER>_BASE_URL
    ("_protocol/_credentials.py", "resolve_credential"),  # the manifests' key variables
}

_ENV_RECEIVERS = {"environ", "env"}


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, or a mapping named ``environ``/``env`` (``os.environ`` or a test's
    mapping, as the package's functions take them), however parenthesised."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    if isinstance(node, ast.Name):
        return node.id in _ENV_RECEIVERS
    if isinstance(node, ast.IfExp):
        return _is_environ(node.body) or _is_environ(node.orelse)
    return False


def _constants(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _reads(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.expr]]:
    """(node, name expression) for every read of the environment in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and (
                func.attr == "getenv" or (func.attr == "get" and _is_environ(func.value))
            ):
                yield node, node.args[0]
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            if isinstance(node.ctx, ast.Load):
                yield node, node.slice
        elif (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], (ast.In, ast.NotIn))
            and _is_environ(node.comparators[0])
        ):
            yield node, node.left


def _enclosing_functions(tree: ast.Module) -> dict[ast.AST, str]:
    owner: dict[ast.AST, str] = {}
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(func):
                owner.setdefault(inner, func.name)
    return owner


def package_reads() -> tuple[set[str], set[tuple[str, str]]]:
    """The variable names the package reads, and the (file, function) pairs that read a
    name built at run time."""
    names: set[str] = set()
    dynamic: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _constants(tree)
        owners: dict[ast.AST, str] | None = None
        for node, expr in _reads(tree):
            if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
                names.add(expr.value)
            elif isinstance(expr, ast.Name) and expr.id in constants:
                names.add(constants[expr.id])
            else:
                if owners is None:
                    owners = _enclosing_functions(tree)
                relative = path.relative_to(PACKAGE_DIR).as_posix()
                dynamic.add((relative, owners.get(node, "<module>")))
    return names, dynamic


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _first_column(section: str) -> set[str]:
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {re.match(r"\| `([A-Z0-9_]+)`", row)[1] for row in rows}  # type: ignore[index]


def test_the_scan_finds_the_known_reads() -> None:
    names, _ = package_reads()
    # one of each form the package uses: a literal, a module constant, a mapping argument
    assert {"AI_PROTOCOL_PATH", "AI_LIB_TIKTOKEN_DIR", "OTEL_SEMCONV_STABILITY_OPT_IN"} <= names


def test_every_variable_the_package_reads_is_documented() -> None:
    names, dynamic = package_reads()
    documented = _first_column(_section("The library"))
    assert names - documented == set(), "add these to docs/environment.md"
    assert documented - names == set(), "docs/environment.md lists variables nothing reads"
    assert dynamic <= DYNAMIC_READERS, (
        "a variable name built at run time outside the provider variables: document it in"
        " docs/environment.md and list its reader in DYNAMIC_READERS"
    )


def provider_table(registry: ProtocolRegistry) -> str:
    """The doc's provider table, from the manifests."""
    rows = [
        "| Provider (aliases) | API key (the first set wins) | Base URL (over the manifest's) |",
        "| --- | --- | --- |",
    ]
    for provider in registry.providers():
        manifest = registry.get(provider)
        auth = manifest.auth_spec
        keys = list(auth.env_vars)
        conventional = conventional_env_var(manifest.id)
        if conventional not in keys:
            keys.append(conventional)
        key_text = ", then ".join(f"`{k}`" for k in keys) if auth.type != "none" else "none"
        if auth.type != "none" and not auth.required:
            key_text += " (optional)"
        names = [manifest.id, *manifest.aliases]
        urls = [f"`{re.sub('[^A-Z0-9]', '_', n.upper())}_BASE_URL`" for n in names]
        url_text = urls[0]
        if len(names) == 2:
            url_text += f"; {urls[1]} before it for a model written `{names[1]}/...`"
        elif len(names) > 2:
            url_text += f"; {', '.join(urls[1:])} before it for a model written with that alias"
        aliases = f" ({', '.join(manifest.aliases)})" if manifest.aliases else ""
        rows.append(f"| {manifest.id}{aliases} | {key_text} | {url_text} |")
    return "\n".join(rows)


def test_the_provider_table_is_read_from_the_manifests() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = "<!-- env-providers:start -->\n", "<!-- env-providers:end -->"
    embedded = text.split(start, 1)[1].split(end, 1)[0].strip()
    expected = provider_table(ProtocolRegistry())
    assert embedded == expected, f"docs/environment.md's provider table is stale:\n{expected}"
