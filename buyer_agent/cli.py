"""The command line: ``python -m buyer_agent`` / ``buyer-agent``. Each command calls library code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from buyer_agent._version import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="buyer-agent",
        description="Autonomous buyer agent for peaqOS Machine Markets.",
    )
    parser.add_argument("--version", action="version", version=f"buyer-agent {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 2
