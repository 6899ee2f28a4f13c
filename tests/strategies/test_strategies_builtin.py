"""The built-in strategies on small hand-made quote sets: order, tie-breaks, scores and reasons."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import pytest
from strategies_quotes import T0, quote, usdc

from strategies import (
    DEFAULT_WEIGHTS,
    BaseStrategy,
    BestScore,
    Cheapest,
    Decision,
    DecisionContext,
    Fallback,
    NativeFirst,
    QuoteView,
    Ranked,
    StrategyError,
    Weighted,
    alternatives,
    as_strategy,
    fallback,
)

CTX = DecisionContext(budget=usdc("2.50"), now=T0)


def ids(d: Decision) -> list[str]:
    return [r.quote.quote_id for r in d.ranking]


def test_cheapest_orders_by_price_then_market_score_then_quote_id() -> None:
    qs = [
        quote("c", "1.20", "0.9"),
        quote("b", "0.80", "0.5"),
        quote("a", "0.80", "0.5"),
        quote("d", "0.80", "0.7"),
    ]
    d = Cheapest().rank(qs, CTX)
    assert ids(d) == ["d", "a", "b", "c"]
    assert d.choice == qs[3]
    assert d.reason == "cheapest eligible quote: 0.80 USDC (svc_d)"
    assert d.ranking[0].score == 1 and d.ranking[-1].score == 0
    assert d.ranking[-1].reasons[0] == "price 1.20 USDC, 0.40 USDC over the lowest"


def test_best_score_orders_by_score_then_price() -> None:
    qs = [quote("a", "0.80", "0.70"), quote("b", "1.20", "0.92"), quote("c", "1.00", "0.92")]
    d = BestScore().rank(qs, CTX)
    assert ids(d) == ["c", "b", "a"]
    assert d.ranking[0].score == Decimal("0.92")
    assert "0.22 below the best" in d.ranking[-1].reasons[0]


def test_native_first_prefers_native_then_cheapest() -> None:
    qs = [
        quote("h", "0.50", execution_mode="external-handoff"),
        quote("n2", "1.00"),
        quote("n1", "0.90"),
    ]
    d = NativeFirst().rank(qs, CTX)
    assert ids(d) == ["n1", "n2", "h"]
    assert d.reason.startswith("native: svc_n1")
    only_handoff = NativeFirst().rank([qs[0]], CTX)
    assert only_handoff.choice == qs[0] and "no native quote" in only_handoff.reason


def test_weighted_trades_price_against_score_latency_and_reputation() -> None:
    cheap = quote("cheap", "0.80", "0.70", latency_ms=450, reputation="0.72")
    fast = quote("fast", "1.20", "0.92", latency_ms=40, reputation="0.95")
    assert Weighted(price=1).rank([cheap, fast], CTX).choice == cheap
    assert Weighted(score=1).rank([cheap, fast], CTX).choice == fast
    assert Weighted(price="3", latency="1").rank([cheap, fast], CTX).choice == cheap
    assert Weighted(price=1, latency=2).rank([cheap, fast], CTX).choice == fast
    # The defaults weigh price and score equally, and latency, native and reputation less.
    d = Weighted().rank([cheap, fast], CTX)
    assert Weighted().weights == DEFAULT_WEIGHTS
    # fast: (0 x 1 + 1 x 1 + 1 x 0.25 + 1 x 0.5 + 1 x 0.25) / 3; cheap: (1 + 0 + 0 + 0.5 + 0) / 3.
    assert d.choice == fast and d.ranking[0].score == Decimal("0.666666666667")
    assert d.ranking[1].score == Decimal("0.5")
    assert d.ranking[0].reasons[0] == "weighted score 0.667"
    assert "price 1.20 USDC -> 0.00 x 1" in d.ranking[0].reasons


def test_weighted_scores_a_missing_latency_or_reputation_as_neutral() -> None:
    known = quote("k", "1.00", latency_ms=100, reputation="0.9")
    unknown = quote("u", "1.00")
    d = Weighted(latency=1, reputation=1).rank([known, unknown], CTX)
    by_id = {r.quote.quote_id: r for r in d.ranking}
    assert by_id["k"].score == 1 and by_id["u"].score == Decimal("0.5")
    assert "latency unknown -> 0.50 x 1" in by_id["u"].reasons


def test_weighted_params_are_exact_decimals_and_a_yaml_float_goes_through_its_text() -> None:
    w = Weighted(price=0.7, score="0.3")
    assert w.weights["price"] == Decimal("0.7") and w.weights["score"] == Decimal("0.3")
    assert w.weights["latency"] == 0  # naming any weight replaces the defaults
    for bad in ({"price": -1}, {"price": True}, {"price": "fast"}, {"price": "NaN"}, {"price": 0}):
        with pytest.raises(StrategyError):
            Weighted(**bad)


def test_fallback_takes_each_choice_in_turn_then_the_rest() -> None:
    class Picky(BaseStrategy):
        name = "picky"

        def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
            return Decision(None, (), "no quote is fast enough")

    qs = [quote("a", "0.80", "0.70"), quote("b", "1.20", "0.92"), quote("c", "1.00", "0.80")]
    chain = Fallback(BestScore(), Cheapest())
    d = chain.rank(qs, CTX)
    assert ids(d) == ["b", "a", "c"]
    assert d.ranking[0].reasons[0] == "best_score: choice 1 of the chain"
    assert d.ranking[1].reasons[0] == "cheapest: choice 2 of the chain"
    assert chain.alternatives(qs, CTX) == (qs[1], qs[0], qs[2])
    d = (Picky() | Cheapest()).rank(qs, CTX)
    assert d.choice == qs[0]
    assert d.reason.startswith("picky chose nothing (no quote is fast enough); cheapest: cheapest eligible")
    assert ids(d) == ["a", "c", "b"]
    # Chains flatten, and an empty chain is refused.
    assert len((Cheapest() | BestScore() | NativeFirst()).chain) == 3
    assert len(fallback(Cheapest(), BestScore()).chain) == 2
    with pytest.raises(StrategyError):
        Fallback()


def test_plain_functions_are_strategies_and_alternatives_follow_the_ranking() -> None:
    def dearest(quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        order = sorted(quotes, key=lambda q: -q.price.to_decimal())
        return Decision(
            order[0] if order else None, tuple(Ranked(q, Decimal(0), ()) for q in order), "dearest"
        )

    qs = [quote("a", "0.80"), quote("b", "1.20")]
    s = as_strategy(dearest)
    assert s.name == "dearest" and s.rank(qs, CTX).choice == qs[1]
    assert alternatives(s, qs, CTX) == (qs[1], qs[0])
    assert (s | Cheapest()).rank(qs, CTX).choice == qs[1]
    assert alternatives(Cheapest(), [], CTX) == ()
    with pytest.raises(StrategyError, match="not a strategy"):
        as_strategy(42)


@pytest.mark.parametrize(
    "strategy", [Cheapest(), BestScore(), NativeFirst(), Weighted(), Fallback(Cheapest())]
)
def test_every_built_in_says_why_when_nothing_is_eligible(strategy: BaseStrategy) -> None:
    d = strategy.rank([], CTX)
    assert d.choice is None and d.ranking == () and d.reason
