"""The eligibility guard: filters quotes by budget, limits, policy, expiry and rails before any strategy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from buyer_agent._errors import PolicyError
from buyer_agent._money import Money
from strategies import Decision, DecisionContext, QuoteView, Ranked, Strategy, StrategyError, as_strategy

__all__ = ["Candidate", "Limits", "check_quotes", "choose"]

CanPay = Callable[[str, str | None], bool]
#: The rail type of a quote that needs no payment.
_NOT_REQUIRED = "not-required"


@dataclass(frozen=True, slots=True)
class Limits:
    """What the order and the pairing's delegation policy allow (empty allow-lists allow everything)."""

    order_budget: Money
    per_transaction_limit: Money | None
    daily_limit: Money | None
    spent_today: Money
    allowed_service_ids: frozenset[str] = frozenset()
    denied_service_ids: frozenset[str] = frozenset()
    allowed_skill_keys: frozenset[str] = frozenset()
    denied_skill_keys: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One quote after the guard: eligible or not, and why."""

    quote: QuoteView
    eligible: bool
    reasons: tuple[str, ...]


def _over(price: Money, limit: Money, what: str, *, spent: Money | None = None) -> str | None:
    """A reason when ``(spent +) price`` exceeds ``limit``, or when they cannot be compared (fail closed)."""
    if price.currency != limit.currency or (spent is not None and spent.currency != limit.currency):
        return f"{what} is in {limit.currency}, the price in {price.currency}"
    # Exact Decimals compare amounts of one currency even when the decimals differ.
    total = price.to_decimal() + (spent.to_decimal() if spent is not None else Decimal(0))
    if total <= limit.to_decimal():
        return None
    if spent is not None:
        return f"spent today {spent} + price {price} over {what} {limit}"
    return f"price {price} over {what} {limit}"


def _problems(q: QuoteView, limits: Limits, now: datetime, can_pay: CanPay, allow_handoff: bool) -> list[str]:
    out: list[str] = []
    price, budget = q.price, limits.order_budget
    if price.amount < 0:
        out.append(f"price {price} is negative")
    if price.currency != budget.currency:
        out.append(f"price in {price.currency}, budget in {budget.currency}")
    else:
        checks = [
            _over(price, budget, "order budget"),
            _over(price, limits.per_transaction_limit, "per-transaction limit")
            if limits.per_transaction_limit is not None
            else None,
            _over(price, limits.daily_limit, "daily limit", spent=limits.spent_today)
            if limits.daily_limit is not None
            else None,
        ]
        out.extend(c for c in checks if c)
    if q.service_id in limits.denied_service_ids:
        out.append(f"service {q.service_id} is denied by the policy")
    elif limits.allowed_service_ids and q.service_id not in limits.allowed_service_ids:
        out.append(f"service {q.service_id} is not in the policy's allowed services")
    if q.skill_key in limits.denied_skill_keys:
        out.append(f"skill {q.skill_key} is denied by the policy")
    elif limits.allowed_skill_keys and q.skill_key not in limits.allowed_skill_keys:
        out.append(f"skill {q.skill_key} is not in the policy's allowed skills")
    if q.expires_at.tzinfo is None:
        out.append("the quote's expiry has no time zone")
    elif q.expires_at <= now:
        out.append(f"quote expired at {q.expires_at.isoformat()}")
    if q.rail == _NOT_REQUIRED and price.amount != 0:
        # Nothing would be paid, yet the market names a price: the quote says two things at once.
        out.append(f"the quote needs no payment ({_NOT_REQUIRED}) but names a price of {price}")
    if not can_pay(q.rail, q.chain):
        out.append(f"no rail to pay {q.rail or 'an unnamed rail'} on {q.chain or 'an unnamed chain'}")
    if not q.native and not allow_handoff:
        out.append(f"execution by {q.execution_mode} is not allowed by the task")
    return out


def check_quotes(
    quotes: Iterable[QuoteView],
    limits: Limits,
    *,
    now: datetime,
    can_pay: CanPay,
    allow_handoff: bool = True,
) -> tuple[Candidate, ...]:
    """Every quote with its eligibility and the reasons, in the order given.

    Args:
        quotes: The quotes' snapshots.
        limits: The order budget and the pairing's limits, lists and spend today.
        now: The decision time (timezone-aware).
        can_pay: Whether the buyer has a rail for ``(rail_type, chain)``.
        allow_handoff: Whether an external-handoff quote may be taken.

    Raises:
        ValueError: ``now`` has no time zone.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out = []
    for q in quotes:
        problems = _problems(q, limits, now, can_pay, allow_handoff)
        if problems:
            out.append(Candidate(q, False, tuple(problems)))
        else:
            out.append(
                Candidate(q, True, (f"eligible: {q.price} within budget {limits.order_budget} and policy",))
            )
    return tuple(out)


def choose(
    quotes: Iterable[QuoteView],
    strategy: Strategy | Callable[[Sequence[QuoteView], DecisionContext], Decision],
    limits: Limits,
    *,
    now: datetime,
    can_pay: CanPay,
    allow_handoff: bool = True,
) -> tuple[Decision, tuple[Candidate, ...]]:
    """Filter ``quotes`` through the guard, then let ``strategy`` rank the eligible ones only.

    Returns:
        The strategy's decision and every candidate with its eligibility.

    Raises:
        PolicyError: The strategy chose or ranked a quote it was not given (an ineligible one), or
            returned something other than a ``Decision``: nothing outside the budget is ever chosen.
        StrategyError: The strategy raised while ranking.
    """
    candidates = check_quotes(quotes, limits, now=now, can_pay=can_pay, allow_handoff=allow_handoff)
    eligible = tuple(c.quote for c in candidates if c.eligible)
    runner = as_strategy(strategy)
    try:
        decision = runner.rank(eligible, DecisionContext(budget=limits.order_budget, now=now))
    except (PolicyError, StrategyError):
        raise
    except Exception as exc:  # a plug-in's bug is a failed decision, not a crash of the runner
        raise StrategyError(f"strategy {runner.name} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(decision, Decision):
        raise PolicyError(f"strategy {runner.name} returned {type(decision).__name__}, not a Decision")
    given = set(eligible)
    if decision.choice is not None and (
        not isinstance(decision.choice, QuoteView) or decision.choice not in given
    ):
        raise PolicyError(
            f"strategy {runner.name} chose quote {getattr(decision.choice, 'quote_id', decision.choice)!r}, "
            "which is not an eligible quote it was given",
            rule="eligibility",
        )
    if not all(isinstance(r, Ranked) and isinstance(r.quote, QuoteView) for r in decision.ranking):
        raise PolicyError(f"strategy {runner.name} returned a ranking of something other than Ranked quotes")
    outside = [r.quote.quote_id for r in decision.ranking if r.quote not in given]
    if outside:
        raise PolicyError(
            f"strategy {runner.name} ranked quotes it was not given: {', '.join(outside)}", rule="eligibility"
        )
    return decision, candidates
