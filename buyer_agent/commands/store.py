"""``store copy --from SRC --to DST``: move journals between stores (SQLite ↔ PostgreSQL), verified."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from buyer_agent.commands._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, guarded, print_json
from buyer_agent.journal import CopyableStore, CopyReport, OrderStore, copy_store, open_store

__all__ = ["register", "run"]

_WHERE = "a state directory, a .db file, or postgresql://user:password@host:port/database"


def register(subparsers: Any) -> None:
    """Add ``store`` (and its ``copy`` action) to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "store",
        help="manage where orders live: copy journals between SQLite and PostgreSQL",
        description="Work on whole stores of orders (a SQLite journal, a PostgreSQL database).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    copy = actions.add_parser(
        "copy",
        help="copy every order (events, ledger), meta value and nonce counter to another store",
        description=(
            "Copy every order of one store into another — its row, every event with the same hashes, "
            "its ledger row — and the stored meta values and nonce counters. Each order's hash chain is "
            "verified as it is read and again as it arrives; a broken chain is refused (naming the order "
            "and the event) and the others are copied. An order already at the destination with the "
            "identical journal is left alone; a different one under the same id is refused, never "
            "overwritten. Running it again completes an interrupted copy. Exit codes: 0 copied, "
            "1 some order refused or a store failed, 2 bad usage."
        ),
    )
    copy.add_argument("--from", dest="source", metavar="STORE", required=True, help=f"copy from: {_WHERE}")
    copy.add_argument("--to", dest="destination", metavar="STORE", required=True, help=f"copy to: {_WHERE}")
    copy.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code (0 copied, 1 refused or failed, 2 bad usage)."""
    return guarded(lambda: asyncio.run(_copy(args)))


async def _copy(args: argparse.Namespace) -> int:
    source = await open_store(args.source, create=False, field="--from")
    try:
        destination = await open_store(args.destination, create=True, field="--to")
        try:
            if destination.label == source.label:
                print(f"error: --from and --to are the same store ({source.label})", file=sys.stderr)
                return EXIT_USAGE
            report = await copy_store(_copyable(source), _copyable(destination))
        finally:
            await destination.aclose()
    finally:
        await source.aclose()
    for refusal in report.refused:
        print(f"error: refused {refusal}", file=sys.stderr)
    if args.json:
        print_json(report.to_json())
    else:
        print(_summary(report))
    return EXIT_FAILED if report.refused else EXIT_OK


def _copyable(store: OrderStore) -> CopyableStore:
    if not isinstance(store, CopyableStore):  # pragma: no cover - both built-in stores are
        raise TypeError(f"{store.label} cannot hand over or take in whole journals")
    return store


def _summary(report: CopyReport) -> str:
    parts = [
        f"copied {len(report.copied)} orders ({report.events} events) from {report.source} to "
        f"{report.destination}",
        f"{len(report.present)} already there",
        f"{len(report.refused)} refused",
        f"{report.meta} meta values",
        f"{report.nonces} nonce counters",
    ]
    if report.meta_kept:
        parts.append(f"kept the destination's {', '.join(report.meta_kept)}")
    return "; ".join(parts)
