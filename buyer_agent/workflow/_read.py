"""An order's summary (the ``run --json`` object) from its facts: what the runner returns and readers show."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buyer_agent.workflow._fact_parts import canonical
from buyer_agent.workflow._facts import OrderFacts
from buyer_agent.workflow._quotes import money_text
from buyer_agent.workflow._states import OrderState
from buyer_agent.workflow._summary import OrderSummary

__all__ = ["summary_of"]


def summary_of(facts: OrderFacts, journal: str) -> OrderSummary:
    """What a caller sees of the order, from its facts alone.

    Args:
        facts: The order's facts (:func:`buyer_agent.workflow._facts.fold` of its events).
        journal: Where the journal lives (its path, or ``:memory:``).
    """
    choice = facts.choice
    quote = None
    if choice is not None:
        price = choice.price
        quote = {
            "service_id": choice.service_id,
            "quote_id": choice.quote_id,
            "price": {"amount": money_text(price), "currency": price.currency} if price else None,
        }
    payment: dict[str, Any] | None = None
    request = facts.request
    if request is not None:
        last_tx = facts.txs[-1].tx_id if facts.txs else None
        payment = {
            "rail": request.rail_type,
            "chain": request.chain,
            "amount": money_text(request.amount),
            "currency": request.amount.currency,
            "tx": facts.paid_tx or last_tx,
            # What the market made of it: its payment status after our last call, and how it
            # checked the proof (``rpc``: against the chain).
            "status": facts.payment_status,
            "verification": _verification(facts),
        }
        auth = facts.authorization
        if auth is not None:
            # x402: what was signed (the nonce the chain knows it by) and the market's settlement.
            settled = facts.settlement.get("tx") if facts.settlement is not None else None
            # (Named ``x402``, not ``authorization``: readers hide keys that look like credentials.)
            payment["tx"] = settled
            payment["x402"] = {
                "nonce": auth.nonce,
                "valid_before": auth.valid_before,
                "reference": auth.reference,
            }
            payment["settlement_tx"] = settled
    elif choice is not None and choice.free and facts.market_order_id is not None:
        # The no-payment flow: the rail says so; nothing was signed, sent or proven.
        payment = {
            "rail": choice.rail,
            "chain": None,
            "amount": money_text(choice.price) if choice.price is not None else "0.00",
            "currency": choice.price.currency if choice.price is not None else None,
            "tx": None,
            "status": facts.payment_status,
            "verification": None,
        }
    candidates = tuple(canonical(c.to_json()) for c in facts.candidates or ())
    return OrderSummary(
        order_id=facts.order_id,
        state=OrderState(facts.state),
        market_order_id=facts.market_order_id,
        quote=quote,
        candidates=candidates,
        payment=payment,
        outcome=canonical(facts.outcome.to_json()) if facts.outcome is not None else None,
        error=facts.error.to_json() if facts.error is not None else None,
        journal=journal,
        updated_at=facts.updated_at or "",
    )


def _verification(facts: OrderFacts) -> str | None:
    """How the market checked the payment: ``rpc`` / ``recorded`` proofs, or the escrow deposit."""
    if facts.escrow_proof is not None:
        return "escrow-lock" if facts.escrow_proof.escrow_address else None
    proof: Mapping[str, Any] | None = facts.proof
    if proof is None:
        return None
    mode = proof.get("verification_mode")
    if mode:
        return str(mode)
    return "escrow-lock" if proof.get("escrow_address") else None
