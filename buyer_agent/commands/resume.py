"""``resume [ORDER_ID]``: drive on the open orders of the journal after a stop or a crash.

Each open order goes back to the market it was placed on (its URL as recorded, compared in its
normal form: ``localhost`` ≡ ``127.0.0.1``, no default port or trailing slash), or to the market
``--market`` names, which then becomes the order's market (same machine id, and a pairing checked
there first). An open order that cannot be resumed is listed with the reason and the exit code is
non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from buyer_agent._errors import BuyerAgentError, JournalError, StateError
from buyer_agent._progress import progress_printer
from buyer_agent._urls import EMBEDDED, normalise_market_url, same_market
from buyer_agent.agent import ENV, BuyerAgent
from buyer_agent.commands._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_state_dir,
    exit_code,
    guarded,
    print_json,
    worst,
)
from buyer_agent.commands._fleet_drive import resume_on_store
from buyer_agent.commands._store_read import store_target
from buyer_agent.commands._store_write import add_write_store
from buyer_agent.commands._telemetry import observer_for
from buyer_agent.commands.run import describe
from buyer_agent.journal import DB_NAME
from buyer_agent.workflow import TERMINAL, OrderState, OrderSummary

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``resume`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "resume",
        help="drive on open orders after a stop or a crash",
        description=(
            "Pick up every open (non-terminal) order in the journal, or just ORDER_ID, and drive it to its "
            "end. A resumed order asks the market or the chain what already happened: it never repeats a "
            "side effect and never signs a second payment. Each order goes back to the market it was "
            "placed on (keys from the environment); --market URL moves the orders to that market instead "
            "(a served sandbox restarted on another port: same machine id, the pairing checked there). "
            "Orders placed on the embedded sandbox cannot be resumed, its state died with its process "
            "(`cancel --abandon` closes them). An order that cannot be resumed is listed with the reason "
            "and the exit code is non-zero. An order another live process is driving is left to it: named "
            "on stderr as driven elsewhere, not in the list and not in the exit code."
        ),
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("order_id", metavar="ORDER_ID", nargs="?", default=None, help="only this order")
    add_state_dir(parser)
    add_write_store(parser)
    parser.add_argument(
        "--market",
        metavar="URL",
        default=None,
        help="drive the orders on this market, recorded as theirs (default: the market each was placed on)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON list of the resumed orders' summaries"
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


@dataclass
class _Plan:
    """Which open orders go to which market, and which cannot be resumed (with why)."""

    markets: dict[str, list[str]] = field(default_factory=dict)
    moved: dict[str, str | None] = field(default_factory=dict)
    stuck: list[tuple[str, str]] = field(default_factory=list)


def _run(args: argparse.Namespace) -> int:
    target = store_target(args)
    if target is not None:
        return resume_on_store(args, target, describe=describe)
    reader = BuyerAgent(state_dir=args.state_dir)
    plan = _Plan()
    if (reader.state_dir / DB_NAME).exists():
        try:
            plan = _plan(reader, args.order_id, args.market)
        finally:
            reader.journal.close()
    elif args.order_id is not None:
        raise JournalError(f"no journal in {reader.state_dir} (give --state-dir)")
    summaries: list[OrderSummary] = []
    for market, order_ids in plan.markets.items():
        driven, stuck = asyncio.run(_drive(args, market, order_ids, plan.moved))
        summaries.extend(driven)
        plan.stuck.extend(stuck)
    if args.json:
        print_json([s.to_json() for s in summaries])
    elif not summaries and not plan.stuck:
        print("nothing to resume", file=sys.stderr)
    for s in summaries:
        if not args.json:
            print(f"{s.order_id}  {s.state.value}")
        if exit_code(s) != EXIT_OK:
            print(f"error: order {s.order_id} ended {describe(s)}", file=sys.stderr)
    for order_id, why in plan.stuck:
        print(f"error: cannot resume {order_id}: {why}", file=sys.stderr)
    codes = [exit_code(s) for s in summaries]
    if EXIT_FAILED not in codes and plan.stuck:
        return EXIT_USAGE
    return worst(codes)


def _plan(reader: BuyerAgent, order_id: str | None, target: str | None) -> _Plan:
    plan = _Plan()
    if order_id is not None:
        records = [reader.journal.order(order_id)]
    else:
        records = reader.journal.orders([s.value for s in OrderState if s not in TERMINAL])
    fallback = target or _env_market()
    for rec in records:
        if OrderState(rec.state) in TERMINAL:
            continue
        placed = reader.order_market(rec.order_id)
        if placed == EMBEDDED:
            plan.stuck.append(
                (
                    rec.order_id,
                    "it was placed on the embedded sandbox, whose market and chains died with the "
                    f"process that ran it; close it with `python -m buyer_agent cancel {rec.order_id} "
                    "--abandon` (--market URL moves only orders of a served market)",
                )
            )
            continue
        market = target or placed or fallback
        if market is None:
            plan.stuck.append(
                (
                    rec.order_id,
                    "no market is recorded for it: give the market it was placed on with --market URL",
                )
            )
            continue
        key = normalise_market_url(market)
        plan.markets.setdefault(key, []).append(rec.order_id)
        if placed is None or not same_market(placed, market):
            plan.moved[rec.order_id] = placed
    return plan


def _env_market() -> str | None:
    """``$PEAQOS_ORCHESTRATION_URL``, when set."""
    return os.environ.get(ENV["market"], "").strip() or None


async def _drive(
    args: argparse.Namespace, market: str, order_ids: list[str], moved: dict[str, str | None]
) -> tuple[list[OrderSummary], list[tuple[str, str]]]:
    """Drive ``order_ids`` on ``market``; the summaries, and the orders it could not take (why)."""
    agent = BuyerAgent.from_env(
        market=market, state_dir=args.state_dir, on_progress=progress_printer(), observer=observer_for(args)
    )
    stuck: list[tuple[str, str]] = []
    async with agent:
        mine: list[str] = []
        for order_id in order_ids:
            if order_id not in moved:
                mine.append(order_id)
                continue
            why = await _can_move(agent, order_id, moved[order_id])
            if why is not None:
                stuck.append((order_id, why))
                continue
            agent.move_order(order_id, agent.market_label)
            print(
                f"moving {order_id}: placed on {moved[order_id] or 'an unrecorded market'}, "
                f"now on {agent.market_label}",
                file=sys.stderr,
            )
            mine.append(order_id)
        if not mine:
            return [], stuck
        try:
            await agent.start()
        except BuyerAgentError as exc:
            return [], [*stuck, *((o, f"{agent.market_label}: {exc}") for o in mine)]
        # An order another live process holds the lease of is left to it: named, not counted.
        elsewhere: dict[str, str] = {}

        async def drive_or_leave(order_id: str) -> OrderSummary:
            try:
                return await agent.drive(order_id)
            except StateError:
                holder = agent.journal.order(order_id).lease_owner
                if holder is None or args.order_id is not None:  # a real refusal, or the one asked for
                    raise
                elsewhere[order_id] = holder
                return agent.order(order_id)

        summaries = list(await asyncio.gather(*(drive_or_leave(o) for o in mine)))
    for order_id, holder in elsewhere.items():
        print(f"skipping {order_id}: driven elsewhere, by another live process ({holder})", file=sys.stderr)
    return [s for s in summaries if s.order_id not in elsewhere], stuck


async def _can_move(agent: BuyerAgent, order_id: str, placed: str | None) -> str | None:
    """Why the order cannot move to the agent's market (None when it can): machine id, pairing."""
    machine = agent.journal.order(order_id).context.get("machine_id")
    try:
        session = await agent.pairing()
    except BuyerAgentError as exc:
        return f"cannot move it to {agent.market_label}: {exc}"
    if placed is not None:
        session.carry_over(placed)
    if machine and machine != session.machine_id:
        return (
            f"it was placed for machine {machine}, not {session.machine_id} "
            f"(PEAQOS_MACHINE_ID): it cannot move to {agent.market_label}"
        )
    try:
        await session.token()
    except BuyerAgentError as exc:
        return f"no pairing on {agent.market_label} for machine {session.machine_id}: {exc}"
    return None
