"""Market quotes as journal facts and as the strategies' frozen ``QuoteView`` snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from buyer_agent._money import CURRENCY_DECIMALS, Money
from buyer_agent._time import parse_time
from buyer_agent.market import MarketQuote  # re-exported: the runner and what-if read it here

__all__ = ["facts_price", "field_of", "meta_value", "money_text", "parse_time", "quote_facts", "quote_json"]


def field_of(obj: Any, *names: str) -> Any:
    """The first present field among ``names`` of an object or mapping (snake_case or camelCase).

    Only :func:`quote_facts` uses it, for quotes given as wire JSON (hand-made tests and tools); the
    runner reads the client's typed models (:func:`quote_json`).
    """
    if obj is None:
        return None
    for name in names:
        for key in (name, _camel(name)):
            if isinstance(obj, Mapping):
                if obj.get(key) is not None:
                    return obj[key]
            else:
                value = getattr(obj, key, None)
                if value is not None:
                    return value
    return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def money_text(money: Money) -> str:
    """``"0.80"``: the human amount with at least two places, as the summaries show it."""
    return str(money).rsplit(" ", 1)[0]


def _decimals(payment: Any, currency: str) -> int:
    meta = field_of(payment, "metadata") or {}
    value = field_of(meta, "token_decimals")
    if value is not None:
        return int(value)
    return CURRENCY_DECIMALS.get(currency.upper(), 6)


def quote_facts(quote: Any) -> dict[str, Any]:
    """What the workflow keeps of a market quote: JSON-able facts, exact money, no floats.

    ``price`` is None when the quote has no fixed amount (it can then never be eligible).
    """
    pricing = field_of(quote, "pricing")
    payment = field_of(quote, "payment")
    currency = str(field_of(pricing, "currency") or field_of(payment, "token") or "USDC").upper()
    amount = field_of(pricing, "amount")
    price: Money | None = None
    if amount is not None:
        price = Money.of(Decimal(str(amount)), currency, _decimals(payment, currency))
    meta = field_of(quote, "metadata") or field_of(quote, "extra") or {}
    latency = field_of(quote, "latency_ms") or field_of(meta, "latency_ms")
    reputation = field_of(quote, "reputation") or field_of(meta, "provider_reputation", "reputation")
    score = field_of(quote, "score")
    return {
        "quote_id": str(field_of(quote, "id", "quote_id")),
        "service_id": str(field_of(quote, "service_id")),
        "provider_key": str(field_of(quote, "provider_key") or ""),
        "skill_key": str(field_of(quote, "skill_key") or ""),
        "price": price.to_json() if price is not None else None,
        "score": format(Decimal(str(score)), "f") if score is not None else "0",
        "execution_mode": str(field_of(quote, "execution_mode") or "native"),
        "rail": str(field_of(payment, "default_rail") or ""),
        "supported_rails": [str(r) for r in (field_of(payment, "supported_rails") or ())],
        "chain": field_of(payment, "chain"),
        "token": field_of(payment, "token"),
        "token_address": field_of(payment, "token_address"),
        "token_mint": field_of(payment, "token_mint"),
        "payee": field_of(payment, "payee_address", "wallet_address"),
        "expires_at": str(field_of(quote, "expires_at")),
        "latency_ms": int(latency) if latency is not None else None,
        "reputation": format(Decimal(str(reputation)), "f") if reputation is not None else None,
        "reasons": [str(r) for r in (field_of(quote, "reasons") or ())],
        **_unpaid(field_of(payment, "required") is False),
    }


def meta_value(meta: Mapping[str, Any], *names: str) -> Any:
    """The first non-None value among ``names`` in a free-form metadata mapping (kept as the wire sent it)."""
    for name in names:
        value = meta.get(name)
        if value is not None:
            return value
    return None


def quote_json(quote: MarketQuote) -> dict[str, Any]:
    """What the workflow keeps of a market quote (typed, from the client): JSON-able facts, exact money.

    ``price`` is None when the quote has no fixed amount (it can then never be eligible). The
    quote's free-form ``metadata`` is read as the provider wrote it (snake_case or camelCase keys).
    """
    pricing, payment = quote.pricing, quote.payment
    currency = str(pricing.currency or payment.token or "USDC").upper()
    price: Money | None = None
    if pricing.amount is not None:
        price = Money.of(pricing.amount, currency, CURRENCY_DECIMALS.get(currency, 6))
    meta: Mapping[str, Any] = quote.metadata or quote.extra or {}
    latency = meta_value(meta, "latency_ms", "latencyMs")
    reputation = meta_value(meta, "provider_reputation", "providerReputation", "reputation")
    return {
        "quote_id": str(quote.id),
        "service_id": str(quote.service_id),
        "provider_key": str(quote.provider_key or ""),
        "skill_key": str(quote.skill_key or ""),
        "price": price.to_json() if price is not None else None,
        "score": format(Decimal(str(quote.score)), "f"),
        "execution_mode": str(quote.execution_mode or "native"),
        "rail": str(payment.default_rail or ""),
        "supported_rails": [str(r) for r in payment.supported_rails or ()],
        "chain": payment.chain,
        "token": payment.token,
        "token_address": payment.token_address,
        "token_mint": payment.token_mint,
        "payee": payment.payee_address or payment.wallet_address,
        "expires_at": str(quote.expires_at),
        "latency_ms": int(latency) if latency is not None else None,
        "reputation": format(Decimal(str(reputation)), "f") if reputation is not None else None,
        "reasons": [str(r) for r in quote.reasons or ()],
        **_unpaid(payment.required is False),
    }


def _unpaid(free: bool) -> dict[str, Any]:
    """``{"payment_required": False}`` for a quote that needs no payment; nothing otherwise.

    Only the exception is written, so the facts of every paid quote stay as they were journaled.
    """
    return {"payment_required": False} if free else {}


def facts_price(facts: Mapping[str, Any]) -> Money | None:
    """The price of quote facts, or None."""
    price = facts.get("price")
    return Money.from_json(dict(price)) if price else None
