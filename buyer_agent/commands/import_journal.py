"""``import FILE``: verify an exported journal, then bring the order into this state directory."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from buyer_agent.commands._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_state_dir,
    guarded,
    open_state_journal,
)
from buyer_agent.commands._trust import add_signer_arg, check_trust_args, signature_of
from buyer_agent.history import imported_context, replay_file
from buyer_agent.journal._export import JournalFileError, import_order

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``import`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "import",
        help="import an exported order journal into a state directory",
        description=(
            "Verify an exported journal (hash chain, every transition legal, final state, the agent's "
            "signature of its head hash) and copy the order into the state directory's journal. A "
            "broken or wrongly signed journal is refused, an unsigned one unless --allow-unsigned, and "
            "so is an order id that already exists there unless its journal is identical."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="a journal file written by `export`")
    parser.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="import an export that carries no signature (its origin is then unproven)",
    )
    add_signer_arg(parser)
    add_state_dir(parser)


def run(args: argparse.Namespace) -> int:
    """Run the command: 0 imported (or already there), 1 broken or conflicting, 2 unreadable."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    check_trust_args(args)
    try:
        result = replay_file(args.file)
    except JournalFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result.breakage is not None:
        print(
            f"error: refusing to import {args.file}: event {result.breakage.seq}: {result.breakage.reason}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    sig = signature_of(result, args.signer)
    if not sig.ok or (sig.status == "unsigned" and not args.allow_unsigned):
        hint = " (pass --allow-unsigned to import it anyway)" if sig.status == "unsigned" else ""
        print(f"error: refusing to import {args.file}: {sig.reason}{hint}", file=sys.stderr)
        return EXIT_FAILED
    with open_state_journal(args.state_dir, create=True) as journal:
        imported = import_order(
            journal, result.header, result.events, context=imported_context(result.header, result.events)
        )
    verb = "imported" if imported else "already present (identical)"
    print(f"{result.order_id}: {verb}, {result.count} events, state {result.state}", file=sys.stderr)
    return EXIT_OK
