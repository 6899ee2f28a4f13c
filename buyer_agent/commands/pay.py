"""``pay ORDER_ID --tx HASH``: adopt a payment the operator already made, and drive the order to its end.

The pre-paid flow of the orders reference: an order in ``ordered`` goes on from the proof (or the
escrow lock) with a transaction made elsewhere. The chain is read (token, payer, payee, amount, depth),
nothing is signed for the payment; a transaction that does not pay the order exactly is refused
naming the field and the order stays ``ordered``. The order is driven on the market it was placed on
(``--market`` moves it, as ``resume`` does), keys from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent._progress import progress_printer
from buyer_agent._urls import EMBEDDED
from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_state_dir,
    exit_code,
    guarded,
    print_json,
)
from buyer_agent.commands.run import describe, human
from buyer_agent.journal import DB_NAME
from buyer_agent.workflow import OrderState, OrderSummary

__all__ = ["register", "run"]

#: An EVM transaction hash: the only kind of payment adopted today.
_EVM_TX = re.compile(r"^0x[0-9a-fA-F]{64}$")


def register(subparsers: Any) -> None:
    """Add ``pay`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "pay",
        help="adopt a payment already made for an ordered order (--tx HASH), then drive it to its end",
        description=(
            "The pre-paid flow: ORDER_ID (in state ordered) is paid by a transaction the operator already "
            "sent. The chain is read, nothing is signed: the transaction must be mined at the chain's "
            "depth, sent by the order's payer (the agent's wallet) and move exactly the agreed amount of "
            "the pinned token to the payee, or into the escrow for this order. A transaction that does "
            "not is refused naming the field (exit 1), journaled, and the order stays ordered. Otherwise "
            "the order goes on from the proof (or escrow lock): execute, confirm, as `resume` would, on "
            "the market it was placed on (--market moves it). EVM payments only."
        ),
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("order_id", metavar="ORDER_ID", help="the order (see `orders`)")
    parser.add_argument(
        "--tx", metavar="HASH", required=True, help="the payment's transaction hash (0x + 64 hex digits)"
    )
    add_state_dir(parser)
    parser.add_argument(
        "--market", metavar="URL", default=None, help="drive the order on this market (default: its own)"
    )
    parser.add_argument("--json", action="store_true", help="print the order's summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if not _EVM_TX.match(args.tx or ""):
        print(
            f"error: --tx must be an EVM transaction hash (0x + 64 hex digits), not {args.tx!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    reader = BuyerAgent(state_dir=args.state_dir)
    if not (reader.state_dir / DB_NAME).exists():
        raise JournalError(f"no journal in {reader.state_dir} (give --state-dir)")
    try:
        summary = reader.order(args.order_id)
        placed = reader.order_market(args.order_id)
    finally:
        reader.journal.close()
    if summary.state is not OrderState.ORDERED:
        print(
            f"error: cannot adopt a payment for {args.order_id}: it is {summary.state.value}, and only an "
            "order in ordered (placed, not paid) takes one",
            file=sys.stderr,
        )
        return EXIT_FAILED
    market = args.market or placed
    if market is None or market == EMBEDDED:
        where = "the embedded sandbox, whose market died with its process" if market else "no recorded market"
        print(
            f"error: {args.order_id} was placed on {where}; give its market with --market URL",
            file=sys.stderr,
        )
        return EXIT_USAGE

    async def go() -> OrderSummary:
        agent = BuyerAgent.from_env(market=market, state_dir=args.state_dir, on_progress=progress_printer())
        async with agent:
            if args.market is not None and args.market != placed:
                agent.move_order(args.order_id, agent.market_label)
            adopted = await agent.adopt_payment(args.order_id, args.tx)
            return await agent.drive(adopted.order_id)

    done = asyncio.run(go())
    if args.json:
        print_json(done.to_json())
    else:
        print(human(done))
    code = exit_code(done)
    if code != EXIT_OK:
        print(f"error: order {done.order_id} ended {describe(done)}", file=sys.stderr)
    return code
