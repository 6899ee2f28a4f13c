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
from typing import Any

from buyer_agent._logformat import LOG_FORMATS, configure_logging
from buyer_agent._version import __version__
from buyer_agent._waits import WAIT_LOGGER, show_waits
from buyer_agent.commands._common import EXIT_USAGE, guarded
from buyer_agent.commands._telemetry import with_telemetry

__all__ = ["COMMANDS", "build_parser", "main"]

#: Sub-command modules under ``buyer_agent.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "run",
    "submit",
    "worker",
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
    "pay",
    "mcp",
    "bench",
    "networks",
    "doctor",
    "ui",
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
    _add_global_flags(parser, default="text")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _load(name).register(subparsers)
    for sub in subparsers.choices.values():
        # Also after the sub-command (``run task.yaml --log-format json``); given there, it wins.
        _add_global_flags(sub, default=argparse.SUPPRESS)
    return parser


def _add_global_flags(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default,
        help="stderr lines as text (default) or one JSON object per line (time, level, order_id, step, "
        "message, fields)",
    )
    parser.add_argument(
        "--metrics-port",
        metavar="N",
        type=port_number,
        default=None if default == "text" else argparse.SUPPRESS,
        help="serve Prometheus metrics on http://127.0.0.1:N/metrics while the command runs "
        "(needs the buyer-agent[otel] extra)",
    )


def port_number(text: str) -> int:
    """A TCP port given on the command line (1..65535)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is 1..65535")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    # Set up before parsing, so even a usage error is a JSON line when JSON was asked for.
    undo = configure_logging(_asked_format(args_in))
    waits: logging.Handler | None = None
    try:
        parser = build_parser()
        args = parser.parse_args(args_in)
        if args.verbose:
            logging.getLogger().setLevel(logging.DEBUG)
        # Every wait (retries, slow answers) is a line on stderr, even at the default level.
        waits = show_waits(fmt=args.log_format)
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        command = _load(args.command)
        # The metrics endpoint while the command runs; the observer run, resume and mcp drive with.
        code: int = guarded(lambda: with_telemetry(args, lambda: command.run(args)))
        return code
    finally:
        if waits is not None:
            logging.getLogger(WAIT_LOGGER).removeHandler(waits)
        undo()


def _asked_format(argv: list[str]) -> str:
    """The ``--log-format`` the arguments ask for (the last one given), before they are parsed."""
    fmt = "text"
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--log-format" and i + 1 < len(argv):
            fmt = argv[i + 1]
        elif arg.startswith("--log-format="):
            fmt = arg.split("=", 1)[1]
    return fmt if fmt in LOG_FORMATS else "text"
