"""The entry point of ``ailib``, ``ailib-anyio`` and ``python -m ailib_anyio``.

With the ``cli`` extra installed (click and rich) this is the full command line of
``_app``. Without it, the commands that need nothing beyond the core dependencies
(``demo``, ``mock-server``, ``providers``, ``protocols check``) still run, through the
plain argparse command line of ``_main``, so the project's first command on a fresh
machine works from a bare ``pip install``; the others say which extra to install.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: the commands that need the ``cli`` extra
EXTRA_COMMANDS = frozenset({"chat", "models", "batch"})


def _has_extra() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("click", "rich"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default: ``sys.argv[1:]``); return the exit
    code (0 ok, 1 provider or runtime error, 2 usage or configuration error, 130
    interrupted)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if _has_extra():
        from ._app import run

        return run(args)
    command = next((a for a in args if not a.startswith("-")), None)
    if command in EXTRA_COMMANDS or (command == "protocols" and "list" in args):
        print(
            f"ailib {command}: this command needs the cli extra (click and rich):"
            " pip install 'ailib-anyio[cli]'",
            file=sys.stderr,
        )
        return 2
    from ._main import main as plain_main

    return plain_main(args)
