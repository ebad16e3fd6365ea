"""Package-level guarantees: exports, layering, shipped manifests, the CLI."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import ailib_anyio
import ailib_anyio.testing
from ailib_anyio._protocol._loader import load_manifest
from ailib_anyio._protocol._registry import ProtocolRegistry, builtin_protocol_dir

REPO = Path(__file__).resolve().parents[2]


def test_all_matches_public_names() -> None:
    subpackages = {  # public namespaces of their own
        "testing",
        "sync",
        "tokens",
        "embeddings",
        "plugins",
        "telemetry",
        "health",
        "feedback",
        "cache",
        "routing",
        "batch",
        "shared",
    }
    public = {name for name in dir(ailib_anyio) if not name.startswith("_")} - subpackages
    assert sorted(ailib_anyio.__all__) == ailib_anyio.__all__
    assert set(ailib_anyio.__all__) == public
    for name in ailib_anyio.__all__:
        obj = getattr(ailib_anyio, name)
        if isinstance(obj, type):
            assert obj.__module__ == "ailib_anyio", name


def test_telemetry_all_matches() -> None:
    import ailib_anyio.telemetry as telemetry

    public = {name for name in dir(telemetry) if not name.startswith("_")}
    assert set(telemetry.__all__) == public
    assert sorted(telemetry.__all__) == telemetry.__all__
    homes = {"ailib_anyio.telemetry", "ailib_anyio.health", "ailib_anyio.feedback"}
    for name in telemetry.__all__:
        assert getattr(telemetry, name).__module__ in homes, name


def test_testing_all_matches() -> None:
    submodules = {"strategies"}  # a public namespace of its own, imported on its own
    public = {name for name in dir(ailib_anyio.testing) if not name.startswith("_")}
    assert set(ailib_anyio.testing.__all__) == public - submodules
    assert sorted(ailib_anyio.testing.__all__) == ailib_anyio.testing.__all__


def test_testing_does_not_import_hypothesis() -> None:
    # hypothesis is a test dependency: only ailib_anyio.testing.strategies may need it
    code = "import sys, ailib_anyio.testing; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_sans_io_core_imports_neither_anyio_nor_httpx() -> None:
    # Load the core without the package __init__ (which imports the client), then check
    # what the core pulled in.
    code = textwrap.dedent(
        f"""
        import importlib, pkgutil, sys, types
        pkg = types.ModuleType("ailib_anyio")
        pkg.__path__ = [{str(Path(ailib_anyio.__file__).parent)!r}]
        sys.modules["ailib_anyio"] = pkg
        import ailib_anyio._core as core
        for info in pkgutil.iter_modules(core.__path__):
            importlib.import_module("ailib_anyio._core." + info.name)
        io = ("anyio", "httpx", "httpcore", "trio", "sniffio")
        bad = sorted(m for m in sys.modules if m.split(".")[0] in io)
        print(",".join(bad))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_code_branches_on_a_provider_name() -> None:
    names = (
        "openai",
        "anthropic",
        "gemini",
        "google",
        "deepseek",
        "qwen",
        "groq",
        "mistral",
        "ollama",
        "vllm",
    )
    offenders = []
    for path in Path(ailib_anyio.__file__).parent.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stripped = line.strip()
            conditional = stripped.startswith(("if ", "elif ", "while ")) or " if " in stripped
            if conditional and any(f'"{n}' in stripped or f"'{n}" in stripped for n in names):
                offenders.append(f"{path.name}:{number}: {stripped}")
    assert offenders == []


def test_manifests_ship_with_the_package() -> None:
    directory = builtin_protocol_dir()
    shipped = sorted(p.stem for p in (REPO / "protocols").glob("*.yaml"))
    assert sorted(p.stem for p in directory.glob("*.yaml")) == shipped
    if REPO not in Path(ailib_anyio.__file__).resolve().parents:
        # a non-editable install: the manifests come from inside the wheel
        assert directory.name == "_protocols"
    for path in directory.glob("*.yaml"):
        load_manifest(path, strict=True)
    assert ProtocolRegistry().providers() == shipped


def test_demo_runs_end_to_end() -> None:
    for backend in ("asyncio", "trio"):
        out = subprocess.run(
            [sys.executable, "-m", "ailib_anyio", "demo", "--backend", backend],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert f"(backend: {backend})" in out.stdout
        assert "Mock reply to: What is 2+2?" in out.stdout
        assert (
            "accumulated   : 'Once upon a time, a tiny model streamed its first story.'"
            in out.stdout
        )
        assert "model asked   : get_weather" in out.stdout
        assert "second turn sent 3 messages: user, assistant, tool" in out.stdout
        assert out.stderr == ""


def test_providers_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ailib_anyio", "providers"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert rows["openai"] == ["openai_chat", "https://api.openai.com/v1"]
    assert set(rows) == set(ProtocolRegistry().providers())


def test_readme_provider_table_is_generated_from_the_manifests() -> None:
    from ailib_anyio._cli._main import providers_table

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- providers:start -->\n", "<!-- providers:end -->"
    embedded = readme.split(start, 1)[1].split(end, 1)[0].strip()
    assert embedded == providers_table(ProtocolRegistry()), (
        "README's provider table is stale: paste `python -m ailib_anyio providers --markdown`"
    )
