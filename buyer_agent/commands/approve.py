"""``approve ORDER_ID``: a human approves an order held above its approval threshold."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded, print_json, require_journal
from buyer_agent.workflow import OrderSummary

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``approve`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "approve",
        help="approve an order waiting in awaiting_approval",
        description=(
            "Approve an order whose price is above its approval threshold (state awaiting_approval). "
            "The approval is written to the journal; the process driving the order (an LLM tool loop, "
            "the MCP server, or `resume`) then places the order. Needs no market connection."
        ),
    )
    parser.add_argument(
        "order_id", metavar="ORDER_ID", help="the order (see `orders --state awaiting_approval`)"
    )
    add_state_dir(parser)
    parser.add_argument("--json", action="store_true", help="print the order's summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    agent = BuyerAgent(state_dir=require_journal(args.state_dir))

    async def go() -> OrderSummary:
        async with agent:
            return await agent.approve(args.order_id)

    summary = asyncio.run(go())
    if args.json:
        print_json(summary.to_json())
    else:
        price = (summary.quote or {}).get("price") or {}
        print(
            f"approved {summary.order_id}: now {summary.state.value}"
            + (f" ({price.get('amount')} {price.get('currency')})" if price else "")
        )
    return EXIT_OK
