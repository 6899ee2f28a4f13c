"""The ``fallback`` combinator: an ordered chain of strategies, tried in turn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from strategies._base import BaseStrategy, as_strategy
from strategies._errors import StrategyError
from strategies._scoring import stable_key
from strategies._types import Decision, DecisionContext, QuoteView, Ranked

__all__ = ["Fallback", "fallback"]


class Fallback(BaseStrategy):
    """An ordered chain: the first strategy's choice, else the next one's, and so on.

    The ranking is the order in which the workflow tries quotes when ordering one fails (while the
    quotes are fresh, without searching again): each strategy's choice in chain order, then the rest
    of the first strategy's ranking, then anything the later strategies ranked, then the quotes no
    strategy ranked (by a stable key). Each entry keeps the score and reasons of the strategy that
    placed it, prefixed by that strategy's name. ``a | b`` builds ``Fallback(a, b)``; chains flatten.
    """

    name = "fallback"

    def __init__(self, *strategies: Any) -> None:
        if not strategies:
            raise StrategyError("fallback needs at least one strategy in its chain")
        chain: list[BaseStrategy] = []
        for s in strategies:
            s = as_strategy(s)
            chain.extend(s.chain if isinstance(s, Fallback) else (s,))
        self.chain: tuple[BaseStrategy, ...] = tuple(chain)

    def __repr__(self) -> str:
        return "Fallback(" + ", ".join(repr(s) for s in self.chain) + ")"

    def rank(self, quotes: Sequence[QuoteView], ctx: DecisionContext) -> Decision:
        """Run every strategy of the chain and merge their choices and rankings in chain order."""
        decisions = [(s, s.rank(quotes, ctx)) for s in self.chain]
        placed: dict[QuoteView, Ranked] = {}

        def place(owner: BaseStrategy, r: Ranked, note: str | None = None) -> None:
            if r.quote not in placed:
                lead = f"{owner.name}: {note}" if note else f"{owner.name}"
                placed[r.quote] = Ranked(r.quote, r.score, (lead, *r.reasons))

        for i, (s, d) in enumerate(decisions):
            if d.choice is not None:
                mine = next((r for r in d.ranking if r.quote == d.choice), None)
                place(s, mine or Ranked(d.choice, d.choice.score, ()), f"choice {i + 1} of the chain")
        for s, d in decisions:
            for r in d.ranking:
                place(s, r)
        for q in sorted(quotes, key=stable_key):
            if q not in placed:
                placed[q] = Ranked(q, q.score, ("ranked by no strategy of the chain",))
        ranking = tuple(placed.values())
        lines: list[str] = []
        for s, d in decisions:
            if d.choice is not None:
                lead = "; ".join(lines)
                return Decision(
                    d.choice, ranking, f"{lead}; {s.name}: {d.reason}" if lead else f"{s.name}: {d.reason}"
                )
            lines.append(f"{s.name} chose nothing ({d.reason})")
        return Decision(None, ranking, "; ".join(lines) or "no eligible quote")


def fallback(*chain: Any) -> Fallback:
    """``Fallback(*chain)``: each strategy's choice in turn (``a | b`` does the same)."""
    return Fallback(*chain)
