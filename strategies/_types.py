"""The values strategies see and return: quote snapshots, ranked candidates, the decision."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeAlias, runtime_checkable

from buyer_agent._money import Money

__all__ = ["Decision", "DecisionContext", "QuoteView", "RankFunction", "Ranked", "Strategy"]


@dataclass(frozen=True, slots=True)
class QuoteView:
    """A frozen snapshot of one quote, built by the framework from the market's answer."""

    quote_id: str
    service_id: str
    provider_key: str
    skill_key: str
    price: Money
    score: Decimal
    execution_mode: str
    rail: str
    chain: str | None
    expires_at: datetime
    latency_ms: int | None = None
    reputation: Decimal | None = None
    reasons: tuple[str, ...] = ()

    @property
    def native(self) -> bool:
        """True when the market runs the service itself (no external handoff)."""
        return self.execution_mode == "native"


@dataclass(frozen=True, slots=True)
class Ranked:
    """One candidate as a strategy ranked it: its score (higher is better) and why."""

    quote: QuoteView
    score: Decimal
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    """A strategy's answer: the choice (or None), every candidate best first, and one line of why."""

    choice: QuoteView | None
    ranking: tuple[Ranked, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a strategy may know besides the quotes; injected, so strategies never read the clock."""

    budget: Money
    now: datetime


@runtime_checkable
class Strategy(Protocol):
    """Anything with a ``name`` that ranks quotes. The framework filters the quotes first."""

    name: str

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Rank ``quotes`` (all eligible) best first, choose one or none, and say why."""
        ...


#: A plain function accepted wherever a strategy is (wrapped by ``as_strategy``).
RankFunction: TypeAlias = Callable[[Sequence[QuoteView], DecisionContext], Decision]
