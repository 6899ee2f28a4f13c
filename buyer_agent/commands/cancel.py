"""``cancel ORDER_ID [--abandon]``: a person closes an open order (a journal entry; no market needed).

Before money moved (created … ordered) the order is cancelled and its budget hold released. Once
money moved it is refused. ``--abandon`` closes an order of an embedded sandbox, whose market and
chains died with the process that ran it, as failed with ``ORDER_ABANDONED``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent._urls import EMBEDDED
from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import EXIT_FAILED, EXIT_OK, add_state_dir, guarded, print_json
from buyer_agent.journal import DB_NAME
from buyer_agent.workflow import TERMINAL, OrderState, OrderSummary

__all__ = ["BEFORE_MONEY", "register", "run"]

#: The states an order can be cancelled from: no payment was signed yet.
BEFORE_MONEY = frozenset(
    {
        OrderState.CREATED,
        OrderState.PAIRED,
        OrderState.SEARCHED,
        OrderState.QUOTED,
        OrderState.AWAITING_APPROVAL,
        OrderState.ORDERED,
    }
)


def register(subparsers: Any) -> None:
    """Add ``cancel`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cancel",
        help="close an open order before money moved (or --abandon one of a dead embedded sandbox)",
        description=(
            "Cancel an open order before any money moved (states created … ordered): journaled as "
            "`cancel`, its budget hold released. Refused once a payment was signed. With --abandon, "
            "an order placed on the embedded sandbox (whose market and chains died with the process "
            "that ran it) is closed as failed (ORDER_ABANDONED), journaled. Needs no market."
        ),
    )
    parser.add_argument("order_id", metavar="ORDER_ID", help="the order (see `orders`)")
    add_state_dir(parser)
    parser.add_argument("--reason", metavar="TEXT", default=None, help="why (journaled)")
    parser.add_argument(
        "--abandon",
        action="store_true",
        help="close an order of a dead embedded sandbox, even after money moved on its chains",
    )
    parser.add_argument("--json", action="store_true", help="print the order's summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    agent = BuyerAgent(state_dir=args.state_dir)
    if not (agent.state_dir / DB_NAME).exists():
        raise JournalError(f"no journal in {agent.state_dir} (give --state-dir)")
    summary = agent.order(args.order_id)
    refusal = _refusal(agent, summary, args.abandon)
    if refusal is not None:
        agent.journal.close()
        print(
            f"error: cannot {'abandon' if args.abandon else 'cancel'} {args.order_id}: {refusal}",
            file=sys.stderr,
        )
        return EXIT_FAILED

    async def go() -> OrderSummary:
        async with agent:
            if args.abandon and summary.state not in BEFORE_MONEY:
                reason = args.reason or "its embedded sandbox died with the process that ran it"
                return await agent.abandon(args.order_id, reason)
            reason = args.reason or "cancelled by a person"
            if summary.state is OrderState.ORDERED:
                return await agent.withdraw(args.order_id, reason)
            return await agent.cancel(args.order_id, reason)

    done = asyncio.run(go())
    if args.json:
        print_json(done.to_json())
    else:
        print(f"{done.order_id}  {done.state.value}")
    return EXIT_OK


def _refusal(agent: BuyerAgent, summary: OrderSummary, abandon: bool) -> str | None:
    """Why the order cannot be closed this way (None when it can)."""
    state = summary.state
    if state in TERMINAL:
        return f"it is already {state.value}"
    if state in BEFORE_MONEY:
        return None
    placed = agent.order_market(summary.order_id)
    if not abandon:
        hint = (
            "; its embedded sandbox is gone: `cancel --abandon` closes it"
            if placed == EMBEDDED
            else f"; `resume {summary.order_id}` drives it to its end"
        )
        return f"money moved (state {state.value}): an order is only cancelled before it is paid{hint}"
    if placed != EMBEDDED:
        return (
            f"it was placed on {placed or 'an unrecorded market'}, not the embedded sandbox: "
            f"`resume {summary.order_id}` drives it to its end there"
        )
    if state is OrderState.DISPUTED:
        return "it is disputed: its refund is the market's to settle"
    return None
