"""``run TASK.yaml``: one order end to end, progress on stderr, the summary (or JSON) on stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from buyer_agent._progress import progress_printer
from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import (
    EXIT_CODES_HELP,
    EXIT_FAILED,
    add_state_dir,
    exit_code,
    guarded,
    print_json,
    strategy_arg,
)
from buyer_agent.commands._fleet_drive import run_on_store
from buyer_agent.commands._store_read import store_target
from buyer_agent.commands._store_write import add_write_store
from buyer_agent.commands._telemetry import observer_for
from buyer_agent.history import error_text, named_candidates
from buyer_agent.networks import Networks
from buyer_agent.task import load_task
from buyer_agent.workflow import OrderState, OrderSummary, fold

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``run`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run one order from a task file, end to end",
        description=(
            "Run the order a task file describes: pair, search, choose a quote, order, pay on-chain, "
            "execute, then confirm or dispute. With no market configured it starts the embedded "
            "sandbox (a local market with real local chains and funded demo keys). Progress goes to "
            "stderr, one line per state with its timing."
        ),
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("task", metavar="TASK.yaml", help="the task file (see the README's 'Task file')")
    add_state_dir(parser)
    add_write_store(parser)
    parser.add_argument(
        "--market",
        metavar="URL",
        default=None,
        help=(
            "the market's URL (overrides $PEAQOS_ORCHESTRATION_URL and the task's market); keys then come "
            "from the task's ${VAR}s or the environment; 'sandbox' = the embedded sandbox"
        ),
    )
    parser.add_argument(
        "--strategy",
        metavar="NAME",
        default=None,
        help=(
            "the quote-selection strategy (overrides the task's): a name such as cheapest, or the JSON "
            'form replay takes, \'{"name": "weighted", "params": {"price": 1}}\''
        ),
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout: order_id, state, quote, candidates, payment, journal, …",
    )
    parser.add_argument(
        "--timeout",
        metavar="S",
        type=seconds,
        default=None,
        help=(
            "stop the whole run after S seconds (exit 1); the order keeps its journaled state and "
            "`resume` drives it on (default: no bound beyond the task's deadlines)"
        ),
    )


def seconds(text: str) -> float:
    """A ``--timeout`` value: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive, finite number of seconds")
    return value


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    task = load_task(args.task)
    strategy = strategy_arg(args.strategy)
    if strategy:
        task = task.with_strategy(strategy)
    target = store_target(args)
    if target is not None:
        return run_on_store(args, task, target, human=human, describe=describe)
    agent = BuyerAgent.from_task(
        task,
        market=args.market,
        state_dir=args.state_dir,
        on_progress=progress_printer(),
        observer=observer_for(args),
    )

    started: list[str] = []
    bounds: list[asyncio.Timeout] = []

    async def go() -> OrderSummary:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.timeout if args.timeout is not None else None
        async with agent:
            # Connecting (starting the embedded sandbox) is not interrupted, or its processes would
            # outlive the run; it counts against the deadline all the same.
            await agent.start()
            bounds.append(asyncio.timeout_at(deadline))
            async with bounds[0]:
                started.append(await agent.submit())
                return await agent.drive(started[0])

    try:
        summary = asyncio.run(go())
    except TimeoutError:
        if not (bounds and bounds[0].expired()):
            raise
        print(f"error: {stopped(agent, started, args.timeout)}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        doc = summary.to_json()
        # The candidates' journaled ``score`` is the market's for some, the strategy's for others:
        # named apart beside it.
        facts = fold(agent.journal.events(summary.order_id))
        doc["candidates"] = named_candidates(doc.get("candidates") or (), facts)
        print_json(doc)
    else:
        print(human(summary, agent.networks))
    code = exit_code(summary)
    if code != 0:
        print(f"error: order {summary.order_id} ended {describe(summary)}", file=sys.stderr)
    return code


def stopped(agent: BuyerAgent, started: list[str], timeout: float) -> str:
    """The one line for a run ``--timeout`` stopped: where the order was left and how to go on."""
    text = f"the run stopped after --timeout {timeout:g} s"
    if not started:
        return text + " before an order was placed"
    order_id = started[0]
    state = agent.order(order_id).state.value
    hint = f"python -m buyer_agent resume {order_id} --state-dir {agent.state_dir}"
    if agent.uses_sandbox:
        hint = f"python -m buyer_agent cancel {order_id} --abandon --state-dir {agent.state_dir}"
        return (
            f"{text}; order {order_id} left in state {state} on the embedded sandbox, which stopped "
            f"with this run (close it with `{hint}`)"
        )
    return f"{text}; order {order_id} kept in state {state} (drive it on with `{hint}`)"


def describe(summary: OrderSummary) -> str:
    """``failed: NO_ELIGIBLE_QUOTE: …`` — the state and, when there is one, the error."""
    text = summary.state.value
    if summary.state is OrderState.AWAITING_APPROVAL:
        # The person approving runs another process: it must open this journal, wherever it lives.
        where = f" --state-dir {Path(summary.journal).parent}" if summary.journal != ":memory:" else ""
        text += (
            f" (approve it with `python -m buyer_agent approve {summary.order_id}{where}`, "
            f"then `python -m buyer_agent resume {summary.order_id}{where}`)"
        )
    if summary.error:
        text += f": {error_text(summary.error)}"
    return text


def human(summary: OrderSummary, networks: Networks | None = None) -> str:
    """A few lines for people (with the explorer link of the payment when its profile has one)."""
    lines = [f"order    {summary.order_id}  {summary.state.value}"]
    if summary.quote:
        price = summary.quote.get("price") or {}
        lines.append(
            f"quote    {summary.quote.get('service_id')}  {price.get('amount')} {price.get('currency')}"
            f"  ({summary.quote.get('quote_id')})"
        )
    if summary.payment and summary.payment.get("rail") == "not-required":
        lines.append("payment  none: the quote needs no payment (not-required); nothing was signed")
    elif summary.payment:
        pay = summary.payment
        lines.append(
            f"payment  {pay.get('amount')} {pay.get('currency')} via {pay.get('rail')} on {pay.get('chain')}"
        )
        x402 = pay.get("x402")
        if x402:
            lines.append(f"x402     authorization nonce {x402.get('nonce')}")
        lines.append(f"tx       {pay.get('tx')}")
        profile = networks.get(str(pay.get("chain"))) if networks is not None and pay.get("chain") else None
        link = profile.tx_link(str(pay.get("tx"))) if profile is not None and pay.get("tx") else None
        if link:
            lines.append(f"explorer {link}")
    if summary.outcome:
        lines.append(f"outcome  {summary.outcome.get('status')}")
    if summary.error:
        lines.append(f"error    {error_text(summary.error)}")
    lines.append(f"journal  {summary.journal}")
    return "\n".join(lines)
