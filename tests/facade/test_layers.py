"""The import layers of DESIGN.md §3, read from the source with ``ast``.

Every module of the package is read, and every import of another module of the package is
recorded with where it stands:

- ``module``: at module level (in a class body, a ``try``, an ``if`` ...), run on import;
- ``function``: inside a function or method, run when it is first called;
- ``lazy``: a module ``ailib_anyio.__init__`` loads by name on first use (its ``_LAZY``
  table, read as data: ``importlib.import_module`` is not otherwise followed);
- ``type``: inside ``if TYPE_CHECKING:``, never run.

The first three are runtime imports: none may go up a layer (``LAYERS``, ``LAYER_OF``),
and together they may form no cycle, however deep in a function one of them hides. A
``type`` import may go anywhere and is never part of a cycle. ``from pkg import name``
counts as importing ``pkg.name`` when that is a module, else ``pkg``; the ``__init__`` of
an enclosing package, which Python runs first, is not counted as imported.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import pytest

import ailib_anyio

PACKAGE = "ailib_anyio"
PACKAGE_DIR = Path(ailib_anyio.__file__).parent

#: The layers, from the bottom: a module may import (at runtime) from its own layer and
#: from those below it, never from one above.
LAYERS = (
    "core",  # sans-IO, pure, synchronous: no anyio, no httpx
    "protocol",  # manifests: models, converter, loader, registry; credentials; request checks
    "transport",  # the only HTTP client library user
    "resilience",  # built on anyio primitives only
    "client",  # configuration, the client, builders, streams, batch, cancel, preflight
    "services",  # built on the client's public API
    "facade",  # the public namespaces: ``ailib_anyio`` and ``ailib_anyio.sync``
    "testing",  # ``ailib_anyio.testing``: mock provider, wire encoders, strategies
    "cli",  # ``python -m ailib_anyio``: serves the mock, checks manifests, runs the demo
)

#: The folder of each layer: every module under a folder is in its layer.
FOLDERS: Mapping[str, str] = {
    "ailib_anyio._core": "core",  # sans-IO: decoders, encoders, the pure retry/breaker/bucket
    # decisions, and the leaves they stand on (errors, unified types, secret masking)
    "ailib_anyio._protocol": "protocol",  # models, loader, registry, credentials, checks
    "ailib_anyio._transport": "transport",
    "ailib_anyio._resilience": "resilience",
    "ailib_anyio._client": "client",  # config, client, target, middleware, builders, batch
    "ailib_anyio._services": "services",
    "ailib_anyio.testing": "testing",
    "ailib_anyio._cli": "cli",
}

#: The only private modules outside a layer's folder (public ones are the facade).
TOP_LEVEL: Mapping[str, str] = {
    "ailib_anyio": "facade",
    "ailib_anyio._version": "core",
    "ailib_anyio.__main__": "cli",
}


def layer_map(names: Iterable[str]) -> dict[str, str]:
    """``module -> layer`` for every module that is top-level or under a layer's folder;
    a public top-level module (``ailib_anyio.tokens``...) is part of the facade."""
    found = {}
    for name in names:
        if name in TOP_LEVEL:
            found[name] = TOP_LEVEL[name]
            continue
        parts = name.split(".")
        if len(parts) == 2 and not parts[1].startswith("_") and name not in FOLDERS:
            found[name] = "facade"
            continue
        for folder, layer in FOLDERS.items():
            if name == folder or name.startswith(folder + "."):
                found[name] = layer
    return found


#: Runtime imports ``(importer, imported)`` let through for now, each only until the module
#: that needs it is mended; an entry that is no longer needed fails the test, so the list
#: only shrinks. Empty: nothing goes up a layer or closes a cycle today.
KNOWN: frozenset[tuple[str, str]] = frozenset()

#: Third-party libraries only some layers may import at runtime.
IO_LIBRARIES = frozenset({"anyio", "trio", "sniffio", "httpx", "httpx2", "httpcore", "h11"})
HTTP_CLIENT_LIBRARIES = frozenset({"httpx", "httpx2", "httpcore"})
NO_IO_LAYERS = frozenset({"core", "protocol"})
HTTP_CLIENT_MODULES = frozenset({"ailib_anyio._transport._http"})

RUNTIME = ("module", "function", "lazy")


class Import(NamedTuple):
    importer: str
    imported: str  # a module of the package, or a top-level third-party name
    kind: str  # "module", "function", "lazy" or "type"
    line: int
    internal: bool

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.kind}, line {self.line})"


# ------------------------------------------------------------------------- the checker


def module_names(root: Path, package: str) -> dict[str, Path]:
    """``dotted name -> file`` for every module under ``root``, the package's directory."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


