"""The strategy base class (combinators, alternatives), plain-function wrapping and the sort helper."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from strategies._errors import StrategyError
from strategies._types import Decision, DecisionContext, QuoteView, Ranked, Strategy

if TYPE_CHECKING:
    from strategies._fallback import Fallback

__all__ = ["BaseStrategy", "FunctionStrategy", "alternatives", "as_strategy", "decide"]


def alternatives(
    strategy: Strategy, quotes: Sequence[QuoteView], ctx: DecisionContext
) -> tuple[QuoteView, ...]:
    """The order in which to try ``quotes``: the choice first, then the rest of the ranking.

    Empty when the strategy chooses nothing. Quotes the strategy did not rank are not tried.
    """
    decision = strategy.rank(quotes, ctx)
    if decision.choice is None:
        return ()
    order = [decision.choice]
    for r in decision.ranking:
        if r.quote not in order:
            order.append(r.quote)
    return tuple(order)


def decide(
    ranked: Iterable[Ranked], *, reason: Callable[[Ranked], str], empty: str = "no eligible quote"
) -> Decision:
    """A decision choosing the first of an already sorted ranking, with ``reason(first)`` as its line."""
    ranking = tuple(ranked)
    if not ranking:
        return Decision(None, (), empty)
    return Decision(ranking[0].quote, ranking, reason(ranking[0]))


class BaseStrategy:
    """Base for strategies: ``rank`` to implement; ``alternatives`` and ``a | b`` (fallback) for free."""

    name: str = "strategy"

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Rank ``quotes`` best first and choose one (subclasses implement this)."""
        raise NotImplementedError

    def alternatives(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> tuple[QuoteView, ...]:
        """The quotes to try in order when ordering the first choice fails."""
        return alternatives(self, quotes, ctx)

    def __or__(self, other: Any) -> Fallback:
        from strategies._fallback import Fallback

        return Fallback(self, as_strategy(other))

    def __ror__(self, other: Any) -> Fallback:
        from strategies._fallback import Fallback

        return Fallback(as_strategy(other), self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class FunctionStrategy(BaseStrategy):
    """A plain ``(quotes, ctx) -> Decision`` function used as a strategy."""

    def __init__(
        self, fn: Callable[[Sequence[QuoteView], DecisionContext], Decision], name: str | None = None
    ):
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", "function"))

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Call the wrapped function."""
        return self.fn(quotes, ctx)

    def __repr__(self) -> str:
        return f"FunctionStrategy({self.name!r})"


class _Adapter(BaseStrategy):
    """Any object honouring the ``Strategy`` protocol, given the base class's combinators."""

    def __init__(self, inner: Strategy):
        self.inner = inner
        self.name = str(inner.name)

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Delegate to the wrapped strategy."""
        return self.inner.rank(quotes, ctx)

    def __repr__(self) -> str:
        return repr(self.inner)


def as_strategy(obj: Any) -> BaseStrategy:
    """``obj`` as a ``BaseStrategy``: a strategy instance, or a plain ``(quotes, ctx)`` function.

    Raises:
        StrategyError: ``obj`` is neither.
    """
    if isinstance(obj, BaseStrategy):
        return obj
    if isinstance(obj, Strategy) and not isinstance(obj, type):
        return _Adapter(obj)
    if callable(obj) and not isinstance(obj, type):
        return FunctionStrategy(obj)
    raise StrategyError(
        f"{obj!r} is not a strategy: give an object with name and rank(quotes, ctx), "
        "or a function (quotes, ctx) -> Decision"
    )
