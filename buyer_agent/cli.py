"""The command line: ``python -m buyer_agent`` / ``buyer-agent``.

Each sub-command lives in ``buyer_agent/commands/<name>.py`` with two functions,
``register(subparsers)`` and ``run(args) -> int``; this module only wires them together and turns
framework errors into clean exit codes (``commands._common.guarded``: 2 for bad usage or input, 1
otherwise), never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from types import ModuleType

from buyer_agent._version import __version__
from buyer_agent._waits import show_waits
from buyer_agent.commands._common import EXIT_USAGE, guarded

__all__ = ["COMMANDS", "build_parser", "main"]

#: Sub-command modules under ``buyer_agent.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "resume",
    "orders",
    "show",
    "diagram",
    "export",
    "import",
    "replay",
    "evidence",
    "sandbox",
    "approve",
    "pair",
    "cancel",
    "mcp",
    "bench",
    "networks",
    "doctor",
    "store",
)
#: Command names whose module is named otherwise (``import`` is a Python keyword).
MODULES: dict[str, str] = {"import": "import_journal"}


def _load(name: str) -> ModuleType:
    return importlib.import_module(f"buyer_agent.commands.{MODULES.get(name, name)}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="buyer-agent",
        description=(
            "Autonomous buyer agent for peaqOS Machine Markets: pair, search, choose a quote, "
            "order, pay on-chain, confirm or dispute, exactly once. With no market configured, "
            "commands use an embedded local sandbox market with real local chains."
        ),
    )
    parser.add_argument("--version", action="version", version=f"buyer-agent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _load(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    show_waits()  # every wait (retries, slow answers) is a line on stderr, even at the default level
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    command = _load(args.command)
    code: int = guarded(lambda: command.run(args))
    return code
