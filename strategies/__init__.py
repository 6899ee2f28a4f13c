"""Pluggable, explainable quote-selection strategies for buyer_agent.

The framework's eligibility guard filters quotes first (budget, limits, policy, expiry, rails), so a
strategy only ranks quotes the buyer may take. ``load_strategy`` resolves a task file's ``strategy``.
"""

from strategies._base import BaseStrategy, FunctionStrategy, alternatives, as_strategy
from strategies._builtin import BestScore, Cheapest, NativeFirst
from strategies._errors import StrategyError
from strategies._fallback import Fallback, fallback
from strategies._registry import ENTRY_POINT_GROUP, available_strategies, load_strategy
from strategies._types import Decision, DecisionContext, QuoteView, Ranked, RankFunction, Strategy
from strategies._weighted import DEFAULT_WEIGHTS, Weighted

__all__ = [  # noqa: RUF022 - plain sorted(), as tests/test_exports.py checks
    "BaseStrategy",
    "BestScore",
    "Cheapest",
    "DEFAULT_WEIGHTS",
    "Decision",
    "DecisionContext",
    "ENTRY_POINT_GROUP",
    "Fallback",
    "FunctionStrategy",
    "NativeFirst",
    "QuoteView",
    "RankFunction",
    "Ranked",
    "Strategy",
    "StrategyError",
    "Weighted",
    "alternatives",
    "as_strategy",
    "available_strategies",
    "fallback",
    "load_strategy",
]
