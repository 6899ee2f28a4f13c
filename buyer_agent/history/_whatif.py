"""What-if: re-run an order's recorded quote decision with another strategy (no network, no money)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent._money import Money
from buyer_agent.workflow import fold
from buyer_agent.workflow._fact_parts import canonical
from buyer_agent.workflow._quotes import facts_price, money_text, parse_time
from buyer_agent.workflow._selection import select_quote

__all__ = ["what_if"]


def _pick(quotes: Mapping[str, Mapping[str, Any]], qid: str | None, reason: str | None) -> dict[str, Any]:
    q = quotes.get(qid or "") or {}
    price = facts_price(q) if q else None
    return {
        "quote_id": qid,
        "service_id": q.get("service_id"),
        "price": {"amount": money_text(price), "currency": price.currency} if price else None,
        "reason": reason,
    }


def what_if(events: Sequence[Mapping[str, Any]], strategy: str | Mapping[str, Any]) -> dict[str, Any]:
    """Re-run the recorded quote decision with ``strategy`` over the RECORDED quotes.

    The eligibility guard runs again with the recorded limits and the recorded decision time; the
    rails the buyer could pay with are taken from the recorded candidates (eligibility does not
    depend on the strategy, so the same quotes stay eligible). Nothing touches the network.

    Args:
        events: The order's replayed events.
        strategy: A ``strategies.load_strategy`` spec (a name, or ``{name, params}``).

    Returns:
        ``{"strategy", "recorded": {quote_id, service_id, price, reason, strategy}, "alternative":
        {...}, "same": bool, "difference": {"amount": "+0.40", "currency"} | None, "candidates"}``.

    Raises:
        JournalError: The order never chose a quote (no ``choose`` event).
    """
    facts = fold(events)
    decision = facts.decision
    if decision is None:
        raise JournalError("the journal has no recorded quote decision (no choose event) to re-run")
    if facts.spec is None:
        raise JournalError("the journal's first event does not hold the order spec")
    if decision.limits is None:
        raise JournalError("the recorded decision has no order budget")
    if decision.decided_at is None:
        raise JournalError("the recorded decision has no decision time")
    spec = dataclasses.replace(facts.spec, strategy=strategy)
    quotes = [q.to_json() for q in decision.quotes]
    by_id = {str(q["quote_id"]): q for q in quotes}
    payable = {
        (str(by_id[c.quote_id].get("rail") or ""), by_id[c.quote_id].get("chain"))
        for c in decision.candidates
        if c.eligible and c.quote_id in by_id
    }

    def can_pay(rail: str, chain: str | None) -> bool:
        return (rail, chain) in payable

    sel = select_quote(quotes, spec, decision.limits, now=parse_time(decision.decided_at), can_pay=can_pay)
    recorded = _pick(by_id, decision.quote_id, decision.reason)
    recorded["strategy"] = canonical(decision.strategy)
    alt = _pick(by_id, sel.choice["quote_id"] if sel.choice else None, sel.reason)
    difference = None
    before, after = (
        facts_price(by_id.get(recorded["quote_id"] or "") or {}),
        (facts_price(sel.choice) if sel.choice else None),
    )
    if (
        before is not None
        and after is not None
        and (before.currency, before.decimals)
        == (
            after.currency,
            after.decimals,
        )
    ):
        # Base units, so a negative difference never needs a negative Money.
        units = after.amount - before.amount
        magnitude = Money(abs(units), after.decimals, after.currency)
        difference = {
            "amount": ("-" if units < 0 else "+") + money_text(magnitude),
            "currency": after.currency,
        }
    return {
        "strategy": strategy,
        "recorded": recorded,
        "alternative": alt,
        "same": recorded["quote_id"] == alt["quote_id"],
        "difference": difference,
        "ranking": sel.ranking,
        "candidates": sel.candidates,
    }
