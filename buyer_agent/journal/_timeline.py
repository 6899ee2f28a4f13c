"""What a replayed order did: its timeline (states, durations, quote, amounts, transactions) and totals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

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

    Returns:
        ``{"states": [{state, seq, trigger, at, seconds}], "quote", "decision", "payment",
        "transactions", "market_order_id", "outcome", "error", "dispute", "spent"}``. ``seconds`` is
        how long the order stayed in the state (None for the last one).
    """
    states: list[dict[str, Any]] = []
    quotes: dict[str, Mapping[str, Any]] = {}
    quote: dict[str, Any] | None = None
    decision: dict[str, Any] | None = None
    payment: dict[str, Any] | None = None
    txs: list[dict[str, str]] = []
    market_order_id: str | None = None
    outcome: Any = None
    error: Any = None
    dispute: Any = None
    paid = False

    def chosen(qid: str, why: str) -> dict[str, Any]:
        q = quotes.get(qid) or {}
        return {
            "quote_id": qid,
            "service_id": q.get("service_id"),
            "price": _price_text(q.get("price")),
            "rail": q.get("rail"),
            "chain": q.get("chain"),
            "why": why,
        }

    def add_tx(tx_id: Any, purpose: str) -> None:
        if tx_id and not any(t["tx_id"] == str(tx_id) for t in txs):
            txs.append({"tx_id": str(tx_id), "purpose": purpose})

    for ev in events:
        trigger, payload = str(ev["trigger"]), ev.get("payload") or {}
        if ev["src"] != ev["dst"] or trigger == "submit":
            if states:
                states[-1]["seconds"] = format(_seconds(states[-1]["at"], str(ev["at"])), "f")
            states.append(
                {"state": ev["dst"], "seq": ev["seq"], "trigger": trigger, "at": ev["at"], "seconds": None}
            )
        if trigger == "search":
            quotes.update({str(q["quote_id"]): q for q in payload.get("quotes") or []})
        elif trigger == "choose":
            quotes.update({str(q["quote_id"]): q for q in payload.get("quotes") or []})
            dec = payload.get("decision") or {}
            decision = {
                "strategy": payload.get("strategy"),
                "quote_id": dec.get("quote_id"),
                "reason": dec.get("reason"),
                "ranking": list(dec.get("ranking") or []),
                "candidates": list(payload.get("candidates") or []),
                "now": payload.get("now"),
            }
            quote = chosen(str(dec.get("quote_id")), str(dec.get("reason") or ""))
        elif trigger == "note:fallback":
            quote = chosen(
                str(payload.get("next")),
                f"fallback after {payload.get('rejected')} was refused: {payload.get('reason')}",
            )
        elif trigger == "order":
            market_order_id = payload.get("market_order_id") or market_order_id
        elif trigger == "pay":
            req = payload.get("request") or {}
            payment = {
                "rail": req.get("rail_type"),
                "chain": req.get("chain"),
                "amount": _price_text(req.get("amount")),
                "payee": req.get("payee"),
            }
            for tx in payload.get("txs") or []:
                add_tx(tx.get("tx_id"), str(tx.get("purpose") or "payment"))
        elif trigger == "paid":
            paid = True
            add_tx(payload.get("tx"), "payment")
        elif trigger == "lock_escrow":
            add_tx(payload.get("transaction_hash"), "escrow-lock")
        elif trigger == "note:release_signed":
            for tx in payload.get("txs") or []:
                add_tx(tx.get("tx_id"), "release")
        elif trigger == "confirm":
            add_tx(payload.get("release_tx"), "release")
        elif trigger == "execute":
            outcome = payload.get("outcome")
        elif trigger == "hand_off":
            outcome = {"status": "handed_off", "handoff": payload.get("handoff")}
        elif trigger == "dispute":
            dispute = {"reason": payload.get("reason"), "dispute_id": payload.get("dispute_id")}
        elif trigger == "fail" or trigger == "note:error":
            error = {"code": payload.get("code"), "message": payload.get("message")}
    spent = payment["amount"] if paid and payment is not None else None
    return {
        "states": states,
        "quote": quote,
        "decision": decision,
        "payment": payment,
        "transactions": txs,
        "market_order_id": market_order_id,
        "outcome": outcome,
        "error": error,
        "dispute": dispute,
        "spent": spent,
    }


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
    if p and p.get("amount"):
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
        lines.append(f"  error: {timeline['error'].get('code')}: {timeline['error'].get('message')}")
    return "\n".join(lines)


def summarise(orders: Iterable[tuple[str, bool, Mapping[str, Any]]]) -> dict[str, Any]:
    """Totals over many replays: ``(state, verified, timeline)`` per order.

    Returns:
        ``{"orders", "verified", "outcomes": {state: n}, "spend": {currency: amount},
        "seconds_in_state": {state: seconds}}`` (amounts and seconds as decimal strings).
    """
    n = ok = 0
    outcomes: dict[str, int] = {}
    spend: dict[str, Decimal] = {}
    in_state: dict[str, Decimal] = {}
    for state, verified, tl in orders:
        n += 1
        ok += int(verified)
        outcomes[state] = outcomes.get(state, 0) + 1
        spent = tl.get("spent")
        if spent:
            spend[spent["currency"]] = spend.get(spent["currency"], Decimal(0)) + Decimal(spent["amount"])
        for s in tl.get("states") or []:
            if s["seconds"] is not None:
                in_state[s["state"]] = in_state.get(s["state"], Decimal(0)) + Decimal(s["seconds"])
    return {
        "orders": n,
        "verified": ok,
        "outcomes": dict(sorted(outcomes.items())),
        "spend": {c: _amount_text(v) for c, v in sorted(spend.items())},
        "seconds_in_state": {s: format(v, "f") for s, v in sorted(in_state.items())},
    }