#: Every module of the package and its layer.
LAYER_OF: Mapping[str, str] = layer_map(module_names(PACKAGE_DIR, PACKAGE))


def _is_type_checking(test: ast.expr) -> bool:
    # ``TYPE_CHECKING``, ``typing.TYPE_CHECKING`` or an alias such as ``_TYPE_CHECKING``
    if isinstance(test, ast.Name):
        return test.id.endswith("TYPE_CHECKING")
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def scan(root: Path, package: str) -> list[Import]:
    """Every import made by every module under ``root``: of the package's own modules, and
    of third-party top-level names."""
    modules = module_names(root, package)
    found: list[Import] = []
    for name, path in modules.items():
        found += _scan_module(name, path, package, set(modules))
    return found


def _scan_module(name: str, path: Path, package: str, modules: set[str]) -> list[Import]:
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: list[Import] = []

    def resolve(module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        base = here.split(".")
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, module] if module else base)

    def add(target: str, kind: str, line: int) -> None:
        internal = target == package or target.startswith(package + ".")
        if not internal:
            target = target.partition(".")[0]
        found.append(Import(name, target, kind, line, internal))

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    visit_one(stmt, "type")
                for stmt in child.orelse:
                    visit_one(stmt, kind)
                continue
            visit_one(child, kind)

    def visit_one(node: ast.AST, kind: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            kind = "type" if kind == "type" else "function"
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, kind, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node.module, node.level)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                add(sub if sub in modules else base, kind, node.lineno)
        elif (
            isinstance(node, ast.Assign)
            and kind == "module"
            and is_package
            and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets)
            and isinstance(node.value, ast.Dict)
        ):
            for value in node.value.values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    level = len(value.value) - len(value.value.lstrip("."))
                    add(resolve(value.value[level:] or None, level), "lazy", value.lineno)
        visit(node, kind)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), "module")
    return found


def unmapped(root: Path, package: str, layer_of: Mapping[str, str]) -> list[str]:
    """What is wrong with the layer map: modules missing from it, entries naming no module."""
    modules = set(module_names(root, package))
    problems = [
        f"{name} is in no layer: move it into a layer's folder (FOLDERS)"
        for name in sorted(modules - set(layer_of))
    ]
    problems += [
        f"LAYER_OF names {name}, which is no module: remove it"
        for name in sorted(set(layer_of) - modules)
    ]
    return problems


def _runtime(imports: Iterable[Import], known: Iterable[tuple[str, str]]) -> list[Import]:
    skip = set(known)
    unique = dict.fromkeys(imports)  # ``from m import a, b`` is one import of ``m``
    return [
        i
        for i in unique
        if i.internal
        and i.kind in RUNTIME
        and i.imported != i.importer
        and (i.importer, i.imported) not in skip
    ]


def up_imports(
    imports: Iterable[Import],
    layer_of: Mapping[str, str],
    layers: tuple[str, ...],
    known: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """Every runtime import of a module in a higher layer than the importer's."""
    rank = {layer: n for n, layer in enumerate(layers)}
    bad = []
    for i in _runtime(imports, known):
        missing = [m for m in (i.importer, i.imported) if m not in layer_of]
        if missing:
            bad += [f"{i}: {m} is in no layer" for m in missing]
            continue
        mine, theirs = layer_of[i.importer], layer_of[i.imported]
        if rank[theirs] > rank[mine]:
            bad.append(f"{i}: {mine} imports up from {theirs}")
    return bad


def cycles(imports: Iterable[Import], known: Iterable[tuple[str, str]] = ()) -> list[str]:
    """The runtime import cycles: each strongly connected group of modules, with the
    imports that tie it together."""
    edges: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Import] = {}
    for i in _runtime(imports, known):
        edges.setdefault(i.importer, set()).add(i.imported)
        edges.setdefault(i.imported, set())
        where.setdefault((i.importer, i.imported), i)

    # Tarjan's strongly connected components, without recursion.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))

    found = []
    for group in sorted(groups):
        members = set(group)
        ties = sorted(str(where[(a, b)]) for a in group for b in sorted(edges[a]) if b in members)
        found.append(f"cycle {' <-> '.join(group)}: " + "; ".join(ties))
    return found


def stale(imports: Iterable[Import], known: Iterable[tuple[str, str]]) -> list[str]:
    """Entries of ``known`` that no runtime import needs any more."""
    present = {(i.importer, i.imported) for i in imports if i.internal and i.kind in RUNTIME}
    return [
        f"KNOWN lets {a} -> {b} through, which is no longer imported: remove it"
        for a, b in sorted(set(known) - present)
    ]


# ------------------------------------------------------------------ the real package


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan(PACKAGE_DIR, PACKAGE)


