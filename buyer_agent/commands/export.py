"""``export ORDER_ID``: write an order's journal as tamper-evident JSON Lines (header, then events)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from buyer_agent.commands._common import EXIT_OK, EXIT_USAGE, add_state_dir, guarded, open_state_journal
from buyer_agent.commands._output import OutputError, export_key, write_atomically
from buyer_agent.commands._store_read import (
    add_store,
    export_store_lines,
    no_journal,
    reading,
    store_export_key,
    store_target,
)
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
            "of the previous one, so the file is tamper-evident, and the agent's EIP-191 signature of "
            "the last hash (by $BUYER_AGENT_EVM_KEY, or the sandbox's demo key for its orders), so it "
            "proves who wrote it. Keys and other secrets are never in it."
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
    add_store(parser)


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code (0 written, 1 no such order, 2 bad output path)."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    try:
        return _export(args)
    except OutputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


async def _store_lines(target: str, order_id: str) -> tuple[list[str], bool]:
    async with reading(target) as store:
        if store is None:
            raise no_journal(target)
        await store.order(order_id)  # a clear error before any file is created
        key = await store_export_key(store, order_id)
        return await export_store_lines(store, order_id, key=key), key is not None


def _export(args: argparse.Namespace) -> int:
    target = store_target(args)
    if target is not None:
        return _export_lines(args, *asyncio.run(_store_lines(target, args.order_id)))
    with open_state_journal(args.state_dir) as journal:
        journal.order(args.order_id)  # a clear error before any file is created
        key = export_key(journal, args.order_id)
        if key is None:
            print(
                f"warning: {args.order_id} exported unsigned: no agent key for its payer "
                "(set BUYER_AGENT_EVM_KEY to the key that paid)",
                file=sys.stderr,
            )
        if args.output == "-":
            export_order(journal, args.order_id, sys.stdout, key=key)
            sys.stdout.flush()
            return EXIT_OK
        path = Path(args.output or f"{args.order_id}.jsonl")
        count = write_atomically(path, lambda fh: export_order(journal, args.order_id, fh, key=key))
    print(f"exported {count} events of {args.order_id} to {path}", file=sys.stderr)
    return EXIT_OK


def _export_lines(args: argparse.Namespace, lines: list[str], signed: bool) -> int:
    """Write an export read from a store (the same bytes as from the state directory's journal)."""
    if not signed:
        print(
            f"warning: {args.order_id} exported unsigned: no agent key for its payer "
            "(set BUYER_AGENT_EVM_KEY to the key that paid)",
            file=sys.stderr,
        )
    text = "".join(line + "\n" for line in lines)
    if args.output == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return EXIT_OK
    path = Path(args.output or f"{args.order_id}.jsonl")
    write_atomically(path, lambda fh: fh.write(text))
    print(f"exported {len(lines) - 1} events of {args.order_id} to {path}", file=sys.stderr)
    return EXIT_OK
