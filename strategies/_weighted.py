"""The ``weighted`` strategy: a weighted sum of price, score, latency, native mode and reputation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from strategies._base import BaseStrategy, decide
from strategies._errors import StrategyError
from strategies._params import to_decimal
from strategies._scoring import HALF, ONE, ZERO, amount, normalise, number, stable_key
from strategies._types import Decision, DecisionContext, QuoteView, Ranked

__all__ = ["DEFAULT_WEIGHTS", "Weighted"]

#: Weights used when none are given. Giving any weight replaces all of these (unnamed weights are 0).
DEFAULT_WEIGHTS: Mapping[str, Decimal] = {
    "price": Decimal(1),
    "score": Decimal(1),
    "latency": Decimal("0.25"),
    "native": Decimal("0.5"),
    "reputation": Decimal("0.25"),
}


class Weighted(BaseStrategy):
    """Highest weighted sum of factors normalised over the candidate set, each 0..1 (1 = best).

    The factors:

    - ``price``: min-max over the candidates, cheapest 1;
    - ``score``: the market's score, min-max, highest 1;
    - ``latency``: estimated latency, min-max, fastest 1;
    - ``native``: 1 for native execution, 0 for external handoff;
    - ``reputation``: provider reputation, min-max, highest 1.

    A missing latency or reputation scores a neutral 0.5. The sum is divided by the total weight,
    so a candidate's score is 0..1. Ties go to the cheaper, then the higher market score, then a
    stable key; so with only a price weight this ranks exactly like ``cheapest``.
    Weights are non-negative numbers (ints, strings or Decimals; YAML floats via their text). With
    no weights the defaults ``DEFAULT_WEIGHTS`` apply; any given weight replaces them all.
    """

    name = "weighted"

    def __init__(
        self,
        *,
        price: Any = None,
        score: Any = None,
        latency: Any = None,
        native: Any = None,
        reputation: Any = None,
    ) -> None:
        given = {
            "price": price,
            "score": score,
            "latency": latency,
            "native": native,
            "reputation": reputation,
        }
        if all(v is None for v in given.values()):
            weights = dict(DEFAULT_WEIGHTS)
        else:
            weights = {k: ZERO if v is None else to_decimal(v, f"weighted.{k}") for k, v in given.items()}
        for key, w in weights.items():
            if w < 0:
                raise StrategyError(f"weighted.{key} must not be negative, not {w}")
        if sum(weights.values()) == 0:
            raise StrategyError(
                "weighted needs at least one positive weight (price, score, latency, native, reputation)"
            )
        self.weights: Mapping[str, Decimal] = weights

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={format(v, 'f')}" for k, v in self.weights.items() if v)
        return f"Weighted({inner})"

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Score every quote by the weighted factors and sort best first."""
        if not quotes:
            return decide((), reason=str)
        prices = [amount(q) for q in quotes]
        scores = [q.score for q in quotes]
        latencies = [Decimal(q.latency_ms) for q in quotes if q.latency_ms is not None]
        reputations = [q.reputation for q in quotes if q.reputation is not None]
        total = sum(self.weights.values())

        def factors(q: QuoteView) -> dict[str, Decimal]:
            return {
                "price": normalise(amount(q), prices, higher_is_better=False),
                "score": normalise(q.score, scores, higher_is_better=True),
                "latency": HALF
                if q.latency_ms is None
                else normalise(Decimal(q.latency_ms), latencies, higher_is_better=False),
                "native": ONE if q.native else ZERO,
                "reputation": HALF
                if q.reputation is None
                else normalise(q.reputation, reputations, higher_is_better=True),
            }

        def ranked(q: QuoteView) -> Ranked:
            f = factors(q)
            value = sum((self.weights[k] * f[k] for k in f), ZERO) / total
            value = value.quantize(Decimal("1e-12")).normalize() if value else ZERO
            shown = {
                "price": f"price {q.price}",
                "score": f"market score {number(q.score)}",
                "latency": f"latency {q.latency_ms} ms" if q.latency_ms is not None else "latency unknown",
                "native": "native" if q.native else q.execution_mode,
                "reputation": f"reputation {number(q.reputation)}"
                if q.reputation is not None
                else "reputation unknown",
            }
            parts = tuple(
                f"{shown[k]} -> {number(f[k])} x {format(w, 'f')}" for k, w in self.weights.items() if w
            )
            return Ranked(q, value, (f"weighted score {number(value, 3)}", *parts))

        order = sorted(
            (ranked(q) for q in quotes),
            key=lambda r: (-r.score, amount(r.quote), -r.quote.score, stable_key(r.quote)),
        )
        return decide(
            order,
            reason=lambda r: (
                f"highest weighted score {number(r.score, 3)}: {r.quote.service_id} at {r.quote.price}"
            ),
        )
