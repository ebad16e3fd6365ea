"""The plain command line: ``demo | mock-server | providers | protocols check`` on the core
dependencies alone (argparse). ``_entry`` runs it when the ``cli`` extra (click, rich) is
not installed; with it, ``_app``'s ``ailib`` has these commands too, with the same output.

``demo`` is the project's main job on a fresh machine: it starts the built-in mock
provider on 127.0.0.1 and runs a chat, a stream and a two-turn tool call through the
public API — no API key, no network. ``protocols check`` is for manifest authors: it
loads manifests, reports every problem located, then fuzzes their rules.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Sequence

import anyio

from .._client._client import open_client
from .._core._types import ContentDelta, Finished, Message, ToolDefinition, Usage
from .._protocol._registry import ProtocolRegistry

__all__ = ["main"]

WEATHER_TOOL = ToolDefinition(
    name="get_weather",
    description="Current weather for a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)


async def run_demo(model: str = "openai/gpt-4o", backend: str = "asyncio") -> None:
    """Chat, stream and a tool-call round trip against the loopback mock provider."""
    from ..testing import MockProvider, ScriptedReply, ScriptedToolCall

    async with MockProvider() as mock:
        print(f"mock provider listening on {mock.base_url} (backend: {backend})")
        async with open_client(model, api_key="mock-key", base_url=mock.openai_base_url) as client:
            # 1. a plain chat
            reply = await client.chat().system("Be brief.").user("What is 2+2?").execute()
            print("\n[chat]")
            print(f"  content       : {reply.content}")
            raw = reply.finish_reason.raw if reply.finish_reason is not None else None
            print(f"  finish_reason : {reply.finish_reason} (raw {raw!r})")
            if reply.usage is not None:
                usage = reply.usage
                print(f"  usage         : {usage.input_tokens} in / {usage.output_tokens} out")

            # 2. a stream, printed as it arrives
            story = "Once upon a time, a tiny model streamed its first story."
            mock.enqueue(ScriptedReply(content=story, chunk_size=6))
            print("\n[stream]\n  ", end="")
            async with client.chat().user("Tell a story").stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        print(event.text, end="", flush=True)
                    elif isinstance(event, Usage):
                        counts = f"{event.input_tokens} in / {event.output_tokens} out"
                    elif isinstance(event, Finished):
                        print(f"\n   finished: {event.finish_reason}, usage {counts}")
            print(f"  accumulated   : {stream.response.content!r}")

            # 3. a two-turn tool call: the model asks, we answer, the model replies
            mock.enqueue(
                ScriptedReply(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})])
            )
            question = Message.user("What's the weather in Paris?")
            first = await client.chat().messages([question]).tools([WEATHER_TOOL]).execute()
            call = first.tool_calls[0]
            print("\n[tool call]")
            print(f"  model asked   : {call.name}({json.dumps(dict(call.arguments))}) id={call.id}")
            result = json.dumps({"city": call.arguments["city"], "temp_c": 18, "sky": "clear"})
            mock.enqueue(ScriptedReply(content="It is 18 °C and clear in Paris."))
            turn = [question, Message.assistant(tool_calls=first.tool_calls)]
            turn.append(Message.tool(call.id or "", result))
            async with client.chat().messages(turn).tools([WEATHER_TOOL]).stream() as stream:
                async for event in stream:
                    if isinstance(event, ContentDelta):
                        print(f"  (streamed)    : {event.text!r}")
            print(f"  tool result   : {result}")
            print(f"  final answer  : {stream.response.content}")
            body = mock.requests[-1].json
            # the turns are "messages" (OpenAI, Anthropic) or "contents" (Gemini)
            sent = body.get("messages") or body.get("contents") or []
            roles = ", ".join(str(m.get("role")) for m in sent)
            print(f"  second turn sent {len(sent)} messages: {roles}")
        print("\ndemo finished: every request went to the loopback mock provider.")


def _mock_server(host: str, port: int) -> None:
    from ..testing import serve_forever

    def ready(mock: object) -> None:
        print(f"mock provider listening on http://{host}:{getattr(mock, 'port', port)}", flush=True)

    try:
        anyio.run(lambda: serve_forever(host, port, ready=ready))
    except KeyboardInterrupt:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ailib_anyio", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo", help="chat, stream and tool call against the built-in mock provider"
    )
    demo.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    demo.add_argument(
        "--model", default="openai/gpt-4o", help="provider/model whose manifest to use"
    )
    server = sub.add_parser("mock-server", help="run the loopback mock provider until interrupted")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8765)
    providers = sub.add_parser("providers", help="list the provider manifests found")
    providers.add_argument(
        "--markdown", action="store_true", help="a Markdown table of what works for each"
    )
    protocols = sub.add_parser("protocols", help="work with provider manifests")
    protocols_sub = protocols.add_subparsers(dest="action", required=True)
    check = protocols_sub.add_parser(
        "check",
        help="load manifests, then fuzz their rules (round trips and totality)",
        description="Load each manifest (every problem reported as file:line:col), then "
        "fuzz its streaming, response and error rules with hypothesis: generated events "
        "encoded as the API family's servers send them must decode to the same events, "
        "and any bytes must give events or a typed error. Exit 1 if anything failed.",
    )
    check.add_argument("manifests", nargs="+", metavar="MANIFEST", help="manifest files")
    check.add_argument("--strict", action="store_true", help="unknown keys and fields are errors")
    check.add_argument(
        "--examples",
        type=_positive,
        default=200,
        metavar="N",
        help="examples per check (default: 200, a few seconds per manifest)",
    )
    check.add_argument("--seed", type=int, default=None, help="make the run reproducible")
    args = parser.parse_args(argv)

    if args.command == "demo":
        if args.backend == "trio" and importlib.util.find_spec("trio") is None:
            print("the trio backend needs trio: pip install 'ailib-anyio[trio]'", file=sys.stderr)
            return 2
        anyio.run(run_demo, args.model, args.backend, backend=args.backend)
    elif args.command == "mock-server":
        _mock_server(args.host, args.port)
    elif args.command == "protocols":
        return check_manifests(args.manifests, args.strict, args.examples, args.seed)
    elif args.markdown:
        print(providers_table(ProtocolRegistry()))
    else:
        registry = ProtocolRegistry()
        for provider in registry.providers():
            manifest = registry.get(provider)
            print(f"{provider:20} {manifest.api_family:18} {manifest.endpoint.base_url}")
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def check_manifests(paths: Sequence[str], strict: bool, examples: int, seed: int | None) -> int:
    from ..testing._check import check_manifest

    results = [check_manifest(path, strict=strict, examples=examples, seed=seed) for path in paths]
    failed = results.count(False)
    print(f"\n{len(paths) - failed} of {len(paths)} manifest(s) passed")
    return 1 if failed else 0


#: the README columns and the manifest capability each one reads
TABLE_CAPABILITIES = (
    ("stream", "streaming"),
    ("tools", "tools"),
    ("vision", "vision"),
    ("reasoning", "reasoning"),
    ("embeddings", "embeddings"),
)


def providers_table(registry: ProtocolRegistry) -> str:
    """What works for each provider, read from the manifests (the README embeds this)."""
    head = ["provider", "API family", *(title for title, _ in TABLE_CAPABILITIES), "models"]
    rows = [head, ["---"] * len(head)]
    for provider in registry.providers():
        manifest = registry.get(provider)
        name = provider + (f" ({', '.join(manifest.aliases)})" if manifest.aliases else "")
        marks = ["yes" if manifest.has_capability(cap) else "—" for _, cap in TABLE_CAPABILITIES]
        models = manifest.metadata.models if manifest.metadata is not None else {}
        rows.append([name, f"`{manifest.api_family}`", *marks, str(len(models))])
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
