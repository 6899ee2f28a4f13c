"""The evidence bundle attached to a dispute, bound to the journal by event hashes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent.journal import Event

__all__ = ["dispute_evidence"]

# Which journal events prove what (the last one of any of the triggers counts).
_BOUND: dict[str, tuple[str, ...]] = {
    "quote": ("choose",),
    "order": ("order",),
    "payment": ("paid",),
    "escrow": ("lock_escrow",),
    "outcome": ("execute", "execute_free"),
}


def dispute_evidence(events: Sequence[Event], context: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """The dispute's evidence: quote, policy decision, payment tx and proof, outcome, the failure.

    Args:
        events: The order's journal events so far.
        context: The order's context (what the runner recorded).
        reason: Why delivery is refused.

    Returns:
        A JSON-able dict; ``journal`` maps each fact to ``{seq, hash}`` of the event that recorded it.
    """
    last: dict[str, Event] = {}
    for ev in events:
        for name, triggers in _BOUND.items():
            if ev.trigger in triggers:
                last[name] = ev
    bound = {name: {"seq": last[name].seq, "hash": last[name].hash} for name in _BOUND if name in last}
    payment: dict[str, Any] = {
        "tx": context.get("paid_tx"),
        "txs": [t.get("tx_id") for t in context.get("txs") or []],
        "proof": context.get("proof"),
    }
    auth = context.get("authorization")
    if auth:
        # x402: the authorization the market was given, and what the chain showed of its settlement.
        keys = ("network", "asset", "payer", "pay_to", "value", "valid_before", "nonce")
        payment["x402"] = {**{k: auth.get(k) for k in keys}, "settlement": context.get("settlement")}
    return {
        "reason": reason,
        "acceptance_failure": reason,
        "quote": context.get("choice"),
        "policy_decision": {
            "reason": context.get("decision_reason"),
            "candidates": context.get("candidates"),
            "limits": context.get("limits"),
        },
        "payment": payment,
        "outcome": context.get("outcome"),
        "market_order_id": context.get("market_order_id"),
        "journal": bound,
    }
