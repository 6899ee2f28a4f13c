"""Choosing a quote: the eligibility guard first, then the order's strategy, recorded as facts."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import strategies
from buyer_agent._errors import PolicyError
from buyer_agent._time import parse_time
from buyer_agent.workflow import _eligibility
from buyer_agent.workflow._eligibility import Limits
from buyer_agent.workflow._quotes import facts_price, money_text
from buyer_agent.workflow._spec import OrderSpec

__all__ = ["Selection", "make_limits", "select_quote", "single_candidate", "to_view"]


def make_limits(**fields: Any) -> Limits:
    """The eligibility guard's ``Limits`` (order budget, per-tx and daily limits, spent today, lists)."""
    return Limits(**fields)


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of choosing: the chosen quote's facts (or None), every candidate, the ranking."""

    choice: dict[str, Any] | None
    candidates: list[dict[str, Any]]
    ranking: list[str]
    reason: str


def to_view(facts: Mapping[str, Any]) -> strategies.QuoteView:
    """The strategies' frozen ``QuoteView`` of journaled quote facts (which must have a price)."""
    price = facts_price(facts)
    assert price is not None
    return strategies.QuoteView(
        quote_id=str(facts["quote_id"]),
        service_id=str(facts["service_id"]),
        provider_key=str(facts.get("provider_key") or ""),
        skill_key=str(facts.get("skill_key") or ""),
        price=price,
        score=Decimal(str(facts.get("score") or "0")),
        execution_mode=str(facts.get("execution_mode") or "native"),
        rail=str(facts.get("rail") or ""),
        chain=facts.get("chain"),
        expires_at=parse_time(facts["expires_at"]),
        latency_ms=facts.get("latency_ms"),
        reputation=Decimal(str(facts["reputation"])) if facts.get("reputation") is not None else None,
        reasons=tuple(facts.get("reasons") or ()),
    )


def _price_json(facts: Mapping[str, Any]) -> dict[str, str] | None:
    price = facts_price(facts)
    return {"amount": money_text(price), "currency": price.currency} if price else None


def select_quote(
    quotes: Sequence[Mapping[str, Any]],
    spec: OrderSpec,
    limits: Any,
    *,
    now: datetime,
    can_pay: Callable[[str, str | None], bool],
    quote_id: str | None = None,
) -> Selection:
    """Filter ``quotes`` through the eligibility guard, then rank the eligible ones by the strategy.

    Args:
        quotes: Journaled quote facts.
        spec: The order (strategy, handoff permission).
        limits: The eligibility ``Limits`` (budget, policy, spent today).
        now: The decision time.
        can_pay: Whether the buyer has a rail for ``(rail_type, chain)``.
        quote_id: Pick this eligible quote instead of the strategy's choice (a caller's choice).

    Raises:
        PolicyError: ``quote_id`` names no eligible quote.
    """
    priced = [q for q in quotes if facts_price(q) is not None]
    unpriced = [q for q in quotes if facts_price(q) is None]
    by_id = {q["quote_id"]: q for q in priced}
    strategy = strategies.load_strategy(spec.strategy)
    decision, checked = _eligibility.choose(
        [to_view(q) for q in priced],
        strategy,
        limits,
        now=now,
        can_pay=can_pay,
        allow_handoff=spec.allow_handoff,
    )
    scores = {r.quote.quote_id: r for r in decision.ranking}
    candidates: list[dict[str, Any]] = []
    for cand in checked:
        qid = cand.quote.quote_id
        ranked = scores.get(qid)
        reasons = list(cand.reasons) + (list(ranked.reasons) if ranked is not None else [])
        candidates.append(
            {
                "service_id": cand.quote.service_id,
                "quote_id": qid,
                "price": _price_json(by_id[qid]),
                "score": format(ranked.score if ranked is not None else cand.quote.score, "f"),
                "eligible": bool(cand.eligible),
                "reasons": reasons,
            }
        )
    for q in unpriced:
        candidates.append(
            {
                "service_id": q["service_id"],
                "quote_id": q["quote_id"],
                "price": None,
                "score": str(q.get("score") or "0"),
                "eligible": False,
                "reasons": ["the quote has no fixed price"],
            }
        )
    ranking = [r.quote.quote_id for r in decision.ranking]
    if quote_id is not None:
        eligible_ids = {c["quote_id"] for c in candidates if c["eligible"]}
        if quote_id not in eligible_ids:
            raise PolicyError(
                f"quote {quote_id} is not eligible (or unknown); eligible: {sorted(eligible_ids)}"
            )
        ranking = [quote_id, *[q for q in ranking if q != quote_id]]
        return Selection(dict(by_id[quote_id]), candidates, ranking, f"chosen by the caller: {quote_id}")
    if decision.choice is None:
        return Selection(None, candidates, ranking, decision.reason or "no eligible quote")
    return Selection(dict(by_id[decision.choice.quote_id]), candidates, ranking, decision.reason)


def single_candidate(
    facts: Mapping[str, Any],
    spec: OrderSpec,
    limits: Any,
    *,
    now: datetime,
    can_pay: Callable[[str, str | None], bool],
) -> tuple[bool, tuple[str, ...]]:
    """Re-check one quote against the guard right before ordering it: ``(eligible, reasons)``."""
    if facts_price(facts) is None:
        return False, ("the quote has no fixed price",)
    (cand,) = _eligibility.check_quotes(
        [to_view(facts)], limits, now=now, can_pay=can_pay, allow_handoff=spec.allow_handoff
    )
    return bool(cand.eligible), tuple(cand.reasons)
