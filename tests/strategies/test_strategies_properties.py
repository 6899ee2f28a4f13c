"""Property tests: whatever the quotes, budget, policy or strategy, the choice stays inside the budget."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_quotes import T0, payable, quote_sets, scenarios

from buyer_agent._errors import PolicyError
from buyer_agent._money import Money
from buyer_agent.workflow._eligibility import Limits, check_quotes, choose
from strategies import (
    BaseStrategy,
    Cheapest,
    Decision,
    DecisionContext,
    QuoteView,
    Ranked,
    Weighted,
    load_strategy,
)

settings.register_profile("strategies", max_examples=150, deadline=None)

weights = st.dictionaries(
    st.sampled_from(("price", "score", "latency", "native", "reputation")),
    st.integers(min_value=1, max_value=5).map(str) | st.decimals(min_value="0.1", max_value=3, places=1),
    min_size=1,
)
_names = st.sampled_from(("cheapest", "best_score", "native_first", "weighted"))
specs = (
    _names
    | weights.map(lambda w: {"name": "weighted", "params": w})
    | st.lists(_names, min_size=1, max_size=3).map(lambda c: {"name": "fallback", "params": {"chain": c}})
)


def within(q: QuoteView, lim: Limits, pay: frozenset[tuple[str, str | None]], handoff: bool) -> bool:
    """The rules, written out again independently of the guard."""
    cur = lim.order_budget.currency
    price = q.price.to_decimal()
    return (
        q.price.currency == cur
        and price >= 0
        and price <= lim.order_budget.to_decimal()
        and (lim.per_transaction_limit is None or price <= lim.per_transaction_limit.to_decimal())
        and (lim.daily_limit is None or lim.spent_today.to_decimal() + price <= lim.daily_limit.to_decimal())
        and q.service_id not in lim.denied_service_ids
        and q.skill_key not in lim.denied_skill_keys
        and (not lim.allowed_service_ids or q.service_id in lim.allowed_service_ids)
        and (not lim.allowed_skill_keys or q.skill_key in lim.allowed_skill_keys)
        and q.expires_at > T0
        and (q.rail, q.chain) in pay
        and (handoff or q.execution_mode == "native")
    )


class Malicious(BaseStrategy):
    """Ignores what it is given and picks the dearest quote it can find anywhere."""

    name = "malicious"

    def __init__(self, everything: Sequence[QuoteView]):
        self.everything = list(everything)

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        if not self.everything:
            return Decision(None, (), "nothing")
        worst = max(self.everything, key=lambda q: (q.price.to_decimal(), q.quote_id))
        return Decision(worst, (Ranked(worst, Decimal(1), ("dearest",)),), "the dearest, on purpose")


@settings(settings.get_profile("strategies"))
@given(scenarios(), payable, st.booleans(), specs, st.data())
def test_the_choice_is_within_budget_and_policy_or_there_is_none(
    scenario: tuple[list[QuoteView], Limits],
    pay: frozenset[Any],
    handoff: bool,
    spec: Any,
    data: st.DataObject,
) -> None:
    quotes, lim = scenario
    can_pay = lambda rail, chain: (rail, chain) in pay  # noqa: E731
    decision, cands = choose(quotes, load_strategy(spec), lim, now=T0, can_pay=can_pay, allow_handoff=handoff)
    ok = [q for q in quotes if within(q, lim, pay, handoff)]
    assert [c.quote for c in cands if c.eligible] == ok
    assert all(c.reasons for c in cands)
    if decision.choice is None:
        assert not ok
    else:
        assert within(decision.choice, lim, pay, handoff)
    # Every eligible candidate is ranked exactly once, and only those.
    assert sorted(r.quote.quote_id for r in decision.ranking) == sorted(q.quote_id for q in ok)
    if decision.choice is not None:
        assert decision.ranking[0].quote == decision.choice
    # The same input in another order ranks the same (scores and reasons included).
    shuffled = data.draw(st.permutations(quotes))
    again, _ = choose(shuffled, load_strategy(spec), lim, now=T0, can_pay=can_pay, allow_handoff=handoff)
    assert again == decision


@settings(settings.get_profile("strategies"))
@given(scenarios(), payable, st.booleans())
def test_a_malicious_strategy_never_gets_an_ineligible_quote_through(
    scenario: tuple[list[QuoteView], Limits], pay: frozenset[Any], handoff: bool
) -> None:
    quotes, lim = scenario
    can_pay = lambda rail, chain: (rail, chain) in pay  # noqa: E731
    bad = Malicious(quotes)
    cands = check_quotes(quotes, lim, now=T0, can_pay=can_pay, allow_handoff=handoff)
    eligible = {c.quote for c in cands if c.eligible}
    target = max(quotes, key=lambda q: (q.price.to_decimal(), q.quote_id)) if quotes else None
    if target is not None and target not in eligible:
        with pytest.raises(PolicyError, match="not an eligible quote"):
            choose(quotes, bad, lim, now=T0, can_pay=can_pay, allow_handoff=handoff)
    else:
        decision, _ = choose(quotes, bad, lim, now=T0, can_pay=can_pay, allow_handoff=handoff)
        assert decision.choice is None or within(decision.choice, lim, pay, handoff)


@settings(settings.get_profile("strategies"))
@given(scenarios(), payable)
def test_cheapest_never_picks_a_dearer_quote_than_another_eligible_one(
    scenario: tuple[list[QuoteView], Limits], pay: frozenset[Any]
) -> None:
    quotes, lim = scenario
    can_pay = lambda rail, chain: (rail, chain) in pay  # noqa: E731
    decision, cands = choose(quotes, Cheapest(), lim, now=T0, can_pay=can_pay)
    eligible = [c.quote for c in cands if c.eligible]
    if decision.choice is not None:
        assert all(decision.choice.price.to_decimal() <= q.price.to_decimal() for q in eligible)
        prices = [r.quote.price.to_decimal() for r in decision.ranking]
        assert prices == sorted(prices)


@settings(settings.get_profile("strategies"))
@given(quote_sets(), st.integers(min_value=1, max_value=9).map(str) | st.just(Decimal("0.7")), st.data())
def test_weighted_with_only_a_price_weight_ranks_like_cheapest(
    quotes: list[QuoteView], weight: Any, data: st.DataObject
) -> None:
    ctx = DecisionContext(budget=Money(5_000_000, 6, "USDC"), now=T0)
    usdc = [q for q in quotes if q.price.currency == "USDC"]
    by_price = Weighted(price=weight).rank(usdc, ctx)
    cheapest = Cheapest().rank(data.draw(st.permutations(usdc)), ctx)
    assert [r.quote for r in by_price.ranking] == [r.quote for r in cheapest.ranking]
    assert by_price.choice == cheapest.choice
