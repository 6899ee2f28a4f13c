"""``mcp``: serve the buyer's tools over the Model Context Protocol on stdio."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import EXIT_OK, EXIT_USAGE, add_state_dir, guarded
from buyer_agent.commands._telemetry import observer_for
from buyer_agent.task import load_task, parse_task

__all__ = ["SANDBOX_TASK", "register", "run"]

# The order the tools buy when the server runs on the embedded sandbox without --task: demo money
# on local chains, so a budget may be assumed. Against a real market only a task file sets one.
SANDBOX_TASK = """\
market: sandbox
task: {service_type: compute.marketplace, operation: sha256}
budget: "2.50 USDC"
strategy: cheapest
payment: {rail: wallet, chain: evm}
"""


def register(subparsers: Any) -> None:
    """Add ``mcp`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "mcp",
        help="serve the buyer's tools to an MCP client over stdio",
        description=(
            "Serve the buyer agent's tools (search_market, list_candidates, choose_quote, place_order, "
            "pay_order, execute_order, order_status, confirm_order, dispute_order, cancel_order, "
            "list_orders) over the Model Context Protocol on stdin/stdout, for MCP clients such as "
            "Claude Desktop or IDEs. The task file sets the budget, strategy, rail, acceptance and "
            "approval threshold; the model never does. With no market configured the agent buys on "
            "the embedded sandbox. Only protocol messages go to stdout; logs go to stderr. Needs the "
            "optional mcp package (pip install 'buyer-agent[mcp]')."
        ),
    )
    add_state_dir(parser)
    parser.add_argument(
        "--market",
        metavar="URL",
        default=None,
        help="the market's URL (overrides $PEAQOS_ORCHESTRATION_URL and the task's); 'sandbox' = embedded",
    )
    parser.add_argument(
        "--task",
        metavar="FILE",
        default=None,
        help="the task file whose order the tools buy (budget, strategy, rail); without one the "
        "embedded sandbox buys with a 2.50 USDC budget, cheapest first, and a real market answers "
        "NOT_CONFIGURED",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from buyer_agent.tools._mcp import MCP_MISSING, serve_stdio

    try:
        import mcp  # noqa: F401
    except ImportError:
        print(f"error: {MCP_MISSING}", file=sys.stderr)
        return EXIT_USAGE
    market = args.market if args.market not in (None, "") else os.environ.get("PEAQOS_ORCHESTRATION_URL")
    observer = observer_for(args)
    if args.task:
        task = load_task(args.task)
        agent = BuyerAgent.from_task(task, market=args.market, state_dir=args.state_dir, observer=observer)
    elif market in (None, "", "sandbox"):
        demo = parse_task(SANDBOX_TASK, source="<built-in sandbox task>")
        agent = BuyerAgent.from_task(demo, market=args.market, state_dir=args.state_dir, observer=observer)
    else:
        agent = BuyerAgent.from_env(market=args.market, state_dir=args.state_dir, observer=observer)
    asyncio.run(serve_stdio(agent))
    return EXIT_OK