def test_every_module_has_a_layer() -> None:
    assert set(LAYER_OF.values()) <= set(LAYERS)
    problems = unmapped(PACKAGE_DIR, PACKAGE, LAYER_OF)
    assert problems == [], "\n".join(problems)


def test_no_runtime_import_goes_up_a_layer(imports: list[Import]) -> None:
    problems = up_imports(imports, LAYER_OF, LAYERS, KNOWN)
    assert problems == [], "\n".join(problems)


def test_no_runtime_import_cycle(imports: list[Import]) -> None:
    problems = cycles(imports, KNOWN)
    assert problems == [], "\n".join(problems)


def test_known_exceptions_are_all_still_needed(imports: list[Import]) -> None:
    problems = stale(imports, KNOWN)
    assert problems == [], "\n".join(problems)
    # and each is really an exception: an upward import or an edge of a cycle
    for edge in KNOWN:
        others = KNOWN - {edge}
        assert up_imports(imports, LAYER_OF, LAYERS, others) or cycles(imports, others), edge


def test_io_libraries_stay_in_their_layers(imports: list[Import]) -> None:
    bad = [
        str(i)
        for i in imports
        if not i.internal
        and i.kind in RUNTIME
        and (
            (i.imported in IO_LIBRARIES and LAYER_OF.get(i.importer) in NO_IO_LAYERS)
            or (i.imported in HTTP_CLIENT_LIBRARIES and i.importer not in HTTP_CLIENT_MODULES)
        )
    ]
    assert bad == [], "\n".join(bad)


def test_the_scan_sees_the_package(imports: list[Import]) -> None:
    # the checker reads what is really there: each kind of import occurs in the package
    # (were ``__init__``'s lazy table renamed, the scan would miss its imports: say so here)
    kinds = {i.kind for i in imports if i.internal}
    assert kinds >= {"module", "lazy", "type"}
    lazy = {i.imported for i in imports if i.kind == "lazy"}
    assert "ailib_anyio._services._embeddings" in lazy
    every = {i.importer for i in imports} | {i.imported for i in imports if i.internal}
    assert every <= set(LAYER_OF)


# -------------------------------------------------------- the checker, on a made-up package

SYNTHETIC_LAYERS = ("low", "mid", "high")


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def test_checker_passes_downward_imports(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "import json\n",
            "b.py": "from . import a\nfrom .a import thing\n",
            "sub/__init__.py": "",
            "sub/c.py": "from .. import b\nimport pkg.a\n",
        },
    )
    layer_of = {"pkg": "high", "pkg.a": "low", "pkg.b": "mid", "pkg.sub": "high"}
    layer_of["pkg.sub.c"] = "high"
    found = scan(root, "pkg")
    assert {(i.importer, i.imported) for i in found if i.internal} == {
        ("pkg.b", "pkg.a"),
        ("pkg.sub.c", "pkg.b"),
        ("pkg.sub.c", "pkg.a"),
    }
    assert [(i.importer, i.imported, i.internal) for i in found if not i.internal] == [
        ("pkg.a", "json", False)
    ]
    assert unmapped(root, "pkg", layer_of) == []
    assert up_imports(found, layer_of, SYNTHETIC_LAYERS) == []
    assert cycles(found) == []


def test_checker_fails_on_a_planted_up_import(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "low.py": "import os\n\nfrom .high import thing\n",
            "high.py": "thing = 1\n",
        },
    )
    layer_of = {"pkg": "high", "pkg.low": "low", "pkg.high": "high"}
    found = scan(root, "pkg")
    assert up_imports(found, layer_of, SYNTHETIC_LAYERS) == [
        "pkg.low -> pkg.high (module, line 3): low imports up from high"
    ]
    # the same import, hidden in a function, is still found
    (root / "low.py").write_text("def f():\n    from pkg import high\n", encoding="utf-8")
    assert up_imports(scan(root, "pkg"), layer_of, SYNTHETIC_LAYERS) == [
        "pkg.low -> pkg.high (function, line 2): low imports up from high"
    ]
    # an exception listed as known lets exactly that import through
    known = {("pkg.low", "pkg.high")}
    assert up_imports(scan(root, "pkg"), layer_of, SYNTHETIC_LAYERS, known) == []


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from .b import x\n",
            "b.py": "x = 1\n\nclass C:\n    async def m(self):\n        from . import a\n",
            "c.py": "from . import a\n",
        },
    )
    found = scan(root, "pkg")
    assert cycles(found) == [
        "cycle pkg.a <-> pkg.b: pkg.a -> pkg.b (module, line 1); pkg.b -> pkg.a (function, line 5)"
    ]
    assert cycles(found, {("pkg.b", "pkg.a")}) == []
    assert stale(found, {("pkg.b", "pkg.a"), ("pkg.c", "pkg.b")}) == [
        "KNOWN lets pkg.c -> pkg.b through, which is no longer imported: remove it"
    ]


