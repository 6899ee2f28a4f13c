"""The states an order moves through."""

from __future__ import annotations

import enum

__all__ = ["TERMINAL", "OrderState"]


class OrderState(enum.StrEnum):
    """Where an order stands. Persisted as the value in the journal."""

    CREATED = "created"
    """Submitted and journaled; nothing has happened yet."""
    PAIRED = "paired"
    """The agent holds a valid pairing for the machine."""
    SEARCHED = "searched"
    """The market answered the search with quotes (possibly none)."""
    QUOTED = "quoted"
    """An eligible quote was chosen within budget and policy."""
    AWAITING_APPROVAL = "awaiting_approval"
    """The price is above the approval threshold; waits for ``approve``."""
    ORDERED = "ordered"
    """The market order exists; the amount is committed in the ledger."""
    PAYING = "paying"
    """Payment signed and journaled; broadcast may have happened; outcome not yet known.

    The runner reconciles by transaction hash or signature and never signs a second payment.
    """
    PAID = "paid"
    """Transfer or deposit confirmed on chain and (direct rails) the proof accepted."""
    ESCROW_LOCKED = "escrow_locked"
    """The market recorded the escrow lock (skipped on direct rails)."""
    EXECUTED = "executed"
    """The market says the service ran; its outcome is stored."""
    CONFIRMED = "confirmed"
    """Terminal: delivery accepted (and, on escrow rails, the escrow released and recorded)."""
    DISPUTED = "disputed"
    """Acceptance failed or execution timed out; the payment is frozen until refunded."""
    REFUNDED = "refunded"
    """Terminal: the market refunded the buyer."""
    HANDED_OFF = "handed_off"
    """Terminal: the market handed execution off to an external flow (202)."""
    FAILED = "failed"
    """Terminal: the order stopped with an error (before any money moved, unless the error says so)."""
    CANCELLED = "cancelled"
    """Terminal: cancelled by the caller before any money moved."""


#: States an order never leaves.
TERMINAL: frozenset[OrderState] = frozenset(
    {
        OrderState.CONFIRMED,
        OrderState.REFUNDED,
        OrderState.HANDED_OFF,
        OrderState.FAILED,
        OrderState.CANCELLED,
    }
)
