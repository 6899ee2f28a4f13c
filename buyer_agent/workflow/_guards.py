"""The transition table's conditions: predicates over an order's facts and the event's data that can refuse.

Each guard returns None when the transition may happen, or why not. The runner hands over what it
observed (the quote it means to order, the clock's reading, the limits it recomputed from the
store's ledger, the rails, the transaction statuses the chain reported); the guard recomputes the
verdict from those and the order's facts instead of trusting a flag. Decisions the runner makes
itself (which quote the strategy prefers, when to ask for approval) are not guards.

A guard never reads the clock, the network or the store: everything it needs is in its arguments,
so the same facts give the same answer (a replay builds the machine without guards).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from buyer_agent._money import Money
from buyer_agent._time import parse_time
from buyer_agent.rails._base import ESCROW_RAILS, PaymentRequest, TxStatus
from buyer_agent.workflow._fact_quotes import QuoteFacts
from buyer_agent.workflow._facts import OrderFacts
from buyer_agent.workflow._payment_facts import check_intent
from buyer_agent.workflow._selection import single_candidate
from buyer_agent.workflow._spec import OrderSpec

__all__ = ["GUARDS", "Guard", "refusal"]


Guard = Callable[[OrderFacts | None, Mapping[str, Any]], str | None]


def _quote(facts: OrderFacts | None, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The quote the transition is about: the event's ``quote``, else the order's chosen one."""
    q = data.get("quote", data.get("choice"))
    if q is None and "quote" not in data and "choice" not in data and facts is not None:
        q = facts.choice
    if isinstance(q, QuoteFacts):
        return q.to_json()
    return q if isinstance(q, Mapping) else None


def _spec(facts: OrderFacts | None, data: Mapping[str, Any]) -> OrderSpec | None:
    spec = data.get("spec")
    if isinstance(spec, OrderSpec):
        return spec
    return facts.spec if facts is not None else None


def _price(quote: Mapping[str, Any] | None) -> Money | None:
    price = quote.get("price") if quote is not None else None
    if isinstance(price, Money):
        return price
    return Money.from_json(dict(price)) if isinstance(price, Mapping) else None


def _request(facts: OrderFacts | None, data: Mapping[str, Any]) -> PaymentRequest | None:
    req = data.get("request")
    if isinstance(req, PaymentRequest):
        return req
    return facts.request if facts is not None else None


