"""The typed model one order's machine drives: guards judge facts, the callback journals or hands over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from buyer_agent.journal import Event, Journal
from buyer_agent.workflow._facts import OrderFacts
from buyer_agent.workflow._guards import GUARDS

__all__ = ["OrderModel"]


class OrderModel:
    """One order inside a ``transitions`` machine.

    Each ``guard_<condition>`` is the table's predicate (``_guards``) over the order's facts and the
    event's data: the facts given as ``facts=`` with the trigger, else those the model was built
    with, else (with a journal) the fold of the order's events. :meth:`journal_transition` runs
    before the state changes: with a journal it appends the event and updates the order row in one
    transaction; without one (the runner, whose store is async) it keeps the move in
    :attr:`pending` for the caller to journal. Nothing else happens in callbacks.
    """

    state: str
    trigger: Callable[..., bool]

    def __init__(self, journal: Journal | None, order_id: str, facts: OrderFacts | None = None) -> None:
        self.journal = journal
        self.order_id = order_id
        self.facts = facts
        self.last_event: Event | None = None
        #: ``(trigger, src, dst)`` of the move a journal-less model let through.
        self.pending: tuple[str, str, str] | None = None

    def journal_transition(self, event: Any) -> None:
        """Journal the transition (its payload, context patch, ledger change) atomically."""
        name, src, dst = event.event.name, event.transition.source, event.transition.dest
        if self.journal is None:
            self.pending = (name, src, dst)
            return
        kw = event.kwargs
        self.last_event = self.journal.record(
            self.order_id,
            name,
            src,
            dst,
            kw.get("payload") or {},
            kw.get("context"),
            ledger=kw.get("ledger"),
            pairing_id=kw.get("pairing_id"),
            market_order_id=kw.get("market_order_id"),
        )

    def _facts(self, event: Any) -> OrderFacts | None:
        given = event.kwargs.get("facts")
        if isinstance(given, OrderFacts):
            return given
        if self.facts is None and self.journal is not None:
            from buyer_agent.workflow._fold import fold

            self.facts = fold(self.journal.events(self.order_id))
        return self.facts

    def _check(self, name: str, event: Any) -> bool:
        return GUARDS[name](self._facts(event), event.kwargs) is None

    # --- guards (conditions of the transition table; each is ``_guards.<name>``) ------------

    def guard_has_choice(self, event: Any) -> bool:
        """A quote was chosen."""
        return self._check("has_choice", event)

    def guard_quote_fresh(self, event: Any) -> bool:
        """The quote has not expired at the event's clock reading."""
        return self._check("quote_fresh", event)

    def guard_within_limits(self, event: Any) -> bool:
        """The quote passes the eligibility guard again (budget, limits, policy, rail)."""
        return self._check("within_limits", event)

    def guard_over_threshold(self, event: Any) -> bool:
        """The price is above the approval threshold and not yet approved."""
        return self._check("over_threshold", event)

    def guard_approved(self, event: Any) -> bool:
        """No approval is needed, or it was given."""
        return self._check("approved", event)

    def guard_rail_available(self, event: Any) -> bool:
        """A registered rail can pay the request."""
        return self._check("rail_available", event)

    def guard_intent_matches(self, event: Any) -> bool:
        """The payment intent matches the quote (amount, payee, token)."""
        return self._check("intent_matches", event)

    def guard_payment_confirmed(self, event: Any) -> bool:
        """Every payment transaction is confirmed on chain."""
        return self._check("payment_confirmed", event)

    def guard_escrow_rail(self, event: Any) -> bool:
        """The order pays through an escrow rail."""
        return self._check("escrow_rail", event)

    def guard_direct_rail(self, event: Any) -> bool:
        """The order pays by direct transfer (no escrow)."""
        return self._check("direct_rail", event)

    def guard_no_payment(self, event: Any) -> bool:
        """The order needs no payment (a free quote, and the market order agrees)."""
        return self._check("no_payment", event)

    def guard_authorization_held(self, event: Any) -> bool:
        """x402: the journaled authorization was proven and the market holds the payment."""
        return self._check("authorization_held", event)