def test_checker_finds_a_longer_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {"a.py": "from . import b\n", "b.py": "from . import c\n", "c.py": "import pkg.a\n"},
    )
    assert cycles(scan(root, "pkg")) == [
        "cycle pkg.a <-> pkg.b <-> pkg.c: pkg.a -> pkg.b (module, line 1);"
        " pkg.b -> pkg.c (module, line 1); pkg.c -> pkg.a (module, line 1)"
    ]


def test_type_checking_imports_are_recorded_apart(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "low.py": """\
                import typing
                from typing import TYPE_CHECKING

                from . import high

                if TYPE_CHECKING:
                    from .high import Thing
                if typing.TYPE_CHECKING:
                    import httpx
                else:
                    from . import mid

                def f() -> None:
                    if TYPE_CHECKING:
                        from .mid import Other
                """,
            "mid.py": "",
            "high.py": "from .low import f\n",
        },
    )
    layer_of = {"pkg": "high", "pkg.low": "high", "pkg.mid": "mid", "pkg.high": "high"}
    found = scan(root, "pkg")
    assert sorted((i.importer, i.imported, i.kind) for i in found if i.importer == "pkg.low") == [
        ("pkg.low", "httpx", "type"),
        ("pkg.low", "pkg.high", "module"),
        ("pkg.low", "pkg.high", "type"),
        ("pkg.low", "pkg.mid", "module"),
        ("pkg.low", "pkg.mid", "type"),
        ("pkg.low", "typing", "module"),
        ("pkg.low", "typing", "module"),
    ]
    assert cycles(found) == [
        "cycle pkg.high <-> pkg.low: pkg.high -> pkg.low (module, line 1);"
        " pkg.low -> pkg.high (module, line 4)"
    ]
    # only type-level, the same import goes anywhere and closes no cycle
    text = (root / "low.py").read_text(encoding="utf-8").replace("from . import high\n", "")
    (root / "low.py").write_text(text, encoding="utf-8")
    found = scan(root, "pkg")
    assert cycles(found) == []
    layer_of["pkg.low"] = "low"
    assert up_imports(found, layer_of, SYNTHETIC_LAYERS) == [
        "pkg.low -> pkg.mid (module, line 10): low imports up from mid"
    ]


def test_checker_reads_a_lazy_table(tmp_path: Path) -> None:
    root = _package(tmp_path, {"a.py": "import pkg\n", "b.py": ""})
    (root / "__init__.py").write_text('_LAZY = {"A": "._a_missing", "B": ".b"}\n')
    found = scan(root, "pkg")
    assert [str(i) for i in found if i.kind == "lazy"] == [
        "pkg -> pkg._a_missing (lazy, line 1)",
        "pkg -> pkg.b (lazy, line 1)",
    ]
    layer_of = {"pkg": "high", "pkg.a": "low", "pkg.b": "low"}
    assert up_imports(found, layer_of, SYNTHETIC_LAYERS) == [
        "pkg -> pkg._a_missing (lazy, line 1): pkg._a_missing is in no layer",
        "pkg.a -> pkg (module, line 1): low imports up from high",
    ]


def test_checker_names_modules_missing_from_the_map(tmp_path: Path) -> None:
    root = _package(tmp_path, {"a.py": "", "new.py": ""})
    assert unmapped(root, "pkg", {"pkg": "high", "pkg.a": "low", "pkg.gone": "low"}) == [
        "pkg.new is in no layer: move it into a layer's folder (FOLDERS)",
        "LAYER_OF names pkg.gone, which is no module: remove it",
    ]


# ---------------------------------------------------------------- private names stay home


def private_imports(root: Path, package: str) -> list[str]:
    """Every ``from <module of the package> import _name`` where ``_name`` is not a
    module: a module reaching into another's private name (dunders such as ``__all__``
    are public)."""
    modules = module_names(root, package)
    found = []
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source != package and not source.startswith(package + "."):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and f"{source}.{alias.name}" not in modules:
                    found.append(f"{name} (line {node.lineno}) imports {source}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_name() -> None:
    problems = private_imports(PACKAGE_DIR, PACKAGE)
    assert problems == [], "\n".join(problems)


def test_checker_finds_a_private_import(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "a.py": "from .b import _hidden, shown\nfrom . import _c\n",
            "b.py": "",
            "_c.py": "",
            "sub/__init__.py": "from ..b import _other\nfrom . import __doc__\n",
        },
    )
    assert private_imports(root, "pkg") == [
        "pkg.a (line 1) imports pkg.b._hidden",
        "pkg.sub (line 1) imports pkg.b._other",
    ]
