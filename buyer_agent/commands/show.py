"""``show ORDER_ID``: an order's timeline from the journal — states, timings, the choice, money, txs."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent.agent import BuyerAgent
from buyer_agent.commands._common import EXIT_OK, add_state_dir, guarded, print_json
from buyer_agent.commands._store_read import add_store, no_journal, reading, store_target
from buyer_agent.history import error_text, named_candidates, order_summary, strategy_order
from buyer_agent.journal import DB_NAME, Event
from buyer_agent.workflow import OrderSummary, fold

__all__ = ["register", "run", "timeline"]


def register(subparsers: Any) -> None:
    """Add ``show`` to the command line."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "show",
        help="show one order's timeline from the journal",
        description=(
            "Show an order's timeline from the journal: every state change and side effect with its time "
            "and duration, the quote chosen and the strategy's reasons for every candidate, the amounts "
            "and the transaction ids."
        ),
    )
    parser.add_argument("order_id", metavar="ORDER_ID", help="the order (see `orders`)")
    add_state_dir(parser)
    add_store(parser)
    parser.add_argument(
        "--json", action="store_true", help="print {order: <summary>, timeline: [events with elapsed_s]}"
    )


def run(args: argparse.Namespace) -> int:
    """Run the command; return the exit code."""
    return guarded(lambda: _run(args))


async def _from_store(target: str, order_id: str) -> tuple[list[Event], str]:
    async with reading(target) as store:
        if store is None:
            raise no_journal(target)
        await store.order(order_id)  # JournalError for an unknown order
        return await store.events(order_id), store.label


def _run(args: argparse.Namespace) -> int:
    target = store_target(args)
    if target is not None:
        events, label = asyncio.run(_from_store(target, args.order_id))
        return _show(events, label, args)
    agent = BuyerAgent(state_dir=args.state_dir)
    if not (agent.state_dir / DB_NAME).exists():
        raise JournalError(f"no journal in {agent.state_dir} (give --state-dir)")
    journal = agent.journal
    try:
        journal.order(args.order_id)  # JournalError for an unknown order
        events = journal.events(args.order_id)
    finally:
        journal.close()
    return _show(events, str(journal.path) if journal.path else ":memory:", args)


def _show(events: list[Event], label: str, args: argparse.Namespace) -> int:
    facts = fold(events)
    summary = order_summary(facts, label)
    decision = facts.decision_reason
    steps = timeline(events)
    # The candidates' journaled ``score`` is the market's for some, the strategy's for others.
    summary = replace(summary, candidates=tuple(named_candidates(summary.candidates, facts)))
    if args.json:
        print_json({"order": summary.to_json(), "decision": decision, "timeline": steps})
    else:
        ranking = facts.decision.ranking if facts.decision is not None else ()
        print(render(summary, decision, steps, ranking))
    return EXIT_OK


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def timeline(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The events with the seconds since the order began and since the previous event."""
    out: list[dict[str, Any]] = []
    start = _at(events[0].at) if events else None
    prev = start
    for ev in events:
        at = _at(ev.at)
        assert start is not None and prev is not None
        out.append(
            {
                "seq": ev.seq,
                "at": ev.at,
                "elapsed_s": round((at - start).total_seconds(), 3),
                "step_s": round((at - prev).total_seconds(), 3),
                "trigger": ev.trigger,
                "src": ev.src,
                "dst": ev.dst,
                "tx": _tx_ids(ev.payload),
                "payload": dict(ev.payload),
            }
        )
        prev = at
    return out


def _tx_ids(payload: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for key in ("tx", "tx_id", "release_tx"):
        value = payload.get(key)
        if isinstance(value, str) and value not in ids:
            ids.append(value)
    for tx in payload.get("txs") or ():
        value = tx.get("tx_id") if isinstance(tx, Mapping) else tx
        if isinstance(value, str) and value not in ids:
            ids.append(value)
    return ids


def _price(value: Any) -> str:
    if isinstance(value, Mapping):
        return f"{value.get('amount')} {value.get('currency')}"
    return str(value)


def render(
    summary: OrderSummary, decision: Any, steps: Sequence[Mapping[str, Any]], ranking: Sequence[str] = ()
) -> str:
    """The timeline for people; the quotes best first by the strategy's ``ranking``, then the ineligible."""
    lines = [
        f"order {summary.order_id}  {summary.state.value}  (market order {summary.market_order_id or '-'})"
    ]
    lines.append("")
    for step in steps:
        move = f"{step['src']} → {step['dst']}" if step["src"] != step["dst"] else f"  ({step['src']})"
        txs = f"  tx {', '.join(step['tx'])}" if step["tx"] else ""
        timing = f"{step['elapsed_s']:8.3f}s  +{step['step_s']:7.3f}s"
        lines.append(f"  {timing}  #{step['seq']:<3} {step['trigger']:<28} {move}{txs}")
    if summary.candidates:
        lines.append("")
        lines.append("quotes seen (strategy ranking, best first; then the ineligible):")
        for c in strategy_order(summary.candidates, ranking):
            mark = "*" if summary.quote and c.get("quote_id") == summary.quote.get("quote_id") else " "
            verdict = "eligible" if c.get("eligible") else "not eligible"
            reasons = "; ".join(str(r) for r in (c.get("reasons") or ()))
            market = c.get("market_score", None if c.get("eligible") else c.get("score"))
            scores = f"market score {market}" if market is not None else ""
            if c.get("eligible"):
                scores += f"{', ' if scores else ''}strategy score {c.get('strategy_score', c.get('score'))}"
            lines.append(
                f"  {mark} {c.get('service_id')}  {_price(c.get('price'))}  {scores}  {verdict}"
                + (f"  — {reasons}" if reasons else "")
            )
    if summary.quote:
        lines.append("")
        lines.append(
            f"chosen   {summary.quote.get('service_id')} at {_price(summary.quote.get('price'))}"
            + (f"  ({decision})" if decision else "")
        )
    if summary.payment and summary.payment.get("rail") == "not-required":
        lines.append("paid     nothing: the quote needs no payment (not-required)")
    elif summary.payment:
        pay = summary.payment
        lines.append(
            f"paid     {pay.get('amount')} {pay.get('currency')} via {pay.get('rail')} on {pay.get('chain')}"
        )
        x402 = pay.get("x402")
        if x402:
            lines.append(f"x402     authorization nonce {x402.get('nonce')}")
        lines.append(f"tx       {pay.get('tx')}")
    if summary.outcome:
        lines.append(f"outcome  {summary.outcome.get('status')}: {summary.outcome.get('result')}")
    if summary.error:
        lines.append(f"error    {error_text(summary.error)}")
    lines.append(f"journal  {summary.journal}")
    return "\n".join(lines)
