"""Pluggable, explainable quote-selection strategies for buyer_agent."""

__all__: list[str] = []
