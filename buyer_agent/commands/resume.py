"""``resume [ORDER_ID]``: drive on the open orders of the journal after a stop or a crash."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from buyer_agent._progress import progress_printer
from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_USAGE,
    add_state_dir,
    exit_code,
    guarded,
    print_json,
    worst,
)
from buyer_agent.commands.run import describe
from buyer_agent.workflow import OrderSummary

__all__ = ["register", "run"]

_EMBEDDED_HELP = (
    "cannot resume on the embedded sandbox: its market and chains died with the process that ran "
    "the order. Give the market it was placed on with --market URL (or PEAQOS_ORCHESTRATION_URL)"
)


def register(subparsers: Any) -> None:
    """Add ``resume`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "resume",
        help="drive on open orders after a stop or a crash",
        description=(
            "Pick up every open (non-terminal) order in the journal, or just ORDER_ID, and drive it to its "
            "end. A resumed order asks the market or the chain what already happened: it never repeats a "
            "side effect and never signs a second payment. Needs the market the orders were placed on "
            "(--market or PEAQOS_ORCHESTRATION_URL, keys from the environment): orders placed on the "
            "embedded sandbox cannot be resumed, its state died with its process. An order another live "
            "process is driving is left to it: named on stderr as driven elsewhere, not in the list and not "
            "in the exit code (resume ORDER_ID of such an order fails with 1)."
        ),
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("order_id", metavar="ORDER_ID", nargs="?", default=None, help="only this order")
    add_state_dir(parser)
    parser.add_argument(
        "--market", metavar="URL", default=None, help="the market's URL (default: $PEAQOS_ORCHESTRATION_URL)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of the resumed orders' summaries"
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    agent = BuyerAgent.from_env(market=args.market, state_dir=args.state_dir, on_progress=progress_printer())

    # Orders another live process holds the lease of: left to it, named on stderr, not counted.
    elsewhere: dict[str, str] = {}

    async def go() -> list[OrderSummary] | None:
        async with agent:
            mine, others = agent.resumable(args.order_id)
            if agent.uses_sandbox:
                if mine or others:
                    return None
                return []
            for order_id in others:
                placed = agent.order_market(order_id)
                print(f"skipping {order_id}: placed on {placed}, not {agent.market_label}", file=sys.stderr)
            summaries = await agent.resume(args.order_id, on_elsewhere=elsewhere.__setitem__) if mine else []
            for order_id, holder in elsewhere.items():
                print(
                    f"skipping {order_id}: driven elsewhere, by another live process ({holder})",
                    file=sys.stderr,
                )
            return [s for s in summaries if s.order_id not in elsewhere]

    summaries = asyncio.run(go())
    if summaries is None:
        print(f"error: {_EMBEDDED_HELP}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print_json([s.to_json() for s in summaries])
    elif not summaries:
        print("nothing to resume", file=sys.stderr)
    for s in summaries:
        if not args.json:
            print(f"{s.order_id}  {s.state.value}")
        if exit_code(s) != EXIT_OK:
            print(f"error: order {s.order_id} ended {describe(s)}", file=sys.stderr)
    return worst([exit_code(s) for s in summaries])
