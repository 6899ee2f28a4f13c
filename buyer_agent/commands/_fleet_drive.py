"""``run --store`` and ``resume --store``: one order, or the open ones, driven over a shared store.

The same output and exit codes as over a state directory; the differences are where orders live
(any :class:`~buyer_agent.journal.OrderStore`, a fleet's PostgreSQL database) and that their market
must outlive the process (a URL). An order another live process holds the lease of (a worker) is
left to it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Any

from buyer_agent._compose import EMBEDDED, ENV
from buyer_agent._errors import BuyerAgentError, StateError
from buyer_agent._progress import progress_printer
from buyer_agent._urls import normalise_market_url, same_market
from buyer_agent.commands._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exit_code, print_json, worst
from buyer_agent.commands._telemetry import observer_for
from buyer_agent.fleet import MARKET_META, fleet_agent, fleet_connection
from buyer_agent.history import named_candidates
from buyer_agent.journal import OrderStore, open_store
from buyer_agent.networks import Networks
from buyer_agent.task import Task
from buyer_agent.workflow import TERMINAL, OrderState, OrderSummary, fold

__all__ = ["resume_on_store", "run_on_store"]


def run_on_store(
    args: argparse.Namespace,
    task: Task,
    target: str,
    *,
    human: Callable[[OrderSummary, Networks], str],
    describe: Callable[[OrderSummary], str],
) -> int:
    """``run TASK --store STORE``: submit the order into the store and drive it here, to its end."""
    agent = fleet_agent(task, args.market, field="--market" if args.market else "market")
    started: list[str] = []

    async def go() -> tuple[OrderSummary, dict[str, Any]]:
        store = await open_store(target, create=True, field="--store")
        try:
            async with fleet_connection(
                agent, store, on_progress=progress_printer(), observer=observer_for(args)
            ) as conn:
                async with asyncio.timeout(args.timeout):
                    order_id = await conn.runner.submit(task.spec)
                    started.append(order_id)
                    await store.set_meta(MARKET_META + order_id, conn.market_label)
                    summary = await conn.runner.drive(order_id)
            doc = summary.to_json()
            doc["candidates"] = named_candidates(
                doc.get("candidates") or (), fold(await store.events(summary.order_id))
            )
            return summary, doc
        finally:
            await store.aclose()

    try:
        summary, doc = asyncio.run(go())
    except TimeoutError:
        where = (
            f"; order {started[0]} keeps its journaled state" if started else " before an order was placed"
        )
        hint = f" (drive it on with `python -m buyer_agent resume {started[0]} --store …`)" if started else ""
        print(f"error: the run stopped after --timeout {args.timeout:g} s{where}{hint}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print_json(doc)
    else:
        print(human(summary, agent.networks))
    code = exit_code(summary)
    if code != EXIT_OK:
        print(f"error: order {summary.order_id} ended {describe(summary)}", file=sys.stderr)
    return code


def resume_on_store(args: argparse.Namespace, target: str, *, describe: Callable[[OrderSummary], str]) -> int:
    """``resume [ORDER_ID] --store STORE``: drive on the store's open orders on their markets."""

    async def go() -> tuple[list[OrderSummary], list[tuple[str, str]], dict[str, str]]:
        store = await open_store(target, create=False, field="--store")
        try:
            markets, stuck = await _plan(store, args.order_id, args.market)
            summaries: list[OrderSummary] = []
            elsewhere: dict[str, str] = {}
            for market, order_ids in markets.items():
                got, why = await _drive(
                    store, market, order_ids, elsewhere, one=args.order_id is not None, args=args
                )
                summaries += got
                stuck += why
            return summaries, stuck, elsewhere
        finally:
            await store.aclose()

    summaries, stuck, elsewhere = asyncio.run(go())
    for order_id, holder in elsewhere.items():
        print(f"skipping {order_id}: driven elsewhere, by another live process ({holder})", file=sys.stderr)
    if args.json:
        print_json([s.to_json() for s in summaries])
    elif not summaries and not stuck:
        print("nothing to resume", file=sys.stderr)
    for s in summaries:
        if not args.json:
            print(f"{s.order_id}  {s.state.value}")
        if exit_code(s) != EXIT_OK:
            print(f"error: order {s.order_id} ended {describe(s)}", file=sys.stderr)
    for order_id, why in stuck:
        print(f"error: cannot resume {order_id}: {why}", file=sys.stderr)
    codes = [exit_code(s) for s in summaries]
    if EXIT_FAILED not in codes and stuck:
        return EXIT_USAGE
    return worst(codes)


async def _plan(
    store: OrderStore, order_id: str | None, target: str | None
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """The open orders by the market each goes back to, and those that cannot be resumed (why)."""
    if order_id is not None:
        records = [await store.order(order_id)]
    else:
        records = await store.orders([s.value for s in OrderState if s not in TERMINAL])
    fallback = target or os.environ.get(ENV["market"], "").strip() or None
    markets: dict[str, list[str]] = {}
    stuck: list[tuple[str, str]] = []
    for rec in records:
        if OrderState(rec.state) in TERMINAL:
            continue
        placed = await store.get_meta(MARKET_META + rec.order_id)
        if placed == EMBEDDED:
            stuck.append((rec.order_id, "it was placed on an embedded sandbox, which died with its process"))
            continue
        if placed is not None and target is not None and not same_market(placed, target):
            stuck.append(
                (rec.order_id, f"it was placed on {placed}; an order of a shared store resumes on its market")
            )
            continue
        market = placed or fallback
        if market is None:
            stuck.append((rec.order_id, "no market is recorded for it: give it with --market URL"))
            continue
        markets.setdefault(normalise_market_url(market), []).append(rec.order_id)
    return markets, stuck


async def _drive(
    store: OrderStore,
    market: str,
    order_ids: list[str],
    elsewhere: dict[str, str],
    *,
    one: bool,
    args: argparse.Namespace,
) -> tuple[list[OrderSummary], list[tuple[str, str]]]:
    agent = fleet_agent(None, market, field="--market")
    async with contextlib.AsyncExitStack() as stack:
        try:
            conn = await stack.enter_async_context(
                fleet_connection(agent, store, on_progress=progress_printer(), observer=observer_for(args))
            )
        except BuyerAgentError as exc:  # the market or its keys: these orders cannot go on here
            return [], [(o, f"{market}: {exc}") for o in order_ids]
        runner = conn.runner

        async def drive_or_leave(order_id: str) -> OrderSummary:
            try:
                return await runner.drive(order_id)
            except StateError:
                holder = (await store.order(order_id)).lease_owner
                if holder is None or one:  # a real refusal, or the one order asked for
                    raise
                elsewhere[order_id] = holder
                return await runner.asummary(order_id)

        got = list(await asyncio.gather(*(drive_or_leave(o) for o in order_ids)))
    return [s for s in got if s.order_id not in elsewhere], []
