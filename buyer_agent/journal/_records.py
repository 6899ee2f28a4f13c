"""The rows the journal hands out: orders, events, ledger entries."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from buyer_agent._money import Money

__all__ = ["Event", "LedgerChange", "LedgerEntry", "LedgerStatus", "OrderRecord"]


@dataclass(frozen=True, slots=True)
class Event:
    """One append-only journal event: ``trigger`` moved the order from ``src`` to ``dst``.

    Intents and results of side effects are events with ``src == dst``. ``hash`` chains the event to
    ``prev_hash`` so any edit, deletion or reordering is detected.
    """

    order_id: str
    seq: int
    at: str
    trigger: str
    src: str
    dst: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The event as exported (every stored field)."""
        return {
            "order_id": self.order_id,
            "seq": self.seq,
            "at": self.at,
            "trigger": self.trigger,
            "src": self.src,
            "dst": self.dst,
            "payload": dict(self.payload),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order's current row: its state, working context and spec."""

    order_id: str
    state: str
    context: Mapping[str, Any]
    spec: Mapping[str, Any]
    pairing_id: str | None
    market_order_id: str | None
    created_at: str
    updated_at: str
    lease_owner: str | None = None
    lease_until: str | None = None
    lease_epoch: int = 0


class LedgerStatus(enum.StrEnum):
    """Where an order's reservation of the pairing's budget stands."""

    COMMITTED = "committed"
    """Reserved when the market order is created; counts against the daily limit."""
    SPENT = "spent"
    """The payment confirmed on chain."""
    RELEASED = "released"
    """Given back: the order failed before any money moved."""


@dataclass(frozen=True, slots=True)
class LedgerChange:
    """A ledger update applied in the same transaction as an event.

    ``COMMITTED`` needs ``pairing_id`` and ``amount`` (it replaces an earlier reservation of the same
    order, for a fallback quote); ``SPENT`` and ``RELEASED`` change the order's existing row. With
    ``daily_limit``, the store refuses the commitment (``BudgetExceeded``) when it would take what
    the pairing committed and spent that UTC day past the limit: checked and recorded in one
    transaction, so concurrent drivers never overspend together.
    """

    status: LedgerStatus
    pairing_id: str | None = None
    amount: Money | None = None
    daily_limit: Money | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One order's reservation or spend against its pairing on a UTC day."""

    pairing_id: str
    day: str
    order_id: str
    amount: Money
    status: LedgerStatus
    meta: Mapping[str, Any] = field(default_factory=dict)
