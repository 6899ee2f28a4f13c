"""An order's summary (the ``run --json`` object) from its facts, without a runner or a market."""

from __future__ import annotations

from buyer_agent.workflow import OrderFacts
from buyer_agent.workflow._read import summary_of
from buyer_agent.workflow._summary import OrderSummary

__all__ = ["order_summary"]


def order_summary(facts: OrderFacts, journal: str) -> OrderSummary:
    """What a caller sees of the order, from its facts alone (the runner returns the same).

    Args:
        facts: The order's facts (:func:`buyer_agent.workflow.fold` of its events).
        journal: Where the journal lives (its path, or ``:memory:``).
    """
    return summary_of(facts, journal)
