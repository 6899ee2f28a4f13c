"""The typed model one order's machine drives: guards read facts, the callback journals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from buyer_agent.journal import Event, Journal

__all__ = ["OrderModel"]


class OrderModel:
    """One order inside a ``transitions`` machine.

    The runner fires ``trigger(name, payload=…, context=…, <facts>)``; each ``guard_<condition>``
    reads its fact from the event's keyword arguments (computed by the runner just before, from the
    eligibility guard, the clock and the rails), and :meth:`journal_transition` appends the event
    and updates the order row in one transaction before the state changes. Nothing else happens in
    callbacks.
    """

    state: str
    trigger: Callable[..., bool]

    def __init__(self, journal: Journal, order_id: str) -> None:
        self.journal = journal
        self.order_id = order_id
        self.last_event: Event | None = None

    def journal_transition(self, event: Any) -> None:
        """Journal the transition (its payload, context patch, ledger change) atomically."""
        kw = event.kwargs
        self.last_event = self.journal.record(
            self.order_id,
            event.event.name,
            event.transition.source,
            event.transition.dest,
            kw.get("payload") or {},
            kw.get("context"),
            ledger=kw.get("ledger"),
            pairing_id=kw.get("pairing_id"),
            market_order_id=kw.get("market_order_id"),
        )

    # --- guards (conditions of the transition table) ---------------------------------------

    @staticmethod
    def guard_has_choice(event: Any) -> bool:
        """A strategy chose a quote."""
        return event.kwargs.get("choice") is not None

    @staticmethod
    def guard_quote_fresh(event: Any) -> bool:
        """The quote has not expired."""
        expires_at, now = event.kwargs.get("expires_at"), event.kwargs.get("now")
        return expires_at is not None and now is not None and bool(expires_at > now)

    @staticmethod
    def guard_within_limits(event: Any) -> bool:
        """The eligibility guard passed the quote (budget, per-tx and daily limits, policy, rail)."""
        return event.kwargs.get("eligible") is True

    @staticmethod
    def guard_over_threshold(event: Any) -> bool:
        """The price is above the approval threshold."""
        return event.kwargs.get("over_threshold") is True

    @staticmethod
    def guard_approved(event: Any) -> bool:
        """No approval is needed, or it was given."""
        return event.kwargs.get("approved") is True

    @staticmethod
    def guard_rail_available(event: Any) -> bool:
        """A registered rail can pay the intent."""
        return event.kwargs.get("rail_available") is True

    @staticmethod
    def guard_intent_matches(event: Any) -> bool:
        """The payment intent matches the quote (amount, payee, token)."""
        return event.kwargs.get("intent_checked") is True and event.kwargs.get("mismatch") is None

    @staticmethod
    def guard_payment_confirmed(event: Any) -> bool:
        """Every payment transaction is confirmed on chain."""
        return event.kwargs.get("confirmed") is True

    @staticmethod
    def guard_escrow_rail(event: Any) -> bool:
        """The order pays through an escrow rail."""
        return event.kwargs.get("escrow") is True

    @staticmethod
    def guard_direct_rail(event: Any) -> bool:
        """The order pays by direct transfer (no escrow)."""
        return event.kwargs.get("escrow") is False
