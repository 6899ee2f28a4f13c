"""``submit TASK.yaml``: enqueue orders in a store for the fleet's workers, without driving them."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded, print_json
from buyer_agent.commands._store_write import add_write_store, opened, whole_number, write_target
from buyer_agent.fleet import fleet_agent, submit_orders
from buyer_agent.task import load_task

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``submit`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "submit",
        help="enqueue orders from a task file for the workers (see worker)",
        description=(
            "Journal COUNT new orders of the task file in the store, in state created, without driving "
            "them: the workers of the task's market (`python -m buyer_agent worker`) claim and drive "
            "them. Nothing is asked of the market. The market must outlive this process (a served "
            "sandbox's URL or a real market's), and the machine id comes from the task file or "
            "$PEAQOS_MACHINE_ID. Prints the new order ids, one per line."
        ),
        epilog="exit codes: 0 submitted, 1 the store failed, 2 bad usage or bad task file",
    )
    parser.add_argument("task", metavar="TASK.yaml", help="the task file (see the README's 'Task file')")
    add_state_dir(parser)
    add_write_store(parser)
    parser.add_argument(
        "--market",
        metavar="URL",
        default=None,
        help="the market the orders are for (overrides $PEAQOS_ORCHESTRATION_URL and the task's market)",
    )
    parser.add_argument("--count", metavar="N", default="1", help="how many orders of the task (default 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object: order_ids, store, market")


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    count = whole_number(args.count, "--count", 1, 100_000)
    task = load_task(args.task)
    agent = fleet_agent(task, args.market, field="--market" if args.market else "market")
    target = write_target(args)

    async def go() -> tuple[list[str], str]:
        async with opened(target) as store:
            return await submit_orders(store, task, agent, count), store.label

    ids, label = asyncio.run(go())
    if args.json:
        print_json({"order_ids": ids, "store": label, "market": agent.market_label})
    else:
        print("\n".join(ids))
    return EXIT_OK
