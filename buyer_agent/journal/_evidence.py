"""The dispute evidence bundle of a journaled order, from its events alone (the workflow's own bundle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent.journal._records import Event
from buyer_agent.workflow._evidence import dispute_evidence

__all__ = ["build_evidence", "context_from_events"]


def _as_event(e: Event | Mapping[str, Any]) -> Event:
    if isinstance(e, Event):
        return e
    return Event(
        str(e["order_id"]),
        int(e["seq"]),
        str(e["at"]),
        str(e["trigger"]),
        str(e["src"]),
        str(e["dst"]),
        dict(e.get("payload") or {}),
        str(e["prev_hash"]),
        str(e["hash"]),
    )


def context_from_events(events: Sequence[Event | Mapping[str, Any]]) -> dict[str, Any]:
    """The facts the runner keeps in the order's context, rebuilt from the event payloads.

    Used for orders whose live context is not at hand (an imported or exported journal): the quote
    chosen and why, the candidates, the payment request, transactions, proof and the market's payment
    status, the outcome, and the error the order stands on, as the runner's summary reads them.
    """
    ctx: dict[str, Any] = {}
    quotes: dict[str, Any] = {}
    for ev in map(_as_event, events):
        p = ev.payload
        if "payment_status" in p:
            ctx["payment_status"] = p["payment_status"]
        if ev.trigger in ("fail", "note:error") and p.get("code") is not None:
            ctx["error"] = {"code": p.get("code"), "message": p.get("message")}
        elif ev.trigger == "dispute":
            ctx["error"] = {"code": "DISPUTED", "message": p.get("reason")}
        elif ":" not in ev.trigger and ev.trigger not in ("refund", "cancel"):
            # A step that succeeds clears the error of an earlier, stopped attempt (as the runner does).
            ctx["error"] = None
        if ev.trigger in ("search", "choose"):
            quotes.update({str(q["quote_id"]): q for q in p.get("quotes") or []})
        if ev.trigger == "pair":
            ctx["policy"] = p.get("policy")
        elif ev.trigger == "choose":
            dec = p.get("decision") or {}
            ctx["choice"] = quotes.get(str(dec.get("quote_id")))
            ctx["decision_reason"] = dec.get("reason")
            ctx["candidates"] = p.get("candidates")
            ctx["limits"] = p.get("limits")
        elif ev.trigger == "note:fallback":
            ctx["choice"] = quotes.get(str(p.get("next")))
        elif ev.trigger == "order":
            ctx["market_order_id"] = p.get("market_order_id")
        elif ev.trigger == "pay":
            ctx["txs"] = p.get("txs")
            ctx["request"] = p.get("request")
        elif ev.trigger == "note:payment_dropped":
            ctx["txs"] = p.get("txs")
        elif ev.trigger == "paid":
            ctx["paid_tx"] = p.get("tx")
            if p.get("proof") is not None:
                ctx["proof"] = p.get("proof")
        elif ev.trigger == "lock_escrow":
            ctx["proof"] = {k: p.get(k) for k in ("transaction_hash", "chain", "escrow_address") if k in p}
        elif ev.trigger == "execute":
            ctx["outcome"] = p.get("outcome")
        elif ev.trigger == "result:acceptance" and p.get("accepted") is False:
            ctx["acceptance_failure"] = p.get("reason")
    return ctx


def build_evidence(events: Sequence[Event | Mapping[str, Any]], reason: str | None = None) -> dict[str, Any]:
    """The dispute evidence bundle of an order, bound to its journal hashes.

    When the order was disputed, this is exactly the bundle the workflow attached to the dispute
    (from the ``dispute`` event), plus ``dispute: {seq, hash}`` binding that event. Otherwise it is
    built the same way (:func:`buyer_agent.workflow._evidence.dispute_evidence`) from the events.

    Args:
        events: The order's events (journal ``Event`` rows or exported dicts), in order.
        reason: Why delivery is refused, when the order has no recorded reason.

    Returns:
        A JSON-able dict: ``reason``, ``acceptance_failure``, ``quote``, ``policy_decision``,
        ``payment``, ``outcome``, ``market_order_id``, ``journal`` (fact -> ``{seq, hash}``), and
        ``order_id``, ``head`` (``{seq, hash}`` of the last event).
    """
    evs = [_as_event(e) for e in events]
    if not evs:
        raise ValueError("no events")
    disputed = next((e for e in reversed(evs) if e.trigger == "dispute"), None)
    if disputed is not None and isinstance(disputed.payload.get("evidence"), Mapping):
        bundle = dict(disputed.payload["evidence"])
        bundle["journal"] = {**dict(bundle.get("journal") or {}), "dispute": _bind(disputed)}
    else:
        ctx = context_from_events(evs)
        why = reason or ctx.get("acceptance_failure") or "no dispute recorded"
        if ctx.get("acceptance_failure") and not reason:
            why = f"delivery failed acceptance: {why}"
        bundle = dispute_evidence(evs, ctx, str(why))
    bundle["order_id"] = evs[0].order_id
    bundle["head"] = _bind(evs[-1])
    return bundle


def _bind(ev: Event) -> dict[str, Any]:
    return {"seq": ev.seq, "hash": ev.hash}
