"""``export ORDER_ID``: write an order's journal as tamper-evident JSON Lines (header, then events)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from buyer_agent.commands._common import EXIT_OK, add_state_dir, open_state_journal
from buyer_agent.journal._export import export_order

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``export`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="export one order's journal as JSON Lines",
        description=(
            "Write an order's journal as JSON Lines: a header (format, version, framework version, "
            "order id, spec, final state), then every event exactly as stored, each carrying the hash "
            "of the previous one, so the file is tamper-evident. Secrets are never in it."
        ),
    )
    parser.add_argument("order_id", metavar="ORDER_ID", help="the order to export")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="output file (default ORDER_ID.jsonl; - = stdout)",
    )
    add_state_dir(parser)


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code (0 written, 1 no such order)."""
    with open_state_journal(args.state_dir) as journal:
        journal.order(args.order_id)  # a clear error before any file is created
        if args.output == "-":
            export_order(journal, args.order_id, sys.stdout)
            sys.stdout.flush()
            return EXIT_OK
        path = Path(args.output or f"{args.order_id}.jsonl")
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "w", encoding="utf-8") as fh:
            count = export_order(journal, args.order_id, fh)
        tmp.replace(path)
    print(f"exported {count} events of {args.order_id} to {path}", file=sys.stderr)
    return EXIT_OK
