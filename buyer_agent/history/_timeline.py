"""What a replayed order did: its timeline (states, durations, quote, amounts, transactions) and totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from buyer_agent._money import Money
from buyer_agent.history._readable import error_text
from buyer_agent.rails._base import PaymentRequest
from buyer_agent.workflow import OrderFacts, fold
from buyer_agent.workflow._fact_parts import canonical
from buyer_agent.workflow._fact_quotes import Decision, Pick

__all__ = ["build_timeline", "render_timeline", "summarise"]


def _time(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def _seconds(a: str, b: str) -> Decimal:
    delta = _time(b) - _time(a)
    # Exact to the microsecond, as the journal stores it (never a float).
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Decimal(micros).scaleb(-6)


def _amount_text(value: Decimal) -> str:
    """``0.80``: at least two places, as summaries show money."""
    return format(value.quantize(Decimal("0.01")) if value.as_tuple().exponent > -2 else value, "f")  # type: ignore[operator]


def _price_text(price: Any) -> dict[str, str] | None:
    if not isinstance(price, Mapping) or price.get("amount") is None:
        return None
    return {
        "amount": _amount_text(Decimal(str(price["amount"]))),
        "currency": str(price.get("currency") or ""),
    }


def build_timeline(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The order's story from its events (JSON-able; amounts and seconds are decimal strings).

    The states come from the events' moves; everything else from the order's facts (:func:`fold`).

    Returns:
        ``{"states": [{state, seq, trigger, at, seconds}], "quote", "decision", "payment",
        "transactions", "market_order_id", "outcome", "error", "dispute", "spent", "refunded"}``.
        ``seconds`` is how long the order stayed in the state (None for the last one); ``spent`` is
        what was paid, ``refunded`` what came back (a refunded order's payment).
    """
    states: list[dict[str, Any]] = []
    for ev in events:
        trigger = str(ev["trigger"])
        if ev["src"] != ev["dst"] or trigger == "submit":
            if states:
                states[-1]["seconds"] = format(_seconds(states[-1]["at"], str(ev["at"])), "f")
            states.append(
                {"state": ev["dst"], "seq": ev["seq"], "trigger": trigger, "at": ev["at"], "seconds": None}
            )
    facts = fold(events)
    payment = _payment(facts)
    return {
        "states": states,
        "quote": _quote(facts.pick),
        "decision": _decision(facts.decision),
        "payment": payment,
        "transactions": [{"tx_id": t.tx_id, "purpose": t.purpose} for t in facts.transactions],
        "market_order_id": facts.market_order_id,
        "outcome": _outcome(facts),
        "error": facts.errors[-1].to_json() if facts.errors else None,
        "dispute": {"reason": facts.dispute.reason, "dispute_id": facts.dispute.id}
        if facts.dispute
        else None,
        "spent": payment["amount"] if facts.paid_at is not None and payment is not None else None,
        # A refunded order's money came back: a summary counts it here, not as spend.
        "refunded": payment["amount"] if facts.state == "refunded" and payment is not None else None,
    }


def _money_text(money: Money | None) -> dict[str, str] | None:
    return _price_text(money.to_json()) if money is not None else None


def _quote(pick: Pick | None) -> dict[str, Any] | None:
    if pick is None:
        return None
    q = pick.quote
    return {
        "quote_id": pick.quote_id,
        "service_id": q.service_id if q else None,
        "price": _money_text(q.price) if q else None,
        "rail": q.rail if q else None,
        "chain": q.chain if q else None,
        "why": pick.why,
    }


