"""Shared arithmetic for ranking: stable tie-break keys, min-max normalisation, readable amounts."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from buyer_agent._money import Money
from strategies._types import QuoteView

__all__ = ["ONE", "ZERO", "amount", "difference", "normalise", "number", "stable_key"]

ZERO = Decimal(0)
ONE = Decimal(1)
HALF = Decimal("0.5")


def stable_key(q: QuoteView) -> tuple[str, ...]:
    """A total order over quotes that never depends on input order (quote id, service id, then the rest)."""
    return (
        q.quote_id,
        q.service_id,
        q.provider_key,
        q.skill_key,
        q.price.currency,
        f"{q.price.decimals:03d}",
        f"{q.price.amount:+040d}",
        q.execution_mode,
        q.rail,
        q.chain or "",
        q.expires_at.isoformat(),
        str(q.latency_ms),
        str(q.reputation),
        format(q.score, "f"),
        "\x1f".join(q.reasons),
    )


def amount(q: QuoteView) -> Decimal:
    """The price as an exact Decimal (comparable across decimals; currencies are the guard's concern)."""
    return q.price.to_decimal()


def normalise(value: Decimal, values: Sequence[Decimal], *, higher_is_better: bool) -> Decimal:
    """Min-max scale ``value`` within ``values`` to 0..1, where 1 is the best; 1 when all are equal."""
    lo, hi = min(values), max(values)
    if hi == lo:
        return ONE
    part = (value - lo) / (hi - lo) if higher_is_better else (hi - value) / (hi - lo)
    return part.quantize(Decimal("1e-12")).normalize() if part else ZERO


def number(value: Decimal, places: int = 2) -> str:
    """A short fixed-point rendering of a score for reasons (``0.92``)."""
    return format(value.quantize(Decimal(1).scaleb(-places)), "f")


def difference(price: Money, best: Money) -> str | None:
    """``price - best`` as text (``0.40 USDC``), or None when the two cannot be subtracted exactly."""
    if (price.currency, price.decimals) != (best.currency, best.decimals):
        return None
    return str(price - best)