def has_choice(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """A quote was chosen."""
    return None if _quote(facts, data) is not None else "no quote was chosen"


def quote_fresh(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The quote has not expired at the clock's reading (``now``)."""
    quote, now = _quote(facts, data), data.get("now")
    if quote is None or not isinstance(now, datetime):
        return "no quote or no clock reading to judge freshness by"
    expires = quote.get("expires_at")
    try:
        expires_at = expires if isinstance(expires, datetime) else parse_time(str(expires))
    except ValueError:
        return f"the quote's expiry {expires!r} is not a time"
    return None if expires_at > now else f"the quote expired at {expires}"


def within_limits(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The eligibility guard, run again on the quote: budget, per-tx and daily limits, policy, rail."""
    quote, spec, limits, now = _quote(facts, data), _spec(facts, data), data.get("limits"), data.get("now")
    can_pay = data.get("can_pay")
    if quote is None or spec is None or limits is None or not isinstance(now, datetime) or can_pay is None:
        return "nothing to check the limits against"
    eligible, reasons = single_candidate(quote, spec, limits, now=now, can_pay=can_pay)
    return None if eligible else "; ".join(reasons) or "not eligible"


def over_threshold(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The price is above the order's approval threshold and nobody approved it yet."""
    spec, price = _spec(facts, data), _price(_quote(facts, data))
    threshold = spec.approval_threshold if spec is not None else None
    if price is None or threshold is None:
        return "no price or no approval threshold"
    if facts is not None and facts.approved:
        return "already approved"
    return None if price > threshold else f"{price} is within the approval threshold {threshold}"


def approved(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """No approval is needed (price within the threshold), or it was given."""
    spec, price = _spec(facts, data), _price(_quote(facts, data))
    if spec is None or price is None:
        return "no spec or no price to judge approval by"
    threshold = spec.approval_threshold
    if threshold is None or not price > threshold or (facts is not None and facts.approved):
        return None
    return f"{price} is above the approval threshold {threshold} and was not approved"


def rail_available(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """One of the buyer's rails supports the payment's rail type and chain."""
    req, rails = _request(facts, data), data.get("rails")
    if req is None or not rails:
        return "no payment request or no rail"
    if any(r.supports(req.rail_type, req.chain) for r in rails):
        return None
    return f"no rail pays {req.rail_type} on {req.chain}"


def intent_matches(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The market's payment intent matches the chosen quote (amount, currency, rail, chain, payee)."""
    intent, quote = data.get("intent"), _quote(facts, data)
    if intent is None and facts is not None and facts.intent is not None:
        intent = facts.intent.to_json()
    price = _price(quote)
    if not isinstance(intent, Mapping) or quote is None or price is None:
        return "no payment intent or no quote to match it with"
    mismatch = check_intent(intent, quote, price)
    return None if mismatch is None else str(mismatch)


def payment_confirmed(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """Every journaled payment transaction is confirmed on chain (the statuses the rail reported)."""
    statuses: Sequence[Any] = data.get("statuses") or ()
    txs = data.get("txs", facts.txs if facts is not None else None)
    if not txs or len(statuses) != len(txs):
        return "no status for every payment transaction"
    if all(s is TxStatus.CONFIRMED for s in statuses):
        return None
    return "a payment transaction is not confirmed"


def escrow_rail(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The order pays through an escrow rail."""
    req = _request(facts, data)
    return None if req is not None and req.rail_type in ESCROW_RAILS else "the order does not pay by escrow"


def direct_rail(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The order pays by direct transfer (no escrow)."""
    req = _request(facts, data)
    return (
        None if req is not None and req.rail_type not in ESCROW_RAILS else "the order does not pay directly"
    )


def no_payment(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """The order needs no payment: its quote is free, and the market order says so too (nothing paid)."""
    if facts is None or facts.choice is None:
        return "no chosen quote"
    if not facts.choice.free:
        return "the chosen quote asks for a payment"
    if facts.request is not None:
        return "a payment was journaled for this order"
    said = facts.market_order_payment
    if said is None:
        return "the market order's payment is not recorded"
    if said.get("required") is not False:
        return "the market order requires a payment"
    amount = said.get("amount")
    if amount is not None and Decimal(str(amount)) != 0:
        return f"the market order names an amount of {amount}"
    return None


def authorization_held(facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """x402: the order's journaled authorization was proven and the market holds the payment."""
    req = _request(facts, data)
    if req is None or req.rail_type != "x402":
        return "the order does not pay by x402"
    if facts is None or facts.authorization is None:
        return "no authorization was journaled"
    status = data.get("payment_status")
    return None if status == "held" else f"the market's payment is {status!r}, not held"


#: Condition name (as in ``TRANSITIONS``) -> its guard.
GUARDS: Mapping[str, Guard] = {
    "has_choice": has_choice,
    "quote_fresh": quote_fresh,
    "within_limits": within_limits,
    "over_threshold": over_threshold,
    "approved": approved,
    "rail_available": rail_available,
    "intent_matches": intent_matches,
    "payment_confirmed": payment_confirmed,
    "escrow_rail": escrow_rail,
    "direct_rail": direct_rail,
    "no_payment": no_payment,
    "authorization_held": authorization_held,
}


def refusal(conditions: Sequence[str], facts: OrderFacts | None, data: Mapping[str, Any]) -> str | None:
    """Why the first refusing condition refuses, or None when they all pass."""
    for name in conditions:
        why = GUARDS[name](facts, data)
        if why is not None:
            return f"{name}: {why}"
    return None
