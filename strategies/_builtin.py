"""The simple built-in strategies: ``cheapest``, ``best_score`` and ``native_first``."""

from __future__ import annotations

from collections.abc import Sequence

from strategies._base import BaseStrategy, decide
from strategies._scoring import HALF, ONE, ZERO, amount, difference, normalise, number, stable_key
from strategies._types import Decision, DecisionContext, QuoteView, Ranked

__all__ = ["BestScore", "Cheapest", "NativeFirst"]


def _price_reason(q: QuoteView, best: QuoteView) -> str:
    if amount(q) == amount(best):
        return f"price {q.price}, the lowest"
    diff = difference(q.price, best.price)
    return f"price {q.price}, {diff} over the lowest" if diff else f"price {q.price}"


class Cheapest(BaseStrategy):
    """Lowest total price; ties broken by the market's score (higher first), then a stable key.

    A candidate's score is its price normalised over the candidates (1 = cheapest, 0 = dearest).
    """

    name = "cheapest"

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Sort by price, then market score, then quote id."""
        order = sorted(quotes, key=lambda q: (amount(q), -q.score, stable_key(q)))
        if not order:
            return decide((), reason=str)
        prices = [amount(q) for q in order]
        ranked = (
            Ranked(
                q,
                normalise(amount(q), prices, higher_is_better=False),
                (_price_reason(q, order[0]), f"market score {number(q.score)}"),
            )
            for q in order
        )
        return decide(
            ranked, reason=lambda r: f"cheapest eligible quote: {r.quote.price} ({r.quote.service_id})"
        )


class BestScore(BaseStrategy):
    """The market's own candidate score (higher first); ties broken by price, then a stable key."""

    name = "best_score"

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Sort by market score, then price, then quote id."""
        order = sorted(quotes, key=lambda q: (-q.score, amount(q), stable_key(q)))
        if not order:
            return decide((), reason=str)
        top = order[0].score

        def why(q: QuoteView) -> tuple[str, ...]:
            first = (
                f"market score {number(q.score)}, the highest"
                if q.score == top
                else f"market score {number(q.score)}, {number(top - q.score)} below the best"
            )
            return first, f"price {q.price}"

        ranked = (Ranked(q, q.score, why(q)) for q in order)
        return decide(
            ranked,
            reason=lambda r: (
                f"best market score {number(r.quote.score)}: {r.quote.service_id} at {r.quote.price}"
            ),
        )


class NativeFirst(BaseStrategy):
    """Native execution before external handoff, then the cheapest, then the market's score.

    A candidate's score is 1 for native execution plus half its normalised price score (so 0..1.5).
    """

    name = "native_first"

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Sort native first, then by price, then by market score, then quote id."""
        order = sorted(quotes, key=lambda q: (not q.native, amount(q), -q.score, stable_key(q)))
        if not order:
            return decide((), reason=str)
        prices = [amount(q) for q in order]
        cheapest = min(order, key=lambda q: (amount(q), stable_key(q)))

        def ranked(q: QuoteView) -> Ranked:
            score = (ONE if q.native else ZERO) + HALF * normalise(amount(q), prices, higher_is_better=False)
            mode = "native execution" if q.native else f"{q.execution_mode} (not native)"
            return Ranked(q, score, (mode, _price_reason(q, cheapest)))

        def reason(r: Ranked) -> str:
            kind = "native" if r.quote.native else "no native quote; cheapest handoff"
            return f"{kind}: {r.quote.service_id} at {r.quote.price}"

        return decide((ranked(q) for q in order), reason=reason)
