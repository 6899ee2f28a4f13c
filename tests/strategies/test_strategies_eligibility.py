"""The eligibility guard: each rule names its reason; no strategy chooses outside what it was given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from strategies_quotes import EVM, SOL, T0, open_limits, pay_anything, quote, usdc

from buyer_agent._errors import PolicyError
from buyer_agent._money import Money
from buyer_agent.workflow._eligibility import Limits, check_quotes, choose
from strategies import Cheapest, Decision, DecisionContext, QuoteView, Ranked, StrategyError, load_strategy


def reasons(
    q: QuoteView, limits: Limits, *, allow_handoff: bool = True, now: datetime = T0
) -> tuple[str, ...]:
    (cand,) = check_quotes(
        [q], limits, now=now, can_pay=lambda rail, chain: chain == EVM, allow_handoff=allow_handoff
    )
    assert cand.eligible is (cand.reasons[0].startswith("eligible"))
    return cand.reasons


def test_a_quote_within_everything_is_eligible_and_says_so() -> None:
    assert reasons(quote("a", "2.50"), open_limits("2.50")) == (
        "eligible: 2.50 USDC within budget 2.50 USDC and policy",
    )


def test_money_rules() -> None:
    lim = Limits(
        order_budget=usdc("5"),
        per_transaction_limit=usdc("3"),
        daily_limit=usdc("20"),
        spent_today=usdc("19.50"),
    )
    assert reasons(quote("a", "4.00"), replace(lim, order_budget=usdc("2.50"))) == (
        "price 4.00 USDC over order budget 2.50 USDC",
        "price 4.00 USDC over per-transaction limit 3.00 USDC",
        "spent today 19.50 USDC + price 4.00 USDC over daily limit 20.00 USDC",
    )
    assert reasons(quote("a", "0.50"), lim)[0].startswith("eligible")
    assert reasons(quote("a", "0.51"), lim) == (
        "spent today 19.50 USDC + price 0.51 USDC over daily limit 20.00 USDC",
    )
    assert reasons(quote("a", Money.of("1", "EUR", 2)), lim) == ("price in EUR, budget in USDC",)
    # One currency with other decimals compares exactly; a limit in another currency fails closed.
    assert reasons(quote("a", Money(5 * 10**17, 18, "USDC")), lim)[0].startswith("eligible")
    assert reasons(quote("a", "0.1"), replace(lim, per_transaction_limit=Money.of("9", "EUR", 2))) == (
        "per-transaction limit is in EUR, the price in USDC",
    )
    assert reasons(quote("a", Money(-1, 6, "USDC")), lim) == ("price -0.000001 USDC is negative",)


def test_policy_lists_deny_beats_allow() -> None:
    base = open_limits()
    q = quote("a", service_id="svc_x", skill_key="ocr")
    assert reasons(
        q, replace(base, denied_service_ids=frozenset({"svc_x"}), allowed_service_ids=frozenset({"svc_x"}))
    ) == ("service svc_x is denied by the policy",)
    assert reasons(q, replace(base, allowed_service_ids=frozenset({"svc_y"}))) == (
        "service svc_x is not in the policy's allowed services",
    )
    assert reasons(q, replace(base, denied_skill_keys=frozenset({"ocr"}))) == (
        "skill ocr is denied by the policy",
    )
    assert reasons(q, replace(base, allowed_skill_keys=frozenset({"sha256"}))) == (
        "skill ocr is not in the policy's allowed skills",
    )
    assert reasons(q, replace(base, allowed_skill_keys=frozenset({"ocr"})))[0].startswith("eligible")


def test_expiry_rails_and_handoff() -> None:
    lim = open_limits()
    assert reasons(quote("a", expires_at=T0), lim) == (f"quote expired at {T0.isoformat()}",)
    assert reasons(quote("a", expires_at=T0 + timedelta(seconds=1)), lim)[0].startswith("eligible")
    assert reasons(quote("a", expires_at=datetime(2030, 1, 1)), lim) == (
        "the quote's expiry has no time zone",
    )
    assert reasons(quote("a", chain=SOL), lim) == (f"no rail to pay wallet on {SOL}",)
    assert reasons(quote("a", chain=None, rail=""), lim) == (
        "no rail to pay an unnamed rail on an unnamed chain",
    )
    handoff = quote("a", execution_mode="external-handoff")
    assert reasons(handoff, lim, allow_handoff=False) == (
        "execution by external-handoff is not allowed by the task",
    )
    assert reasons(handoff, lim)[0].startswith("eligible")
    with pytest.raises(ValueError, match="timezone"):
        check_quotes([], lim, now=datetime(2026, 1, 1), can_pay=pay_anything)


def test_choose_ranks_only_the_eligible_quotes() -> None:
    qs = [quote("premium", "4.00", "0.99"), quote("budget", "0.80", "0.70"), quote("fast", "1.20", "0.92")]
    decision, cands = choose(qs, load_strategy("best_score"), open_limits(), now=T0, can_pay=pay_anything)
    assert [c.eligible for c in cands] == [False, True, True]
    assert decision.choice == qs[2] and [r.quote.quote_id for r in decision.ranking] == ["fast", "budget"]
    nothing, _ = choose(qs, Cheapest(), open_limits("0.10"), now=T0, can_pay=pay_anything)
    assert nothing.choice is None and nothing.reason == "no eligible quote"


def test_choose_refuses_a_strategy_that_reaches_outside_what_it_was_given() -> None:
    qs = [quote("over", "4.00"), quote("ok", "1.00")]
    forged = replace(qs[1], price=usdc("0.01"))

    def pick(choice: object, ranking: tuple[Ranked, ...] = ()) -> object:
        return lambda quotes, ctx: Decision(choice, ranking, "mine")  # type: ignore[arg-type]

    for bad, message in [
        (pick(qs[0]), "chose quote 'over', which is not an eligible quote it was given"),
        (pick(forged), "chose quote 'ok'"),
        (pick("ok"), "chose quote 'ok'"),
        (
            pick(qs[1], (Ranked(qs[1], Decimal(1), ()), Ranked(qs[0], Decimal(0), ()))),
            "ranked quotes it was not given: over",
        ),
        (pick(None, ("ok",)), "ranking of something other than Ranked"),  # type: ignore[arg-type]
        (lambda quotes, ctx: "ok", "returned str, not a Decision"),
    ]:
        with pytest.raises(PolicyError, match=message):
            choose(qs, bad, open_limits(), now=T0, can_pay=pay_anything)  # type: ignore[arg-type]


def test_a_strategy_that_crashes_is_a_strategy_error() -> None:
    def broken(quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        raise ZeroDivisionError("oops")

    with pytest.raises(StrategyError, match="strategy broken failed: ZeroDivisionError: oops"):
        choose([quote("a")], broken, open_limits(), now=T0, can_pay=pay_anything)