def _decision(d: Decision | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {
        "strategy": canonical(d.strategy),
        "quote_id": d.quote_id,
        "reason": d.reason,
        "ranking": list(d.ranking),
        "candidates": [canonical(c.to_json()) for c in d.candidates],
        "now": d.decided_at,
    }


def _payment(facts: OrderFacts) -> dict[str, Any] | None:
    req: PaymentRequest | None = facts.request
    if req is None:
        if facts.choice is not None and facts.choice.free and facts.market_order_id is not None:
            # The no-payment flow: the rail is named, and there is no amount, payee or transaction.
            return {"rail": facts.choice.rail, "chain": None, "amount": None, "payee": None}
        return None
    return {"rail": req.rail_type, "chain": req.chain, "amount": _money_text(req.amount), "payee": req.payee}


def _outcome(facts: OrderFacts) -> Any:
    if facts.handoff is not None and facts.outcome is None:
        return {"status": "handed_off", "handoff": canonical(facts.handoff.to_json())}
    return canonical(facts.outcome.to_json()) if facts.outcome is not None else None


def render_timeline(order_id: str, state: str, timeline: Mapping[str, Any]) -> str:
    """The timeline as text for a terminal."""
    lines = [f"order {order_id}: {state}"]
    for s in timeline["states"]:
        took = f"{Decimal(s['seconds']):.3f} s" if s["seconds"] is not None else "-"
        lines.append(f"  {s['seq']:>4}  {s['at']}  {s['trigger']:<12} -> {s['state']:<18} {took}")
    q = timeline.get("quote")
    if q:
        price = q.get("price") or {}
        lines.append(
            f"  quote: {q['quote_id']} ({q.get('service_id')}) {price.get('amount')} {price.get('currency')}"
            f" on {q.get('rail')} {q.get('chain')} — {q.get('why')}"
        )
    p = timeline.get("payment")
    if p and not p.get("amount") and p.get("rail"):
        lines.append(f"  payment: none ({p['rail']}): nothing was signed or paid")
    elif p and p.get("amount"):
        lines.append(
            f"  payment: {p['amount']['amount']} {p['amount']['currency']} via {p['rail']} {p['chain']}"
        )
    for tx in timeline.get("transactions") or []:
        lines.append(f"  tx ({tx['purpose']}): {tx['tx_id']}")
    if timeline.get("market_order_id"):
        lines.append(f"  market order: {timeline['market_order_id']}")
    if timeline.get("outcome"):
        lines.append(f"  outcome: {(timeline['outcome'] or {}).get('status')}")
    if timeline.get("dispute"):
        lines.append(f"  dispute: {timeline['dispute'].get('reason')}")
    if timeline.get("error"):
        lines.append(f"  error: {error_text(timeline['error'])}")
    return "\n".join(lines)


def summarise(orders: Iterable[tuple[str, bool, Mapping[str, Any]]]) -> dict[str, Any]:
    """Totals over many replays: ``(state, verified, timeline)`` per order.

    Returns:
        ``{"orders", "verified", "outcomes": {state: n}, "spend": {currency: amount},
        "refunded": {currency: amount}, "seconds_in_state": {state: seconds}}`` (amounts and seconds
        as decimal strings). A refunded order's payment counts under ``refunded``, not ``spend``.
    """
    n = ok = 0
    outcomes: dict[str, int] = {}
    spend: dict[str, Decimal] = {}
    refunded: dict[str, Decimal] = {}
    in_state: dict[str, Decimal] = {}
    for state, verified, tl in orders:
        n += 1
        ok += int(verified)
        outcomes[state] = outcomes.get(state, 0) + 1
        back = tl.get("refunded")
        for money, totals in ((back, refunded), (None if back else tl.get("spent"), spend)):
            if money:
                currency = money["currency"]
                totals[currency] = totals.get(currency, Decimal(0)) + Decimal(money["amount"])
        for s in tl.get("states") or []:
            if s["seconds"] is not None:
                in_state[s["state"]] = in_state.get(s["state"], Decimal(0)) + Decimal(s["seconds"])
    return {
        "orders": n,
        "verified": ok,
        "outcomes": dict(sorted(outcomes.items())),
        "spend": {c: _amount_text(v) for c, v in sorted(spend.items())},
        "refunded": {c: _amount_text(v) for c, v in sorted(refunded.items())},
        "seconds_in_state": {s: format(v, "f") for s, v in sorted(in_state.items())},
    }
