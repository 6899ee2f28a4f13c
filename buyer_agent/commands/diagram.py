"""``diagram``: print the order state machine as Mermaid text, generated from the code."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded
from buyer_agent.workflow import mermaid_diagram

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``diagram`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diagram",
        help="print the order state machine (Mermaid)",
        description=(
            "Print the order state machine as a Mermaid stateDiagram-v2, generated from the transition "
            "table in the code (the README's diagram is this output)."
        ),
    )
    add_state_dir(parser)


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""

    def body() -> int:
        sys.stdout.write(mermaid_diagram())
        sys.stdout.flush()  # a closed pipe shows here, inside guarded, not at exit
        return EXIT_OK

    return guarded(body)
