"""What a caller sees of an order: the ``run --json`` object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from buyer_agent.workflow._states import OrderState

__all__ = ["OrderSummary", "ProgressEvent"]


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order's state and the facts a caller needs, built from the journal.

    ``quote``: ``{service_id, quote_id, price: {amount, currency}}``; ``candidates``: every quote seen
    with ``{service_id, quote_id, price, score, eligible, reasons}``; ``payment``: ``{rail, chain,
    amount, currency, tx}``; ``outcome``: ``{status, result}``; ``error``: ``{code, message}``.
    Amounts are decimal strings.
    """

    order_id: str
    state: OrderState
    market_order_id: str | None
    quote: Mapping[str, Any] | None
    candidates: tuple[Mapping[str, Any], ...]
    payment: Mapping[str, Any] | None
    outcome: Mapping[str, Any] | None
    error: Mapping[str, Any] | None
    journal: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        """The ``run --json`` object."""
        return {
            "order_id": self.order_id,
            "state": self.state.value,
            "market_order_id": self.market_order_id,
            "quote": dict(self.quote) if self.quote is not None else None,
            "candidates": [dict(c) for c in self.candidates],
            "payment": dict(self.payment) if self.payment is not None else None,
            "outcome": dict(self.outcome) if self.outcome is not None else None,
            "error": dict(self.error) if self.error is not None else None,
            "journal": self.journal,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One state change, for progress output: ``previous → state`` after ``elapsed_s`` seconds."""

    order_id: str
    state: OrderState
    previous: OrderState | None
    elapsed_s: float
    detail: str
