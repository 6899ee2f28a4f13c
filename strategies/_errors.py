"""The strategies' one error: a bad strategy name, path or params (a ``ValueError`` too)."""

from __future__ import annotations

from buyer_agent._errors import BuyerAgentError

__all__ = ["StrategyError"]


class StrategyError(BuyerAgentError, ValueError):
    """A strategy cannot be loaded or built, or it failed while ranking. Never retried.

    The message lists what would have been accepted (the available strategies, or a strategy's params).
    """
