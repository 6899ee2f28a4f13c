"""``orders``: the journal's orders, one line each (or a JSON list)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded, print_json
from buyer_agent.commands._store_read import add_store, reading, store_target
from buyer_agent.history import order_summary
from buyer_agent.journal import DB_NAME
from buyer_agent.workflow import OrderState, OrderSummary, fold

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``orders`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "orders",
        help="list the journal's orders",
        description="List the journal's orders, oldest first: id, state, last update, service and price.",
    )
    add_state_dir(parser)
    add_store(parser)
    parser.add_argument(
        "--state",
        metavar="S",
        choices=[s.value for s in OrderState],
        default=None,
        help=f"only orders in this state ({', '.join(s.value for s in OrderState)})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON list of objects (order_id, state, updated_at, quote, payment, …)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


async def _from_store(target: str, state: str | None) -> list[OrderSummary]:
    async with reading(target) as store:
        if store is None:  # no journal there yet: no orders (and looking creates none)
            return []
        records = await store.orders([state] if state else None)
        return [order_summary(fold(await store.events(r.order_id)), store.label) for r in records]


def _run(args: argparse.Namespace) -> int:
    target = store_target(args)
    if target is not None:
        return _print(asyncio.run(_from_store(target, args.state)), args)
    agent = BuyerAgent(state_dir=args.state_dir)
    if not (agent.state_dir / DB_NAME).exists():
        # No journal yet: no orders (and looking creates none).
        if args.json:
            print_json([])
        return EXIT_OK
    journal = agent.journal
    label = str(journal.path) if journal.path else ":memory:"
    try:
        records = journal.orders([args.state] if args.state else None)
        summaries = [order_summary(fold(journal.events(r.order_id)), label) for r in records]
    finally:
        journal.close()
    return _print(summaries, args)


def _print(summaries: list[OrderSummary], args: argparse.Namespace) -> int:
    if args.json:
        print_json([s.to_json() for s in summaries])
        return EXIT_OK
    for s in summaries:
        quote = s.quote or {}
        price = quote.get("price") or {}
        service = f"{quote.get('service_id')} {price.get('amount')} {price.get('currency')}" if quote else "-"
        print(f"{s.order_id}  {s.state.value:<17} {s.updated_at}  {service}")
    return EXIT_OK
