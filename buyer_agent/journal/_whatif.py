"""What-if: re-run an order's recorded quote decision with another strategy (no network, no money)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from buyer_agent._errors import JournalError
from buyer_agent._money import Money
from buyer_agent.workflow._quotes import facts_price, money_text, parse_time
from buyer_agent.workflow._selection import make_limits, select_quote
from buyer_agent.workflow._spec import OrderSpec

__all__ = ["what_if"]


def _money(v: Any) -> Money | None:
    return Money.from_json(dict(v)) if v else None


def _limits(doc: Mapping[str, Any]) -> Any:
    """The eligibility ``Limits`` recorded with the decision (the inverse of ``limits_json``)."""
    budget = _money(doc.get("order_budget"))
    spent = _money(doc.get("spent_today"))
    if budget is None:
        raise JournalError("the recorded decision has no order budget")
    return make_limits(
        order_budget=budget,
        per_transaction_limit=_money(doc.get("per_transaction_limit")),
        daily_limit=_money(doc.get("daily_limit")),
        spent_today=spent if spent is not None else Money(0, budget.decimals, budget.currency),
        allowed_service_ids=frozenset(doc.get("allowed_service_ids") or ()),
        denied_service_ids=frozenset(doc.get("denied_service_ids") or ()),
        allowed_skill_keys=frozenset(doc.get("allowed_skill_keys") or ()),
        denied_skill_keys=frozenset(doc.get("denied_skill_keys") or ()),
    )


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
    submit = next((e for e in events if e["trigger"] == "submit"), None)
    choose = next((e for e in reversed(events) if e["trigger"] == "choose"), None)
    if choose is None or submit is None:
        raise JournalError("the journal has no recorded quote decision (no choose event) to re-run")
    payload = choose["payload"]
    spec_doc = (submit.get("payload") or {}).get("spec")
    if not spec_doc:
        raise JournalError("the journal's first event does not hold the order spec")
    spec = dataclasses.replace(OrderSpec.from_json(spec_doc), strategy=strategy)
    quotes = list(payload.get("quotes") or [])
    by_id = {str(q["quote_id"]): q for q in quotes}
    payable = {
        (str(by_id[c["quote_id"]].get("rail") or ""), by_id[c["quote_id"]].get("chain"))
        for c in payload.get("candidates") or []
        if c.get("eligible") and c.get("quote_id") in by_id
    }

    def can_pay(rail: str, chain: str | None) -> bool:
        return (rail, chain) in payable

    sel = select_quote(quotes, spec, _limits(payload.get("limits") or {}), now=parse_time(payload["now"]),
                       can_pay=can_pay)  # fmt: skip
    decision = payload.get("decision") or {}
    recorded = _pick(by_id, decision.get("quote_id"), decision.get("reason"))
    recorded["strategy"] = payload.get("strategy")
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
